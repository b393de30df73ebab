//! Barrier, counter, group and txn end to end: several zkutil processes at once against a
//! real ZooKeeper; outcomes checked with the library client.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use nix::sys::signal::Signal;

use crate::support::*;
use crate::t;
use zkutil::recipes::counter::Counter;
use zkutil::server::{Ensemble, Options};
use zkutil::util::send_signal;
use zkutil::zk::CreateMode;

const LONG: Duration = Duration::from_secs(20);
/// How long "nothing happens" is watched for in the negative checks.
const QUIET: Duration = Duration::from_millis(600);

/// A running zkutil with its stdout (and stderr) lines on channels.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Receiver<String>,
    err: Receiver<String>,
}

fn lines(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn start(mut cmd: Command) -> Proc {
    let mut child = t!(cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn());
    let out = lines(child.stdout.take().unwrap());
    let err = lines(child.stderr.take().unwrap());
    Proc { stdin: child.stdin.take(), child, out, err }
}

fn spawn(args: &[&str]) -> Proc {
    start(zkutil(args))
}

impl Proc {
    /// Reads stdout until a line equal to `want`; panics after `LONG`.
    #[track_caller]
    fn expect(&self, want: &str) {
        let deadline = Instant::now() + LONG;
        loop {
            match self.out.recv_deadline(deadline) {
                Ok(l) if l == want => return,
                Ok(_) => {}
                Err(_) => panic!("no line {want:?} on stdout; stderr: {:?}", self.err.try_iter().collect::<Vec<_>>()),
            }
        }
    }

    /// Same on stderr, for a line containing `want`.
    #[track_caller]
    fn expect_err(&self, want: &str) -> String {
        match self.err.iter().find(|l| l.contains(want)) {
            Some(l) => l,
            None => panic!("no stderr line with {want:?}"),
        }
    }

    /// Asserts stdout stays silent for `QUIET`.
    #[track_caller]
    fn quiet(&self) {
        if let Ok(l) = self.out.recv_timeout(QUIET) {
            panic!("unexpected output {l:?}");
        }
    }

    fn send_line(&mut self) {
        t!(self.stdin.as_mut().unwrap().write_all(b"go\n"));
    }

    fn signal(&self, sig: Signal) {
        t!(send_signal(self.child.id(), sig));
    }

    #[track_caller]
    fn wait(&mut self) -> ExitStatus {
        self.wait_for(LONG)
    }

    #[track_caller]
    fn wait_for(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = t!(self.child.try_wait()) {
                return s;
            }
            assert!(Instant::now() < deadline, "zkutil did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn running(&mut self) -> bool {
        t!(self.child.try_wait()).is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kids(zk: &zkutil::zk::ZooKeeper, path: &str) -> Vec<String> {
    let mut k = zk.children(path).unwrap_or_default();
    k.sort();
    k
}

#[test]
fn double_barrier_five_processes_enter_when_the_fifth_arrives_and_leave_together() {
    let root = unique_root("dbar");
    let b = format!("{root}/b");
    let zk = connect();
    // each participant runs CMD between enter and leave: it waits for a line on stdin
    let participant = |i: usize| {
        spawn(&["barrier", "wait", &b, "--count", "5", "--id", &format!("p{i}"), "--", "sh", "-c", "read x; echo done"])
    };
    let mut procs: Vec<Proc> = (0..4).map(participant).collect();
    assert!(wait_until(LONG, || kids(&zk, &b).len() == 4), "{:?}", kids(&zk, &b));
    let st = t!(zk.exists(&format!("{b}/p0"))).unwrap();
    assert_ne!(st.ephemeral_owner, 0, "participant nodes are ephemeral");
    for p in &procs {
        p.quiet(); // 4 of 5: nobody enters
    }
    assert!(t!(zk.exists(&format!("{b}/ready"))).is_none());

    procs.push(participant(4));
    for (i, p) in procs.iter().enumerate() {
        p.expect_err(&format!("entered {b} as p{i}"));
    }
    // four finish their work: they wait in leave for the fifth
    for p in procs.iter_mut().take(4) {
        p.send_line();
        p.expect("done");
    }
    for p in procs.iter_mut().take(4) {
        p.quiet();
        assert!(p.running(), "left before the fifth finished");
    }
    procs[4].send_line();
    procs[4].expect("done");
    for p in procs.iter_mut() {
        p.expect_err(&format!("left {b}"));
        assert!(p.wait().success());
    }
    assert!(kids(&zk, &b).is_empty(), "{:?}", kids(&zk, &b));
}

#[test]
fn double_barrier_timeout_and_ctrl_c_clean_up_at_once() {
    let root = unique_root("dbar-stop");
    let b = format!("{root}/b");
    let zk = connect();
    let err = conflict_fails(&["barrier", "wait", &b, "--count", "3", "--id", "lonely", "--timeout", "300ms"]);
    assert!(err.contains("timed out after 300ms waiting for 3 participants"), "{err}");
    assert!(kids(&zk, &b).is_empty());

    let mut p = spawn(&["barrier", "wait", &b, "--count", "3", "--id", "x"]);
    assert!(wait_until(LONG, || kids(&zk, &b) == ["x"]));
    p.signal(Signal::SIGINT);
    assert_eq!(p.wait().code(), Some(130));
    assert!(kids(&zk, &b).is_empty(), "the node goes at once, not after the session timeout");

    // bad input
    assert_eq!(run(&["barrier", "wait", &b, "--count", "0"]).status.code(), Some(2));
    assert_eq!(run(&["barrier", "wait", &b, "--id", "x"]).status.code(), Some(2));
    assert!(fails(&["barrier", "wait", &b, "--count", "2", "--id", "ready"]).contains("cannot be a participant id"));
    assert!(usage_fails(&["barrier", "wait", "nope", "--count", "2"]).contains("invalid path"));
    // an id in use by a live participant
    let _p = spawn(&["barrier", "wait", &b, "--count", "3", "--id", "dup"]);
    assert!(wait_until(LONG, || kids(&zk, &b) == ["dup"]));
    assert!(fails(&["barrier", "wait", &b, "--count", "3", "--id", "dup"]).contains("taken by another participant"));
}

/// Runs zkutil, expects success with nothing on stdout; returns stderr (its status line).
#[track_caller]
fn status_line(args: &[&str]) -> String {
    let o = run(args);
    assert!(o.status.success() && o.stdout.is_empty(), "{args:?}: {o:?}");
    stderr(&o)
}

#[test]
fn single_barrier_holds_waiters_until_released() {
    let root = unique_root("sbar");
    let b = format!("{root}/gate/b");
    let zk = connect();
    assert_eq!(status_line(&["barrier", "hold", &b]), format!("barrier {b} is up\n"));
    assert_eq!(t!(zk.exists(&b)).unwrap().ephemeral_owner, 0, "persistent: it outlives `hold`");
    assert_eq!(status_line(&["barrier", "hold", &b]), format!("barrier {b} was already up\n"));
    let mut waiters: Vec<Proc> = (0..3).map(|_| spawn(&["barrier", "wait", &b])).collect();
    let err = conflict_fails(&["barrier", "wait", &b, "--timeout", "200ms"]);
    assert!(err.contains("still up after 200ms"), "{err}");
    std::thread::sleep(QUIET); // negative check: nobody gets through while it is up
    for w in waiters.iter_mut() {
        assert!(w.running());
    }
    assert_eq!(status_line(&["barrier", "release", &b]), format!("barrier {b} released\n"));
    for w in waiters.iter_mut() {
        assert!(w.wait().success());
    }
    assert!(t!(zk.exists(&b)).is_none());
    assert_eq!(status_line(&["barrier", "release", &b]), format!("barrier {b} was not up\n"));
    ok(&["barrier", "wait", &b]); // not up: passes at once
}

#[test]
fn counter_under_eight_concurrent_updaters_counts_exactly() {
    let root = unique_root("counter");
    // library: 8 sessions adding 1 a hundred times each, all contending on one node
    let lib = format!("{root}/lib");
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                let zk = connect();
                let c = t!(Counter::new(&zk, &lib));
                for _ in 0..100 {
                    t!(c.add(1));
                }
            });
        }
    });
    assert_eq!(ok(&["counter", &lib]), "800\n");

    // CLI: 8 processes adding 100 each (10 x add 10, each a fresh zkutil)
    let cli = format!("{root}/cli");
    let script = "for i in 1 2 3 4 5 6 7 8 9 10; do \"$0\" counter \"$1\" add 10 >/dev/null || exit 1; done";
    let procs: Vec<Child> = (0..8)
        .map(|_| {
            t!(Command::new("sh")
                .args(["-c", script, env!("CARGO_BIN_EXE_zkutil"), &cli])
                .env("ZK_HOSTS", hosts())
                .spawn())
        })
        .collect();
    for mut p in procs {
        assert!(t!(p.wait()).success());
    }
    assert_eq!(ok(&["counter", &cli, "get"]), "800\n");
    assert_eq!(t!(connect().get(&cli)).0, b"800", "stored as decimal text");
}

