//! `zkutil crawl`: a multi-threaded breadth-first crawler whose seen-URL set lives in
//! ZooKeeper (recipes::urlset), so crawlers with the same `--name` share one crawl.
//!
//! Claims happen on discovery: a URL is claimed by the crawler that first finds it, and only
//! that crawler fetches it (each crawler follows the links of the pages it fetched). A claim
//! is owned by the claimer's session until its line is written; when a crawler's session
//! ends first, the others adopt what it owed (the protocol: recipes::urlset), so a crawler
//! out of work stays until the whole crawl is done (`Coordinator`).
//! Scope: "same host" compares host names only (scheme and port are ignored), so
//! `http://127.0.0.1:8000` and `http://127.0.0.1:9000` are one host, `localhost` another.

use std::collections::{HashMap, HashSet};
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, never, select};
use url::Url;

use super::Run;
use super::exit::usage;
use crate::cli::{CrawlArgs, DedupeMode, Global};
use crate::recipes::urlset::{Claim, Claimer, UrlSet};
use crate::zk::{self, Halt, Lost};

pub mod dedupe;
pub mod fetch;
pub mod frontier;
pub mod links;
pub mod output;
pub mod site;

use dedupe::{ClaimReply, Dedupe, Local, Verdict};
use fetch::{FetchOptions, Fetcher, Outcome};
use frontier::{Frontier, Item};
use output::Output;

/// Lines written and not yet recorded done in ZooKeeper, per fetching thread, before a
/// thread waits (the most an adopter may fetch again per thread if this crawler dies
/// unnoticed; far above what a healthy crawl has in flight).
pub const WRITE_AHEAD: usize = 16;

/// Redirects followed in a row before a chain is cut (loops end earlier: the target is a
/// duplicate).
const MAX_HOPS: u32 = 10;

/// What one crawl does.
#[derive(Debug, Clone)]
pub struct Config {
    pub start: Vec<Url>,
    pub depth: u32,
    pub threads: usize,
    pub any_host: bool,
    pub fetch: FetchOptions,
    pub max_pages: Option<u64>,
    pub progress: bool,
    /// Claim the start URLs (false when joining again on a new session: only adopt).
    pub claim_start: bool,
}

/// What one crawl did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    /// URLs fetched (errors included): the lines of the output file.
    pub fetched: u64,
    /// Fetches that got no HTTP answer.
    pub errors: u64,
    /// Links not claimed because they were seen before (by this or another crawler).
    pub duplicates: u64,
    /// Links robots.txt disallows.
    pub robots: u64,
    /// Links to other hosts (without --any-host).
    pub out_of_scope: u64,
    /// Start URLs another crawler (or an earlier crawl) already claimed.
    pub start_claimed: Vec<Url>,
    /// Start URLs robots.txt disallows.
    pub start_disallowed: Vec<Url>,
    /// Start URLs that got no HTTP answer, with the reason.
    pub start_errors: Vec<(Url, String)>,
    /// Link occurrences that reached the dedupe.
    pub checks: u64,
    /// URLs sent to ZooKeeper to claim (each: the seen node and the owned entry in one multi).
    pub zk_creates: u64,
    /// Owned entries deleted (URLs recorded done).
    pub zk_deletes: u64,
    /// URLs taken over from crawlers whose session ended before they wrote them.
    pub adopted: u64,
    /// The session was lost mid-crawl (why): fetching stopped, nothing more was written.
    pub session_lost: Option<Lost>,
    pub elapsed: Duration,
    /// Stopped by Ctrl-C / SIGTERM.
    pub interrupted: bool,
}

impl Summary {
    /// Adds the figures of a later round (after a lost session) to these.
    fn add(&mut self, s: Summary) {
        if self.elapsed.is_zero() {
            *self = s;
            return;
        }
        self.fetched += s.fetched;
        self.errors += s.errors;
        self.duplicates += s.duplicates;
        self.robots += s.robots;
        self.out_of_scope += s.out_of_scope;
        self.checks += s.checks;
        self.zk_creates += s.zk_creates;
        self.zk_deletes += s.zk_deletes;
        self.adopted += s.adopted;
        self.elapsed += s.elapsed;
        self.interrupted |= s.interrupted;
        self.session_lost = s.session_lost;
    }

