//! `zkutil commit`: three participants commit; one votes no and all abort; one is killed
//! before voting and all abort after the timeout; one is killed after the decision and the
//! decision stands (its restart runs the decided step); a newcomer after the decision is
//! refused.

use std::path::Path;
use std::time::Duration;

use zkutil::zk::ZooKeeper;

use crate::support::*;
use crate::t;

/// CMD: logs `PHASE ID`, then does what `cases` (shell `case` arms on "PHASE ID") say;
/// anything else exits 0.
fn script(log: &Path, cases: &str) -> String {
    format!(
        "echo \"$ZKUTIL_PHASE $ZKUTIL_ID\" >> {}; case \"$ZKUTIL_PHASE $ZKUTIL_ID\" in {cases} *) exit 0;; esac",
        log.display()
    )
}

fn participant(path: &str, id: &str, timeout: &str, script: &str) -> Proc {
    Proc::start(&["commit", path, "-n", "3", "--id", id, "--timeout", timeout, "--", "sh", "-c", script])
}

fn log_lines(log: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_string).collect();
    v.sort();
    v
}

fn decision(zk: &ZooKeeper, path: &str) -> String {
    let (d, _) = t!(zk.get(&format!("{path}/__decision__")));
    String::from_utf8(d).unwrap()
}

fn setup(test: &str) -> (String, tempfile::TempDir, std::path::PathBuf) {
    let path = format!("{}/tx", unique_root(test));
    let dir = t!(tempfile::tempdir());
    let log = dir.path().join("log");
    (path, dir, log)
}

#[test]
fn three_participants_commit() {
    let (path, _dir, log) = setup("commit-all");
    let s = script(&log, "");
    let ps: Vec<Proc> = ["a", "b", "c"].iter().map(|id| participant(&path, id, "60s", &s)).collect();
    for p in ps {
        let (code, _, err) = p.finish();
        assert_eq!(code, Some(0), "{err}");
        assert_eq!(err, "");
    }
    let want = ["commit a", "commit b", "commit c", "prepare a", "prepare b", "prepare c"];
    assert_eq!(log_lines(&log), want);
    let zk = connect();
    assert_eq!(decision(&zk, &path), "commit\nall 3 voted commit");
    for id in ["a", "b", "c"] {
        assert_eq!(t!(zk.get(&format!("{path}/{id}"))).0, b"commit");
    }
}

#[test]
fn one_no_vote_aborts_everyone() {
    let (path, _dir, log) = setup("commit-no");
    let s = script(&log, "'prepare b') exit 3;;");
    let ps: Vec<Proc> = ["a", "b", "c"].iter().map(|id| participant(&path, id, "60s", &s)).collect();
    for p in ps {
        let (code, _, err) = p.finish();
        assert_eq!(code, Some(1));
        // a participant that joined after b's no vote took no part (and has nothing to undo)
        let late = format!("zkutil: commit {path}: already decided (abort) before this participant joined\n");
        assert!(err == format!("zkutil: commit {path}: aborted: b voted abort\n") || err == late, "{err}");
    }
    let lines = log_lines(&log);
    let prepared = lines.iter().filter(|l| l.starts_with("prepare ")).count();
    assert_eq!(lines.iter().filter(|l| l.starts_with("abort ")).count(), prepared, "{lines:?}");
    assert!(lines.contains(&"abort b".to_string()), "{lines:?}");
    assert!(!lines.iter().any(|l| l.starts_with("commit ")), "{lines:?}");
    assert_eq!(decision(&connect(), &path), "abort\nb voted abort");
}

