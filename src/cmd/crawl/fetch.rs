//! Fetching one URL: a blocking ureq agent (timeouts, a body size cap, keep-alive pool),
//! robots.txt per origin, a per-host politeness delay. Redirects are NOT followed here: the
//! caller dedupes each target like any link, which also ends redirect loops.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use texting_robots::Robot;
use url::Url;

use super::links::{self, Rejected};

/// The User-Agent sent, and the name looked up in robots.txt.
pub const AGENT_NAME: &str = "zkutil-crawler";

/// What fetching a URL gave.
#[derive(Debug)]
pub enum Outcome {
    /// A 2xx text/html page and its links.
    Page { status: u16, links: Vec<Url> },
    /// A 3xx with a Location (resolved against the URL, normalized) or why it is unusable.
    Redirect { status: u16, target: Result<Url, Rejected> },
    /// Any other status, or a body that is not HTML: not parsed.
    Other { status: u16 },
    /// No HTTP answer (refused, timed out, too large, ...): a short reason.
    Error(String),
    /// Not fetched: the crawl was stopped while this waited for its politeness slot.
    Stopped,
}

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub timeout: Duration,
    pub max_body: u64,
    pub robots: bool,
    pub delay: Duration,
    pub threads: usize,
}

type RobotsSlot = Arc<OnceLock<Option<Robot>>>;