#[test]
fn counter_get_set_and_bad_input() {
    let root = unique_root("counter-misc");
    let zk = connect();
    let c = format!("{root}/a/b");
    assert_eq!(ok(&["counter", &c]), "0\n");
    assert!(t!(zk.exists(&c)).is_none(), "get does not create");
    assert_eq!(ok(&["counter", &c, "add", "-5"]), "-5\n");
    assert_eq!(ok(&["counter", &c, "set", "41"]), "41\n");
    assert_eq!(ok(&["counter", &c, "add", "1"]), "42\n");
    assert!(fails(&["counter", &c, "add", "9223372036854775807"]).contains("overflows"));
    assert_eq!(t!(zk.get(&c)).0, b"42");
    t!(zk.set(&c, b"twelve", None));
    assert!(fails(&["counter", &c, "add", "1"]).contains("not a decimal integer"));
    assert_eq!(t!(zk.get(&c)).0, b"twelve");
    assert_eq!(run(&["counter", &c, "add", "x"]).status.code(), Some(2));
    assert_eq!(run(&["counter", &c, "frob"]).status.code(), Some(2));
    let empty = format!("{root}/empty");
    t!(zk.create(&empty, b"", CreateMode::Persistent));
    assert_eq!(ok(&["counter", &empty, "add", "3"]), "3\n");
}

