//! `zkutil kv serve`: a driver that spawns real servers (each its own zkutil process) on
//! the shared ZooKeeper, one cluster name per test, and talks to them over TCP.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support::{wait_until, zkutil};

pub(crate) const LONG: Duration = Duration::from_secs(20);

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `zkutil kv serve` process.
pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    log: PathBuf,
}

impl Server {
    pub(crate) fn start(cluster: &str, dir: &std::path::Path, extra: &[&str]) -> Server {
        let addr = format!("127.0.0.1:{}", free_port());
        static N: AtomicU32 = AtomicU32::new(0);
        let log = dir.join(format!("server-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let mut args = vec!["kv", "serve", "--listen", &addr, "--cluster", cluster];
        if !extra.contains(&"--session-timeout") {
            args.extend_from_slice(&["--session-timeout", "2s"]);
        }
        args.extend_from_slice(extra);
        let child = zkutil(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn kv serve");
        let s = Server { child, addr, log };
        assert!(
            wait_until(
                LONG,
                || matches!(s.try_req("ROLE").as_deref(), Some(r) if r.starts_with("leader") || r.starts_with("follower "))
            ),
            "server {} never got a role; log:\n{}",
            s.addr,
            s.log_text()
        );
        s
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub(crate) fn try_req(&self, line: &str) -> Option<String> {
        let mut c = Conn::open(&self.addr).ok()?;
        c.req(line).ok()
    }

    #[track_caller]
    pub(crate) fn req(&self, line: &str) -> String {
        match Conn::open(&self.addr).and_then(|mut c| c.req(line)) {
            Ok(r) => r,
            Err(e) => panic!("{line:?} to {}: {e}\nlog:\n{}", self.addr, self.log_text()),
        }
    }

    pub(crate) fn role(&self) -> String {
        self.try_req("ROLE").unwrap_or_default()
    }

    pub(crate) fn signal(&mut self, sig: &str) {
        let ok = Command::new("kill").args(["-s", sig, &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok, "kill -s {sig}");
    }

    /// Waits for the process to exit; its exit code (None: killed by a signal).
    pub(crate) fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + LONG;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(Instant::now() < deadline, "server {} did not exit", self.addr);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client connection speaking the line protocol.
pub(crate) struct Conn {
    pub(crate) r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Conn {
    pub(crate) fn open(addr: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn { r: BufReader::new(s.try_clone()?), w: s })
    }

    pub(crate) fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.w.write_all(bytes)
    }

    pub(crate) fn line(&mut self) -> std::io::Result<String> {
        let mut l = String::new();
        if self.r.read_line(&mut l)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(l.trim_end_matches('\n').to_string())
    }

    pub(crate) fn req(&mut self, line: &str) -> std::io::Result<String> {
        self.send(format!("{line}\n").as_bytes())?;
        self.line()
    }
}

/// A cluster of servers under one unique name.
pub(crate) struct Cluster {
    pub(crate) name: String,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) servers: Vec<Option<Server>>,
}

impl Cluster {
    pub(crate) fn start(test: &str, n: usize) -> Cluster {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let mut c = Cluster { name, dir: tempfile::tempdir().unwrap(), servers: Vec::new() };
        for _ in 0..n {
            c.add(&[]);
        }
        c
    }

    pub(crate) fn add(&mut self, extra: &[&str]) -> usize {
        let s = Server::start(&self.name, self.dir.path(), extra);
        self.servers.push(Some(s));
        self.servers.len() - 1
    }

    pub(crate) fn s(&self, i: usize) -> &Server {
        self.servers[i].as_ref().expect("server is running")
    }

    pub(crate) fn live(&self) -> impl Iterator<Item = (usize, &Server)> {
        self.servers.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, s)))
    }

    /// The index of the live server that says it leads, once every live one agrees on it.
    pub(crate) fn leader(&self) -> usize {
        let mut found = None;
        let agreed = wait_until(LONG, || {
            let Some((i, l)) = self.live().find(|(_, s)| s.role().starts_with("leader")) else { return false };
            found = Some(i);
            let want = format!("follower {}", l.addr);
            self.live().filter(|(j, _)| *j != i).all(|(_, s)| s.role() == want)
        });
        let logs = || -> String { self.live().map(|(_, s)| format!("--- {}\n{}", s.addr, s.log_text())).collect() };
        assert!(agreed, "no agreed leader; logs:\n{}", logs());
        let l = found.unwrap();
        // A server's role comes from its own election watch; the leader adds it to the
        // replicas it waits for from its membership watch, a moment later (writes made in
        // between do not wait for it). Settle: write through the leader until a write
        // reaches every live server.
        static SYNC: AtomicU32 = AtomicU32::new(0);
        let settled = wait_until(LONG, || {
            let key = format!("_sync{}", SYNC.fetch_add(1, Ordering::Relaxed));
            self.s(l).try_req(&format!("PUT {key} x")).as_deref() == Some("OK")
                && self.live().all(|(_, s)| s.try_req(&format!("GET {key}")).as_deref() == Some("VALUE x"))
        });
        assert!(settled, "the leader never replicated to every server; logs:\n{}", logs());
        l
    }

    pub(crate) fn take(&mut self, i: usize) -> Server {
        self.servers[i].take().unwrap()
    }
}

#[test]
fn add_and_read_on_three_servers() {
    let c = Cluster::start("kv-addread", 3);
    let l = c.leader();
    for (i, s) in c.live() {
        assert_eq!(s.req(&format!("PUT key{i} value of {i}")), "OK", "PUT through server {i}");
        assert_eq!(s.req("LEADER"), c.s(l).addr);
    }
    // OK means every live replica has it: readable everywhere at once.
    for (_, s) in c.live() {
        for i in 0..3 {
            assert_eq!(s.req(&format!("GET key{i}")), format!("VALUE value of {i}"));
        }
        assert_eq!(s.req("GET nope"), "NONE");
    }
    let f = (l + 1) % 3;
    assert_eq!(c.s(f).req("PUT empty "), "OK");
    assert_eq!(c.s(l).req("GET empty"), "VALUE ");
    assert_eq!(c.s(f).req("DEL key0"), "OK");
    assert_eq!(c.s(l).req("DEL key0"), "NONE");
    for (_, s) in c.live() {
        assert_eq!(s.req("GET key0"), "NONE");
    }
    let log = c.s(l).log_text();
    assert!(log.contains("elected leader") && log.contains("registered as server_"), "{log}");
    assert!(c.s(f).log_text().contains("following server_"), "{}", c.s(f).log_text());
}

fn failover(sig: &str) {
    let mut c = Cluster::start(&format!("kv-failover-{}", sig.to_lowercase()), 3);
    let l = c.leader();
    assert_eq!(c.s(l).req("PUT before kill"), "OK");
    let mut old = c.take(l);
    old.signal(sig);
    let code = old.wait_exit();
    if sig == "TERM" {
        assert_eq!(code, Some(143), "log:\n{}", old.log_text());
    }
    let nl = c.leader();
    assert_ne!(c.s(nl).addr, old.addr);
    for (i, s) in c.live() {
        assert_eq!(s.req(&format!("PUT after{i} x{i}")), "OK", "write through survivor {i}");
    }
    for (_, s) in c.live() {
        assert_eq!(s.req("GET before"), "VALUE kill");
        for (i, _) in c.live() {
            assert_eq!(s.req(&format!("GET after{i}")), format!("VALUE x{i}"));
        }
    }
    assert!(c.s(nl).log_text().contains("lost leader"), "{}", c.s(nl).log_text());
    let old_key = format!("after{nl}");

    // Stale read: a restarted server starts empty and only gets new writes...
    let r = c.add(&[]);
    assert!(c.s(r).role().starts_with("follower "), "the newcomer follows");
    assert_eq!(c.leader(), nl);
    assert_eq!(c.s(r).req("GET before"), "NONE");
    assert_eq!(c.s(r).req("PUT before again"), "OK");
    assert_eq!(c.s(r).req("GET before"), "VALUE again");
    assert_eq!(c.s(r).req(&format!("GET {old_key}")), "NONE");
    // ...unless it catches up first.
    let cu = c.add(&["--catch-up"]);
    let s = c.s(cu);
    assert!(wait_until(LONG, || !s.req(&format!("GET {old_key}")).starts_with("ERR catching up")));
    assert_eq!(s.req(&format!("GET {old_key}")), format!("VALUE x{nl}"));
    assert_eq!(s.req("GET before"), "VALUE again");
    assert!(s.log_text().contains("copied the state of"), "{}", s.log_text());
}

#[test]
fn failover_after_sigkill_then_stale_read_and_catch_up() {
    failover("KILL");
}

#[test]
fn failover_after_sigterm_then_stale_read_and_catch_up() {
    failover("TERM");
}

#[test]
fn no_acknowledged_write_is_lost_when_the_leader_is_killed() {
    let mut c = Cluster::start("kv-noloss", 3);
    let l = c.leader();
    let via = (l + 1) % 3; // a follower that survives
    let addr = c.s(via).addr.clone();
    let (tx, rx) = crossbeam_channel::bounded::<()>(0);
    let writer = std::thread::spawn(move || {
        // key -> (last acknowledged value, values tried after it without an OK)
        let mut acked: HashMap<String, (Option<String>, Vec<String>)> = HashMap::new();
        let mut conn = Conn::open(&addr).unwrap();
        let mut oks_after_stop = 0;
        let mut stopping = false;
        for i in 0.. {
            let key = format!("k{}", i % 40);
            let val = format!("v{i}");
            let reply = conn.req(&format!("PUT {key} {val}")).unwrap_or_else(|e| format!("io {e}"));
            let entry = acked.entry(key).or_default();
            if reply == "OK" {
                *entry = (Some(val), Vec::new());
                if stopping {
                    oks_after_stop += 1;
                }
            } else {
                entry.1.push(val);
            }
            if !stopping && rx.try_recv().is_err_and(|e| e.is_disconnected()) {
                stopping = true;
            }
            if oks_after_stop >= 100 {
                break;
            }
        }
        acked
    });
    // Let writes flow, then kill the leader mid-stream.
    assert!(wait_until(LONG, || c.s(via).req("GET k39").starts_with("VALUE")));
    let mut old = c.take(l);
    old.signal("KILL");
    old.wait_exit();
    let nl = c.leader();
    drop(tx); // the writer stops after 100 more acknowledged writes
    let acked = writer.join().unwrap();
    let leader = c.s(nl);
    let mut checked = 0;
    for (key, (last, later)) in &acked {
        let got = leader.req(&format!("GET {key}"));
        let Some(last) = last else { continue };
        let ok = got == format!("VALUE {last}") || later.iter().any(|v| got == format!("VALUE {v}"));
        assert!(ok, "{key}: acknowledged {last}, unacknowledged after it {later:?}, new leader has {got}");
        checked += 1;
    }
    assert!(checked >= 40, "checked {checked} keys");
}

/// Sends raw bytes with real netcat; returns its output.
fn nc(addr: &str, input: &[u8]) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let mut child = Command::new("nc")
        .args(["-q1", host, port])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("netcat (netcat-openbsd) is installed by vendor/setup.sh");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bad_input_gets_err_and_the_server_keeps_serving() {
    let c = Cluster::start("kv-bad", 2);
    let s = c.s(c.leader());
    let long_key = "k".repeat(251);
    let mut input = Vec::new();
    for line in [
        "PING",
        "FROB x",
        "PUT",
        "PUT onlykey",
        "GET",
        "GET two keys",
        &format!("GET {long_key}"),
        "PING extra",
        "",
        "put  leadingspace",
        "SET ok value with  spaces\r",
    ] {
        input.extend_from_slice(line.as_bytes());
        input.push(b'\n');
    }
    input.extend(std::iter::repeat_n(b'x', 70 * 1024));
    input.extend_from_slice(b"\nGET ok\nGET tab\tkey\nQUIT\nPING\n");
    let out = nc(&s.addr, &input);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 14, "one reply per request up to QUIT: {out}");
    assert_eq!(lines[0], "PONG");
    for (i, l) in lines.iter().enumerate().skip(1) {
        if i == 10 {
            assert_eq!(*l, "OK");
        } else if i == 12 {
            assert_eq!(*l, "VALUE value with  spaces");
        } else {
            assert!(l.starts_with("ERR "), "line {i}: {l}");
        }
    }
    assert!(lines[6].contains("250"), "{}", lines[6]);
    assert!(lines[11].contains("65536"), "{}", lines[11]);

