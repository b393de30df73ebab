//! `kv serve` under faults: one focused test per defect of issue 10 (each fails on the
//! protocol before it), and a fault-injection driver that records a history of writes
//! while it kills, restarts and cuts servers off, then checks it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::kv::{Cluster, Conn, LONG, Server, free_port};
use crate::support::{connect, wait_until, zkutil};
use zkutil::zk::CreateMode;

/// A TCP proxy to ZooKeeper that can drop connections: `flap` resets every connection
/// right after it carried the server's first reply (the client sees Connected, then a
/// connection loss on its next request), until `heal`.
struct Flappy {
    addr: String,
    flap: Arc<AtomicBool>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl Flappy {
    fn to(upstream: &str) -> Flappy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let flap = Arc::new(AtomicBool::new(false));
        let (f, upstream) = (flap.clone(), upstream.split(',').next().unwrap().to_string());
        let live: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let l2 = live.clone();
        std::thread::spawn(move || {
            let live = l2;
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                live.lock().unwrap().push(client.try_clone().unwrap());
                let pipe = |mut from: TcpStream, mut to: TcpStream, reset_after_first: Option<Arc<AtomicBool>>| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            if reset_after_first.as_ref().is_some_and(|f| f.load(Ordering::SeqCst)) {
                                break;
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), None);
                pipe(server, client, Some(f.clone()));
            }
        });
        Flappy { addr, flap, live }
    }

    /// Resets every open connection, and each new one after its first reply, until `heal`.
    fn flap(&self) {
        self.flap.store(true, Ordering::SeqCst);
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn heal(&self) {
        self.flap.store(false, Ordering::SeqCst);
    }
}

fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        v.extend_from_slice(a);
        v.extend_from_slice(b"\r\n");
    }
    v
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Defect 1: a server that joined without --catch-up is elected; it must first copy the
/// complete history from a live server that holds it; when none is left, it says so.
#[test]
fn a_partial_server_that_is_elected_first_copies_the_complete_history() {
    let mut c = Cluster::start("kvf-partial", 2);
    let a = c.leader();
    let b = 1 - a;
    assert_eq!(c.s(a).req("PUT x 1"), "OK");
    // B restarts without --catch-up (partial), C joins with it (complete once copied).
    let mut old = c.take(b);
    old.signal("KILL");
    old.wait_exit();
    let b2 = c.add(&[]);
    let cu = c.add(&["--catch-up"]);
    assert!(wait_until(LONG, || c.s(cu).req("GET x") == "VALUE 1"), "{}", c.s(cu).log_text());
    assert_eq!(c.s(b2).req("GET x"), "NONE", "the stale read stays");
    assert_eq!(c.s(a).req("PUT y 2"), "OK");
    // The leader goes; B (registered before C) is elected.
    c.servers[a].as_mut().unwrap().signal("TERM");
    c.servers[a].as_mut().unwrap().wait_exit();
    c.servers[a] = None;
    assert!(wait_until(LONG, || c.s(b2).role() == "leader"), "{}", c.s(b2).log_text());
    assert_eq!(c.s(b2).req("GET x"), "VALUE 1", "log:\n{}", c.s(b2).log_text());
    assert_eq!(c.s(b2).req("GET y"), "VALUE 2");
    assert_eq!(c.s(b2).req("PUT z 3"), "OK");
    assert_eq!(c.s(cu).req("GET z"), "VALUE 3");
    assert_eq!(c.s(cu).req("GET x"), "VALUE 1");
    // Every server that held the history goes; a partial one is all that is left.
    let mut gone = c.take(cu);
    gone.signal("KILL");
    gone.wait_exit();
    let d = c.add(&[]);
    assert_eq!(c.leader(), b2);
    assert_eq!(c.s(d).req("PUT w 4"), "OK");
    c.servers[b2].as_mut().unwrap().signal("TERM");
    c.servers[b2].as_mut().unwrap().wait_exit();
    c.servers[b2] = None;
    assert!(
        wait_until(LONG, || c.s(d).role()
            == "leader (history incomplete: keys written before this leader may be missing)"),
        "{}",
        c.s(d).log_text()
    );
    assert!(c.s(d).log_text().contains("no live server holds the complete history"));
    assert_eq!(c.s(d).req("GET w"), "VALUE 4");
    assert_eq!(c.s(d).req("GET x"), "NONE");
    assert_eq!(c.s(d).req("PUT v 5"), "OK", "it takes writes");
}