/// Shared by every crawl thread.
pub struct Fetcher {
    agent: ureq::Agent,
    opts: FetchOptions,
    robots: Mutex<HashMap<String, RobotsSlot>>,
    /// Per host: when the next request may start.
    next_slot: Mutex<HashMap<String, Instant>>,
    /// Per host: the robots.txt Crawl-delay, when longer than --delay-ms.
    host_delay: Mutex<HashMap<String, Duration>>,
    /// Set by `stop`: politeness waits end at once and their fetches are dropped.
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Fetcher {
    pub fn new(opts: FetchOptions) -> Fetcher {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(opts.timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .user_agent(format!("{AGENT_NAME}/{} (zkutil crawl)", env!("CARGO_PKG_VERSION")))
            .max_idle_connections(opts.threads.max(1) * 4)
            .max_idle_connections_per_host(opts.threads.max(1))
            .build()
            .into();
        Fetcher {
            agent,
            opts,
            robots: Mutex::new(HashMap::new()),
            next_slot: Mutex::new(HashMap::new()),
            host_delay: Mutex::new(HashMap::new()),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Ends the waits for politeness slots (Ctrl-C): a delay of seconds times many threads
    /// must not hold the stop up. Fetches already under way end by their timeout.
    pub fn stop(&self) {
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }

    /// May we fetch `url` under its origin's robots.txt? The file is fetched once per origin
    /// (redirects followed). As RFC 9309 says: a 4xx (missing) robots.txt allows everything,
    /// a 5xx (or 429) disallows everything; no answer at all allows (the fetch then reports
    /// why the host does not answer).
    pub fn allowed(&self, url: &Url) -> bool {
        if !self.opts.robots {
            return true;
        }
        let origin = url.origin().ascii_serialization();
        let slot = {
            let mut m = self.robots.lock().unwrap_or_else(|e| e.into_inner());
            m.entry(origin.clone()).or_default().clone()
        };
        let robot = slot.get_or_init(|| self.load_robots(url, &origin));
        match robot {
            Some(r) => r.allowed(url.as_str()),
            None => true,
        }
    }

    fn load_robots(&self, url: &Url, origin: &str) -> Option<Robot> {
        let robots_url = format!("{origin}/robots.txt");
        if !self.wait_turn(url) {
            return None;
        }
        let mut resp = self.agent.get(&robots_url).config().max_redirects(5).build().call().ok()?;
        let status = resp.status().as_u16();
        if status >= 500 || status == 429 {
            return Robot::new(AGENT_NAME, b"User-agent: *\nDisallow: /\n").ok();
        }
        if !resp.status().is_success() {
            return None;
        }
        let body = resp.body_mut().with_config().limit(512 * 1024).read_to_vec().ok()?;
        let robot = Robot::new(AGENT_NAME, &body).ok()?;
        if let (Some(d), Some(host)) = (robot.delay, url.host_str())
            && d.is_finite()
            && d > 0.0
        {
            let d = Duration::from_secs_f32(d.min(60.0));
            if d > self.opts.delay {
                self.host_delay.lock().unwrap_or_else(|e| e.into_inner()).insert(host.to_string(), d);
            }
        }
        Some(robot)
    }

    /// Sleeps until this host may be asked again (--delay-ms, or robots.txt's Crawl-delay);
    /// false when the crawl was stopped meanwhile.
    fn wait_turn(&self, url: &Url) -> bool {
        let host = url.host_str().unwrap_or_default();
        let delay =
            self.host_delay.lock().unwrap_or_else(|e| e.into_inner()).get(host).copied().unwrap_or(self.opts.delay);
        if delay.is_zero() {
            return true;
        }
        let start = {
            let mut m = self.next_slot.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let slot = m.entry(host.to_string()).or_insert(now);
            let start = (*slot).max(now);
            *slot = start + delay;
            start
        };
        let mut stopped = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        while !*stopped {
            let now = Instant::now();
            if start <= now {
                break;
            }
            stopped = self.wake.wait_timeout(stopped, start - now).unwrap_or_else(|e| e.into_inner()).0;
        }
        !*stopped
    }

    /// One GET, no redirect followed.
    pub fn fetch(&self, url: &Url) -> Outcome {
        if !self.wait_turn(url) {
            return Outcome::Stopped;
        }
        let mut resp = match self.agent.get(url.as_str()).call() {
            Ok(r) => r,
            Err(e) => return Outcome::Error(reason(&e)),
        };
        let status = resp.status().as_u16();
        if resp.status().is_redirection() {
            let target = match resp.headers().get("location").and_then(|l| l.to_str().ok()) {
                Some(loc) => links::normalize(loc, Some(url)),
                None => Err(Rejected::Invalid("a redirect without a Location".into())),
            };
            return Outcome::Redirect { status, target };
        }
        let html = resp.body().mime_type().is_some_and(|m| m.eq_ignore_ascii_case("text/html"));
        if !resp.status().is_success() || !html {
            return Outcome::Other { status };
        }
        if resp.body().content_length().is_some_and(|n| n > self.opts.max_body) {
            return Outcome::Error(format!("body-too-large(>{})", self.opts.max_body));
        }
        let bytes = match resp.body_mut().with_config().limit(self.opts.max_body).read_to_vec() {
            Ok(b) => b,
            Err(e) => return Outcome::Error(reason(&e)),
        };
        // invalid UTF-8 is replaced, as a browser would; the parser copes with broken HTML
        let text = String::from_utf8_lossy(&bytes);
        let (links, _) = links::extract(&text, url);
        Outcome::Page { status, links }
    }
}

/// A short reason for the output file: no tabs, no newlines.
fn reason(e: &ureq::Error) -> String {
    use ureq::Error as E;
    match e {
        E::Timeout(_) => "timeout".into(),
        E::HostNotFound => "host-not-found".into(),
        E::ConnectionFailed => "connection-failed".into(),
        E::BodyExceedsLimit(n) => format!("body-too-large(>{n})"),
        E::TooManyRedirects | E::RedirectFailed => "redirect".into(),
        E::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection-refused".into(),
            std::io::ErrorKind::ConnectionReset => "connection-reset".into(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "timeout".into(),
            std::io::ErrorKind::UnexpectedEof => "connection-closed".into(),
            _ => format!("io({})", one_word(&io.to_string())),
        },
        E::Protocol(p) => format!("protocol({})", one_word(&p.to_string())),
        other => one_word(&other.to_string()),
    }
}

fn one_word(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join("-").replace('\t', " ")
}