    // Random bytes (seeded LCG), in several shapes: the server closes or answers, and
    // keeps serving everyone else.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = move || {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (x >> 33) as u8
    };
    for round in 0..20 {
        let mut junk: Vec<u8> = (0..(round * 997 % 9000 + 1)).map(|_| rnd()).collect();
        if round % 3 == 0 {
            junk[0] = b'*'; // looks like RESP
        }
        if round % 5 == 0 {
            junk.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$-5\r\n");
        }
        let mut conn = TcpStream::connect(&s.addr).unwrap();
        let _ = conn.write_all(&junk);
        let _ = conn.shutdown(std::net::Shutdown::Write);
        let mut sink = Vec::new();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = conn.read_to_end(&mut sink);
        assert_eq!(s.req("PING"), "PONG", "after junk round {round}");
    }
    assert_eq!(nc(&s.addr, b"PING\r\nGET ok\r\n"), "PONG\nVALUE value with  spaces\n");
    // Peers must authenticate: without a secret, only loopback (this is loopback), and
    // a peer handshake that never answers the challenge gets nothing.
    let out = nc(
        &s.addr,
        b"*2\r\n$4\r\nPEER\r\n$2\r\nab\r\n*2\r\n$4\r\nAUTH\r\n$0\r\n\r\n*3\r\n$3\r\nPUT\r\n$1\r\np\r\n$1\r\nq\r\n",
    );
    assert!(out.contains("CHALLENGE"), "{out}");
}

