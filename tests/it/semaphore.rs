//! The semaphore recipe through `zkutil semaphore`: at most N CMDs at once, checked on the
//! CMDs' own clocks (`date +%s%N` taken inside CMD, so within the lease); give-up, exit
//! codes, a SIGKILLed holder, Ctrl-C, session expiry, bad input.

use std::num::NonZeroU32;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crossbeam_channel::never;
use nix::sys::signal::Signal;
use zkutil::recipes::lock::{Lock, Mode};
use zkutil::recipes::semaphore::Semaphore;
use zkutil::util::send_signal;
use zkutil::zk::ZooKeeper;

use crate::support::*;
use crate::t;

fn children_of(zk: &ZooKeeper, dir: &str) -> Vec<String> {
    match zk.children(dir) {
        Ok(mut k) => {
            k.sort();
            k
        }
        Err(_) => Vec::new(),
    }
}

fn leases(zk: &ZooKeeper, path: &str) -> Vec<String> {
    children_of(zk, &format!("{path}/leases"))
}

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

/// The most intervals open at one instant (a start at the same nanosecond as an end counts
/// as overlapping it).
fn max_overlap(intervals: &[(u128, u128)]) -> usize {
    let mut edges: Vec<(u128, i32)> = intervals.iter().flat_map(|&(s, e)| [(s, 0), (e, 1)]).collect();
    edges.sort(); // starts (0) before ends (1) at equal times
    let (mut open, mut max) = (0i32, 0i32);
    for (_, kind) in edges {
        open += if kind == 0 { 1 } else { -1 };
        max = max.max(open);
    }
    max as usize
}

#[test]
fn six_processes_never_three_holders() {
    let root = unique_root("sem-six");
    let path = format!("{root}/s");
    let dir = tempfile::tempdir().unwrap();
    let procs: Vec<Proc> = (0..6)
        .map(|i| {
            // Both stamps come from inside CMD, so while the lease is held.
            let f = dir.path().join(format!("p{i}")).display().to_string();
            let script = format!("date +%s%N > {f}.start; sleep 1; date +%s%N > {f}.end");
            Proc::start(&["semaphore", &path, "--leases", "2", "--", "sh", "-c", &script])
        })
        .collect();
    for p in procs {
        let (code, _, err) = p.finish();
        assert_eq!(code, Some(0), "{err}");
    }
    let read = |i: usize, what: &str| -> u128 {
        let f = dir.path().join(format!("p{i}.{what}"));
        t!(std::fs::read_to_string(&f)).trim().parse().unwrap()
    };
    let intervals: Vec<(u128, u128)> = (0..6).map(|i| (read(i, "start"), read(i, "end"))).collect();
    assert!(intervals.iter().all(|(s, e)| s < e));
    assert_eq!(max_overlap(&intervals), 2, "{intervals:?}");
    assert!(leases(&connect(), &path).is_empty());
}

#[test]
fn overlap_counting() {
    assert_eq!(max_overlap(&[(0, 10), (10, 20)]), 2);
    assert_eq!(max_overlap(&[(0, 10), (11, 20), (12, 13)]), 2);
    assert_eq!(max_overlap(&[(0, 10), (1, 20), (5, 6)]), 3);
}

#[test]
fn timeout_gives_up_and_leaves_no_node() {
    let root = unique_root("sem-timeout");
    let path = format!("{root}/s");
    let zk = connect();
    // all leases taken: the contender waits for a lease, holding the internal lock
    let sem = t!(Semaphore::new(&zk, &path, nz(1)));
    let lease = t!(sem.acquire(None, &never(), |_| {}));
    let before = Instant::now();
    let err = conflict_fails(&["semaphore", &path, "--leases", "1", "--timeout", "300ms", "--", "echo", "never"]);
    assert!(err.contains("no free lease (of 1) within 300ms; gave up"), "{err}");
    assert!(before.elapsed() >= Duration::from_millis(300));
    assert_eq!(leases(&zk, &path), [lease.node().rsplit('/').next().unwrap()]);
    assert!(children_of(&zk, &format!("{path}/locks")).is_empty());
    // another contender holds the internal lock: it gives up before creating a lease
    let lock = t!(Lock::new(&zk, &format!("{path}/locks"), Mode::Exclusive));
    let held = t!(lock.acquire(None, &never(), |_| {}));
    let err = conflict_fails(&["semaphore", &path, "-n", "5", "--timeout", "200ms", "--", "echo", "never"]);
    assert!(err.contains("gave up"), "{err}");
    assert_eq!(leases(&zk, &path).len(), 1);
    assert_eq!(children_of(&zk, &format!("{path}/locks")).len(), 1);
    drop(held);
    t!(lease.release());
    assert!(leases(&zk, &path).is_empty());
}