#[test]
fn group_list_sees_members_join_and_a_killed_one_disappear() {
    let root = unique_root("group");
    let g = format!("{root}/web");
    let zk = connect();
    let watch = spawn(&["group", "list", "--watch", &g]);
    let mut a = spawn(&["group", "join", &g, "a", "--data", "127.0.0.1:8080"]);
    a.expect_err(&format!("joined {g} as a"));
    watch.expect("+a\t127.0.0.1:8080");
    let mut b = spawn(&["--session-timeout", "2s", "group", "join", &g, "b", "--data", "127.0.0.1:8081"]);
    b.expect_err(&format!("joined {g} as b"));
    watch.expect("+b\t127.0.0.1:8081");
    assert_eq!(ok(&["group", "list", &g]), "a\t127.0.0.1:8080\nb\t127.0.0.1:8081\n");
    let st = t!(zk.exists(&format!("{g}/a"))).unwrap();
    assert_ne!(st.ephemeral_owner, 0);
    let err = fails(&["group", "join", &g, "a"]);
    assert!(err.contains("taken by a live member"), "{err}");

    // SIGKILL: no goodbye; the member goes when its 2 s session expires
    b.signal(Signal::SIGKILL);
    b.wait();
    watch.expect("-b");
    assert!(t!(zk.exists(&format!("{g}/b"))).is_none());
    // Ctrl-C: the session closes, the member goes at once
    a.signal(Signal::SIGINT);
    assert_eq!(a.wait().code(), Some(130));
    assert!(t!(zk.exists(&format!("{g}/a"))).is_none());
    watch.expect("-a");
    assert_eq!(ok(&["group", "list", &g]), "");
    assert!(fails(&["group", "join", &g, "x/y"]).contains("cannot be a member name"));
}