    pub fn pages_per_s(&self) -> f64 {
        self.fetched as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// `crawl -o json`: the summary as one JSON document.
    pub fn json(&self, name: &str) -> serde_json::Value {
        let urls = |v: &[Url]| v.iter().map(|u| u.to_string()).collect::<Vec<_>>();
        serde_json::json!({
            "name": name,
            "fetched": self.fetched,
            "errors": self.errors,
            "duplicates": self.duplicates,
            "robots": self.robots,
            "out_of_scope": self.out_of_scope,
            "start_claimed": urls(&self.start_claimed),
            "start_disallowed": urls(&self.start_disallowed),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "pages_per_s": self.pages_per_s(),
            "adopted": self.adopted,
            "interrupted": self.interrupted,
        })
    }
}

#[derive(Default)]
struct Counters {
    started: AtomicU64,
    fetched: AtomicU64,
    errors: AtomicU64,
    duplicates: AtomicU64,
    robots: AtomicU64,
    out_of_scope: AtomicU64,
    adopted: AtomicU64,
}

/// Parses a start URL; the error is the line the user reads.
pub fn start_url(s: &str) -> Result<Url> {
    links::normalize(s, None).map_err(|e| anyhow::anyhow!("start URL {s:?}: {e}"))
}

/// The default crawl name: host, and `_port` when the URL names a port.
pub fn default_name(u: &Url) -> String {
    let host = u.host_str().unwrap_or("crawl").trim_matches(|c| c == '[' || c == ']').replace(':', "_");
    match u.port() {
        Some(p) => format!("{host}_{p}"),
        None => host,
    }
}

/// Runs a crawl to its end (or to a stop), writing `out` as pages are fetched.
pub fn crawl(cfg: &Config, dedupe: &Dedupe, out: &Output) -> Result<Summary> {
    let t0 = Instant::now();
    let fetcher = Fetcher::new(cfg.fetch.clone());
    let hosts: HashSet<String> = cfg.start.iter().filter_map(|u| u.host_str().map(str::to_string)).collect();
    let c = Counters::default();
    let mut summary = Summary::default();

    let mut start = Vec::new();
    for u in &cfg.start {
        if fetcher.allowed(u) {
            start.push(u.clone());
        } else {
            c.robots.fetch_add(1, Ordering::Relaxed);
            summary.start_disallowed.push(u.clone());
        }
    }
    let claimed = if cfg.claim_start {
        let claimed = dedupe.claim(start.clone(), 0).context("claiming the start URLs")?;
        summary.start_claimed = start.into_iter().filter(|u| !claimed.contains(u)).collect();
        claimed
    } else {
        Vec::new()
    };
    let items: Vec<Item> = claimed.into_iter().map(|url| Item { url, depth: 0, hops: 0 }).collect();
    let (idle_tx, idle_rx) = crossbeam_channel::bounded::<()>(1);
    let frontier = match dedupe.claimer() {
        Some(_) => Frontier::held(items, idle_tx),
        None => Frontier::new(items),
    };
    let lost: Mutex<Option<Lost>> = Mutex::new(None);
    let lost_rx = dedupe.claimer().map_or_else(never, |c| c.health().lost().clone());

    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    // disconnected when the crawl stops (Ctrl-C, a fatal error): ends a wait to write a line
    let (halt_tx, halt) = crossbeam_channel::bounded::<()>(0);
    let halt_tx = Mutex::new(Some(halt_tx));
    let halt_all = || {
        halt_tx.lock().unwrap_or_else(|e| e.into_inner()).take();
    };
    let set_fatal = |e: anyhow::Error| {
        fatal.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(e);
        frontier.stop();
        fetcher.stop();
        halt_all();
    };
    let start_errors: Mutex<Vec<(Url, String)>> = Mutex::new(Vec::new());
    // claims in flight: tag -> (URLs, their depth and hops); the fetch that found them stays
    // "busy" in the frontier until its claims are decided
    let pending: Mutex<Pending> = Mutex::new(HashMap::new());
    let stop = crate::util::shutdown();
    let ctx = Ctx {
        stop: &halt,
        cfg,
        fetcher: &fetcher,
        dedupe,
        out,
        hosts: &hosts,
        c: &c,
        start_errors: &start_errors,
        pending: &pending,
    };
    let pb = output::progress(cfg.progress);
    let (over_tx, over_rx) = crossbeam_channel::bounded::<()>(0);
    let (claims_tx, claims_rx) = crossbeam_channel::unbounded::<(u64, zk::Result<Vec<Claim>>)>();
    let session_lost = || {
        let why = dedupe.claimer().and_then(|c| c.health().lost_why()).unwrap_or(Lost::Closed);
        lost.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert(why);
        frontier.stop();
        fetcher.stop();
    };

    std::thread::scope(|s| {
        // Ctrl-C / SIGTERM: no new fetches; threads finish (and write) the ones they hold
        // session lost: stop fetching; what is fetched meanwhile is not written (not ours)
        s.spawn(|| {
            select! {
                recv(stop) -> _ => {
                    frontier.stop();
                    fetcher.stop();
                    halt_all();
                }
                recv(lost_rx) -> _ => session_lost(),
                recv(over_rx) -> _ => {}
            }
        });
        if let Some(claimer) = dedupe.claimer() {
            let (frontier, over_rx, stop, set_fatal, c) = (&frontier, over_rx.clone(), &stop, &set_fatal, &c);
            let idle_rx = &idle_rx;
            s.spawn(move || {
                let max_reached = || cfg.max_pages.is_some_and(|m| c.started.load(Ordering::Relaxed) >= m);
                let co = Coordinator { claimer, dedupe, frontier, over: &over_rx, stop, max_reached: &max_reached };
                match co.run(idle_rx) {
                    Ok(n) => {
                        c.adopted.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(Halt::Zk(e)) if e.is_session_lost() => {}
                    Err(Halt::Zk(e)) => set_fatal(anyhow::Error::new(e).context("adopting orphaned claims")),
                    Err(_) => {}
                }
            });
        }
        // decided claims: hand the new URLs to the frontier
        let collector = s.spawn(|| {
            for (tag, r) in claims_rx.iter() {
                let Some((parent, urls, depth, hops)) = pending.lock().unwrap_or_else(|e| e.into_inner()).remove(&tag)
                else {
                    continue;
                };
                match r {
                    Ok(claims) => {
                        let mut found = Vec::with_capacity(urls.len());
                        for (url, claim) in urls.into_iter().zip(claims) {
                            if claim == Claim::Claimed {
                                found.push(Item { url, depth, hops });
                            } else {
                                c.duplicates.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        // its links are claimed: the parent is no longer owed (before `done`, so
                        // the frontier is idle only once every done is sent)
                        dedupe.done(&parent);
                        frontier.done(found);
                    }
                    Err(e) if e.is_session_lost() => frontier.done(Vec::new()),
                    Err(e) => {
                        set_fatal(anyhow::Error::new(e).context("claiming URLs in ZooKeeper"));
                        frontier.done(Vec::new());
                    }
                }
            }
        });
        let workers: Vec<_> = (0..cfg.threads.max(1))
            .map(|_| {
                let (tx, ctx, frontier, pb, set_fatal) = (claims_tx.clone(), &ctx, &frontier, &pb, &set_fatal);
                s.spawn(move || {
                    while let Some(item) = frontier.pop() {
                        match ctx.visit(&item, &tx) {
                            Ok(Some(found)) => frontier.done(found),
                            Ok(None) => {} // the collector calls done
                            Err(e) => {
                                set_fatal(e);
                                frontier.done(Vec::new());
                            }
                        }
                        pb.inc(1);
                        pb.set_message(format!(
                            "({} queued, {} errors, {} duplicates)",
                            frontier.queued(),
                            ctx.c.errors.load(Ordering::Relaxed),
                            ctx.c.duplicates.load(Ordering::Relaxed)
                        ));
                    }
                })
            })
            .collect();
        drop(claims_tx);
        for w in workers {
            let _ = w.join();
        }
        // the collector ends once the claimer has answered every submission
        let _ = collector.join();
        drop(over_tx);
    });
    pb.finish_and_clear();
    out.finish().context("writing the output file")?;
    if let Some(e) = fatal.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    summary.fetched = c.fetched.load(Ordering::Relaxed);
    summary.errors = c.errors.load(Ordering::Relaxed);
    summary.duplicates = c.duplicates.load(Ordering::Relaxed);
    summary.robots = c.robots.load(Ordering::Relaxed);
    summary.out_of_scope = c.out_of_scope.load(Ordering::Relaxed);
    summary.start_errors = start_errors.into_inner().unwrap_or_else(|e| e.into_inner());
    summary.checks = dedupe.checks();
    summary.zk_creates = dedupe.zk_creates();
    summary.zk_deletes = dedupe.claimer().map_or(0, Claimer::deletes);
    summary.adopted = c.adopted.load(Ordering::Relaxed);
    summary.session_lost = lost.into_inner().unwrap_or_else(|e| e.into_inner());
    summary.elapsed = t0.elapsed();
    summary.interrupted = crate::util::stop_requested();
    Ok(summary)
}

/// Out of work, a crawler of a shared crawl stays: it adopts what crawlers whose session
/// ended left owed, and releases the frontier only once every live crawler is idle too and
/// no orphan is left (recipes::urlset, "idle and the end"). It learns of orphans from the
/// children watches on `live/` and `idle/`, never by polling.
struct Coordinator<'a> {
    claimer: &'a Claimer,
    dedupe: &'a Dedupe,
    frontier: &'a Frontier,
    over: &'a Receiver<()>,
    stop: &'a Receiver<()>,
    max_reached: &'a dyn Fn() -> bool,
}

impl Coordinator<'_> {
    /// Hands entries now ours to the frontier; how many.
    fn take(&self, entries: Vec<crate::recipes::urlset::Entry>) -> u64 {
        let n = entries.len() as u64;
        self.dedupe.mark_seen(entries.iter().map(|e| e.url.as_str()));
        let items = entries
            .into_iter()
            .filter_map(|e| Some(Item { url: Url::parse(&e.url).ok()?, depth: e.depth, hops: e.hops }))
            .collect();
        self.frontier.add(items);
        n
    }

    /// Until the crawl is over (Ok: how many URLs were adopted) or stopped; Err(Halt::Zk)
    /// when ZooKeeper refuses or the session is lost.
    fn run(&self, idle: &Receiver<()>) -> Result<u64, Halt> {
        let (cl, set) = (self.claimer, self.claimer.set());
        let (zk, me, health) = (cl.zk(), cl.owner(), cl.health());
        let retry = |f: &dyn Fn() -> zk::Result<()>| health.retry(self.stop, None, f);
        let mut adopted = 0;
        loop {
            select! {
                recv(idle) -> _ => {}
                recv(self.over) -> _ => return Ok(adopted),
                recv(self.stop) -> _ => return Ok(adopted),
                recv(health.lost()) -> _ => return Err(Halt::Zk(health.error())),
            }
            if !self.frontier.is_idle() {
                continue;
            }
            if (self.max_reached)() {
                // --max-pages: this crawler ends; what it still owes goes to the others
                self.frontier.release();
                return Ok(adopted);
            }
            // every done of ours is in before we say we are idle
            retry(&|| cl.flush())?;
            // Out of work, we owe nothing: what our directory still holds (an adoption cut
            // short by an error moved it there) is fetched first.
            let left = health.retry(self.stop, None, || set.owed(zk, me))?;
            if !left.is_empty() {
                adopted += self.take(left);
                continue;
            }
            retry(&|| set.set_idle(zk, me, true))?;
            loop {
                let m = health.retry(self.stop, None, || set.members_w(zk))?;
                if m.consistent && !m.orphans.is_empty() {
                    retry(&|| set.set_idle(zk, me, false))?;
                    let mut entries = Vec::new();
                    for o in &m.orphans {
                        entries.extend(health.retry(self.stop, None, || set.adopt(zk, health, me, o))?);
                    }
                    if entries.is_empty() {
                        retry(&|| set.set_idle(zk, me, true))?;
                        continue;
                    }
                    adopted += self.take(entries);
                    break;
                }
                if m.all_done() {
                    self.frontier.release();
                    return Ok(adopted);
                }
                if !m.consistent {
                    continue;
                }
                select! {
                    recv(m.live_changed) -> _ => {}
                    recv(m.idle_changed) -> _ => {}
                    recv(self.over) -> _ => return Ok(adopted),
                    recv(self.stop) -> _ => return Ok(adopted),
                    recv(health.lost()) -> _ => return Err(Halt::Zk(health.error())),
                }
            }
        }
    }
}

/// Claims in flight: tag -> (the page they were found on, the URLs, their depth, their hops).
type Pending = HashMap<u64, (Url, Vec<Url>, u32, u32)>;

struct Ctx<'a> {
    cfg: &'a Config,
    fetcher: &'a Fetcher,
    dedupe: &'a Dedupe,
    out: &'a Output,
    hosts: &'a HashSet<String>,
    c: &'a Counters,
    start_errors: &'a Mutex<Vec<(Url, String)>>,
    pending: &'a Mutex<Pending>,
    stop: &'a Receiver<()>,
}

static NEXT_TAG: AtomicU64 = AtomicU64::new(0);

impl Ctx<'_> {
    /// Fetches one URL, writes its line, offers what it leads to to the dedupe: Some(new
    /// items) when decided here, None when submitted to ZooKeeper. Err only for what ends
    /// the crawl (the output file failing).
    fn visit(&self, item: &Item, claims: &ClaimReply) -> Result<Option<Vec<Item>>> {
        let (cfg, c) = (self.cfg, self.c);
        if let Some(max) = cfg.max_pages
            && c.started.fetch_add(1, Ordering::Relaxed) >= max
        {
            return Ok(Some(Vec::new())); // claimed, not fetched: --max-pages is reached
        }
        let (status, candidates) = match self.fetcher.fetch(&item.url) {
            Outcome::Page { status, links } => {
                let next: Vec<Item> = if item.depth < cfg.depth {
                    links.into_iter().map(|url| Item { url, depth: item.depth + 1, hops: 0 }).collect()
                } else {
                    Vec::new()
                };
                (status.to_string(), next)
            }
            Outcome::Redirect { status, target } => {
                let next = match target {
                    // a redirect is not a link: the target keeps the depth
                    Ok(url) if item.hops < MAX_HOPS => vec![Item { url, depth: item.depth, hops: item.hops + 1 }],
                    _ => Vec::new(),
                };
                (status.to_string(), next)
            }
            Outcome::Other { status } => (status.to_string(), Vec::new()),
            // stopped before it was fetched: no line
            Outcome::Stopped => return Ok(Some(Vec::new())),
            Outcome::Error(reason) => {
                c.errors.fetch_add(1, Ordering::Relaxed);
                if item.depth == 0 && item.hops == 0 {
                    self.start_errors
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((item.url.clone(), reason.clone()));
                }
                (format!("error:{reason}"), Vec::new())
            }
        };
        // Ours to write only while our session is: wait out a suspension (and a backlog of
        // dones); once the session is lost (or the crawl stops meanwhile) the line is dropped,
        // the URL left to be adopted.
        if let Some(claimer) = self.dedupe.claimer()
            && claimer.before_write(self.stop).is_err()
        {
            return Ok(Some(Vec::new()));
        }
        c.fetched.fetch_add(1, Ordering::Relaxed);
        self.out.write(item.depth, &status, &item.url).context("writing the output file")?;

        let mut keep = Vec::with_capacity(candidates.len());
        for it in candidates {
            if !cfg.any_host && !it.url.host_str().is_some_and(|h| self.hosts.contains(h)) {
                c.out_of_scope.fetch_add(1, Ordering::Relaxed);
            } else if !self.fetcher.allowed(&it.url) {
                c.robots.fetch_add(1, Ordering::Relaxed);
            } else {
                keep.push(it);
            }
        }
        if keep.is_empty() {
            self.dedupe.done(&item.url);
            return Ok(Some(Vec::new()));
        }
        let (depth, hops) = (keep[0].depth, keep[0].hops);
        let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        let register = |urls: Vec<Url>| {
            let parent = item.url.clone();
            self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(tag, (parent, urls, depth, hops));
        };
        let urls = keep.into_iter().map(|i| i.url).collect();
        let (verdict, dups) = self.dedupe.offer(urls, (depth, hops), tag, claims, register);
        c.duplicates.fetch_add(dups as u64, Ordering::Relaxed);
        Ok(match verdict {
            Verdict::Ours(urls) => {
                self.dedupe.done(&item.url);
                Some(urls.into_iter().map(|url| Item { url, depth, hops }).collect())
            }
            Verdict::Submitted => None,
        })
    }
}