#[test]
fn exit_code_and_streams_pass_through() {
    let root = unique_root("sem-exit");
    let path = format!("{root}/s");
    let o = run(&["semaphore", &path, "-n", "3", "--", "sh", "-c", "echo out; echo err >&2; exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");
    let mut c = zkutil(&["semaphore", &path, "-n", "1", "--", "cat"]);
    c.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = t!(c.spawn());
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"through stdin\n").unwrap();
    let o = t!(child.wait_with_output());
    assert!(o.status.success());
    assert_eq!(stdout(&o), "through stdin\n");
    let o = run(&["semaphore", &path, "-n", "1", "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(o.status.code(), Some(128 + 15));
    let o = run(&["semaphore", &path, "-n", "1", "--", "/no/such/command"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("/no/such/command"), "{}", stderr(&o));
    assert!(leases(&connect(), &path).is_empty());
}

#[test]
fn bad_input() {
    let usage = |args: &[&str]| {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        stderr(&o)
    };
    let err = usage(&["semaphore", "/s", "--leases", "0", "--", "true"]);
    assert!(err.contains("0 is not in 1.."), "{err}");
    usage(&["semaphore", "/s", "--leases", "-1", "--", "true"]);
    usage(&["semaphore", "/s", "--leases", "2"]);
    usage(&["semaphore", "/s", "--", "true"]);
    usage(&["semaphore", "/s", "-n", "2", "--timeout", "5", "--", "true"]);
    let err = usage_fails(&["semaphore", "s/no-slash", "-n", "2", "--", "true"]);
    assert!(err.contains("s/no-slash"), "{err}");
    let err = usage_fails(&["semaphore", "/a//b", "-n", "2", "--", "true"]);
    assert!(err.contains("/a//b"), "{err}");
}

#[test]
fn a_killed_holder_frees_its_lease_when_its_session_expires() {
    let root = unique_root("sem-kill");
    let path = format!("{root}/s");
    let zk = connect();
    let mut a = Proc::start_piped(&["--session-timeout", "2s", "semaphore", &path, "-n", "1", "--", "cat"]);
    assert!(wait_until(Duration::from_secs(20), || leases(&zk, &path).len() == 1));
    let b = Proc::start(&["semaphore", &path, "-n", "1", "--", "echo", "b holds"]);
    assert!(wait_until(Duration::from_secs(20), || leases(&zk, &path).len() == 2), "b never queued");
    let killed = Instant::now();
    t!(a.child.kill()); // SIGKILL: no chance to clean up
    assert!(wait_until(Duration::from_secs(20), || b.has_line("b holds")), "b never got the lease");
    let took = killed.elapsed();
    assert!(took >= Duration::from_millis(1500), "b got the lease {took:?} after the kill");
    drop(a.child.stdin.take()); // lets the orphaned cat end
    let (code, _, err) = b.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(wait_until(Duration::from_secs(20), || leases(&zk, &path).is_empty()));
}

#[test]
fn interrupted_holder_and_waiter_clean_up_at_once() {
    let root = unique_root("sem-int");
    let path = format!("{root}/s");
    let zk = connect();
    let script = "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.05; done";
    let a = Proc::start(&["semaphore", &path, "-n", "1", "--", "sh", "-c", script]);
    assert!(wait_until(Duration::from_secs(20), || a.has_line("started")));
    let w = Proc::start(&["semaphore", &path, "-n", "1", "--", "echo", "never"]);
    assert!(wait_until(Duration::from_secs(20), || leases(&zk, &path).len() == 2), "w never queued");
    // the waiter holds the internal lock while it waits
    assert_eq!(children_of(&zk, &format!("{path}/locks")).len(), 1);
    t!(send_signal(w.child.id(), Signal::SIGINT));
    let (code, lines, err) = w.finish();
    assert_eq!(code, Some(130), "{lines:?} {err}");
    assert!(lines.is_empty());
    assert_eq!(leases(&zk, &path).len(), 1);
    assert!(children_of(&zk, &format!("{path}/locks")).is_empty());
    // SIGTERM to the holder: CMD ends first, then the lease goes
    t!(send_signal(a.child.id(), Signal::SIGTERM));
    let (code, lines, err) = a.finish();
    assert_eq!(code, Some(143), "{lines:?} {err}");
    assert_eq!(lines, ["started", "got-term"]);
    assert!(leases(&zk, &path).is_empty());
}

#[test]
fn a_holder_whose_session_expires_ends_its_command() {
    let root = unique_root("sem-expire");
    let path = format!("{root}/s");
    let zk = connect();
    let script = "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 0.05; done 2>/dev/null";
    let a = Proc::start(&["--session-timeout", "2s", "semaphore", &path, "-n", "1", "--", "sh", "-c", script]);
    assert!(wait_until(Duration::from_secs(20), || a.has_line("started")));
    let b = Proc::start(&["semaphore", &path, "-n", "1", "--", "echo", "b holds"]);
    assert!(wait_until(Duration::from_secs(20), || leases(&zk, &path).len() == 2), "b never queued");
    // SIGSTOP past the session timeout: the server expires a's session, b takes the lease;
    // resumed, a learns it and ends its CMD.
    t!(send_signal(a.child.id(), Signal::SIGSTOP));
    let got = wait_until(Duration::from_secs(30), || b.has_line("b holds"));
    t!(send_signal(a.child.id(), Signal::SIGCONT));
    assert!(got, "b never got the lease");
    let (code, lines, err) = a.finish();
    assert_eq!(code, Some(1), "{lines:?} {err}");
    assert!(lines.contains(&"got-term".to_string()), "{lines:?}");
    assert!(err.starts_with("zkutil: semaphore") && err.contains("lost our lease"), "{err}");
    assert_eq!(b.finish().0, Some(0));
}
