//! `zkutil election run` and `election leader [--watch]`: which candidate's CMD ran is read
//! from a log the CMDs append to (`start ID`, `term ID` when they get SIGTERM); hand-over on
//! SIGKILL (within the session timeout), SIGTERM and CMD's exit (at once), session expiry of
//! the leader, the leader printed and watched, bad input.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use zkutil::zk::ZooKeeper;

use crate::support::*;
use crate::t;

/// How long `finish_within` waits for a zkutil to exit.
const EXIT: Duration = Duration::from_secs(30);

/// CMD for candidate `id`: logs `start ID`, and `term ID` on SIGTERM (then exits 0); ends
/// by itself once its zkutil is gone (in case the kernel's death signal is unavailable).
fn script(log: &Path, id: &str) -> String {
    let log = log.display();
    format!(
        "echo start {id} >> {log}; trap 'echo term {id} >> {log}; exit 0' TERM; \
         while kill -0 $PPID; do sleep 0.05; done 2>/dev/null"
    )
}

fn candidate(path: &str, id: &str, session_timeout: &str, log: &Path) -> Proc {
    let s = script(log, id);
    Proc::start(&["--session-timeout", session_timeout, "election", "run", "--id", id, path, "--", "sh", "-c", &s])
}

fn read_log(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).map(|s| s.lines().map(str::to_string).collect()).unwrap_or_default()
}

#[track_caller]
fn wait_log(log: &Path, line: &str, timeout: Duration) {
    let found = wait_until(timeout, || read_log(log).iter().any(|l| l == line));
    assert!(found, "no `{line}` in {:?} within {timeout:?}", read_log(log));
}

fn n_candidates(zk: &ZooKeeper, path: &str) -> usize {
    zk.children(path).map(|c| c.len()).unwrap_or(0)
}

#[track_caller]
fn wait_candidates(zk: &ZooKeeper, path: &str, n: usize) {
    assert!(wait_until(Duration::from_secs(20), || n_candidates(zk, path) == n), "never {n} candidates under {path}");
}

fn leader_of(path: &str) -> String {
    ok(&["election", "leader", path]).trim_end().to_string()
}

fn setup(test: &str) -> (String, tempfile::TempDir, PathBuf) {
    let path = format!("{}/election", unique_root(test));
    let dir = t!(tempfile::tempdir());
    let log = dir.path().join("log");
    (path, dir, log)
}

#[test]
fn one_leader_runs_cmd_and_a_killed_leader_is_replaced_within_the_session_timeout() {
    let (path, _dir, log) = setup("elect-kill");
    let zk = connect();
    let a = candidate(&path, "A", "2s", &log);
    wait_log(&log, "start A", Duration::from_secs(20));
    let b = candidate(&path, "B", "2s", &log);
    wait_candidates(&zk, &path, 2);
    let mut c = candidate(&path, "C", "2s", &log);
    wait_candidates(&zk, &path, 3);
    assert_eq!(read_log(&log), ["start A"], "only the leader runs CMD");
    assert_eq!(leader_of(&path), "A");

    // SIGKILL: nobody deletes A's node; its session expires after 2 s and B (next in line)
    // leads. A's CMD gets SIGTERM from the kernel at once (setpriv --pdeathsig), long before.
    let killed = Instant::now();
    a.kill();
    wait_log(&log, "start B", Duration::from_secs(20));
    let took = killed.elapsed();
    assert!(took < Duration::from_secs(2 + 8), "took {took:?}");
    assert_eq!(read_log(&log), ["start A", "term A", "start B"], "the killed leader's CMD stopped first");
    assert_eq!(leader_of(&path), "B");

    // SIGTERM: B's CMD is stopped first, then B resigns and C leads at once.
    b.signal(Signal::SIGTERM);
    wait_log(&log, "start C", Duration::from_secs(20));
    assert_eq!(read_log(&log), ["start A", "term A", "start B", "term B", "start C"]);
    let (code, out, err) = b.finish_within(EXIT);
    assert_eq!(code, Some(143), "{out:?} {err}");
    assert!(err.is_empty(), "{err}");
    assert!(c.running());
    c.signal(Signal::SIGINT);
    assert_eq!(c.finish_within(EXIT).0, Some(130));
    assert_eq!(read_log(&log).last().map(String::as_str), Some("term C"));
    assert_eq!(n_candidates(&zk, &path), 0, "Ctrl-C withdraws");
}