#[test]
fn a_participant_killed_before_voting_aborts_all_after_the_timeout() {
    let (path, dir, log) = setup("commit-killed");
    let preparing = dir.path().join("preparing");
    let s = script(&log, &format!("'prepare c') touch {}; exec sleep 60;;", preparing.display()));
    let a = participant(&path, "a", "4s", &s);
    let b = participant(&path, "b", "4s", &s);
    let c = participant(&path, "c", "60s", &s);
    assert!(wait_until(Duration::from_secs(20), || preparing.exists()), "c never prepared");
    c.kill();
    for p in [a, b] {
        let (code, _, err) = p.finish();
        assert_eq!(code, Some(1));
        assert!(err.starts_with(&format!("zkutil: commit {path}: aborted: timed out; no vote from c")), "{err}");
    }
    let zk = connect();
    assert!(decision(&zk, &path).starts_with("abort\ntimed out; no vote from c"), "{}", decision(&zk, &path));
    assert_eq!(t!(zk.get(&format!("{path}/c"))).0, b"", "c never voted");
    // c restarted: the decision stands, c runs its abort step without preparing again
    let (code, _, err) = participant(&path, "c", "60s", &s).finish();
    assert_eq!(code, Some(1), "{err}");
    let lines = log_lines(&log);
    assert_eq!(lines.iter().filter(|l| *l == "prepare c").count(), 1, "{lines:?}");
    assert!(lines.contains(&"abort c".to_string()), "{lines:?}");
}

#[test]
fn a_participant_killed_after_the_decision_cannot_change_it() {
    let (path, dir, log) = setup("commit-after");
    let committing = dir.path().join("committing");
    let s = script(&log, &format!("'commit c') touch {}; exec sleep 60;;", committing.display()));
    let ps: Vec<Proc> = ["a", "b"].iter().map(|id| participant(&path, id, "60s", &s)).collect();
    let c = participant(&path, "c", "60s", &s);
    assert!(wait_until(Duration::from_secs(30), || committing.exists()), "c never reached its commit step");
    c.kill();
    for p in ps {
        let (code, _, err) = p.finish();
        assert_eq!(code, Some(0), "{err}");
    }
    let zk = connect();
    assert_eq!(decision(&zk, &path), "commit\nall 3 voted commit");
    // c's restart replays the commit step (its vote is not asked again) and succeeds
    std::fs::remove_file(&committing).unwrap();
    let s2 = script(&log, "");
    let (code, _, err) = participant(&path, "c", "60s", &s2).finish();
    assert_eq!(code, Some(0), "{err}");
    let lines = log_lines(&log);
    assert_eq!(lines.iter().filter(|l| *l == "commit c").count(), 2, "{lines:?}");
    assert_eq!(lines.iter().filter(|l| *l == "prepare c").count(), 1, "{lines:?}");
    // a latecomer cannot join a decided transaction
    let o = run(&["commit", &path, "-n", "3", "--id", "d", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already decided (commit) before this participant joined"), "{}", stderr(&o));
    assert!(zk.exists(&format!("{path}/d")).unwrap().is_none());
}

#[test]
fn participants_cut_off_from_zookeeper_resume_without_preparing_again() {
    use zkutil::server::{Ensemble, Options};
    let mut server = t!(Ensemble::start(Options::for_tests(1)));
    let hosts = server.connect_string();
    let dir = t!(tempfile::tempdir());
    let log = dir.path().join("log");
    let s = script(&log, "");
    let start = |id: &str| {
        Proc::start_on(
            &hosts,
            &[
                "--session-timeout",
                "2s",
                "--connect-timeout",
                "2s",
                "commit",
                "/tx",
                "-n",
                "3",
                "--id",
                id,
                "--timeout",
                "120s",
                "--",
                "sh",
                "-c",
                &s,
            ],
        )
    };
    let (a, b) = (start("a"), start("b"));
    let zk = connect_to(&hosts);
    let voted = |id: &str| zk.get(&format!("/tx/{id}")).is_ok_and(|(d, _)| d == b"commit");
    assert!(wait_until(Duration::from_secs(20), || voted("a") && voted("b")), "a and b never voted");
    drop(zk);
    // ZooKeeper away for longer than the session timeout: both lose their sessions
    t!(server.stop(0));
    std::thread::sleep(Duration::from_secs(5)); // the outage itself (not a synchronisation)
    t!(server.restart(0));
    let c = start("c");
    for p in [a, b, c] {
        let (code, _, err) = p.finish();
        assert_eq!(code, Some(0), "{err}");
    }
    let lines = log_lines(&log);
    assert_eq!(
        lines,
        ["commit a", "commit b", "commit c", "prepare a", "prepare b", "prepare c"],
        "prepared once each"
    );
    assert_eq!(decision(&connect_to(&hosts), "/tx"), "commit\nall 3 voted commit");
}