#[test]
fn group_join_with_cmd_lives_as_long_as_cmd_and_passes_its_code() {
    let root = unique_root("group-cmd");
    let g = format!("{root}/workers");
    let zk = connect();
    // CMD lists the group: it sees itself as a member; then exits 7
    let script = "\"$0\" group list \"$1\" && exit 7";
    let o =
        run(&["group", "join", &g, "w1", "--data", "d", "--", "sh", "-c", script, env!("CARGO_BIN_EXE_zkutil"), &g]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    assert_eq!(stdout(&o), "w1\td\n"); // "joined" is a status line, on stderr
    assert!(stderr(&o).contains(&format!("joined {g} as w1")), "{}", stderr(&o));
    assert!(kids(&zk, &g).is_empty());
    // SIGTERM ends the membership, then CMD
    let mut p = spawn(&["group", "join", &g, "w2", "--", "sleep", "60"]);
    p.expect_err(&format!("joined {g} as w2"));
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait().code(), Some(143));
    assert!(kids(&zk, &g).is_empty());
}

#[test]
fn group_member_rejoins_after_losing_its_session() {
    let mut zk_server = t!(Ensemble::start(Options::for_tests(1)));
    let hosts = zk_server.connect_string();
    let mut cmd = zkutil(&["--session-timeout", "2s", "group", "join", "/g", "m", "--data", "x"]);
    cmd.env("ZK_HOSTS", &hosts);
    let mut p = start(cmd);
    p.expect_err("joined /g as m");
    let zk = connect_to(&hosts);
    let old = t!(zk.exists("/g/m")).unwrap().ephemeral_owner;
    drop(zk);
    // ZooKeeper down for longer than the session timeout: the member knows it is out
    t!(zk_server.stop(0));
    p.expect_err("is no longer a member; re-joining with a new session");
    t!(zk_server.restart(0));
    p.expect_err("re-joined /g as m");
    let zk = connect_to(&hosts);
    let st = t!(zk.exists("/g/m")).expect("member node back");
    assert_ne!(st.ephemeral_owner, old, "a new session");
    assert_eq!(t!(zk.get("/g/m")).0, b"x");
    p.signal(Signal::SIGTERM);
    assert_eq!(p.wait().code(), Some(143));
    assert!(t!(zk.exists("/g/m")).is_none());
}