/// Clients beyond --max-clients are refused (in the protocol they spoke), peers are not: a
/// new leader still opens its replication stream to a server whose only client slot an
/// idle client holds. A client that stalls mid-request is closed after --request-timeout.
#[test]
fn full_or_stalled_clients_do_not_lock_out_peers() {
    let mut c = Cluster::start("kv-full", 0);
    let a = c.add(&["--write-timeout", "3s"]);
    let b = c.add(&["--write-timeout", "3s"]);
    let x = c.add(&["--write-timeout", "3s", "--max-clients", "1", "--request-timeout", "1s"]);
    assert_eq!(c.leader(), a);
    // The slot frees once the server has seen the last probe's connection close.
    let mut held = None;
    assert!(wait_until(LONG, || {
        let mut conn = Conn::open(&c.s(x).addr).unwrap();
        let ok = conn.req("PING").is_ok_and(|r| r == "PONG");
        held = ok.then_some(conn);
        ok
    }));
    let mut idle = held.unwrap();
    assert_eq!(c.s(x).req("PING"), "ERR too many clients");
    let mut resp = Conn::open(&c.s(x).addr).unwrap();
    assert_eq!(resp.req("*1\r\n$4\r\nPING\r").unwrap(), "-ERR max number of clients reached\r");
    c.servers[a].as_mut().unwrap().signal("TERM");
    assert!(wait_until(LONG, || c.s(b).role() == "leader"), "{}", c.s(b).log_text());
    assert_eq!(c.s(b).req("PUT full 1"), "OK", "log:\n{}", c.s(b).log_text());
    assert_eq!(idle.req("GET full").unwrap(), "VALUE 1");
    // Half a request, then nothing: told why and closed, which frees the slot.
    idle.send(b"GET fu").unwrap();
    assert_eq!(idle.line().unwrap(), "ERR request not complete after 1s: closing");
    assert!(idle.line().is_err(), "closed");
    assert!(wait_until(LONG, || c.s(x).try_req("GET full").as_deref() == Some("VALUE 1")));
}

