//! `zkutil crawl` against sites served over HTTP on 127.0.0.1 by the test itself, with the
//! URL table in the shared ZooKeeper. "Another host" is `localhost` (also loopback): the
//! crawler's scope compares host names, not ports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use zkutil::cmd::crawl::site::{self, Response, Server};
use zkutil::recipes::urlset::{Claim, Claimer, Entry, UrlSet};

use crate::support::*;
use crate::t;

fn unique_name(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("t-{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// The lines of an output file as (depth, status, url), asserting no URL appears twice.
fn lines(path: &Path) -> Vec<(u32, String, String)> {
    let text = t!(std::fs::read_to_string(path));
    let mut seen = BTreeSet::new();
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "bad line {l:?}");
            assert!(seen.insert(f[2].to_string()), "{} written twice in {}", f[2], path.display());
            (t!(f[0].parse::<u32>()), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// The other host: a second server, reached as `localhost`.
fn other_site() -> Server {
    t!(Server::start(|path| match path {
        "/ext.html" => Response::html(r#"<a href="/ext2.html">2</a>"#),
        "/ext2.html" => Response::html("<p>end</p>"),
        _ => Response::not_found(),
    }))
}

/// The main site on 127.0.0.1: cycles, relative/absolute links, `<base>`, fragments, query
/// strings, redirects (one a loop), a 404, a PDF, a robots.txt disallow, links elsewhere.
fn start_main(other_port: u16) -> Server {
    let own_port = Arc::new(OnceLock::new());
    let port = own_port.clone();
    let server = t!(Server::start(move |path| {
        let own = port.get().copied().unwrap_or(0);
        let html = |s: &str| Response::html(s.to_string());
        match path {
            "/robots.txt" => Response::new(200, "text/plain", b"User-agent: *\nDisallow: /private/\n".to_vec()),
            "/" => Response::html(format!(
                r##"<html><head><title>home</title></head><body>
                <a href="a.html">a</a> <a href="/b.html#part">b</a> <a href="#top">self</a> <a href="/">home</a>
                <a href="c.html?x=1">c1</a> <a href="mailto:me@example.com">mail</a> <a href="javascript:void(0)">js</a>
                <a href="/private/secret.html">secret</a> <a href="http://localhost:{other_port}/ext.html">ext</a>
                <a href="/old">old</a> <a href="/missing.html">404</a> <a href="/doc.pdf">pdf</a> <a href="dir/">dir</a>
                <a href="/loop1">loop</a> <a href="HTTP://127.0.0.1:{own}/a.html">abs</a>
                </body></html>"##
            )),
            "/a.html" => html(r#"<a href="/">back</a> <a href="b.html">b</a> <a href="deep.html">deep</a>"#),
            "/b.html" => html(r#"<a href="a.html#x">a</a> <a href="c.html?x=1">c1</a> <a href="c.html?x=2">c2</a>"#),
            "/c.html?x=1" | "/c.html?x=2" => html(r#"<a href="/b.html">b</a>"#),
            "/dir/" => {
                html(r#"<html><head><base href="/base/"></head><body><a href="target.html">t</a></body></html>"#)
            }
            "/base/target.html" => html(r#"<a href="../deeper.html">deeper</a>"#),
            "/deep.html" => html(r#"<a href="/deeper.html">deeper</a>"#),
            "/deeper.html" => html(r#"<a href="/">home</a> <a href="/deepest.html">x</a>"#),
            "/deepest.html" => html("end"),
            "/old" => Response::redirect(301, "/moved.html"),
            "/moved.html" => html(r#"<a href="/after-redirect.html">after</a>"#),
            "/after-redirect.html" => html("end"),
            "/loop1" => Response::redirect(302, "/loop2"),
            "/loop2" => Response::redirect(302, "/loop1"),
            "/doc.pdf" => Response::new(200, "application/pdf", b"%PDF-1.4 <a href=\"/nope.html\">".to_vec()),
            "/private/secret.html" => html("secret"),
            _ => Response::not_found(),
        }
    }));
    own_port.set(server.port()).expect("set once");
    server
}

struct Crawl {
    main: Server,
    other: Server,
    dir: tempfile::TempDir,
}

impl Crawl {
    fn new() -> Crawl {
        let other = other_site();
        let main = start_main(other.port());
        Crawl { main, other, dir: t!(tempfile::tempdir()) }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.main.base("127.0.0.1"))
    }

    /// Runs a crawl from `/` with `extra` flags; returns the output's lines, keyed by URL.
    fn run(&self, extra: &[&str]) -> (BTreeMap<String, (u32, String)>, String) {
        let out = self.dir.path().join(format!("{}.txt", unique_name("out")));
        let name = unique_name("crawl");
        let start = self.url("/");
        let out_s = out.to_string_lossy().into_owned();
        let mut args = vec!["crawl", start.as_str(), "--name", &name, "--out", &out_s, "--threads", "4"];
        args.extend_from_slice(extra);
        let o = run(&args);
        assert!(o.status.success(), "crawl failed: {}", stderr(&o));
        let got = lines(&out).into_iter().map(|(d, s, u)| (u, (d, s))).collect();
        (got, stderr(&o))
    }

    fn expect(&self, items: &[(u32, &str, &str)]) -> BTreeMap<String, (u32, String)> {
        items.iter().map(|(d, s, p)| (self.url(p), (*d, s.to_string()))).collect()
    }

    /// Each page requested at most once (robots.txt included); the disallowed one never.
    fn assert_each_once(&self) {
        for (path, n) in self.main.requests().into_iter().chain(self.other.requests()) {
            assert_eq!(n, 1, "{path} requested {n} times");
        }
        assert!(!self.main.requests().contains_key("/private/secret.html"));
    }
}

const LEVEL0: &[(u32, &str, &str)] = &[(0, "200", "/")];
const LEVEL1: &[(u32, &str, &str)] = &[
    (1, "200", "/a.html"),
    (1, "200", "/b.html"),
    (1, "200", "/c.html?x=1"),
    (1, "301", "/old"),
    (1, "200", "/moved.html"), // the redirect's target keeps the depth
    (1, "404", "/missing.html"),
    (1, "200", "/doc.pdf"),
    (1, "200", "/dir/"),
    (1, "302", "/loop1"),
    (1, "302", "/loop2"), // and back to /loop1: a duplicate, the loop ends
];
const LEVEL2: &[(u32, &str, &str)] = &[
    (2, "200", "/deep.html"),
    (2, "200", "/c.html?x=2"),
    (2, "200", "/base/target.html"), // resolved against <base href="/base/">
    (2, "200", "/after-redirect.html"),
];

#[test]
fn depth_0_fetches_the_start_page_only() {
    let c = Crawl::new();
    let (got, err) = c.run(&["--depth", "0"]);
    assert_eq!(got, c.expect(LEVEL0));
    assert!(err.contains("1 pages fetched, 0 errors"), "{err}");
    c.assert_each_once();
}

#[test]
fn depth_1_and_2_fetch_exact_sets_with_depths() {
    let c = Crawl::new();
    let (got, _) = c.run(&["--depth", "1"]);
    assert_eq!(got, c.expect(&[LEVEL0, LEVEL1].concat()));
    c.assert_each_once();

    let c = Crawl::new();
    let (got, err) = c.run(&["--depth", "2"]);
    assert_eq!(got, c.expect(&[LEVEL0, LEVEL1, LEVEL2].concat()));
    c.assert_each_once();
    assert!(c.other.requests().is_empty(), "the other host was contacted: {:?}", c.other.requests());
    assert!(err.contains("15 pages fetched, 0 errors"), "{err}");
    assert!(err.contains("1 disallowed by robots.txt"), "{err}");
    // /deeper.html would be depth 3: not recorded
    assert!(!c.main.requests().contains_key("/deeper.html"));
}

#[test]
fn any_host_follows_links_to_the_other_host() {
    let c = Crawl::new();
    let (got, _) = c.run(&["--depth", "2", "--any-host"]);
    let mut want = c.expect(&[LEVEL0, LEVEL1, LEVEL2].concat());
    let other = c.other.base("localhost");
    want.insert(format!("{other}/ext.html"), (1, "200".into()));
    want.insert(format!("{other}/ext2.html"), (2, "200".into()));
    assert_eq!(got, want);
    c.assert_each_once();
    assert_eq!(c.other.requests().get("/robots.txt"), Some(&1));
}

#[test]
fn ignore_robots_fetches_the_disallowed_page() {
    let c = Crawl::new();
    let (got, _) = c.run(&["--depth", "1", "--ignore-robots", "--dedupe", "memory"]);
    assert_eq!(got.get(&c.url("/private/secret.html")), Some(&(1, "200".into())));
    assert!(!c.main.requests().contains_key("/robots.txt"));
}

#[test]
fn claims_are_znodes_holding_the_url_and_reset_starts_over() {
    let c = Crawl::new();
    let name = unique_name("reset");
    let out = c.dir.path().join("o.txt");
    let (start, out_s) = (c.url("/"), out.to_string_lossy().into_owned());
    let args = ["crawl", &start, "--name", &name, "--out", &out_s, "--depth", "1", "--buckets", "8"];
    ok(&args);
    let n = lines(&out).len();
    assert_eq!(n, 11);
    // every fetched URL has its node, data = the URL
    let zk = connect();
    let set = t!(UrlSet::new(&name, 8));
    for (_, _, url) in lines(&out) {
        let (data, _) = t!(zk.get(&set.path_of(&url)));
        assert_eq!(String::from_utf8_lossy(&data), url);
    }
    assert_eq!(t!(zk.children(&format!("/crawler/{name}/buckets"))).len(), 8);
    // a second run of the same crawl finds everything claimed
    let o = run(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("already claimed"), "{}", stderr(&o));
    assert_eq!(lines(&out).len(), n, "nothing new to fetch: --out is left as it was");
    // another bucket count would break the table: refused
    let err = fails(&["crawl", &start, "--name", &name, "--out", &out_s, "--buckets", "9"]);
    assert!(err.contains("uses 8 buckets"), "{err}");
    // --reset starts over
    let with_reset = [&args[..], &["--reset"]].concat();
    ok(&with_reset);
    assert_eq!(lines(&out).len(), n);
    // --reset alone removes the crawl
    ok(&["crawl", "--reset", "--name", &name]);
    assert!(t!(zk.exists(&format!("/crawler/{name}"))).is_none());
}

/// A site whose two start pages each wait (up to 20 s) until both were requested, so both
/// crawlers have claimed their start before either sees a link; then a shared graph.
fn gated_site(pages: u32) -> Server {
    let gate = Arc::new((Mutex::new(0u32), Condvar::new()));
    let generated = site::generated(pages, 6);
    t!(Server::start(move |path| {
        if path == "/start-a.html" || path == "/start-b.html" {
            let (m, cv) = &*gate;
            let mut n = m.lock().unwrap();
            *n += 1;
            cv.notify_all();
            let _ = cv.wait_timeout_while(n, Duration::from_secs(20), |n| *n < 2).unwrap();
            let first = if path == "/start-a.html" { 0 } else { pages / 2 };
            return Response::html(format!(
                r#"<a href="/p/{first}.html">in</a> <a href="/p/0.html">zero</a> <a href="/start-a.html">a</a> <a href="/start-b.html">b</a>"#
            ));
        }
        generated(path)
    }))
}

#[test]
fn two_crawlers_with_one_name_fetch_each_page_once() {
    let pages = 120;
    let server = gated_site(pages);
    let dir = t!(tempfile::tempdir());
    let name = unique_name("shared");
    let spawn = |start: &str, out: &str| {
        let url = format!("{}{start}", server.base("127.0.0.1"));
        let out = dir.path().join(out).to_string_lossy().into_owned();
        t!(zkutil(&["crawl", &url, "--name", &name, "--out", &out, "--depth", "50", "--threads", "3"])
            .stderr(std::process::Stdio::piped())
            .spawn())
    };
    // the table must exist before two crawlers race to make it (prepare is idempotent anyway)
    let a = spawn("/start-a.html", "a.txt");
    let b = spawn("/start-b.html", "b.txt");
    let (a, b) = (t!(a.wait_with_output()), t!(b.wait_with_output()));
    assert!(a.status.success() && b.status.success(), "{}\n{}", stderr(&a), stderr(&b));
    let la = lines(&dir.path().join("a.txt"));
    let lb = lines(&dir.path().join("b.txt"));
    assert!(!la.is_empty() && !lb.is_empty(), "both crawlers worked");
    let mut all: HashMap<String, usize> = HashMap::new();
    for (_, status, url) in la.iter().chain(&lb) {
        assert_eq!(status, "200", "{url}");
        *all.entry(url.clone()).or_default() += 1;
    }
    assert!(all.values().all(|n| *n == 1), "some URL in both files");
    let base = server.base("127.0.0.1");
    let mut want: BTreeSet<String> = (0..pages).map(|i| format!("{base}{}", site::page_path(i))).collect();
    want.insert(format!("{base}/start-a.html"));
    want.insert(format!("{base}/start-b.html"));
    assert_eq!(all.keys().cloned().collect::<BTreeSet<_>>(), want);
    for (path, n) in server.requests() {
        // each crawler reads robots.txt once (a 404 here); every page is fetched once in all
        let max = if path == "/robots.txt" { 2 } else { 1 };
        assert!(n <= max && (path == "/robots.txt" || n == 1), "{path} requested {n} times");
    }
    assert_eq!(server.requests().len(), want.len() + 1);
}

#[test]
fn bad_pages_are_error_lines_and_the_crawl_goes_on() {
    let server = t!(Server::start(|path| match path {
        "/" => Response::html(
            r#"<a href="/big.html">big</a> <a href="/slow.html">slow</a> <a href="/broken.html">broken</a>
               <a href="http://127.0.0.1:1/refused.html">refused</a> <a href="/ok.html">ok</a>"#
        ),
        "/big.html" => Response::html("x".repeat(3 << 20)),
        "/slow.html" => {
            std::thread::sleep(Duration::from_secs(3));
            Response::html("late")
        }
        "/broken.html" => Response::html(
            "<html><body><a href='/ok2.html'>unclosed <div><p><a href=\"/ok.html\"</b></tr><table><a href=/ok2.html>x",
        ),
        "/ok.html" | "/ok2.html" => Response::html("fine"),
        _ => Response::not_found(),
    }));
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("o.txt").to_string_lossy().into_owned();
    let start = format!("{}/", server.base("127.0.0.1"));
    let o = run(&[
        "crawl",
        &start,
        "--dedupe",
        "memory",
        "--out",
        &out,
        "--timeout",
        "1s",
        "--max-body",
        "1M",
        "--depth",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: BTreeMap<String, (u32, String)> = lines(Path::new(&out))
        .into_iter()
        .map(|(d, s, u)| (u.replace(&server.base("127.0.0.1"), ""), (d, s)))
        .collect();
    assert_eq!(got.get("/big.html").map(|(_, s)| s.as_str()), Some("error:body-too-large(>1048576)"));
    assert_eq!(got.get("/slow.html").map(|(_, s)| s.as_str()), Some("error:timeout"));
    assert_eq!(got.get("/broken.html").map(|(_, s)| s.as_str()), Some("200"));
    assert_eq!(got.get("/ok2.html"), Some(&(2, "200".into())));
    assert_eq!(got.get("/ok.html"), Some(&(1, "200".into())));
    // 127.0.0.1:1 is the same host (ports do not matter for scope) and refuses
    let refused = got.get("http://127.0.0.1:1/refused.html").map(|(_, s)| s.clone()).unwrap_or_default();
    assert!(refused.starts_with("error:connection"), "{got:?}");
    assert!(stderr(&o).contains("3 errors"), "{}", stderr(&o));
    // the HTML parser's complaints about broken markup are not the user's business
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn bad_input_is_one_line_and_exit_1() {
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("o.txt").to_string_lossy().into_owned();
    assert!(fails(&["crawl", "not a url", "--out", &out]).contains("start URL"));
    assert!(fails(&["crawl", "ftp://127.0.0.1/", "--out", &out]).contains("unsupported scheme"));
    let err = fails(&["crawl", "http://127.0.0.1:1/", "--out", &out, "--dedupe", "memory"]);
    assert!(err.contains("start URL http://127.0.0.1:1/: connection"), "{err}");
    assert!(t!(std::fs::read_to_string(&out)).starts_with("0\terror:connection"));
    let before = t!(std::fs::read_to_string(&out));
    let err =
        fails(&["crawl", "http://127.0.0.1:1/", "--out", &out, "--hosts", "127.0.0.1:1", "--connect-timeout", "1s"]);
    assert!(err.contains("ZooKeeper"), "{err}");
    // a crawl that could not start leaves the previous output alone
    assert_eq!(t!(std::fs::read_to_string(&out)), before);
    let o = run(&["crawl", "http://127.0.0.1/", "--threads", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn plain_format_and_max_pages() {
    let server = t!(Server::start(site::generated(50, 4)));
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("o.txt").to_string_lossy().into_owned();
    let start = format!("{}/p/0.html", server.base("127.0.0.1"));
    ok(&[
        "crawl",
        &start,
        "--dedupe",
        "memory",
        "--out",
        &out,
        "--format",
        "plain",
        "--max-pages",
        "7",
        "--depth",
        "9",
    ]);
    let text = t!(std::fs::read_to_string(&out));
    assert_eq!(text.lines().count(), 7);
    assert!(text.lines().all(|l| l.starts_with("http://127.0.0.1:") && !l.contains('\t')));
    assert_eq!(server.total() - server.requests().get("/robots.txt").copied().unwrap_or(0), 7);
}

#[test]
fn ctrl_c_stops_with_whole_lines() {
    let server = t!(Server::start(|path| {
        if path != "/p/0.html" && path != "/robots.txt" {
            std::thread::sleep(Duration::from_millis(200));
        }
        site::generated(10_000, 10)(path)
    }));
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("o.txt");
    let out_s = out.to_string_lossy().into_owned();
    let start = format!("{}/p/0.html", server.base("127.0.0.1"));
    let child = t!(zkutil(&["crawl", &start, "--name", &unique_name("int"), "--out", &out_s, "--depth", "9"])
        .stderr(std::process::Stdio::piped())
        .spawn());
    assert!(wait_until(Duration::from_secs(20), || std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 3)));
    t!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status());
    let o = t!(child.wait_with_output());
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(stderr(&o).contains("(stopped)"), "{}", stderr(&o));
    let text = t!(std::fs::read_to_string(&out));
    assert!(text.ends_with('\n'));
    assert!(lines(&out).len() >= 3);
}

fn entries(r: std::ops::Range<u32>) -> Vec<Entry> {
    r.map(|i| Entry { url: format!("http://h/{i}"), depth: i % 7, hops: 0 }).collect()
}

/// A claimer's session expires with claims it never recorded done: its requests fail from
/// then on (it never acts for the dead session), and another owner adopts exactly the
/// claims not done, with their depths; what was done is not adopted.
#[test]
fn unwritten_claims_of_an_expired_session_are_adopted() {
    let name = unique_name("expiry");
    let zk = connect();
    let set = t!(UrlSet::new(&name, 4));
    t!(set.prepare(&zk));
    let a = t!(Claimer::start(set.clone(), connect(), "a", 64));
    assert!(t!(a.claim(entries(0..50))).iter().all(|c| *c == Claim::Claimed));
    for e in &entries(0..20) {
        a.done(&e.url);
    }
    t!(a.flush());
    let b = t!(Claimer::start(set.clone(), connect(), "b", 64));
    let m = t!(set.members_w(b.zk()));
    assert!(m.orphans.is_empty() && m.live.len() == 2 && m.consistent, "{m:?}");
    // a's session expires: b's watch on live/ fires, a's directory is an orphan
    expire_session(a.zk(), &hosts());
    assert!(m.live_changed.recv_timeout(Duration::from_secs(20)).is_ok());
    let err = a.claim(entries(100..101)).unwrap_err();
    assert!(err.is_session_lost(), "{err}");
    let m = t!(set.members_w(b.zk()));
    assert_eq!(m.orphans, vec![a.owner().to_string()]);
    let mut got = t!(set.adopt(b.zk(), b.health(), b.owner(), a.owner()));
    got.sort_by_key(|e| e.url[9..].parse::<u32>().unwrap());
    assert_eq!(got, entries(20..50));
    // adopted: a's directory is gone; b owes them now
    let m = t!(set.members_w(b.zk()));
    assert!(m.orphans.is_empty(), "{m:?}");
    assert_eq!(t!(zk.children(&format!("/crawler/{name}/owned/{}", b.owner()))).len(), 30);
    // already claimed for everyone else
    assert!(t!(b.claim(entries(0..50))).iter().all(|c| *c == Claim::AlreadyClaimed));
    drop((a, b));
    t!(UrlSet::reset(&zk, &name));
}

#[test]
fn racing_claimers_claim_each_url_once() {
    let name = unique_name("race");
    let zk = connect();
    let set = t!(UrlSet::new(&name, 16));
    t!(set.prepare(&zk));
    let a = t!(Claimer::start(set.clone(), connect(), "a", 64));
    let b = t!(Claimer::start(set.clone(), connect(), "b", 64));
    let claimed: Vec<String> = std::thread::scope(|s| {
        fn run(c: &Claimer, r: std::ops::Range<u32>) -> Vec<String> {
            // in pieces, as a crawl submits them
            let mut mine = Vec::new();
            for start in r.clone().step_by(25) {
                let batch = entries(start..(start + 25).min(r.end));
                let got = t!(c.claim(batch.clone()));
                mine.extend(batch.into_iter().zip(got).filter(|(_, c)| *c == Claim::Claimed).map(|(e, _)| e.url));
            }
            mine
        }
        let (a_ref, b_ref) = (&a, &b);
        let ha = s.spawn(move || run(a_ref, 0..400));
        let hb = s.spawn(move || run(b_ref, 200..600));
        [ha.join().unwrap(), hb.join().unwrap()].concat()
    });
    let unique: BTreeSet<&String> = claimed.iter().collect();
    assert_eq!(unique.len(), claimed.len(), "a URL claimed twice");
    assert_eq!(unique.len(), 600);
    drop((a, b));
    t!(UrlSet::reset(&zk, &name));
}

#[test]
fn robots_txt_errors_disallow_and_redirects_are_followed() {
    // what /robots.txt answers: 0 a 503, 1 a 404, 2 a redirect to a file disallowing /no/
    let mode = Arc::new(AtomicU32::new(0));
    let m = mode.clone();
    let server = t!(Server::start(move |path| match (path, m.load(Ordering::SeqCst)) {
        ("/robots.txt", 0) => Response::new(503, "text/plain", b"busy".to_vec()),
        ("/robots.txt", 1) => Response::not_found(),
        ("/robots.txt", _) => Response::redirect(301, "/real-robots.txt"),
        ("/real-robots.txt", _) => Response::new(200, "text/plain", b"User-agent: *\nDisallow: /no/\n".to_vec()),
        ("/", _) => Response::html(r#"<a href="/no/x.html">x</a> <a href="/yes.html">y</a>"#),
        _ => Response::html("end"),
    }));
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("o.txt").to_string_lossy().into_owned();
    let start = format!("{}/", server.base("127.0.0.1"));
    let crawl = |extra: &[&str]| {
        let mut args = vec!["crawl", start.as_str(), "--dedupe", "memory", "--out", &out, "--depth", "1"];
        args.extend_from_slice(extra);
        run(&args)
    };
    // a 5xx robots.txt disallows everything (RFC 9309): the start URL too, which is an error
    let o = crawl(&[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).trim(),
        format!("zkutil: crawl: start URL {start} is disallowed by robots.txt (--ignore-robots fetches it)")
    );
    assert!(!server.requests().contains_key("/"));
    // a missing one allows everything
    mode.store(1, Ordering::SeqCst);
    let o = crawl(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: BTreeSet<String> = lines(Path::new(&out)).into_iter().map(|(_, _, u)| u).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    // a redirected one is followed
    mode.store(2, Ordering::SeqCst);
    let o = crawl(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: BTreeSet<String> = lines(Path::new(&out)).into_iter().map(|(_, _, u)| u).collect();
    assert_eq!(got, [start.clone(), format!("{start}yes.html")].into_iter().collect());
}

#[test]
fn ctrl_c_does_not_wait_out_the_politeness_delay() {
    let server = t!(Server::start(site::generated(100, 10)));
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("o.txt");
    let out_s = out.to_string_lossy().into_owned();
    let start = format!("{}/p/0.html", server.base("127.0.0.1"));
    // 4 threads, 60 s between requests: the last waiting thread would sleep 3 minutes
    let args = [
        "crawl",
        &start,
        "--dedupe",
        "memory",
        "--ignore-robots",
        "--out",
        &out_s,
        "--threads",
        "4",
        "--delay-ms",
        "60000",
    ];
    let mut child = t!(zkutil(&args).stderr(std::process::Stdio::piped()).spawn());
    assert!(wait_until(Duration::from_secs(20), || std::fs::read_to_string(&out).is_ok_and(|t| t.lines().count() >= 1)));
    t!(std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status());
    let exited = wait_until(Duration::from_secs(20), || child.try_wait().is_ok_and(|s| s.is_some()));
    if !exited {
        let _ = child.kill();
    }
    assert!(exited, "still sleeping out the delay after Ctrl-C");
    let o = t!(child.wait_with_output());
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    // the pages that waited for their slot were not fetched
    assert_eq!(lines(&out).len(), 1);
    assert_eq!(server.total(), 1);
}

/// The owner named `pid@...` in the crawl's live/ nodes (None: not joined, or gone).
fn owner_of(zk: &zkutil::zk::ZooKeeper, name: &str, pid: u32) -> Option<String> {
    let live = format!("/crawler/{name}/live");
    zk.children(&live).ok()?.into_iter().find(|o| {
        zk.get(&format!("{live}/{o}")).is_ok_and(|(d, _)| String::from_utf8_lossy(&d).starts_with(&format!("{pid}@")))
    })
}

/// Crawler A (session timeout 2 s) is SIGKILLed mid-crawl with URLs claimed and not
/// written; crawler B, of the same name, is already running (out of work, waiting) or is
/// started after the kill. B adopts A's claims once A's session expires and completes the
/// site: A's lines and B's together are the whole site, B writes no URL twice, and nothing is
/// owed at the end.
fn killed_crawler_is_adopted(b_first: bool) {
    let pages = 300;
    let generated = site::generated(pages, 6);
    let server = t!(Server::start(move |path| {
        if path != "/robots.txt" {
            std::thread::sleep(Duration::from_millis(15));
        }
        generated(path)
    }));
    let dir = t!(tempfile::tempdir());
    let name = unique_name("killed");
    let start = format!("{}/p/0.html", server.base("127.0.0.1"));
    let (a_out, b_out) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    let crawler = |out: &Path| {
        let out = out.to_string_lossy().into_owned();
        let args = ["--session-timeout", "2s", "crawl", &start, "--name", &name, "--out", &out, "--depth", "50"];
        t!(zkutil(&[&args[..], &["--threads", "2"]].concat()).stderr(std::process::Stdio::piped()).spawn())
    };
    let zk = connect();
    let mut a = crawler(&a_out);
    assert!(
        wait_until(Duration::from_secs(30), || std::fs::read_to_string(&a_out).is_ok_and(|t| t.lines().count() >= 20))
    );
    let a_owner = owner_of(&zk, &name, a.id()).expect("A joined");
    let mut b = None;
    if b_first {
        // B finds the start URL claimed: out of work, it waits for A
        let child = crawler(&b_out);
        let pid = child.id();
        b = Some(child);
        assert!(wait_until(Duration::from_secs(30), || {
            owner_of(&zk, &name, pid)
                .is_some_and(|o| zk.exists(&format!("/crawler/{name}/idle/{o}")).is_ok_and(|s| s.is_some()))
        }));
    }
    t!(a.kill());
    let _ = a.wait();
    let owed = t!(zk.children(&format!("/crawler/{name}/owned/{a_owner}"))).len();
    assert!(owed > 0, "A was killed with nothing owed: the test proves nothing");
    let b = b.unwrap_or_else(|| crawler(&b_out));
    let o = t!(b.wait_with_output());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("adopted from crawlers whose session ended"), "{}", stderr(&o));
    let la: BTreeSet<String> = lines(&a_out).into_iter().map(|(_, _, u)| u).collect();
    let lb: Vec<(u32, String, String)> = lines(&b_out); // asserts no URL twice in B
    assert!(lb.iter().all(|(_, s, _)| s == "200"), "{lb:?}");
    let lb: BTreeSet<String> = lb.into_iter().map(|(_, _, u)| u).collect();
    let want: BTreeSet<String> =
        (0..pages).map(|i| format!("{}{}", server.base("127.0.0.1"), site::page_path(i))).collect();
    let all: BTreeSet<String> = la.union(&lb).cloned().collect();
    assert_eq!(all, want, "missing {:?}", want.difference(&all).collect::<Vec<_>>());
    let twice = la.intersection(&lb).count();
    eprintln!(
        "killed crawler: A wrote {} lines and owed {owed} URLs when killed; B wrote {} ({twice} also in A's file: written, not yet marked done)",
        la.len(),
        lb.len()
    );
    // nothing owed, nobody left
    let root = format!("/crawler/{name}");
    assert!(t!(zk.children(&format!("{root}/owned"))).is_empty());
    assert!(t!(zk.children(&format!("{root}/live"))).is_empty());
    t!(UrlSet::reset(&zk, &name));
}

#[test]
fn a_killed_crawlers_claims_are_adopted_by_a_waiting_one() {
    killed_crawler_is_adopted(true);
}

#[test]
fn a_killed_crawlers_claims_are_adopted_by_a_restarted_one() {
    killed_crawler_is_adopted(false);
}

/// A crawler whose ZooKeeper connection goes silent (a partition: its client notices only
/// 2T/3 later) writes at most `WRITE_AHEAD` lines per thread meanwhile (lines whose done it
/// cannot record, for an adopter to fetch again), none once its session is lost, and exits 1
/// when it cannot join again.
#[test]
fn a_crawler_partitioned_from_zookeeper_writes_a_bounded_number_of_lines() {
    use crate::support::proxy::Proxy;
    use zkutil::cmd::crawl::WRITE_AHEAD;
    // 100 pages one link away: the crawler fetches (and would write) them without waiting
    // for more claims
    let server = t!(Server::start(site::generated(3000, 200)));
    let proxy = Proxy::to(&hosts());
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("o.txt");
    let out_s = out.to_string_lossy().into_owned();
    let name = unique_name("partitioned");
    let start = format!("{}/p/0.html", server.base("127.0.0.1"));
    let args = [
        "--session-timeout",
        "3s",
        "--connect-timeout",
        "2s",
        "crawl",
        &start,
        "--name",
        &name,
        "--out",
        &out_s,
        "--depth",
        "50",
        "--threads",
        "1",
    ];
    let child = t!(zkutil(&args).env("ZK_HOSTS", &proxy.addr).stderr(std::process::Stdio::piped()).spawn());
    let count = || std::fs::read_to_string(&out).map_or(0, |t| t.lines().count());
    assert!(wait_until(Duration::from_secs(30), || count() >= 20));
    proxy.cut();
    let at_cut = count();
    let o = t!(child.wait_with_output());
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("lost the ZooKeeper session"), "{}", stderr(&o));
    let after = count() - at_cut;
    eprintln!("partitioned crawler: {at_cut} lines before the cut, {after} after");
    // the line being written at the cut, plus the write-ahead
    assert!(after <= WRITE_AHEAD + 1, "{after} lines written after the cut");
    assert!(lines(&out).len() < 3000, "the crawl finished before the cut: the test proves nothing");
    t!(UrlSet::reset(&connect(), &name));
}

/// A crawler whose session expires mid-crawl (its connection cut until the server expired
/// it) joins again on a new session once ZooKeeper is back, adopts its own orphaned claims
/// and completes the site; the lines it wrote unnoticed and fetched again are within the
/// write-ahead.
#[test]
fn a_crawler_whose_session_expired_joins_again_and_completes() {
    use crate::support::proxy::Proxy;
    use zkutil::cmd::crawl::WRITE_AHEAD;
    let pages = 300;
    let generated = site::generated(pages, 6);
    let server = t!(Server::start(move |path| {
        if path != "/robots.txt" {
            std::thread::sleep(Duration::from_millis(15));
        }
        generated(path)
    }));
    let proxy = Proxy::to(&hosts());
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("o.txt");
    let out_s = out.to_string_lossy().into_owned();
    let name = unique_name("rejoin");
    let start = format!("{}/p/0.html", server.base("127.0.0.1"));
    let args = ["--session-timeout", "2s", "crawl", &start, "--name", &name, "--out", &out_s, "--depth", "50"];
    let child = t!(zkutil(&[&args[..], &["--threads", "2"]].concat())
        .env("ZK_HOSTS", &proxy.addr)
        .stderr(std::process::Stdio::piped())
        .spawn());
    let zk = connect();
    let count = || std::fs::read_to_string(&out).map_or(0, |t| t.lines().count());
    assert!(wait_until(Duration::from_secs(30), || count() >= 20));
    let owner = owner_of(&zk, &name, child.id()).expect("joined");
    proxy.cut();
    // the server expires the session: its claims are an orphan now
    let live = format!("/crawler/{name}/live/{owner}");
    assert!(wait_until(Duration::from_secs(30), || zk.exists(&live).is_ok_and(|s| s.is_none())));
    proxy.heal();
    let o = t!(child.wait_with_output());
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("lost the ZooKeeper session") && err.contains("joining again"), "{err}");
    assert!(err.contains("adopted from crawlers whose session ended"), "{err}");
    let text = t!(std::fs::read_to_string(&out));
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for l in text.lines() {
        *seen.entry(l.rsplit('\t').next().unwrap()).or_default() += 1;
    }
    let want: BTreeSet<String> =
        (0..pages).map(|i| format!("{}{}", server.base("127.0.0.1"), site::page_path(i))).collect();
    let got: BTreeSet<String> = seen.keys().map(|u| u.to_string()).collect();
    assert_eq!(got, want);
    let twice = seen.values().filter(|n| **n > 1).count();
    eprintln!(
        "rejoined crawler: {} lines, {twice} URLs written twice (before the cut was noticed)",
        text.lines().count()
    );
    assert!(twice <= 2 * WRITE_AHEAD, "{twice} URLs written twice");
    assert!(t!(zk.children(&format!("/crawler/{name}/owned"))).is_empty());
    t!(UrlSet::reset(&zk, &name));
}
