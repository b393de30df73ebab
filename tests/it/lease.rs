//! `zkutil lease`: kazoo's NonBlockingLease layout, renewal, conflict code, expiry, the
//! holder killed, a contender that died holding the lease's lock, and kazoo itself (when
//! it is importable).

use std::process::Command;
use std::time::Duration;

use zkutil::recipes::lease::Record;
use zkutil::zk::CreateMode;

use crate::support::{self, Proc, connect, expire_session, hosts, run, stderr, unique_root, wait_until};

fn record(path: &str) -> Record {
    let (raw, _) = crate::t!(connect().get(&format!("{path}/lease_holder")));
    crate::t!(Record::decode(&raw))
}

#[test]
fn one_holder_renews_others_get_the_conflict_code_until_the_end() {
    let root = unique_root("lease-basic");
    let path = format!("{root}/job");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let cmd = format!("echo ran >> {}", marker.display());
    let out = support::ok(&["lease", &path, "--duration", "3s", "--id", "a", "--", "sh", "-c", &cmd]);
    assert_eq!(out, "");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
    // kazoo's record, byte for byte
    let (raw, _) = crate::t!(connect().get(&format!("{path}/lease_holder")));
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with(r#"{"version": 1, "holder": "a", "end": ""#), "{text}");
    let first_end = record(&path).end;

    // another id: conflict code, CMD not run, the holder named
    let o = run(&["lease", &path, "--duration", "3s", "--id", "b", "--", "sh", "-c", &cmd]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(stderr(&o).starts_with(&format!("zkutil: lease {path}: held by a until ")), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
    let o = run(&["lease", &path, "--duration", "3s", "--id", "b", "--conflict-exit-code", "9"]);
    assert_eq!(o.status.code(), Some(9));

    // the same id renews
    support::ok(&["lease", &path, "--duration", "1h", "--id", "a"]);
    let renewed = record(&path);
    assert_eq!(renewed.holder, "a");
    assert!(renewed.end > first_end, "{renewed:?} vs {first_end}");

    let status = support::ok(&["lease", &path, "--status"]);
    let fields: Vec<&str> = status.trim_end().split('\t').collect();
    assert_eq!(fields[..2], [path.as_str(), "a"], "{status}");
    assert!(fields[3].starts_with("held (59m"), "{status}");

    // a short lease: b gets it once it ended (by b's clock)
    support::ok(&["lease", &path, "--duration", "1s", "--id", "a"]);
    assert!(
        wait_until(Duration::from_secs(20), || run(&["lease", &path, "--duration", "1h", "--id", "b"])
            .status
            .success()),
        "b never obtained the ended lease"
    );
    assert_eq!(record(&path).holder, "b");
    // only the record and no lock node is left behind
    assert_eq!(crate::t!(connect().children(&path)), ["lease_holder"]);
}

#[test]
fn limit_gives_n_holders_and_status_shows_each() {
    let root = unique_root("lease-limit");
    let path = format!("{root}/pool");
    for id in ["a", "b"] {
        support::ok(&["lease", &path, "--duration", "1h", "--limit", "2", "--id", id]);
    }
    let o = run(&["lease", &path, "--duration", "1h", "--limit", "2", "--id", "c"]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert_eq!(record(&format!("{path}/0")).holder, "a");
    assert_eq!(record(&format!("{path}/1")).holder, "b");
    // a renews its own slot (0), not a second one
    support::ok(&["lease", &path, "--duration", "1h", "--limit", "2", "--id", "a"]);
    let status = support::ok(&["lease", &path, "--limit", "3", "--status"]);
    let holders: Vec<&str> = status.lines().map(|l| l.split('\t').nth(1).unwrap()).collect();
    assert_eq!(holders, ["a", "b", "-"], "{status}");
    let v: serde_json::Value =
        crate::t!(serde_json::from_str(&support::ok(&["-o", "json", "lease", &path, "--limit", "3", "--status"])));
    let leases = v["leases"].as_array().unwrap();
    assert_eq!(
        leases.iter().map(|l| l["holder"].clone()).collect::<Vec<_>>(),
        [serde_json::json!("a"), serde_json::json!("b"), serde_json::Value::Null]
    );
    assert_eq!(leases[0]["held"], true);
    assert_eq!(leases[2]["held"], false);
}

#[test]
fn a_killed_holder_keeps_the_lease_until_its_end() {
    let root = unique_root("lease-killed");
    let path = format!("{root}/job");
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let cmd = format!("touch {}; exec sleep 60", started.display());
    let p = Proc::start(&["lease", &path, "--duration", "4s", "--id", "a", "--", "sh", "-c", &cmd]);
    assert!(wait_until(Duration::from_secs(20), || started.exists()), "CMD never started");
    p.kill(); // SIGKILL: no clean-up at all
    let o = run(&["lease", &path, "--duration", "1h", "--id", "b"]);
    assert_eq!(o.status.code(), Some(75), "the lease must outlive its killed holder: {}", stderr(&o));
    assert!(
        wait_until(Duration::from_secs(30), || run(&["lease", &path, "--duration", "1h", "--id", "b"])
            .status
            .success()),
        "b never obtained the lease after its end"
    );
    assert_eq!(record(&path).holder, "b");
}

#[test]
fn a_contender_that_died_holding_the_lock_delays_others_only_until_its_session_ends() {
    let root = unique_root("lease-lockdead");
    let path = format!("{root}/job");
    // a kazoo contender's lock node, its owner cut off (session alive at the server)
    let dead = support::connect_to(&hosts());
    crate::t!(dead.create(&path, b"", CreateMode::Persistent));
    crate::t!(dead.create(
        &format!("{path}/0123456789abcdef0123456789abcdef__lock__"),
        b"dead",
        CreateMode::EphemeralSequential
    ));
    let mut p = Proc::start(&["lease", &path, "--duration", "1h", "--id", "b", "--", "echo", "obtained"]);
    // it queues behind the dead contender's node ...
    let zk = connect();
    assert!(wait_until(Duration::from_secs(20), || zk.children(&path).map(|k| k.len()).unwrap_or(0) == 2));
    assert!(p.running());
    assert!(zk.exists(&format!("{path}/lease_holder")).unwrap().is_none());
    // ... until that session is gone
    expire_session(&dead, &hosts());
    let (code, lines, err) = p.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines, ["obtained"]);
    assert_eq!(record(&path).holder, "b");
}

#[test]
fn a_cmd_that_outlives_the_lease_is_reported() {
    let root = unique_root("lease-outlive");
    let path = format!("{root}/job");
    // the lease ends within 1s (whole seconds); CMD runs 3s
    let o = run(&["lease", &path, "--duration", "1s", "--id", "a", "--", "sleep", "3"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("zkutil: lease {path} ended at ")) && err.contains("while sleep still runs"),
        "{err}"
    );
}

/// Python with kazoo, or None (the interop tests then say why they did nothing).
fn kazoo_python() -> Option<&'static str> {
    let ok = Command::new("python3").args(["-c", "import kazoo"]).output().is_ok_and(|o| o.status.success());
    if ok {
        Some("python3")
    } else {
        eprintln!("SKIPPED: kazoo is not importable by python3 (pip install kazoo): interop not tested");
        None
    }
}

/// Runs a kazoo lease attempt; returns what it printed (True/False).
fn kazoo_lease(py: &str, path: &str, id: &str, secs: u64, count: Option<u32>) -> String {
    let script = r#"
import sys, datetime, logging
from kazoo.client import KazooClient
hosts, path, ident, secs, count = sys.argv[1:6]
zk = KazooClient(hosts=hosts); zk.start(timeout=20)
d = datetime.timedelta(seconds=int(secs))
if count == "-":
    lease = zk.NonBlockingLease(path, d, identifier=ident)
else:
    lease = zk.MultiNonBlockingLease(int(count), path, d, identifier=ident)
print(bool(lease)); zk.stop(); zk.close()
"#;
    let count = count.map_or("-".to_string(), |c| c.to_string());
    let o = Command::new(py)
        .args(["-c", script, &hosts(), path, id, &secs.to_string(), &count])
        .output()
        .expect("run python3");
    assert!(o.status.success(), "kazoo failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn kazoo_and_zkutil_share_one_lease() {
    let Some(py) = kazoo_python() else { return };
    let root = unique_root("lease-kazoo");
    let path = format!("{root}/job");
    // kazoo holds it: zkutil conflicts, and reads kazoo's record
    assert_eq!(kazoo_lease(py, &path, "py-host", 3600, None), "True");
    let o = run(&["lease", &path, "--duration", "1h", "--id", "rs-host"]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(stderr(&o).contains("held by py-host until"), "{}", stderr(&o));
    // zkutil renews as the same identity; kazoo with another one does not get it
    support::ok(&["lease", &path, "--duration", "1h", "--id", "py-host"]);
    assert_eq!(kazoo_lease(py, &path, "other", 3600, None), "False");

    // zkutil holds a fresh lease: kazoo reads zkutil's record, renews only as the holder
    let path2 = format!("{root}/job2");
    support::ok(&["lease", &path2, "--duration", "1h", "--id", "rs-h\u{e9}st"]);
    assert_eq!(kazoo_lease(py, &path2, "py-host", 3600, None), "False");
    assert_eq!(kazoo_lease(py, &path2, "rs-h\u{e9}st", 3600, None), "True");
    assert_eq!(record(&path2).holder, "rs-h\u{e9}st");

    // MultiNonBlockingLease: the same slots
    let pool = format!("{root}/pool");
    assert_eq!(kazoo_lease(py, &pool, "k1", 3600, Some(2)), "True");
    support::ok(&["lease", &pool, "--duration", "1h", "--limit", "2", "--id", "z1"]);
    assert_eq!(kazoo_lease(py, &pool, "k2", 3600, Some(2)), "False");
    let o = run(&["lease", &pool, "--duration", "1h", "--limit", "2", "--id", "z2"]);
    assert_eq!(o.status.code(), Some(75));
    assert_eq!(record(&format!("{pool}/0")).holder, "k1");
    assert_eq!(record(&format!("{pool}/1")).holder, "z1");
}