/// Defect 2: a forwarded DEL that the leader applied but could not get acknowledged
/// before it stopped is reported as of unknown outcome, never retried on the next leader
/// (which would answer NONE for a DEL that did delete the key).
#[test]
fn a_write_applied_by_a_leader_that_stops_is_never_retried() {
    let mut c = Cluster::start("kvf-once", 3);
    let l = c.leader();
    let (f, frozen) = ((l + 1) % 3, (l + 2) % 3);
    assert_eq!(c.s(l).req("PUT k v"), "OK");
    c.servers[frozen].as_mut().unwrap().signal("STOP");
    let addr = c.s(f).addr.clone();
    let del = std::thread::spawn(move || {
        let t = Instant::now();
        (Conn::open(&addr).unwrap().req("DEL k").unwrap(), t.elapsed())
    });
    // Applied on the leader (it serves its own not yet acknowledged writes), waiting for
    // the frozen replica's ack.
    assert!(wait_until(LONG, || c.s(l).req("GET k") == "NONE"));
    c.servers[l].as_mut().unwrap().signal("TERM");
    let (reply, took) = del.join().unwrap();
    c.servers[frozen].as_mut().unwrap().signal("CONT");
    assert!(reply.starts_with("ERR outcome unknown"), "{reply} after {took:?}");
    c.servers[l] = None;
    let nl = c.leader();
    assert_eq!(c.s(nl).req("GET k"), "NONE", "the DEL reached the replica that acknowledged it");
}

