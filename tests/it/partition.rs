//! `zkutil partition`: 3 members divide 12 items; one is SIGKILLed and one added. Each CMD
//! claims its items with exclusive creates of marker files (a second claim of a held item is
//! recorded as a violation) and removes them on SIGTERM; at each settled point the markers
//! cover the set and every member's last share has the expected size. Also `--print`, and a
//! kazoo SetPartitioner sharing the partition (when kazoo is importable).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::*;
use crate::t;

fn items(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("i{i:02}")).collect()
}

/// CMD: claims each item of its share (`held-ITEM`, exclusive), logs `MEMBER:ITEMS`,
/// releases the claims on SIGTERM.
fn script(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "set -C; for i in $ZKUTIL_PARTITION; do (: > {d}/held-$i) 2>/dev/null || echo \"$i $ZKUTIL_MEMBER\" >> {d}/VIOLATION; done; \
         echo \"$ZKUTIL_MEMBER:$ZKUTIL_PARTITION\" >> {d}/log; \
         trap 'for i in $ZKUTIL_PARTITION; do rm -f {d}/held-$i; done; exit 0' TERM; \
         while :; do sleep 0.1; done"
    )
}

fn member(path: &str, id: &str, set: &[String], dir: &Path) -> Proc {
    let mut args = vec!["--session-timeout", "2s", "partition", path, "--id", id, "--time-boundary", "500ms", "--set"];
    args.extend(set.iter().map(String::as_str));
    let s = script(dir);
    args.extend(["--", "sh", "-c", &s]);
    Proc::start(&args)
}

fn held(dir: &Path) -> BTreeSet<String> {
    t!(std::fs::read_dir(dir))
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_prefix("held-").map(str::to_string))
        .collect()
}

/// Each member's last share, from the log.
fn last_shares(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    log.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, items)| (m.to_string(), items.split_whitespace().map(str::to_string).collect()))
        .collect()
}

/// The set is covered by the markers, and the live members' last shares divide it evenly.
fn settled(dir: &Path, set: &[String], live: &[&str]) -> bool {
    let shares = last_shares(dir);
    let mut union = Vec::new();
    for m in live {
        match shares.get(*m) {
            Some(s) if s.len() == set.len() / live.len() => union.extend(s.iter().cloned()),
            _ => return false,
        }
    }
    union.sort();
    union == set && held(dir).into_iter().collect::<Vec<_>>() == set
}

#[track_caller]
fn no_violation(dir: &Path) {
    let v = std::fs::read_to_string(dir.join("VIOLATION")).unwrap_or_default();
    assert!(v.is_empty(), "items held by two members at once: {v}");
}

#[test]
fn three_members_twelve_items_one_killed_one_added() {
    let path = format!("{}/part", unique_root("partition"));
    let dir = t!(tempfile::tempdir());
    let d = dir.path();
    let set = items(12);
    let m1 = member(&path, "m1", &set, d);
    let m2 = member(&path, "m2", &set, d);
    let m3 = member(&path, "m3", &set, d);
    assert!(wait_until(Duration::from_secs(40), || settled(d, &set, &["m1", "m2", "m3"])), "{:?}", last_shares(d));
    no_violation(d);
    // kazoo's division: sorted members, sorted items, every third from the member's index
    assert_eq!(last_shares(d)["m2"], ["i02", "i05", "i08", "i11"]);

    // SIGKILL: its session lingers for 2s, its CMD gets SIGTERM from its guard at once.
    // (`finish` keeps reading its stderr until CMD is gone too: a closed stderr would kill
    // the CMD's shell with SIGPIPE when it reports its killed `sleep`, before its trap.)
    m2.signal(Signal::SIGKILL);
    let (code, _, _) = m2.finish();
    assert_eq!(code, None, "killed by a signal");
    assert!(wait_until(Duration::from_secs(40), || settled(d, &set, &["m1", "m3"])), "{:?}", last_shares(d));
    no_violation(d);

    let m4 = member(&path, "m4", &set, d);
    assert!(wait_until(Duration::from_secs(40), || settled(d, &set, &["m1", "m3", "m4"])), "{:?}", last_shares(d));
    no_violation(d);
    let zk = connect();
    assert_eq!(t!(zk.children(&format!("{path}/party"))).len(), 3);

    for m in [m1, m3, m4] {
        m.signal(Signal::SIGTERM);
        let (code, _, err) = m.finish();
        assert_eq!(code, Some(143), "{err}");
    }
    assert!(held(d).is_empty(), "CMDs left claims: {:?}", held(d));
    assert!(t!(zk.children(&format!("{path}/party"))).is_empty());
    no_violation(d);
}

