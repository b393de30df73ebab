//! Interop with Apache Curator itself (5.4, Debian's jars): each README claim of Curator
//! compatibility, with Curator's own recipes on one side and zkutil on the other
//! (tests/java/CuratorPeer.java, one JVM per test). Without a JDK or the jars the tests say
//! SKIPPED on stderr and do nothing.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::curator::Peer;
use crate::support::*;

const LONG: Duration = Duration::from_secs(60);

/// The holds (start, end), in µs since the epoch, printed by a CMD as `date +%s%6N` pairs.
fn spans(lines: &[String]) -> Vec<(u64, u64)> {
    let t: Vec<u64> = lines.iter().map(|l| l.trim().parse().unwrap_or_else(|_| panic!("not a time: {l:?}"))).collect();
    t.chunks(2).map(|c| (c[0], c[1])).collect()
}

/// Pairs of holds that overlap.
fn overlaps(spans: &[(u64, u64)]) -> usize {
    let mut s = spans.to_vec();
    s.sort();
    s.windows(2).filter(|w| w[1].0 < w[0].1).count()
}

/// `zkutil lock` and Curator's InterProcessMutex on one path: each waits for the other, is
/// handed the lock by the other's release, and mixed contenders never overlap.
#[test]
fn zkutil_lock_and_curator_interprocessmutex_exclude_each_other() {
    let Some(mut c) = Peer::start() else { return };
    let path = format!("{}/lock", unique_root("curator-lock"));
    let zk = connect();

    // Curator holds: zkutil cannot have it, then has it once Curator releases
    c.send(&format!("c1 mutex {path} 60000"));
    c.expect("c1", &["acquired"]);
    conflict_fails(&["lock", "--timeout", "300ms", &path, "--", "true"]);
    let waiter = Proc::start(&["lock", "--timeout", "60s", &path, "--", "echo", "got it"]);
    assert!(wait_until(LONG, || zk.children(&path).map(|k| k.len()).unwrap_or(0) == 2), "zkutil never queued");
    c.send("c1 release");
    let (code, out, err) = waiter.finish();
    assert_eq!((code, out), (Some(0), vec!["got it".to_string()]), "{err}");

    // zkutil holds: Curator cannot have it, then is handed it when zkutil ends
    let holder = Proc::start(&["lock", &path, "--", "sh", "-c", "echo held; exec sleep 60"]);
    assert!(holder.wait_line("held", LONG).is_some());
    c.send(&format!("c2 mutex {path} 300"));
    assert_eq!(c.expect("c2", &["acquired", "timeout"]), "timeout");
    c.send(&format!("c3 mutex {path} 60000"));
    assert!(wait_until(LONG, || zk.children(&path).map(|k| k.len()).unwrap_or(0) == 2), "Curator never queued");
    holder.signal(Signal::SIGTERM);
    let (code, _, _) = holder.finish();
    assert_eq!(code, Some(143));
    c.expect("c3", &["acquired"]);
    c.send("c3 release");
    c.expect("c3", &["released"]);

    // mixed contenders: Curator takes it 6 times, two zkutil contenders 3 times each
    let cmd = "date +%s%6N; sleep 0.15; date +%s%6N";
    c.send(&format!("c4 loop {path} 6 150"));
    let zkutils: Vec<_> = (0..2)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || {
                (0..3)
                    .flat_map(|_| {
                        ok(&["lock", &path, "--", "sh", "-c", cmd]).lines().map(str::to_string).collect::<Vec<_>>()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for z in zkutils {
        all.extend(spans(&z.join().unwrap()));
    }
    assert_eq!(all.len(), 6);
    c.expect("c4", &["done"]);
    let times: Vec<String> =
        c.replies("c4").into_iter().filter_map(|r| r.split_once(' ').map(|(_, t)| t.to_string())).collect();
    let curator = spans(&times);
    assert_eq!(curator.len(), 6);
    all.extend(curator);
    assert_eq!(overlaps(&all), 0, "holds overlap: {all:?}");
    c.close();
}

/// `zkutil lock --shared` and `--write` with Curator's InterProcessReadWriteLock: readers of
/// both run together, a writer of either excludes every reader and writer of the other.
#[test]
fn zkutil_read_write_lock_and_curator_interprocessreadwritelock() {
    let Some(mut c) = Peer::start() else { return };
    let path = format!("{}/rw", unique_root("curator-rw"));
    let zk = connect();
    let kids = |n: usize| wait_until(LONG, || zk.children(&path).map(|k| k.len()).unwrap_or(0) == n);

    // a Curator reader: zkutil readers run beside it, zkutil writers wait
    c.send(&format!("r1 read {path} 60000"));
    c.expect("r1", &["acquired"]);
    assert_eq!(ok(&["lock", "--shared", "--timeout", "0s", &path, "--", "echo", "read"]), "read\n");
    conflict_fails(&["lock", "--write", "--timeout", "300ms", &path, "--", "true"]);
    conflict_fails(&["lock", "--timeout", "300ms", &path, "--", "true"]);
    c.send("r1 release");
    c.expect("r1", &["released"]);

    // a Curator writer: zkutil readers wait
    c.send(&format!("w1 write {path} 60000"));
    c.expect("w1", &["acquired"]);
    conflict_fails(&["lock", "--shared", "--timeout", "300ms", &path, "--", "true"]);
    c.send("w1 release");
    c.expect("w1", &["released"]);

    // a zkutil reader: Curator readers run beside it, Curator writers wait
    let reader = Proc::start(&["lock", "--shared", &path, "--", "sh", "-c", "echo held; exec sleep 60"]);
    assert!(reader.wait_line("held", LONG).is_some());
    c.send(&format!("r2 read {path} 60000"));
    c.expect("r2", &["acquired"]);
    c.send(&format!("w2 write {path} 300"));
    assert_eq!(c.expect("w2", &["acquired", "timeout"]), "timeout");
    c.send("r2 release");
    c.expect("r2", &["released"]);
    reader.signal(Signal::SIGTERM);
    assert_eq!(reader.finish().0, Some(143));

    // a zkutil writer: Curator readers and writers wait, and are handed the lock when it ends
    let writer = Proc::start(&["lock", "--write", &path, "--", "sh", "-c", "echo held; exec sleep 60"]);
    assert!(writer.wait_line("held", LONG).is_some());
    c.send(&format!("r3 read {path} 300"));
    assert_eq!(c.expect("r3", &["acquired", "timeout"]), "timeout");
    c.send(&format!("w3 write {path} 300"));
    assert_eq!(c.expect("w3", &["acquired", "timeout"]), "timeout");
    c.send(&format!("w4 write {path} 60000"));
    assert!(kids(2), "Curator's writer never queued");
    writer.signal(Signal::SIGTERM);
    assert_eq!(writer.finish().0, Some(143));
    c.expect("w4", &["acquired"]);
    conflict_fails(&["lock", "--shared", "--timeout", "300ms", &path, "--", "true"]);
    c.send("w4 release");
    c.expect("w4", &["released"]);
    c.close();
}