/// Defect 3: a client that pipelines megabytes of ROLE and never reads stalls only itself.
#[test]
fn a_client_that_never_reads_stalls_only_itself() {
    let c = Cluster::start("kvf-stall", 2);
    let l = c.leader();
    for hog in [l, 1 - l] {
        let s = TcpStream::connect(&c.s(hog).addr).unwrap();
        let w = s.try_clone().unwrap();
        let writer = std::thread::spawn(move || {
            let chunk = "ROLE\n".repeat(10_000);
            let mut w = w;
            for _ in 0..160 {
                if w.write_all(chunk.as_bytes()).is_err() {
                    break;
                }
            }
        });
        // Let the server's reply buffer and the socket fill up.
        std::thread::sleep(Duration::from_millis(500));
        for (i, via) in [l, 1 - l].into_iter().enumerate() {
            let t = Instant::now();
            assert_eq!(c.s(via).req(&format!("PUT hog{hog}-{i} x")), "OK");
            assert!(t.elapsed() < Duration::from_secs(3), "a PUT took {:?} while a client hogged {hog}", t.elapsed());
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
        writer.join().unwrap();
    }
}

/// Defect 4: the log is bounded in bytes, values are shared by map and log: 120 MB
/// written as 1 MB values to 4 keys leave both servers far below that; a replica that
/// joins later gets a snapshot.
#[test]
fn memory_stays_bounded_by_the_log_budget() {
    let c = Cluster::start("kvf-mem", 0);
    let mut c = c;
    let a = c.add(&["--log-bytes", "8M"]);
    let b = c.add(&["--log-bytes", "8M"]);
    let l = c.leader();
    let f = if l == a { b } else { a };
    let mut conn = Conn::open(&c.s(f).addr).unwrap();
    let value = vec![b'v'; 1 << 20];
    for i in 0..120u32 {
        let mut v = value.clone();
        v[..4].copy_from_slice(&i.to_be_bytes());
        conn.send(&resp(&[b"SET", format!("big{}", i % 4).as_bytes(), &v])).unwrap();
        assert_eq!(conn.line().unwrap(), "+OK\r");
    }
    for s in [a, b] {
        let kib = rss_kib(c.s(s).child.id());
        assert!(kib < 100 * 1024, "server {s}: RSS {kib} KiB after 120 MiB written to 4 keys");
    }
    let cu = c.add(&["--catch-up"]);
    let mut g = Conn::open(&c.s(cu).addr).unwrap();
    assert!(wait_until(LONG, || {
        g.send(&resp(&[b"GET", b"big3"])).unwrap();
        let head = g.line().unwrap();
        if head.starts_with('-') {
            return false;
        }
        let mut body = vec![0u8; (1 << 20) + 2];
        g.r.read_exact(&mut body).unwrap();
        head == "$1048576\r" && body[..4] == 119u32.to_be_bytes()
    }));
}

/// Defects 5 and 6: ZooKeeper connection losses that end within the grace (the leader's
/// client reconnects, and the first read after each reconnect fails) neither end the
/// leader's candidacy nor its membership thread: a server that joins afterwards is added.
#[test]
fn connection_losses_within_the_grace_keep_the_leader_and_its_membership() {
    let proxy = Flappy::to(&crate::support::hosts());
    let mut c = Cluster::start("kvf-flap", 0);
    let a = c.add(&["--hosts", &proxy.addr, "--session-timeout", "6s"]);
    let b = c.add(&[]);
    assert_eq!(c.leader(), a);
    assert_eq!(c.s(b).req("PUT before 1"), "OK");
    proxy.flap();
    std::thread::sleep(Duration::from_millis(500));
    proxy.heal();
    let log = c.s(a).log_text();
    assert!(wait_until(LONG, || c.s(a).req("PUT after 2") == "OK"), "{}", c.s(a).log_text());
    let log2 = c.s(a).log_text();
    assert!(log2.contains("lost the connection to ZooKeeper"), "the fault happened:\n{log2}");
    assert_eq!(log2.matches("registered as").count(), 1, "the candidacy was kept:\n{log}\n---\n{log2}");
    let n = c.add(&[]);
    assert!(
        wait_until(LONG, || c.s(a).req("PUT late 3") == "OK" && c.s(n).req("GET late") == "VALUE 3"),
        "the new server never got the leader's writes:\n{}",
        c.s(a).log_text()
    );
}

/// Defect 7: --advertise; a wildcard --listen without it is a usage error.
#[test]
fn advertise_is_what_the_others_reach() {
    let port = free_port();
    let out =
        zkutil(&["kv", "serve", "--listen", &format!("0.0.0.0:{port}"), "--cluster", "kvf-adv0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.starts_with("zkutil: ") && err.lines().count() == 1 && err.contains("--advertise"), "{err}");
    let cluster = format!("kvf-adv-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("adv.log");
    let advertised = format!("127.0.0.1:{port}");
    let mut child = zkutil(&[
        "kv",
        "serve",
        "--listen",
        &format!("0.0.0.0:{port}"),
        "--advertise",
        &advertised,
        "--cluster",
        &cluster,
    ])
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .unwrap();
    let ok =
        wait_until(LONG, || Conn::open(&advertised).and_then(|mut c| c.req("LEADER")).is_ok_and(|l| l == advertised));
    let zk = connect();
    let nodes = zk.children(&format!("/kv/{cluster}/election")).unwrap_or_default();
    let data: Vec<String> = nodes
        .iter()
        .map(|n| String::from_utf8_lossy(&zk.get(&format!("/kv/{cluster}/election/{n}")).unwrap().0).into_owned())
        .collect();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok, "{}", std::fs::read_to_string(&log).unwrap_or_default());
    assert_eq!(data, vec![advertised]);
}

/// Defect 8: the connecting side checks the server too: a leader never authenticates to
/// (and so never streams to) a registered "replica" that cannot prove it knows the secret.
#[test]
fn a_leader_does_not_talk_to_a_peer_that_fails_the_challenge() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "shared\n").unwrap();
    let mut c = Cluster::start("kvf-mutual", 0);
    let a = c.add(&["--secret-file", secret.to_str().unwrap(), "--write-timeout", "1s"]);
    assert_eq!(c.leader(), a);
    let fake = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = fake.local_addr().unwrap().to_string();
    let zk = connect();
    let node = zk
        .create(&format!("/kv/{}/election/server_", c.name), fake_addr.as_bytes(), CreateMode::EphemeralSequential)
        .unwrap();
    fake.set_nonblocking(false).unwrap();
    let (s, _) = fake.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut first = String::new();
    r.read_line(&mut first).unwrap();
    assert!(first.starts_with("*2"), "PEER with a nonce: {first:?}");
    for _ in 0..4 {
        first.clear();
        r.read_line(&mut first).unwrap();
    }
    let mut w = s;
    w.write_all(&resp(&[b"CHALLENGE", b"00", b"not-a-proof"])).unwrap();
    let mut rest = Vec::new();
    let _ = r.read_to_end(&mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("AUTH"), "the leader answered an impostor: {rest:?}");
    assert!(wait_until(LONG, || c.s(a).log_text().contains("authentication failed")), "{}", c.s(a).log_text());
    zk.delete(&node, None).unwrap();
    assert!(wait_until(LONG, || c.s(a).req("PUT after fake 1") == "OK"));
}

/// Defect 9: replies are not held back by a partial next request; a multi-key DEL is
/// one write (all or nothing).
#[test]
fn small_things() {
    let c = Cluster::start("kvf-small", 1);
    let s = c.s(0);
    let mut conn = Conn::open(&s.addr).unwrap();
    conn.send(b"PING\nPI").unwrap();
    let t = Instant::now();
    assert_eq!(conn.line().unwrap(), "PONG");
    assert!(t.elapsed() < Duration::from_secs(5), "the reply waited {:?}", t.elapsed());
    conn.send(b"NG\n").unwrap();
    assert_eq!(conn.line().unwrap(), "PONG");
    assert_eq!(s.req("PUT d1 1"), "OK");
    assert_eq!(s.req("PUT d2 2"), "OK");
    let long = vec![b'k'; 251];
    conn.send(&resp(&[b"DEL", b"d1", &long])).unwrap();
    assert!(conn.line().unwrap().starts_with("-ERR"));
    assert_eq!(s.req("GET d1"), "VALUE 1", "nothing deleted by a refused DEL");
    conn.send(&resp(&[b"DEL", b"d1", b"d2", b"d3"])).unwrap();
    assert_eq!(conn.line().unwrap(), ":2\r");
}

/// One write attempt, as the history records it.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    n: u64,
    reply: String,
    took: Duration,
}