#[test]
fn cmd_exit_hands_over_at_once_and_its_code_passes_through() {
    let (path, dir, log) = setup("elect-exit");
    let zk = connect();
    // A long session timeout: a hand-over well within it comes from resigning, not expiry.
    let stop_a = dir.path().join("stop-A");
    let s = format!(
        "echo start A >> {log}; while [ ! -e {stop} ]; do sleep 0.05; done; exit 7",
        log = log.display(),
        stop = stop_a.display()
    );
    let a = Proc::start(&["--session-timeout", "30s", "election", "run", "--id", "A", &path, "--", "sh", "-c", &s]);
    wait_log(&log, "start A", Duration::from_secs(20));
    let b = candidate(&path, "B", "30s", &log);
    wait_candidates(&zk, &path, 2);
    let c = candidate(&path, "C", "30s", &log);
    wait_candidates(&zk, &path, 3);
    t!(std::fs::write(&stop_a, ""));
    let (code, out, err) = a.finish_within(EXIT);
    assert_eq!(code, Some(7), "{out:?} {err}");
    wait_log(&log, "start B", Duration::from_secs(10));
    assert_eq!(read_log(&log), ["start A", "start B"]);

    // a follower's SIGTERM withdraws without running anything; the leader goes on
    c.signal(Signal::SIGTERM);
    assert_eq!(c.finish_within(EXIT).0, Some(143));
    wait_candidates(&zk, &path, 1);
    assert_eq!(leader_of(&path), "B");
    b.signal(Signal::SIGTERM);
    assert_eq!(b.finish_within(EXIT).0, Some(143));
    assert_eq!(read_log(&log), ["start A", "start B", "term B"]);

    // stdout is CMD's, untouched; a signal's death is 128 + N
    let out = ok(&["election", "run", &path, "--", "echo", "hello from the leader"]);
    assert_eq!(out, "hello from the leader\n");
    let o = run(&["election", "run", &path, "--", "sh", "-c", "kill -KILL $$"]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
}

#[test]
fn leader_prints_the_id_and_watch_prints_every_change() {
    let (path, _dir, log) = setup("elect-watch");
    let zk = connect();
    // the watch starts before the election exists
    let w = Proc::start(&["election", "leader", "--watch", &path]);
    assert!(wait_until(Duration::from_secs(20), || w.lines() == ["(none)"]), "{:?}", w.lines());
    let a = candidate(&path, "A", "10s", &log);
    assert!(wait_until(Duration::from_secs(20), || w.lines() == ["(none)", "A"]), "{:?}", w.lines());
    // default id: HOSTNAME-PID
    let s = script(&log, "B");
    let b = Proc::start(&["election", "run", &path, "--", "sh", "-c", &s]);
    wait_candidates(&zk, &path, 2);
    let b_id = format!("-{}", b.child.id());
    a.signal(Signal::SIGTERM);
    wait_log(&log, "start B", Duration::from_secs(20));
    assert_eq!(a.finish_within(EXIT).0, Some(143));
    assert!(wait_until(Duration::from_secs(20), || w.lines().len() == 3), "{:?}", w.lines());
    assert!(w.lines()[2].ends_with(&b_id), "{:?} {b_id}", w.lines());
    assert_eq!(leader_of(&path), w.lines()[2]);
    b.signal(Signal::SIGTERM);
    assert_eq!(b.finish_within(EXIT).0, Some(143));
    assert!(wait_until(Duration::from_secs(20), || w.lines().len() == 4), "{:?}", w.lines());
    assert_eq!(w.lines()[3], "(none)");
    w.signal(Signal::SIGTERM);
    let (code, lines, err) = w.finish_within(EXIT);
    assert_eq!(code, Some(143), "{err}");
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(err.is_empty(), "{err}");

    let e = fails(&["election", "leader", &path]);
    assert!(e.contains("no leader"), "{e}");
}

#[test]
fn a_leader_whose_session_expires_stops_its_cmd_and_campaigns_again() {
    let (path, _dir, log) = setup("elect-expire");
    let zk = connect();
    let a = candidate(&path, "A", "2s", &log);
    wait_log(&log, "start A", Duration::from_secs(20));
    let b = candidate(&path, "B", "2s", &log);
    wait_candidates(&zk, &path, 2);
    // Frozen past its session timeout: ZooKeeper expires A's session and B leads.
    a.signal(Signal::SIGSTOP);
    let b_leads = wait_until(Duration::from_secs(30), || read_log(&log).iter().any(|l| l == "start B"));
    a.signal(Signal::SIGCONT);
    assert!(b_leads, "B never led: {:?}", read_log(&log));
    // Resumed, A learns it lost: its CMD gets SIGTERM, and it campaigns again behind B.
    wait_log(&log, "term A", Duration::from_secs(20));
    wait_candidates(&zk, &path, 2);
    assert_eq!(leader_of(&path), "B");
    let starts: Vec<String> = read_log(&log).into_iter().filter(|l| l.starts_with("start")).collect();
    assert_eq!(starts, ["start A", "start B"]);

    // B goes: A leads again, with its new session
    b.signal(Signal::SIGTERM);
    assert_eq!(b.finish_within(EXIT).0, Some(143));
    assert!(wait_until(Duration::from_secs(20), || read_log(&log).iter().filter(|l| *l == "start A").count() == 2));
    a.signal(Signal::SIGTERM);
    let (code, _, err) = a.finish_within(EXIT);
    assert_eq!(code, Some(143));
    assert!(err.contains("sent sh SIGTERM"), "{err}");
    assert!(err.contains("campaigning again with a new session"), "{err}");
}

/// ZooKeeper itself goes away: the leader cannot tell whether another candidate leads, so
/// its CMD gets SIGTERM a third of the session timeout after the connection dropped; zkutil
/// keeps trying, and leads again once ZooKeeper is back.
#[test]
fn a_leader_cut_off_from_zookeeper_stops_its_cmd_and_leads_again_later() {
    let mut server = t!(zkutil::server::Ensemble::standalone());
    let hosts = server.connect_string();
    let dir = t!(tempfile::tempdir());
    let log = dir.path().join("log");
    let s = script(&log, "A");
    let a = Proc::start_on(
        &hosts,
        &[
            "--session-timeout",
            "2s",
            "--connect-timeout",
            "1s",
            "election",
            "run",
            "--id",
            "A",
            "/e",
            "--",
            "sh",
            "-c",
            &s,
        ],
    );
    wait_log(&log, "start A", Duration::from_secs(20));
    let w = Proc::start_on(&hosts, &["--session-timeout", "2s", "election", "leader", "--watch", "/e"]);
    assert!(wait_until(Duration::from_secs(20), || w.lines() == ["A"]), "{:?}", w.lines());
    t!(server.stop(0));
    wait_log(&log, "term A", Duration::from_secs(20));
    t!(server.restart(0));
    let again = || read_log(&log).iter().filter(|l| *l == "start A").count() == 2;
    assert!(wait_until(Duration::from_secs(30), again), "{:?}", read_log(&log));
    a.signal(Signal::SIGTERM);
    let (code, _, err) = a.finish_within(EXIT);
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("lost leadership: no connection to ZooKeeper for"), "{err}");
    // the watch went on through the outage (with a new session if it had to)
    let none = || w.lines().last().map(String::as_str) == Some("(none)");
    assert!(wait_until(Duration::from_secs(30), none), "{:?}", w.lines());
    w.signal(Signal::SIGTERM);
    let (code, lines, err) = w.finish_within(EXIT);
    assert_eq!(code, Some(143), "{lines:?} {err}");
}

