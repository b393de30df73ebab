//! The lock recipe through `zkutil mutex` and `zkutil lock`: mutual exclusion checked on the
//! processes' own wall-clock stamps (`--timestamps`, taken while holding), hand-over on
//! SIGKILL / SIGINT, session expiry, a killed ensemble member, read/write semantics.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use crossbeam_channel::never;
use nix::sys::signal::Signal;
use zkutil::recipes::lock::{Lock, Mode, contenders};
use zkutil::server::{Ensemble, Options};
use zkutil::util::send_signal;
use zkutil::zk::ZooKeeper;

use crate::support::*;
use crate::t;

fn stamp(line: &str) -> (SystemTime, &str) {
    let (ts, rest) = line.split_once(' ').unwrap_or_else(|| panic!("no stamp: {line}"));
    (humantime::parse_rfc3339(ts).unwrap_or_else(|e| panic!("{line}: {e}")), rest)
}

/// Checks one process's `--timestamps` output: every task's lines in order ([awaiting],
/// starts, ends, consumes). Returns (name, start, end) of each finished task and how many
/// times the process waited.
fn tasks_of(lines: &[String]) -> (Vec<(String, SystemTime, SystemTime)>, usize) {
    let mut tasks = Vec::new();
    let mut waited = 0;
    let mut cur: Option<(String, Option<SystemTime>, Option<SystemTime>)> = None;
    for line in lines {
        let (t, rest) = stamp(line);
        let words: Vec<&str> = rest.split(' ').collect();
        assert!(words.len() >= 3 && words[0] == "task" && words[1].starts_with("task-"), "{line}");
        let name = words[1].to_string();
        match words[2] {
            "is" => {
                assert!(cur.is_none(), "awaiting inside a task: {lines:?}");
                assert_eq!(rest, format!("task {name} is awaiting..."));
                waited += 1;
                cur = Some((name, None, None));
            }
            "starts" => {
                match &cur {
                    Some((n, None, None)) => assert_eq!(*n, name, "{lines:?}"),
                    None => {}
                    _ => panic!("starts out of order: {lines:?}"),
                }
                cur = Some((name, Some(t), None));
            }
            "ends" => {
                let Some((n, Some(s), None)) = cur.take() else { panic!("ends out of order: {lines:?}") };
                assert_eq!(n, name);
                cur = Some((n, Some(s), Some(t)));
            }
            "consumes" => {
                let Some((n, Some(s), Some(e))) = cur.take() else { panic!("consumes out of order: {lines:?}") };
                assert_eq!(n, name);
                assert!(words.len() == 5 && words[4] == "s" && words[3].parse::<f64>().is_ok(), "{line}");
                tasks.push((n, s, e));
            }
            _ => panic!("unexpected line {line}"),
        }
    }
    (tasks, waited)
}

/// No two holds overlap (a start never comes before the previous holder's end).
fn assert_no_overlap(all: &mut [(String, SystemTime, SystemTime)]) {
    all.sort_by_key(|(_, s, _)| *s);
    for w in all.windows(2) {
        assert!(w[0].2 <= w[1].1, "{} (ends {:?}) overlaps {} (starts {:?})", w[0].0, w[0].2, w[1].0, w[1].1);
    }
}