impl Run for CrawlArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let start: Vec<Url> = self.urls.iter().map(|s| start_url(s)).collect::<Result<_>>()?;
        let name = match (&self.name, start.first()) {
            (Some(n), _) => n.clone(),
            (None, Some(u)) => default_name(u),
            (None, None) if self.reset => {
                return Err(usage("crawl --reset: give the crawl's --name (or its start URL)"));
            }
            (None, None) => return Err(usage("crawl: give at least one start URL")),
        };
        let set = UrlSet::new(&name, self.buckets).map_err(|e| usage(format!("--name: {e}")))?;

        if start.is_empty() {
            // --reset alone
            let zk = g.connect()?;
            if zk.exists(&set.root())?.is_none() {
                bail!("crawl --reset: there is no crawl named {name} ({} does not exist)", set.root());
            }
            UrlSet::reset(&zk, &name).with_context(|| format!("resetting crawl {name}"))?;
            crate::status!("crawl {name}: reset ({} removed)", set.root());
            return Ok(ExitCode::SUCCESS);
        }

        // written (truncated) only once the first page is fetched
        let out = Output::open(&self.out, self.format)
            .with_context(|| format!("cannot write the output file {}", self.out.display()))?;
        let mut cfg = Config {
            start,
            depth: self.depth,
            threads: self.threads as usize,
            any_host: self.any_host,
            fetch: FetchOptions {
                timeout: self.timeout,
                max_body: self.max_body,
                robots: !self.ignore_robots,
                delay: self.delay_ms.map_or(self.delay, Duration::from_millis),
                threads: self.threads as usize,
            },
            max_pages: self.max_pages,
            progress: !g.quiet,
            claim_start: true,
        };
        let s = match self.dedupe {
            DedupeMode::Memory => crawl(&cfg, &Dedupe::Memory(Local::default()), &out)?,
            DedupeMode::Zookeeper => {
                let mut total = Summary::default();
                let mut first = true;
                loop {
                    let zk = g.connect_owned().with_context(|| match first {
                        true => "connecting to ZooKeeper (--dedupe memory crawls without it)".to_string(),
                        false => format!("crawl {name}: joining again on a new session"),
                    })?;
                    if first && self.reset {
                        UrlSet::reset(&zk, &name).with_context(|| format!("resetting crawl {name}"))?;
                    }
                    set.prepare(&zk).with_context(|| format!("preparing crawl {name} in ZooKeeper"))?;
                    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
                    let info = format!("{}@{host}", std::process::id());
                    let claimer = Claimer::start(set.clone(), zk, &info, WRITE_AHEAD * cfg.threads.max(1))
                        .with_context(|| format!("joining crawl {name} in ZooKeeper"))?;
                    let dedupe = Dedupe::ZooKeeper(Local::default(), claimer);
                    let s = crawl(&cfg, &dedupe, &out)?;
                    drop(dedupe); // closes the session
                    total.add(s);
                    let Some(why) = total.session_lost.take() else { break };
                    if total.interrupted || self.max_pages.is_some_and(|m| total.fetched >= m) {
                        total.session_lost = Some(why);
                        break;
                    }
                    // What it owned is an orphan now; a new session adopts it like any other.
                    crate::status!(
                        "crawl {name}: lost the ZooKeeper session ({why}): stopped fetching, wrote nothing more; \
                         what it had claimed is left to the crawlers of this name; joining again on a new session"
                    );
                    first = false;
                    cfg.claim_start = false;
                    cfg.max_pages = self.max_pages.map(|m| m.saturating_sub(total.fetched));
                }
                total
            }
        };
        if !s.interrupted && !s.start_errors.is_empty() && s.start_errors.len() as u64 == s.fetched {
            // nothing but failed start pages: that is the command failing (the file has the line)
            let (u, why) = &s.start_errors[0];
            bail!("crawl: start URL {u}: {why}");
        }
        if !s.interrupted && s.fetched == 0 && s.start_claimed.is_empty() && !s.start_disallowed.is_empty() {
            bail!(
                "crawl: start URL {} is disallowed by robots.txt (--ignore-robots fetches it)",
                s.start_disallowed[0]
            );
        }
        if g.json() {
            crate::cmd::output::print_json(&s.json(&name))?;
        }
        for u in &s.start_disallowed {
            crate::status!("crawl {name}: {u} is disallowed by robots.txt (--ignore-robots fetches it)");
        }
        for u in &s.start_claimed {
            crate::status!(
                "crawl {name}: {u} was already claimed (by another crawler of this name, or an earlier crawl: --reset starts over)"
            );
        }
        crate::status!(
            "crawl {name}: {} pages fetched, {} errors, {} duplicates skipped, {} disallowed by robots.txt, {} off-host links, {:.1} pages/s{}{}",
            s.fetched,
            s.errors,
            s.duplicates,
            s.robots,
            s.out_of_scope,
            s.pages_per_s(),
            match s.adopted {
                0 => String::new(),
                n => format!(", {n} adopted from crawlers whose session ended"),
            },
            if s.interrupted { " (stopped)" } else { "" }
        );
        if s.interrupted {
            return Ok(super::exit::after_stop());
        }
        Ok(ExitCode::SUCCESS)
    }
}