/// The fault-injection history checker: writers PUT unique values (one writer per key, so
/// a key's values are ordered) to random servers while the driver SIGKILLs and SIGTERMs
/// leaders, restarts servers with and without --catch-up, and cuts one server's
/// ZooKeeper connections. The order of the rounds gets a server that joined without
/// --catch-up elected while a complete one lives. Then: every acknowledged write is on
/// the leader (or a later write of its key is); complete followers equal the leader;
/// nothing went back to an older value; no request outlived --request-timeout.
#[test]
fn history_under_faults_keeps_every_acknowledged_write() {
    let proxy = Flappy::to(&crate::support::hosts());
    let opts = ["--write-timeout", "3s", "--request-timeout", "5s"];
    let mut c = Cluster::start("kvf-history", 0);
    // Complete: was there from the start, or joined with --catch-up (and is ready).
    let mut complete: Vec<bool> = vec![true; 3];
    for _ in 0..3 {
        c.add(&opts);
    }
    let pa = c.add(&[&opts[..], &["--hosts", &proxy.addr, "--session-timeout", "3s"]].concat());
    complete.push(true);
    let l0 = c.leader();
    // Cold keys: written once, before the faults, never again (a leader that lacks them
    // cannot hide behind newer writes).
    for i in 0..40 {
        assert_eq!(c.s(l0).req(&format!("PUT c9k{i} c9-1")), "OK");
    }
    let addrs: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(c.live().map(|(_, s)| s.addr.clone()).collect()));
    let stop = Arc::new(AtomicBool::new(false));
    let seed = Arc::new(AtomicU64::new(0x2545F4914F6CDD1D));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (addrs, stop, seed) = (addrs.clone(), stop.clone(), seed.clone());
            std::thread::spawn(move || {
                let mut history = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let key = format!("w{w}k{}", n % 8);
                    let x = seed.fetch_add(0x9E3779B97F4A7C15, Ordering::Relaxed);
                    let addr = {
                        let a = addrs.lock().unwrap();
                        a[(x >> 33) as usize % a.len()].clone()
                    };
                    let t = Instant::now();
                    let reply = Conn::open(&addr)
                        .and_then(|mut c| c.req(&format!("PUT {key} w{w}-{n}")))
                        .unwrap_or_else(|e| format!("io {e}"));
                    history.push(Attempt { key, n, reply, took: t.elapsed() });
                }
                history
            })
        })
        .collect();
    let pause = |ms| std::thread::sleep(Duration::from_millis(ms));
    let set_addrs = |c: &Cluster| *addrs.lock().unwrap() = c.live().map(|(_, s)| s.addr.clone()).collect();
    pause(800);
    let rounds = ["plain", "catch-up", "KILL", "TERM", "flap", "KILL", "TERM", "catch-up", "KILL"];
    for (round, action) in rounds.iter().enumerate() {
        match *action {
            "KILL" | "TERM" => {
                let l = c.leader();
                // Keep the history alive: some other complete server must survive.
                if c.live().any(|(i, _)| i != l && complete[i]) {
                    let mut s = c.take(l);
                    set_addrs(&c);
                    s.signal(action);
                    s.wait_exit();
                }
            }
            "catch-up" | "plain" => {
                let extra: &[&str] = if *action == "catch-up" { &["--catch-up"] } else { &[] };
                let i = c.add(&[&opts[..], extra].concat());
                complete.push(false);
                if *action == "catch-up" {
                    let s = c.s(i);
                    complete[i] = wait_until(LONG, || !s.req("GET none").starts_with("ERR catching up"));
                }
                set_addrs(&c);
            }
            "flap" => {
                if c.servers[pa].is_some() {
                    proxy.flap();
                    pause(300);
                    proxy.heal();
                }
            }
            _ => unreachable!(),
        }
        let l = c.leader();
        eprintln!("history round {round}: {action}; leader {l} (complete: {:?})", complete);
        // Every leader, not only the last one, holds every acknowledged write.
        for i in 0..40 {
            let got = c.s(l).req(&format!("GET c9k{i}"));
            assert_eq!(got, "VALUE c9-1", "round {round}: leader {l} lost c9k{i}:\n{}", c.s(l).log_text());
        }
        pause(500);
    }
    stop.store(true, Ordering::SeqCst);
    let history: Vec<Attempt> = writers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let l = c.leader();
    let get = |s: &Server, key: &str| s.req(&format!("GET {key}"));
    // Per key: the last acknowledged n, and every n attempted.
    let mut acked: HashMap<String, u64> = (0..40).map(|i| (format!("c9k{i}"), 1)).collect();
    let mut oks = 0;
    for a in &history {
        assert!(a.took < Duration::from_secs(7), "a client waited {:?} (request timeout 5s): {a:?}", a.took);
        if a.reply == "OK" {
            oks += 1;
            let e = acked.entry(a.key.clone()).or_default();
            *e = (*e).max(a.n);
        } else {
            assert!(a.reply.starts_with("ERR ") || a.reply.starts_with("io "), "{a:?}");
        }
    }
    assert!(oks >= 50, "only {oks} acknowledged writes of {}", history.len());
    let logs = || c.live().map(|(_, s)| format!("--- {}\n{}", s.addr, s.log_text())).collect::<String>();
    for (key, n) in &acked {
        let got = get(c.s(l), key);
        let w = &key[..key.find('k').unwrap()];
        let have: u64 = got
            .strip_prefix(&format!("VALUE {w}-"))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{key}: acknowledged {w}-{n}, the leader has {got:?}\n{}", logs()));
        assert!(have >= *n, "{key}: acknowledged {w}-{n}, the leader went back to {w}-{have}\n{}", logs());
    }
    for (i, s) in c.live() {
        if i == l || !complete[i] {
            continue;
        }
        for key in acked.keys() {
            assert_eq!(get(s, key), get(c.s(l), key), "complete follower {i} differs on {key}\n{}", logs());
        }
    }
    eprintln!("history: {} attempts, {oks} acknowledged, {} keys checked", history.len(), acked.len());
}