/// RESP on the same port, with redis-cli (redis-tools is installed by vendor/setup.sh).
#[test]
fn speaks_resp_to_redis_cli() {
    let c = Cluster::start("kv-resp", 2);
    let l = c.leader();
    let f = c.s((l + 1) % 2);
    let (host, port) = f.addr.rsplit_once(':').unwrap();
    let cli = |args: &[&str]| {
        let o = Command::new("redis-cli").args(["-h", host, "-p", port]).args(args).output().expect("redis-cli");
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "r1", "multi\nline"]), "OK");
    assert_eq!(cli(&["GET", "r1"]), "multi\nline");
    assert_eq!(cli(&["GET", "missing"]), "");
    assert_eq!(cli(&["DEL", "r1", "missing"]), "1");
    assert!(cli(&["FLUSHALL"]).contains("unknown command"));
    // Pipelined: several requests in one write, answered in order.
    let mut conn = Conn::open(&c.s(l).addr).unwrap();
    conn.send(b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\nPING\n").unwrap();
    let mut got = String::new();
    while got.matches('\n').count() < 4 {
        got.push_str(&(conn.line().unwrap() + "\n"));
    }
    assert_eq!(got, "+OK\r\n$1\r\n1\r\nPONG\n");
    assert_eq!(f.req("GET a"), "VALUE 1");
}

#[test]
fn peers_need_the_shared_secret() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    let bad = dir.path().join("bad");
    std::fs::write(&good, "correct horse\n").unwrap();
    std::fs::write(&bad, "battery staple\n").unwrap();
    let mut c = Cluster::start("kv-secret", 0);
    let a = c.add(&["--secret-file", good.to_str().unwrap()]);
    let b = c.add(&["--secret-file", good.to_str().unwrap()]);
    assert_eq!(c.s(b).req("PUT s 1"), "OK");
    assert_eq!(c.s(a).req("GET s"), "VALUE 1");
    // A server with the wrong secret joins the election but cannot forward writes, and the
    // leader cannot replicate to it: writes time out rather than skip it.
    let x = c.add(&["--secret-file", bad.to_str().unwrap(), "--write-timeout", "1s"]);
    let reply = c.s(x).req("PUT s 2");
    assert!(reply.starts_with("ERR "), "{reply}");
    let log = c.s(a).log_text() + &c.s(b).log_text();
    assert!(log.contains("authentication failed") || log.contains("refused a peer"), "{log}");
}