fn txn(input: &str) -> std::process::Output {
    let mut c = t!(zkutil(&["txn"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn());
    t!(c.stdin.take().unwrap().write_all(input.as_bytes()));
    t!(c.wait_with_output())
}

#[test]
fn txn_is_all_or_nothing() {
    let root = unique_root("txn");
    let zk = connect();
    let o = txn(&format!(
        "# set up\ncreate {root}/a 'hello world'\ncreate {root}/b\nset {root}/b \"x\\ty\" 0\ncheck {root}/a 0\n"
    ));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("created {root}/a\ncreated {root}/b\nset {root}/b (now version 1)\nchecked {root}/a (version 0)\n")
    );
    assert_eq!(t!(zk.get(&format!("{root}/a"))).0, b"hello world");
    assert_eq!(t!(zk.get(&format!("{root}/b"))).0, b"x\ty");

    // one failing check: nothing changes
    let o = txn(&format!("create {root}/c\nset {root}/a changed\ndelete {root}/b\ncheck {root}/a 7\n"));
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.starts_with("zkutil: transaction failed at operation 4") && err.contains("nothing was applied"),
        "{err}"
    );
    let out = stdout(&o);
    assert!(out.contains("1 create ") && out.contains("4 check ") && out.contains("version mismatch"), "{out}");
    assert!(t!(zk.exists(&format!("{root}/c"))).is_none());
    assert_eq!(t!(zk.get(&format!("{root}/a"))).0, b"hello world");
    assert!(t!(zk.exists(&format!("{root}/b"))).is_some());

    // bad input: the line is named, nothing is sent
    let o = txn(&format!("create {root}/d\n\nset {root}/a x notaversion\n"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("zkutil: txn: line 3: \"notaversion\" is not a version"), "{}", stderr(&o));
    assert!(t!(zk.exists(&format!("{root}/d"))).is_none());
    let o = txn("frob /x\n");
    assert!(stderr(&o).contains("line 1: unknown operation \"frob\""), "{}", stderr(&o));
    let o = txn("# only a comment\n");
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no operations"), "{}", stderr(&o));
}

#[test]
fn double_barrier_path_serves_round_after_round() {
    // Three participants loop through the same barrier: the fastest one is back for round
    // two while the others are still leaving round one. It must neither pass round two
    // alone (a stale `ready`) nor keep a slow leaver waiting on its round-two node.
    let root = unique_root("dbar-rounds");
    let b = format!("{root}/b");
    let zk = connect();
    let dir = t!(tempfile::tempdir());
    let log = dir.path().join("log");
    // CMD appends "ROUND ID" to one file: appends keep the real order
    let script = r#"for r in 1 2 3 4; do "$0" barrier wait "$1" --count 3 --id "$2" --timeout 20s -- sh -c 'echo "$0" >> "$1"' "$r $2" "$3" || exit 1; done"#;
    let mut procs: Vec<Proc> = (0..3)
        .map(|i| {
            let mut c = Command::new("sh");
            let args = [script, env!("CARGO_BIN_EXE_zkutil"), &b, &format!("p{i}"), log.to_str().unwrap()];
            c.arg("-c").args(args).env("ZK_HOSTS", hosts());
            start(c)
        })
        .collect();
    for p in procs.iter_mut() {
        let status = p.wait_for(LONG * 3);
        assert!(status.success(), "{:?}", p.err.try_iter().collect::<Vec<_>>());
    }
    let rounds: Vec<u32> =
        t!(std::fs::read_to_string(&log)).lines().map(|l| l.split(' ').next().unwrap().parse().unwrap()).collect();
    assert_eq!(rounds, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4], "every round complete before the next starts");
    assert!(kids(&zk, &b).is_empty(), "{:?}", kids(&zk, &b));
}