// --- Frozen peers (SIGSTOP / SIGCONT): a stop-the-world pause of a whole server process,
// the fault a GC pause or an overloaded host produces. The replica's side of the stream
// and the leader's side time out after `SILENCE` (10 s, src/cmd/kv/replication.rs).

/// The stream silence timeout of `kv serve` (replication::SILENCE).
const SILENCE: Duration = Duration::from_secs(10);

/// A ZooKeeper of its own with 1 s ticks, for sessions longer than the stream silence
/// (the shared one's 500 ms ticks allow at most 10 s); dies with the test process.
fn slow_ticks() -> &'static zkutil::server::Ensemble {
    use zkutil::server::{Ensemble, Options};
    static S: std::sync::OnceLock<Ensemble> = std::sync::OnceLock::new();
    S.get_or_init(|| Ensemble::start(Options { tick_ms: 1000, ..Options::for_tests(1) }).expect("start ZooKeeper"))
}

/// `line` sent on a fresh connection to `addr` from a thread: the reply (or the IO
/// error) and how long it took.
fn req_async(addr: &str, line: String) -> std::thread::JoinHandle<(String, Duration)> {
    let addr = addr.to_string();
    std::thread::spawn(move || {
        let t = Instant::now();
        let reply = Conn::open(&addr).and_then(|mut c| c.req(&line)).unwrap_or_else(|e| format!("io {e}"));
        (reply, t.elapsed())
    })
}

/// The index of the live server (among `among`) that says it leads, without asking the
/// others (a frozen server would not answer).
fn leader_among(c: &Cluster, among: &[usize]) -> Option<usize> {
    among.iter().copied().find(|i| c.s(*i).role() == "leader")
}

/// Every key of `want` reads its value on `s`.
fn holds(s: &Server, want: &HashMap<String, String>) -> bool {
    want.iter().all(|(k, v)| s.try_req(&format!("GET {k}")).as_deref() == Some(&format!("VALUE {v}")[..]))
}

/// A follower frozen past its session timeout (2 s) and past the stream silence (10 s):
/// writes to the leader wait for it only until ZooKeeper expires its session (its node
/// vanishes and the leader's set of replicas drops it): every write is acknowledged within
/// the session timeout + 6 s. Once thawed, it learns its session expired, registers again
/// and catches up: it reads every acknowledged value.
#[test]
fn a_follower_frozen_past_its_session_holds_writes_up_only_until_it_expires() {
    let mut c = Cluster::start("kvf-frz-fol", 3);
    let l = c.leader();
    let f = (l + 1) % 3;
    let mut acked: HashMap<String, String> = HashMap::new();
    for i in 0..5 {
        assert_eq!(c.s(l).req(&format!("PUT fk{i} before")), "OK");
        acked.insert(format!("fk{i}"), "before".into());
    }
    c.servers[f].as_mut().unwrap().signal("STOP");
    let frozen = Instant::now();
    let mut conn = Conn::open(&c.s(l).addr).unwrap();
    let (mut n, mut slowest) = (0u32, Duration::ZERO);
    while frozen.elapsed() < SILENCE + Duration::from_secs(1) {
        let t = Instant::now();
        let reply = conn.req(&format!("PUT fk{} v{n}", n % 5)).unwrap();
        let took = t.elapsed();
        assert_eq!(reply, "OK", "write {n}, {took:?} into the freeze; leader log:\n{}", c.s(l).log_text());
        assert!(took < Duration::from_secs(2 + 6), "write {n} took {took:?} (session timeout 2s)");
        slowest = slowest.max(took);
        acked.insert(format!("fk{}", n % 5), format!("v{n}"));
        n += 1;
        std::thread::sleep(Duration::from_millis(20)); // pacing, not synchronisation
    }
    assert!(c.s(l).log_text().contains("left: writes no longer wait for it"), "{}", c.s(l).log_text());
    c.servers[f].as_mut().unwrap().signal("CONT");
    eprintln!("frozen follower: {n} writes acknowledged during an 11 s freeze, the slowest in {slowest:?}");
    assert!(wait_until(LONG, || holds(c.s(f), &acked)), "the thawed follower never caught up:\n{}", c.s(f).log_text());
    let log = c.s(f).log_text();
    assert!(log.contains("lost the ZooKeeper session") && log.matches("registered as").count() == 2, "{log}");
    assert_eq!(c.leader(), l);
    assert_eq!(c.s(f).req("PUT fk0 after"), "OK");
    assert_eq!(c.s(f).req("GET fk0"), "VALUE after");
    acked.insert("fk0".into(), "after".into());
    for (_, s) in c.live() {
        assert!(holds(s, &acked), "{}", s.log_text());
    }
}