fn children_of(zk: &ZooKeeper, dir: &str) -> Vec<String> {
    match zk.children(dir) {
        Ok(k) => contenders(&k).into_iter().map(String::from).collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn two_task_loops_interleave_without_overlap() {
    let root = unique_root("lock-two");
    let path = format!("{root}/mutex");
    let zk = connect();
    // Hold the lock until both loops queue behind it: both then wait at least once.
    let lock = t!(Lock::new(&zk, &path, Mode::Exclusive));
    let gate = t!(lock.acquire(None, &never(), |_| {}));
    let args = ["mutex", "--tasks", "5", "--max-work", "300ms", "--timestamps", "--path", &path];
    let a = Proc::start(&args);
    let b = Proc::start(&args);
    assert!(wait_until(Duration::from_secs(20), || children_of(&zk, &path).len() == 3));
    t!(gate.release());
    let mut all = Vec::new();
    for p in [a, b] {
        let (code, lines, err) = p.finish();
        assert_eq!(code, Some(0), "{err}");
        let (tasks, waited) = tasks_of(&lines);
        assert_eq!(tasks.len(), 5, "{lines:?}");
        assert!(waited >= 1, "never waited: {lines:?}");
        all.extend(tasks);
    }
    assert_eq!(all.len(), 10);
    assert_no_overlap(&mut all);
    assert!(children_of(&zk, &path).is_empty());
}

#[test]
fn six_loops_of_thirty_tasks_without_work() {
    let root = unique_root("lock-six");
    let path = format!("{root}/mutex");
    let args = ["mutex", "--tasks", "30", "--max-work", "0s", "--timestamps", "--path", &path];
    let procs: Vec<Proc> = (0..6).map(|_| Proc::start(&args)).collect();
    let mut all = Vec::new();
    for p in procs {
        let (code, lines, err) = p.finish();
        assert_eq!(code, Some(0), "{err}");
        let (tasks, _) = tasks_of(&lines);
        assert_eq!(tasks.len(), 30, "{lines:?}");
        all.extend(tasks);
    }
    let names: std::collections::BTreeSet<_> = all.iter().map(|t| t.0.clone()).collect();
    assert_eq!(names.len(), 180);
    assert_no_overlap(&mut all);
}

/// A `zkutil lock` holder whose CMD (`cat`) runs until the test closes its stdin.
fn holder(path: &str, session: &str) -> Proc {
    Proc::start_piped(&["--session-timeout", session, "lock", path, "--", "cat"])
}

fn prove_running(p: &mut Proc) {
    writeln!(p.child.stdin.as_mut().unwrap(), "holding").unwrap();
    assert!(p.wait_line("holding", Duration::from_secs(20)).is_some(), "holder never ran its command");
}

#[test]
fn a_killed_holder_blocks_until_its_session_expires() {
    let root = unique_root("lock-kill");
    let path = format!("{root}/mutex");
    let zk = connect();
    let mut a = holder(&path, "3s");
    prove_running(&mut a);
    let held = children_of(&zk, &path);
    assert_eq!(held.len(), 1);
    let b = Proc::start(&["mutex", "--tasks", "1", "--max-work", "0s", "--timestamps", "--path", &path]);
    assert!(b.wait_line("is awaiting", Duration::from_secs(20)).is_some());
    let (_, _, gone) = t!(zk.get_w(&format!("{path}/{}", held[0])));
    let killed = SystemTime::now();
    t!(a.child.kill()); // SIGKILL: no chance to clean up
    // the dead holder's node goes only with its session
    t!(gone.recv_timeout(Duration::from_secs(20)));
    let starts = b.wait_line("starts", Duration::from_secs(20)).expect("b never got the lock");
    let (started, _) = stamp(&starts);
    assert!(
        started >= killed + Duration::from_millis(1500),
        "got the lock {:?} after the kill",
        started.duration_since(killed)
    );
    drop(a.child.stdin.take()); // lets the orphaned cat end
    let (code, _, err) = b.finish();
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn an_interrupted_holder_hands_over_at_once() {
    let root = unique_root("lock-int");
    let path = format!("{root}/mutex");
    let mut a = holder(&path, "10s");
    prove_running(&mut a);
    let b = Proc::start(&["mutex", "--tasks", "1", "--max-work", "0s", "--timestamps", "--path", &path]);
    assert!(b.wait_line("is awaiting", Duration::from_secs(20)).is_some());
    let sent = SystemTime::now();
    t!(send_signal(a.child.id(), Signal::SIGINT));
    let starts = b.wait_line("starts", Duration::from_secs(20)).expect("b never got the lock");
    let (started, _) = stamp(&starts);
    let took = started.duration_since(sent).unwrap_or_default();
    assert!(took < Duration::from_secs(1), "hand-over took {took:?}");
    let (code, _, err) = a.finish();
    assert_eq!(code, Some(130), "{err}");
    assert_eq!(b.finish().0, Some(0));
}

#[test]
fn lock_passes_the_exit_code_and_the_streams() {
    let root = unique_root("lock-exit");
    let path = format!("{root}/l");
    let o = run(&["lock", &path, "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    assert_eq!(ok(&["lock", "--read", &path, "--", "echo", "hi"]), "hi\n");
    let o = run(&["lock", &path, "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(128 + 15));
    let o = run(&["lock", &path, "--", "/no/such/command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("/no/such/command"), "{}", stderr(&o));
    assert!(children_of(&connect(), &path).is_empty());
}

#[test]
fn lock_timeout_gives_up_and_leaves_no_node() {
    let root = unique_root("lock-timeout");
    let path = format!("{root}/l");
    let zk = connect();
    let lock = t!(Lock::new(&zk, &path, Mode::Exclusive));
    let held = t!(lock.acquire(None, &never(), |_| {}));
    let err = conflict_fails(&["lock", "--timeout", "300ms", &path, "--", "echo", "never"]);
    assert!(err.contains("not acquired within 300ms"), "{err}");
    assert_eq!(children_of(&zk, &path), [held.contender().node.rsplit('/').next().unwrap()]);
    drop(held);
    assert!(children_of(&zk, &path).is_empty());
}

#[test]
fn readers_share_and_a_writer_runs_alone() {
    let root = unique_root("lock-rw");
    let path = format!("{root}/rw");
    let zk = connect();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let reader = |name: &str| {
        let script = format!("touch {d}/{name}; cat >/dev/null; rm {d}/{name}");
        Proc::start_piped(&["lock", "--read", &path, "--", "sh", "-c", &script])
    };
    let exists = |name: &str| dir.path().join(name).exists();
    let mut r1 = reader("r1");
    assert!(wait_until(Duration::from_secs(20), || exists("r1")));
    let mut r2 = reader("r2");
    assert!(wait_until(Duration::from_secs(20), || exists("r2")), "readers did not share the lock");
    assert!(exists("r1"));
    // The writer only succeeds if no reader runs; the reader after it only if it ran first.
    let w_script = format!("test ! -e {d}/r1 && test ! -e {d}/r2 && touch {d}/w");
    let w = Proc::start(&["lock", &path, "--", "sh", "-c", &w_script]);
    assert!(wait_until(Duration::from_secs(20), || children_of(&zk, &path).len() == 3));
    let r3 = Proc::start(&["lock", "--shared", &path, "--", "test", "-e", &format!("{d}/w")]);
    assert!(wait_until(Duration::from_secs(20), || children_of(&zk, &path).len() == 4));
    assert!(!exists("w"));
    let kinds: Vec<bool> = children_of(&zk, &path).iter().map(|n| n.contains("__READ__")).collect();
    assert_eq!(kinds, [true, true, false, true]);
    drop(r1.child.stdin.take());
    drop(r2.child.stdin.take());
    for p in [r1, r2, w, r3] {
        let (code, _, err) = p.finish();
        assert_eq!(code, Some(0), "{err}");
    }
    assert!(children_of(&zk, &path).is_empty());
}

/// SIGSTOP a holder past its session timeout: ZooKeeper expires the session and the waiter
/// gets the lock; once resumed, the holder learns it lost the lock.
fn expire_by_pause(holder: &Proc, path: &str) -> Proc {
    let b = Proc::start(&["mutex", "--tasks", "1", "--max-work", "0s", "--path", path]);
    assert!(b.wait_line("is awaiting", Duration::from_secs(20)).is_some());
    t!(send_signal(holder.child.id(), Signal::SIGSTOP));
    let gotten = b.wait_line("starts", Duration::from_secs(30));
    t!(send_signal(holder.child.id(), Signal::SIGCONT));
    assert!(gotten.is_some(), "the waiter never got the lock");
    b
}

#[test]
fn a_holder_whose_session_expires_learns_it() {
    let root = unique_root("lock-expire");
    // the task loop: prints the loss and exits 1
    let path = format!("{root}/mutex");
    let a = Proc::start_on(
        &hosts(),
        &[
            "--session-timeout",
            "2s",
            "mutex",
            "--tasks",
            "1",
            "--min-work",
            "60s",
            "--max-work",
            "60s",
            "--path",
            &path,
        ],
    );
    assert!(a.wait_line("starts", Duration::from_secs(20)).is_some());
    let b = expire_by_pause(&a, &path);
    let (code, lines, err) = a.finish();
    assert_eq!(code, Some(1), "{lines:?} {err}");
    assert!(lines.last().unwrap().ends_with("lost the lock (session expired)"), "{lines:?}");
    assert!(err.starts_with("zkutil: lost the lock"), "{err}");
    assert_eq!(b.finish().0, Some(0));

    // `lock`: CMD gets SIGTERM
    let path = format!("{root}/l");
    let script = "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.05; done";
    let a = Proc::start(&["--session-timeout", "2s", "lock", &path, "--", "sh", "-c", script]);
    assert!(a.wait_line("started", Duration::from_secs(20)).is_some());
    let b = expire_by_pause(&a, &path);
    let (code, lines, err) = a.finish();
    assert_eq!(code, Some(1), "{lines:?} {err}");
    assert!(lines.contains(&"got-term".to_string()), "{lines:?}");
    assert!(err.contains("lost the lock"), "{err}");
    assert_eq!(b.finish().0, Some(0));
}

#[test]
fn mutual_exclusion_survives_a_killed_ensemble_member() {
    let mut ens = Ensemble::start(Options::for_tests(3)).expect("start ensemble");
    let hosts = ens.connect_string();
    let path = "/ens-mutex";
    let args =
        ["--session-timeout", "8s", "mutex", "--tasks", "8", "--max-work", "200ms", "--timestamps", "--path", path];
    let a = Proc::start_on(&hosts, &args);
    let b = Proc::start_on(&hosts, &args);
    let started = |p: &Proc| p.lines().iter().filter(|l| l.contains(" starts")).count();
    assert!(wait_until(Duration::from_secs(30), || started(&a) + started(&b) >= 3));
    let victim = ens.leader().unwrap_or(0);
    ens.kill(victim).expect("kill a member");
    let mut all = Vec::new();
    let mut codes = BTreeMap::new();
    for (i, p) in [a, b].into_iter().enumerate() {
        let (code, lines, err) = p.finish();
        // Either it went on, or it failed clearly (one zkutil: line).
        assert!(code == Some(0) || (code == Some(1) && err.starts_with("zkutil: ")), "{code:?} {err}");
        let finished: Vec<String> = lines.into_iter().filter(|l| !l.contains("lost the lock")).collect();
        all.extend(tasks_of(&finished).0);
        codes.insert(i, code);
    }
    eprintln!("killed member {victim}; exit codes {codes:?}; {} finished tasks", all.len());
    assert!(all.len() >= 3, "{codes:?}");
    assert_no_overlap(&mut all);
}

#[test]
fn foreign_contenders_count_by_their_sequence() {
    let root = unique_root("lock-foreign");
    let path = format!("{root}/l");
    let zk = connect();
    t!(zkutil::recipes::lock::create_containers(&zk, &path));
    // kazoo's Lock names its nodes `<uuid>__lock__<seq>`: a writer to zkutil
    let kazoo = t!(zk.create(&format!("{path}/0a1b2c3d__lock__"), b"", zkutil::zk::CreateMode::EphemeralSequential));
    let err = conflict_fails(&["lock", "--timeout", "300ms", "--read", &path, "--", "true"]);
    assert!(err.contains("not acquired"), "{err}");
    t!(zk.delete(&kazoo, None));
    // a foreign reader (Curator's read lock) does not block a zkutil reader, but blocks a writer
    let curator_reader =
        t!(zk.create(&format!("{path}/_c_x-__READ__"), b"", zkutil::zk::CreateMode::EphemeralSequential));
    assert_eq!(ok(&["lock", "--timeout", "10s", "--read", &path, "--", "echo", "shared"]), "shared\n");
    conflict_fails(&["lock", "--timeout", "300ms", &path, "--", "true"]);
    t!(zk.delete(&curator_reader, None));
    assert_eq!(ok(&["lock", "--timeout", "10s", &path, "--", "echo", "alone"]), "alone\n");
    assert!(children_of(&zk, &path).is_empty());
}

#[test]
fn a_holder_cut_off_from_zookeeper_gives_the_lock_up() {
    // The server dies: no expiry event can ever arrive, but after the session timeout
    // the server side (when it comes back) has dropped our node, so the holder must stop.
    let mut server = t!(zkutil::server::Ensemble::standalone());
    let script = "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.05; done";
    let a = Proc::start_on(
        &server.connect_string(),
        &["--session-timeout", "2s", "lock", "/cut", "--", "sh", "-c", script],
    );
    assert!(a.wait_line("started", Duration::from_secs(20)).is_some());
    t!(server.kill(0));
    let (code, lines, err) = a.finish();
    assert_eq!(code, Some(1), "{lines:?} {err}");
    assert!(lines.contains(&"got-term".to_string()), "{lines:?}");
    assert!(err.contains("lost the lock"), "{err}");
}

#[test]
fn a_holder_cut_off_from_zookeeper_stops_before_the_next_holder_starts() {
    // A partition: the holder hears nothing; the server expires its session T after it last
    // heard from it and hands the lock on. The holder must have stopped CMD by then (not T
    // after it noticed, which is 2T/3 later still).
    let root = unique_root("lock-partition");
    let path = format!("{root}/l");
    let log = std::env::temp_dir().join(format!("zkutil-partition-{}.log", std::process::id()));
    let _ = std::fs::remove_file(&log);
    let log_s = log.display().to_string();
    let proxy = Proxy::to(&hosts());
    let a_script = format!(
        "trap 'echo a-term >> {log_s}; exit 0' TERM; echo a-start >> {log_s}; echo started; while :; do sleep 0.05; done 2>/dev/null"
    );
    let a = Proc::start_on(&proxy.addr, &["--session-timeout", "6s", "lock", &path, "--", "sh", "-c", &a_script]);
    assert!(a.wait_line("started", Duration::from_secs(20)).is_some());
    let b_script = format!("echo b-start >> {log_s}");
    let b = Proc::start(&["lock", &path, "--", "sh", "-c", &b_script]);
    let zk = connect();
    assert!(wait_until(Duration::from_secs(20), || children_of(&zk, &path).len() == 2));
    proxy.cut();
    let (code, _, err) = b.finish();
    assert_eq!(code, Some(0), "{err}");
    let (code, lines, err) = a.finish();
    assert_eq!(code, Some(1), "{lines:?} {err}");
    assert!(err.starts_with("zkutil: lost the lock") && err.contains("no connection to ZooKeeper"), "{err}");
    let events = t!(std::fs::read_to_string(&log));
    let _ = std::fs::remove_file(&log);
    assert_eq!(events.lines().collect::<Vec<_>>(), ["a-start", "a-term", "b-start"], "two holders at once");
}

#[test]
fn cmd_does_not_outlive_a_killed_zkutil() {
    // Otherwise the next holder's CMD would run beside it once the session times out.
    let root = unique_root("lock-orphan");
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 60", pidfile.display());
    let mut holder =
        zkutil(&["lock", &format!("{root}/l"), "--", "sh", "-c", &script]).stdout(Stdio::null()).spawn().unwrap();
    assert!(wait_until(Duration::from_secs(20), || std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))));
    let cmd: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert!(alive(cmd));
    t!(send_signal(holder.id(), Signal::SIGKILL));
    holder.wait().unwrap();
    assert!(wait_until(Duration::from_secs(5), || !alive(cmd)), "CMD {cmd} still runs after zkutil was killed");
}

#[test]
fn a_waiter_cut_off_from_zookeeper_gives_up_at_the_holder_grace() {
    // A lock taken on a session that was silent past T/6 could not be trusted: the waiter
    // gives up (exit 1) instead of waiting on.
    let root = unique_root("lock-waiter-cut");
    let path = format!("{root}/l");
    let zk = connect();
    let lock = t!(Lock::new(&zk, &path, Mode::Exclusive));
    let held = t!(lock.acquire(None, &never(), |_| {}));
    let proxy = Proxy::to(&hosts());
    let w = Proc::start_on(&proxy.addr, &["--session-timeout", "3s", "lock", &path, "--", "true"]);
    assert!(wait_until(Duration::from_secs(20), || children_of(&zk, &path).len() == 2));
    proxy.cut();
    let (code, _, err) = w.finish_within(Duration::from_secs(20));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no connection to ZooKeeper"), "{err}");
    t!(held.release());
}