#[test]
fn double_barrier_recipe_rounds_back_to_back() {
    // The recipe in a tight loop (no process start between rounds): a participant is back
    // at the barrier one round trip after leaving.
    use std::sync::{Arc, Mutex};
    use zkutil::recipes::barrier::{DoubleBarrier, Outcome};
    let root = unique_root("dbar-loop");
    let b = format!("{root}/b");
    let log = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..3)
        .map(|i| {
            let (b, log) = (b.clone(), log.clone());
            std::thread::spawn(move || {
                let zk = connect();
                let never = crossbeam_channel::never();
                for round in 0..15 {
                    let deadline = Some(Instant::now() + LONG);
                    let mut bar = DoubleBarrier::new(&zk, &b, 3, &format!("p{i}")).unwrap();
                    assert_eq!(bar.enter(deadline, &never).unwrap(), Outcome::Done, "p{i} round {round}");
                    log.lock().unwrap().push(round);
                    assert_eq!(bar.leave(deadline, &never).unwrap(), Outcome::Done, "p{i} round {round}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let log = log.lock().unwrap().clone();
    let mut sorted = log.clone();
    sorted.sort();
    assert_eq!(log, sorted, "a participant entered a round before the previous one was complete");
    assert!(kids(&connect(), &b).is_empty());
}

#[test]
fn double_barrier_leaver_is_not_held_by_the_next_round() {
    // "c" has left and waits for the lowest, "a", to go last. "a" goes and, in the same
    // instant, "b" arrives for the next round: "c" must be done, not wait for "b".
    use zkutil::recipes::barrier::{DoubleBarrier, Outcome};
    use zkutil::zk::Op;
    let root = unique_root("dbar-next");
    let b = format!("{root}/b");
    let other = connect();
    t!(other.ensure_path(&b, CreateMode::Persistent));
    t!(other.create(&format!("{b}/a"), b"", CreateMode::Ephemeral));
    let zk = connect();
    let never = crossbeam_channel::never();
    let mut c = DoubleBarrier::new(&zk, &b, 2, "c").unwrap();
    assert_eq!(c.enter(Some(Instant::now() + LONG), &never).unwrap(), Outcome::Done);
    let leaving = std::thread::scope(|s| {
        let h = s.spawn(|| c.leave(Some(Instant::now() + LONG), &never).unwrap());
        assert!(wait_until(LONG, || kids(&other, &b) == ["a", "ready"]));
        t!(other.multi(&[
            Op::Delete { path: format!("{b}/a"), version: None },
            Op::Delete { path: format!("{b}/ready"), version: None },
            Op::Create { path: format!("{b}/b"), data: Vec::new(), mode: CreateMode::Ephemeral },
        ]));
        h.join().unwrap()
    });
    assert_eq!(leaving, Outcome::Done);
    assert_eq!(kids(&other, &b), ["b"], "the next round's participant is untouched");
}

#[test]
fn barrier_participants_give_up_and_waiters_ride_through_a_lost_session() {
    // ZooKeeper gone for longer than the session timeout: a double-barrier participant (its
    // node is gone with the session) gives up; a single-barrier waiter is a watcher: it says
    // so, waits again on a new session once ZooKeeper is back, and passes when released.
    let mut zk_server = t!(Ensemble::start(Options::for_tests(1)));
    let hosts = zk_server.connect_string();
    let with_hosts = |args: &[&str]| {
        let mut c = zkutil(&[&["--session-timeout", "2s"], args].concat());
        c.env("ZK_HOSTS", &hosts);
        c
    };
    assert!(t!(with_hosts(&["barrier", "hold", "/s"]).output()).status.success());
    let mut single = start(with_hosts(&["barrier", "wait", "/s"]));
    let mut double = start(with_hosts(&["barrier", "wait", "/d", "--count", "2", "--id", "x"]));
    let zk = connect_to(&hosts);
    assert!(wait_until(LONG, || kids(&zk, "/d") == ["x"]));
    drop(zk);
    t!(zk_server.stop(0));
    assert_eq!(double.wait().code(), Some(1), "a participant must not hang on a dead ZooKeeper");
    double.expect_err("the session was lost");
    assert!(single.child.try_wait().unwrap().is_none(), "the single-barrier waiter gave up");
    t!(zk_server.restart(0));
    assert!(t!(with_hosts(&["barrier", "release", "/s"]).output()).status.success());
    assert_eq!(single.wait().code(), Some(0));
    let line = single.expect_err("waiting again with a new session");
    assert!(line.contains("the session was lost"), "{line}");
}

#[test]
fn group_list_watch_reports_a_rejoin_with_the_same_data() {
    // A member restarts under the same name with the same data, faster than the watcher can
    // look (one multi): still a leave and a join. Names and data with blanks and unicode.
    use zkutil::zk::Op;
    let root = unique_root("group-rejoin");
    let g = format!("{root}/svc");
    let zk = connect();
    t!(zk.ensure_path(&g, CreateMode::Persistent));
    let m = format!("{g}/web 1");
    t!(zk.create(&m, "hö st:80\n".as_bytes(), CreateMode::Ephemeral));
    let watch = spawn(&["group", "list", "--watch", &g]);
    watch.expect("+web 1\thö st:80\\n");
    t!(zk.multi(&[
        Op::Delete { path: m.clone(), version: None },
        Op::Create { path: m.clone(), data: "hö st:80\n".into(), mode: CreateMode::Ephemeral },
    ]));
    watch.expect("-web 1");
    watch.expect("+web 1\thö st:80\\n");
}