/// A follower frozen past the stream silence (10 s) but within its session (18 s here, on
/// a ZooKeeper of its own with 1 s ticks): it stays a member, so writes wait for it and
/// get `ERR outcome unknown` at `--write-timeout` (3 s), never a hang and never OK; the
/// leader drops the silent stream and reconnects once the follower is back, which then
/// holds every write (those of unknown outcome were applied by the leader) with its
/// session kept. A short freeze (1 s) only delays a write.
#[test]
fn a_follower_frozen_past_the_stream_silence_within_its_session() {
    let hosts = slow_ticks().connect_string();
    let opts = ["--hosts", &hosts, "--session-timeout", "18s", "--write-timeout", "3s"];
    let mut c = Cluster::start("kvf-frz-silence", 0);
    c.add(&opts);
    c.add(&opts);
    let l = c.leader();
    let f = 1 - l;
    let mut want: HashMap<String, String> = HashMap::new();
    assert_eq!(c.s(l).req("PUT sk0 before"), "OK");
    // A short pause: the write waits for it, then is acknowledged.
    c.servers[f].as_mut().unwrap().signal("STOP");
    let short = req_async(&c.s(l).addr, "PUT sk0 short".into());
    std::thread::sleep(Duration::from_secs(1)); // the pause itself
    c.servers[f].as_mut().unwrap().signal("CONT");
    let (reply, took) = short.join().unwrap();
    assert_eq!(reply, "OK", "after {took:?}");
    // A long one: past the silence, within the session.
    c.servers[f].as_mut().unwrap().signal("STOP");
    let frozen = Instant::now();
    let mut conn = Conn::open(&c.s(l).addr).unwrap();
    let mut n = 0;
    let dropped = "(frozen or cut off?): dropping its stream";
    while frozen.elapsed() < SILENCE + Duration::from_secs(1) || !c.s(l).log_text().contains(dropped) {
        assert!(frozen.elapsed() < SILENCE + Duration::from_secs(8), "the leader kept the silent stream");
        let t = Instant::now();
        let reply = conn.req(&format!("PUT sk{} during{n}", n % 3)).unwrap();
        let took = t.elapsed();
        assert!(reply.starts_with("ERR outcome unknown"), "write {n} to a leader with a frozen replica: {reply}");
        assert!(took < Duration::from_secs(3 + 4), "write {n} took {took:?} (write timeout 3s)");
        want.insert(format!("sk{}", n % 3), format!("during{n}"));
        n += 1;
    }
    c.servers[f].as_mut().unwrap().signal("CONT");
    eprintln!("follower frozen {:?}: {n} writes of unknown outcome", frozen.elapsed());
    assert!(wait_until(LONG, || c.s(l).req("PUT sk9 after") == "OK"), "{}", c.s(l).log_text());
    want.insert("sk9".into(), "after".into());
    assert!(holds(c.s(l), &want), "the leader applied the writes of unknown outcome");
    assert!(wait_until(LONG, || holds(c.s(f), &want)), "{}", c.s(f).log_text());
    let log = c.s(f).log_text();
    assert_eq!(log.matches("registered as").count(), 1, "the session survived:\n{log}");
    assert_eq!(c.s(f).req("PUT sk0 via"), "OK");
    assert_eq!(c.s(f).req("GET sk0"), "VALUE via");
}