#[test]
fn print_mode_prints_each_share_and_a_cmd_exit_ends_the_membership() {
    let path = format!("{}/part", unique_root("partition-print"));
    let set = ["a", "b", "c", "d"];
    let mut args = vec!["partition", &path, "--id", "p1", "--time-boundary", "300ms", "--print", "--set"];
    args.extend(set);
    let p1 = Proc::start(&args);
    assert!(p1.wait_line("a b c d", Duration::from_secs(20)).is_some(), "{:?}", p1.lines());
    // a second member whose CMD gets its share on stdin, and stays until stopped
    let dir = t!(tempfile::tempdir());
    let got = dir.path().join("got");
    let cmd = format!("cat > {}; exec sleep 60", got.display());
    let p2 = Proc::start(&[
        "partition",
        &path,
        "--id",
        "p2",
        "--time-boundary",
        "300ms",
        "--set",
        "a",
        "b",
        "c",
        "d",
        "--",
        "sh",
        "-c",
        &cmd,
    ]);
    assert!(p1.wait_line("a c", Duration::from_secs(20)).is_some(), "{:?}", p1.lines());
    assert!(wait_until(Duration::from_secs(20), || std::fs::read_to_string(&got).is_ok_and(|s| s == "b\nd\n")));
    p2.signal(Signal::SIGTERM);
    let (code, _, err) = p2.finish();
    assert_eq!(code, Some(143), "{err}");
    assert!(
        wait_until(Duration::from_secs(20), || p1.lines().iter().filter(|l| *l == "a b c d").count() == 2),
        "{:?}",
        p1.lines()
    );
    // a member whose CMD exits by itself ends its membership with CMD's code
    let o = run(&[
        "partition",
        &path,
        "--id",
        "p3",
        "--time-boundary",
        "300ms",
        "--set",
        "a",
        "b",
        "c",
        "d",
        "--",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(o.status.code(), Some(7), "{}", stderr(&o));
    let zk = connect();
    assert!(wait_until(Duration::from_secs(20), || zk.children(&format!("{path}/party")).is_ok_and(|k| k.len() == 1)));
    let (code, _, err) = {
        p1.signal(Signal::SIGINT);
        p1.finish()
    };
    assert_eq!(code, Some(130), "{err}");
}

#[test]
fn bad_input_is_one_error_line() {
    let root = unique_root("partition-bad");
    let err = fails(&["partition", &format!("{root}/p"), "--set", "a/b", "--print"]);
    assert!(err.contains("\"a/b\" cannot be an item"), "{err}");
    let o = run(&["partition", &format!("{root}/p"), "--set", "a"]);
    assert_eq!(o.status.code(), Some(2), "no CMD and no --print is a usage error");
}

#[test]
fn a_kazoo_set_partitioner_shares_the_partition() {
    let ok = Command::new("python3").args(["-c", "import kazoo"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: kazoo is not importable by python3 (pip install kazoo): interop not tested");
        return;
    }
    let path = format!("{}/part", unique_root("partition-kazoo"));
    let set = items(6);
    // kazoo member "k": prints each share it acquires, leaves when stdin closes
    let script = r#"
import sys, threading
from kazoo.client import KazooClient
hosts, path = sys.argv[1:3]
zk = KazooClient(hosts=hosts); zk.start(timeout=20)
p = zk.SetPartitioner(path, set=sys.argv[3:], identifier="k", time_boundary=0.5)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
last = None
while not done.is_set():
    if p.failed: sys.exit("failed")
    elif p.release: p.release_set()
    elif p.acquired:
        share = " ".join(p)
        if share != last: print(share, flush=True); last = share
        done.wait(0.1)
    else: p.wait_for_acquire(0.5)
p.finish(); zk.stop()
"#;
    let mut py = Command::new("python3");
    py.args(["-c", script, &hosts(), &path]).args(&set).stdin(Stdio::piped());
    let k = Proc::spawn(&mut py);
    let mut args = vec!["partition", &path, "--id", "z", "--time-boundary", "500ms", "--print", "--set"];
    args.extend(set.iter().map(String::as_str));
    let z = Proc::start(&args);
    // sorted ids: k, z
    assert!(z.wait_line("i02 i04 i06", Duration::from_secs(40)).is_some(), "zkutil: {:?}", z.lines());
    assert!(k.wait_line("i01 i03 i05", Duration::from_secs(40)).is_some(), "kazoo: {:?}", k.lines());
}

#[test]
fn a_member_cut_off_from_zookeeper_stops_its_cmd_and_joins_again() {
    use zkutil::server::{Ensemble, Options};
    let mut server = t!(Ensemble::start(Options::for_tests(1)));
    let hosts = server.connect_string();
    let dir = t!(tempfile::tempdir());
    let d = dir.path();
    let set = items(4);
    let mut args = vec![
        "--session-timeout",
        "2s",
        "--connect-timeout",
        "2s",
        "partition",
        "/part",
        "--id",
        "m1",
        "--time-boundary",
        "300ms",
        "--set",
    ];
    args.extend(set.iter().map(String::as_str));
    let s = script(d);
    args.extend(["--", "sh", "-c", &s]);
    let p = Proc::start_on(&hosts, &args);
    assert!(wait_until(Duration::from_secs(20), || settled(d, &set, &["m1"])), "{:?}", last_shares(d));
    // ZooKeeper away: after a sixth of the session timeout the share is given up, CMD first
    t!(server.stop(0));
    assert!(wait_until(Duration::from_secs(20), || held(d).is_empty()), "CMD still holds {:?}", held(d));
    t!(server.restart(0));
    // back: a new session, the share taken again (a second `m1:` line)
    assert!(
        wait_until(Duration::from_secs(60), || std::fs::read_to_string(d.join("log"))
            .unwrap_or_default()
            .lines()
            .count()
            == 2
            && held(d).len() == 4),
        "{:?}",
        std::fs::read_to_string(d.join("log"))
    );
    no_violation(d);
    p.signal(Signal::SIGTERM);
    let (code, _, err) = p.finish();
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("joining again with a new session"), "{err}");
}