/// A leader frozen (SIGSTOP) past its session timeout loses its session: another server
/// takes over; once thawed, the old one steps down, registers again with a new session and
/// follows; writes through it reach the new leader.
#[test]
fn a_leader_whose_session_expired_steps_down_and_rejoins() {
    let mut c = Cluster::start("kv-expire", 2);
    let l = c.leader();
    let other = 1 - l;
    assert_eq!(c.s(l).req("PUT before freeze"), "OK");
    c.servers[l].as_mut().unwrap().signal("STOP");
    assert!(wait_until(LONG, || c.s(other).role() == "leader"), "{}", c.s(other).log_text());
    assert_eq!(c.s(other).req("PUT during freeze"), "OK", "the live members are only those registered");
    c.servers[l].as_mut().unwrap().signal("CONT");
    assert_eq!(c.leader(), other);
    let log = c.s(l).log_text();
    assert!(log.contains("lost the ZooKeeper session") && log.matches("registered as").count() == 2, "{log}");
    assert_eq!(c.s(l).req("PUT after thaw"), "OK");
    for (_, s) in c.live() {
        assert_eq!(s.req("GET after"), "VALUE thaw");
        assert_eq!(s.req("GET during"), "VALUE freeze");
    }
}

/// ZooKeeper down for longer than the session timeout: the leader cannot know whether its
/// session survives (the server never says "expired" while it is down, and a replaced one
/// may refuse the old session for good), so it steps down at the timeout, like Curator's
/// LOST, and campaigns again with a new session once ZooKeeper is back.
#[test]
fn a_leader_steps_down_when_zookeeper_is_gone_past_the_session_timeout() {
    use zkutil::server::{Ensemble, Options};
    let mut zk = Ensemble::start(Options::for_tests(1)).expect("start ZooKeeper");
    let hosts = zk.connect_string();
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start("kv-zkdown", dir.path(), &["--hosts", &hosts, "--write-timeout", "1s"]);
    assert!(wait_until(LONG, || s.role() == "leader"), "{}", s.log_text());
    assert_eq!(s.req("PUT k 1"), "OK");
    zk.stop(0).unwrap();
    assert!(wait_until(LONG, || s.role().starts_with("ERR ")), "still leads; log:\n{}", s.log_text());
    assert!(s.req("PUT k 2").starts_with("ERR "));
    assert_eq!(s.req("GET k"), "VALUE 1", "reads are served from the local copy");
    zk.restart(0).unwrap();
    assert!(wait_until(LONG, || s.role() == "leader"), "{}", s.log_text());
    assert_eq!(s.req("PUT k 3"), "OK");
}

/// The election recipe on its own: order, handover through the predecessor watch, the
/// observers' view, and loss on session end.
#[test]
fn election_recipe_hands_over_in_order() {
    use zkutil::recipes::election::{self, Election, Wake};
    let root = crate::support::unique_root("election");
    let dir = format!("{root}/e");
    let (za, zb) = (crate::support::connect(), crate::support::connect());
    let never = crossbeam_channel::never::<()>();
    let deadline = || Some(Instant::now() + LONG);
    let a = Election::campaign(&za, &dir, "server_", b"a").unwrap();
    let mut b = Election::campaign(&zb, &dir, "server_", b"b").unwrap();
    assert!(b.seq() > a.seq());
    let sb = b.state().unwrap();
    assert!(!sb.is_leader());
    assert_eq!(sb.leader.data, b"a");
    let (l, watch) = election::leader_w(&za, &dir, "server_").unwrap();
    assert_eq!(l.unwrap().name, a.name());
    let names: Vec<String> = election::candidates(&za, &dir, "server_").unwrap().into_iter().map(|c| c.name).collect();
    assert_eq!(names, vec![a.name().to_string(), b.name().to_string()]);
    a.resign().unwrap();
    assert!(watch.recv_timeout(LONG).is_ok(), "observers learn the leader left");
    match b.wait(&never, deadline()).unwrap() {
        Wake::Changed(s) => assert!(s.is_leader()),
        other => panic!("{other:?}"),
    }
    assert_eq!(election::leader(&za, &dir, "server_").unwrap().unwrap().data, b"b");
    drop(za);
    // Closing b's session: b's node goes with it, nobody leads.
    let zb_id = zb.session_id();
    drop(b);
    drop(zb);
    let zc = crate::support::connect();
    assert!(election::leader(&zc, &dir, "server_").unwrap().is_none(), "session {zb_id:x} closed");
}