/// A leader frozen past its session timeout (the GC-pause case): ZooKeeper expires its
/// session, another server is elected and takes writes. Once thawed, the old leader
/// acknowledges nothing as leader: a PUT on a connection opened to it before the freeze,
/// sent during the freeze or after the thaw, gets `ERR` or an `OK` that the new leader
/// holds (forwarded). A PUT that was in flight on it when it froze (applied, waiting for
/// a replica's ack) ends OK and durable, or `ERR outcome unknown`. It then follows and
/// converges; no acknowledged write of the whole run is lost.
#[test]
fn a_leader_frozen_past_its_session_acknowledges_nothing_once_thawed() {
    let mut c = Cluster::start("kvf-frz-leader", 3);
    let l = c.leader();
    let (a, b) = ((l + 1) % 3, (l + 2) % 3);
    let mut acked: HashMap<String, String> = HashMap::new();
    for i in 0..5 {
        assert_eq!(c.s(i % 3).req(&format!("PUT lk{i} before")), "OK");
        acked.insert(format!("lk{i}"), "before".into());
    }
    let mut old_during = Conn::open(&c.s(l).addr).unwrap();
    let mut old_after = Conn::open(&c.s(l).addr).unwrap();
    // In flight on the leader when it freezes: applied there, waiting for b's ack.
    c.servers[b].as_mut().unwrap().signal("STOP");
    let inflight = req_async(&c.s(l).addr, "PUT lm0 inflight".into());
    assert!(wait_until(LONG, || c.s(l).req("GET lm0") == "VALUE inflight"), "{}", c.s(l).log_text());
    c.servers[l].as_mut().unwrap().signal("STOP");
    let frozen = Instant::now();
    c.servers[b].as_mut().unwrap().signal("CONT");
    // Writers to the frozen leader: each request waits in its socket until the thaw.
    let to_old: Vec<_> = (0..3).map(|i| req_async(&c.s(l).addr, format!("PUT lo{i} old"))).collect();
    old_during.send(b"PUT lm1 sent-during-freeze\n").unwrap();
    let mut nl = None;
    assert!(wait_until(LONG, || {
        nl = leader_among(&c, &[a, b]);
        nl.is_some()
    }));
    let nl = nl.unwrap();
    eprintln!("frozen leader: {} elected {:?} into the freeze", c.s(nl).addr, frozen.elapsed());
    for (i, via) in [a, b, a, b].into_iter().enumerate() {
        let key = format!("lk{}", 2 + i % 2);
        let reply = c.s(via).req(&format!("PUT {key} new{i}"));
        assert_eq!(reply, "OK", "through {via} while the old leader is frozen:\n{}", c.s(via).log_text());
        acked.insert(key, format!("new{i}"));
    }
    c.servers[l].as_mut().unwrap().signal("CONT");
    let thawed = Instant::now();
    let after = old_after.req("PUT lm4 sent-after-thaw").unwrap();
    let during = old_during.line().unwrap();
    let bound = Duration::from_secs(10 + 5); // --write-timeout (10s) + margin
    assert!(thawed.elapsed() < bound, "the thawed leader answered after {:?}", thawed.elapsed());
    let (inflight, took) = inflight.join().unwrap();
    eprintln!(
        "frozen leader: thawed after {:?}; in flight: {inflight:?} after {took:?}; sent during: {during:?}; \
         after: {after:?}",
        thawed - frozen
    );
    let mut maybe: Vec<(String, String, String)> = vec![
        ("lm0".into(), "inflight".into(), inflight),
        ("lm1".into(), "sent-during-freeze".into(), during),
        ("lm4".into(), "sent-after-thaw".into(), after),
    ];
    for (i, h) in to_old.into_iter().enumerate() {
        let (reply, took) = h.join().unwrap();
        assert!(took < LONG, "{reply} after {took:?}");
        maybe.push((format!("lo{i}"), "old".into(), reply));
    }
    for (key, value, reply) in &maybe {
        assert!(reply == "OK" || reply.starts_with("ERR "), "PUT {key} {value}: {reply}");
        if reply == "OK" {
            acked.insert(key.clone(), value.clone());
        }
    }
    assert_eq!(c.leader(), nl, "the thawed leader follows");
    let log = c.s(l).log_text();
    assert!(log.contains("lost the ZooKeeper session") && log.matches("registered as").count() == 2, "{log}");
    // Nothing acknowledged is lost, and the old leader's state is the new leader's.
    let missing: Vec<_> =
        acked.iter().filter(|(k, v)| c.s(nl).req(&format!("GET {k}")) != format!("VALUE {v}")).collect();
    assert!(missing.is_empty(), "the new leader lost acknowledged writes {missing:?}\n{}", c.s(nl).log_text());
    for (key, ..) in &maybe {
        let want = c.s(nl).req(&format!("GET {key}"));
        assert!(wait_until(LONG, || c.s(l).req(&format!("GET {key}")) == want), "{key}: {want}\n{log}");
    }
    assert!(holds(c.s(l), &acked));
}

/// Writes forwarded through a follower that freezes: one forwarded and applied by the
/// leader just before the freeze (in flight), one sent to it during the freeze. The
/// follower is frozen past its session timeout, so the leader stops waiting for it. Once
/// thawed, each client gets its answer within `--write-timeout` + margin: OK (and the
/// value is on the leader), or `ERR`; never a hang.
#[test]
fn a_write_forwarded_through_a_frozen_follower_gets_an_answer() {
    let mut c = Cluster::start("kvf-frz-fwd", 0);
    for _ in 0..3 {
        c.add(&["--write-timeout", "20s"]);
    }
    let l = c.leader();
    let (f, g) = ((l + 1) % 3, (l + 2) % 3);
    assert_eq!(c.s(f).req("PUT wk0 before"), "OK");
    // In flight: forwarded by f, applied by the leader, waiting for g's ack (and f's).
    c.servers[g].as_mut().unwrap().signal("STOP");
    let inflight = req_async(&c.s(f).addr, "PUT wk0 inflight".into());
    assert!(wait_until(LONG, || c.s(l).req("GET wk0") == "VALUE inflight"), "{}", c.s(l).log_text());
    c.servers[f].as_mut().unwrap().signal("STOP");
    c.servers[g].as_mut().unwrap().signal("CONT");
    let during = req_async(&c.s(f).addr, "PUT wk1 during".into());
    // The leader stops waiting for f once its session expired.
    let mut n = 0;
    assert!(
        wait_until(LONG, || {
            n += 1;
            c.s(l).req(&format!("PUT wk2 probe{n}")) == "OK"
        }),
        "{}",
        c.s(l).log_text()
    );
    c.servers[f].as_mut().unwrap().signal("CONT");
    let thawed = Instant::now();
    let bound = Duration::from_secs(20 + 5); // --write-timeout (20s) + margin
    let mut acked: HashMap<String, String> = [("wk2".to_string(), format!("probe{n}"))].into_iter().collect();
    for (key, value, h) in [("wk0", "inflight", inflight), ("wk1", "during", during)] {
        let (reply, took) = h.join().unwrap();
        eprintln!("forwarded through a frozen follower: PUT {key} {value}: {reply:?} after {took:?}");
        assert!(thawed.elapsed() < bound, "PUT {key}: answered {:?} after the thaw", thawed.elapsed());
        // Both are answered well within the write timeout: the leader answered the one
        // in flight before the thaw; the other is forwarded after it.
        assert_eq!(reply, "OK", "PUT {key} {value}:\n{}", c.s(f).log_text());
        // Read your writes: the follower that said OK holds the write.
        assert_eq!(c.s(f).req(&format!("GET {key}")), format!("VALUE {value}"), "{}", c.s(f).log_text());
        acked.insert(key.into(), value.into());
    }
    assert!(holds(c.s(l), &acked), "{acked:?}\n{}", c.s(l).log_text());
    assert_eq!(c.leader(), l);
    assert!(wait_until(LONG, || holds(c.s(f), &acked)), "{}", c.s(f).log_text());
    assert_eq!(c.s(f).req("PUT wk3 after"), "OK");
    assert_eq!(c.s(f).req("GET wk3"), "VALUE after");
}