#[test]
fn bad_input() {
    let root = unique_root("elect-bad");
    let path = format!("{root}/e");
    // no CMD, no PATH: usage errors
    assert_eq!(run(&["election", "run", &path]).status.code(), Some(2));
    assert_eq!(run(&["election", "leader"]).status.code(), Some(2));
    let e = usage_fails(&["election", "run", "no-slash", "--", "true"]);
    assert!(e.contains("\"no-slash\""), "{e}");
    let e = usage_fails(&["election", "run", "--id", "", &path, "--", "true"]);
    assert!(e.contains("--id"), "{e}");
    let e = fails(&["election", "leader", &format!("{root}/missing")]);
    assert!(e.contains("no such election"), "{e}");
    let e = usage_fails(&["election", "leader", "bad//path"]);
    assert!(e.contains("\"bad//path\""), "{e}");
    // a CMD that cannot start: exit 127 before campaigning
    let o = run(&["election", "run", &path, "--", "/nonexistent/cmd"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    assert!(stderr(&o).contains("/nonexistent/cmd"), "{}", stderr(&o));
    assert_eq!(n_candidates(&connect(), &path), 0);
    // a dead ZooKeeper: a clear error within the connect timeout, no hang
    let o = zkutil(&["--connect-timeout", "1s", "election", "run", &path, "--", "true"])
        .env("ZK_HOSTS", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}