/// A leader with no replica, frozen past its session timeout while another server joins
/// and takes over (with an incomplete history: the only holder was gone). Thawed, the old
/// leader has nobody to refuse its acks: it must still not acknowledge a write that the
/// new leader does not have.
#[test]
fn a_lone_leader_frozen_past_its_session_acknowledges_nothing_once_thawed() {
    let mut c = Cluster::start("kvf-frz-alone", 1);
    let a = 0;
    assert_eq!(c.s(a).req("PUT ak0 before"), "OK");
    let mut during = Conn::open(&c.s(a).addr).unwrap();
    let mut after = Conn::open(&c.s(a).addr).unwrap();
    c.servers[a].as_mut().unwrap().signal("STOP");
    let b = c.add(&[]);
    assert!(wait_until(LONG, || c.s(b).role().starts_with("leader (history incomplete")), "{}", c.s(b).log_text());
    assert_eq!(c.s(b).req("PUT bk0 new"), "OK");
    during.send(b"PUT ak1 sent-during-freeze\n").unwrap();
    c.servers[a].as_mut().unwrap().signal("CONT");
    let replies = [
        ("ak1", "sent-during-freeze", during.line().unwrap()),
        ("ak2", "sent-after-thaw", after.req("PUT ak2 sent-after-thaw").unwrap()),
    ];
    eprintln!("lone frozen leader: {replies:?}");
    assert_eq!(c.leader(), b);
    for (key, value, reply) in replies {
        assert!(reply == "OK" || reply.starts_with("ERR "), "PUT {key}: {reply}");
        if reply == "OK" {
            assert_eq!(c.s(b).req(&format!("GET {key}")), format!("VALUE {value}"), "acknowledged by the old leader");
        }
    }
}

/// A leader frozen past the stream silence (12 s) but within its session (18 s, on the
/// 1 s-tick ZooKeeper): the follower drops its silent stream, nobody takes over. Thawed,
/// the leader renews its lease (it ran out during the freeze) and keeps leading with the
/// same session: a write forwarded into it during the freeze is acknowledged, later ones
/// too, and the follower holds them all.
#[test]
fn a_leader_frozen_within_its_session_keeps_leading() {
    let hosts = slow_ticks().connect_string();
    let opts = ["--hosts", &hosts, "--session-timeout", "18s", "--write-timeout", "30s"];
    let mut c = Cluster::start("kvf-frz-lease", 0);
    c.add(&opts);
    c.add(&opts);
    let l = c.leader();
    let f = 1 - l;
    assert_eq!(c.s(f).req("PUT ek0 before"), "OK");
    c.servers[l].as_mut().unwrap().signal("STOP");
    let forwarded = req_async(&c.s(f).addr, "PUT ek1 forwarded-during-freeze".into());
    std::thread::sleep(SILENCE + Duration::from_secs(2)); // the freeze itself
    c.servers[l].as_mut().unwrap().signal("CONT");
    let thawed = Instant::now();
    let (reply, took) = forwarded.join().unwrap();
    eprintln!("leader frozen 12 s within its session: the forwarded write: {reply:?} after {took:?}");
    assert_eq!(reply, "OK", "answered {:?} after the thaw:\n{}", thawed.elapsed(), c.s(l).log_text());
    assert!(wait_until(LONG, || c.s(l).req("PUT ek2 after") == "OK"), "{}", c.s(l).log_text());
    assert_eq!(c.leader(), l);
    let log = c.s(l).log_text();
    assert_eq!(log.matches("registered as").count(), 1, "the leader kept its session:\n{log}");
    let want: HashMap<String, String> = [("ek0", "before"), ("ek1", "forwarded-during-freeze"), ("ek2", "after")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(holds(c.s(l), &want));
    assert!(wait_until(LONG, || holds(c.s(f), &want)), "{}", c.s(f).log_text());
}
