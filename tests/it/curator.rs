//! Interop with Apache Curator itself (5.4, Debian's jars): each README claim of Curator
//! compatibility, with Curator's own recipes on one side and zkutil on the other
//! (tests/java/CuratorPeer.java, one JVM per test). Without a JDK or the jars the tests say
//! SKIPPED on stderr and do nothing.

use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::curator::Peer;
use crate::support::*;
use crate::t;

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
        all.extend(spans(&z.join().unwrap()).into_iter().map(|s| (s, "zkutil")));
    }
    assert_eq!(all.len(), 6);
    c.expect("c4", &["done"]);
    let times: Vec<String> =
        c.replies("c4").into_iter().filter_map(|r| r.split_once(' ').map(|(_, t)| t.to_string())).collect();
    let curator = spans(&times);
    assert_eq!(curator.len(), 6);
    all.extend(curator.into_iter().map(|s| (s, "Curator")));
    all.sort();
    let holds: Vec<(u64, u64)> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(overlaps(&holds), 0, "holds overlap: {all:?}");
    // first come, first served: Curator, queueing again after each hold, takes turns with zkutil
    let turns = all.windows(2).filter(|w| w[0].1 != w[1].1).count();
    assert!(turns >= 2, "no alternation: {all:?}");
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

    // the README's caveat, why --write exists: Curator's reader does not wait for a default
    // (InterProcessMutex-named) writer
    let plain = Proc::start(&["lock", &path, "--", "sh", "-c", "echo held; exec sleep 60"]);
    assert!(plain.wait_line("held", LONG).is_some());
    c.send(&format!("r0 read {path} 5000"));
    assert!(
        c.expect("r0", &["acquired", "timeout"]).starts_with("acquired"),
        "Curator's reader now waits: update the README"
    );
    c.send("r0 release");
    c.expect("r0", &["released"]);
    plain.signal(Signal::SIGTERM);
    assert_eq!(plain.finish().0, Some(143));

    // a zkutil --write writer: Curator readers and writers wait, and are handed the lock when it ends
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

/// `zkutil semaphore` and Curator's InterProcessSemaphoreV2 share the leases of one
/// semaphore: together never more than N, and each hands a lease on to the other.
#[test]
fn zkutil_semaphore_and_curator_interprocesssemaphorev2_share_the_leases() {
    let Some(mut c) = Peer::start() else { return };
    let path = format!("{}/sem", unique_root("curator-sem"));
    let zk = connect();
    let count = |dir: &str| zk.children(&format!("{path}/{dir}")).map(|k| k.len()).unwrap_or(0);

    // one lease each of 2: a third of either kind does not get one
    c.send(&format!("s1 semaphore {path} 2 60000"));
    c.expect("s1", &["acquired"]);
    let holder = Proc::start(&["semaphore", &path, "-n", "2", "--", "sh", "-c", "echo held; exec sleep 60"]);
    assert!(holder.wait_line("held", LONG).is_some());
    c.send(&format!("s2 semaphore {path} 2 300"));
    assert_eq!(c.expect("s2", &["acquired", "timeout"]), "timeout");
    conflict_fails(&["semaphore", &path, "-n", "2", "--timeout", "300ms", "--", "true"]);
    let leases = t!(zk.children(&format!("{path}/leases")));
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert!(leases.iter().all(|l| l.starts_with("_c_") && l[..l.len() - 10].ends_with("-lease-")), "{leases:?}");

    // a Curator waiter (holding the semaphore's lock), then a zkutil one queued on that lock
    c.send(&format!("s3 semaphore {path} 2 60000"));
    assert!(wait_until(LONG, || count("locks") == 1), "Curator never queued");
    let mut waiter = Proc::start(&["semaphore", &path, "-n", "2", "--timeout", "60s", "--", "echo", "got it"]);
    assert!(wait_until(LONG, || count("locks") == 2), "zkutil never queued");
    // Curator's lease goes to the Curator waiter; zkutil's then to the zkutil waiter
    c.send("s1 release");
    c.expect("s3", &["acquired"]);
    assert!(waiter.running(), "zkutil got a third lease");
    holder.signal(Signal::SIGTERM);
    assert_eq!(holder.finish().0, Some(143));
    let (code, out, err) = waiter.finish();
    assert_eq!((code, out), (Some(0), vec!["got it".to_string()]), "{err}");
    c.close();
}

/// Service discovery both ways: an instance registered by Curator's ServiceDiscovery is
/// listed by `zkutil service list` with its fields, and one registered by `zkutil service
/// register` is found by Curator's queryForInstances with its address, ports, payload and
/// URI spec; each goes from the other's view when it unregisters.
#[test]
fn service_discovery_with_curator_both_ways() {
    let Some(mut c) = Peer::start() else { return };
    let base = format!("{}/services", unique_root("curator-sd"));

    // Curator registers; zkutil lists it, and a zkutil watcher sees it come
    let watch = Proc::start(&["service", "list", "web", "--watch", "--base", &base]);
    c.send(&format!(r#"c1 register {base} web c-1 10.0.0.9 8081 {{"zone":"eu-1"}}"#));
    c.expect("c1", &["registered"]);
    let seen = "+c-1\t10.0.0.9\t8081\t{\"@class\":\"java.util.LinkedHashMap\",\"zone\":\"eu-1\"}";
    assert!(watch.wait_line(seen, LONG).is_some(), "{:?}", watch.lines());
    assert_eq!(ok(&["service", "list", "--base", &base]), "web\n");
    assert_eq!(
        ok(&["service", "list", "web", "--base", &base]),
        "c-1\t10.0.0.9\t8081\t{\"@class\":\"java.util.LinkedHashMap\",\"zone\":\"eu-1\"}\n"
    );
    let v: serde_json::Value =
        t!(serde_json::from_str(&ok(&["-o", "json", "service", "list", "web", "--base", &base])));
    let i = &v["instances"][0];
    assert_eq!(
        (&i["name"], &i["id"], &i["address"], &i["port"], &i["sslPort"], &i["serviceType"], &i["payload"]["zone"]),
        (
            &"web".into(),
            &"c-1".into(),
            &"10.0.0.9".into(),
            &8081.into(),
            &serde_json::Value::Null,
            &"DYNAMIC".into(),
            &"eu-1".into()
        ),
        "{v}"
    );
    assert!(i["registrationTimeUTC"].as_u64().is_some_and(|t| t > 1_600_000_000_000), "{v}");
    assert_eq!(i["uriSpec"]["parts"][0], serde_json::json!({"value": "scheme", "variable": true}), "{v}");

    // zkutil registers two; Curator finds them
    let z1 = Proc::start(&[
        "service",
        "register",
        "web",
        "--base",
        &base,
        "--id",
        "z-1",
        "--address",
        "10.0.0.1",
        "--port",
        "8080",
        "--ssl-port",
        "8443",
        "--payload",
        r#"{"zone":"eu-2","weight":3}"#,
        "--uri-spec",
        "{scheme}://{address}:{port}/api",
    ]);
    let z2 = Proc::start(&[
        "service",
        "register",
        "web",
        "--base",
        &base,
        "--id",
        "z-2",
        "--address",
        "10.0.0.2",
        "--port",
        "9090",
    ]);
    assert!(z1.wait_line("z-1", LONG).is_some() && z2.wait_line("z-2", LONG).is_some());
    let query = |c: &mut Peer, tag: &str| {
        c.send(&format!("{tag} query {base} web"));
        c.expect(tag, &["done"]);
        let mut v: Vec<String> =
            c.replies(tag).into_iter().filter_map(|r| r.strip_prefix("instance\t").map(str::to_string)).collect();
        v.sort();
        v
    };
    assert_eq!(
        query(&mut c, "q1"),
        [
            "c-1\t10.0.0.9\t8081\tnull\t{\"zone\":\"eu-1\"}\thttp://10.0.0.9:8081/x\tDYNAMIC",
            "z-1\t10.0.0.1\t8080\t8443\t{\"zone\":\"eu-2\",\"weight\":3}\thttps://10.0.0.1:8080/api\tDYNAMIC",
            "z-2\t10.0.0.2\t9090\tnull\tnull\t-\tDYNAMIC",
        ]
    );

    // each unregisters: gone from the other's view
    z1.signal(Signal::SIGTERM);
    assert_eq!(z1.finish().0, Some(143));
    z2.signal(Signal::SIGTERM);
    assert_eq!(z2.finish().0, Some(143));
    assert_eq!(
        query(&mut c, "q2"),
        ["c-1\t10.0.0.9\t8081\tnull\t{\"zone\":\"eu-1\"}\thttp://10.0.0.9:8081/x\tDYNAMIC"]
    );
    c.send("c1 release");
    c.expect("c1", &["released"]);
    assert_eq!(ok(&["service", "list", "web", "--base", &base]), "");
    assert!(watch.wait_line("-c-1", LONG).is_some(), "{:?}", watch.lines());
    c.close();
}

/// `zkutil election is-leader` answers for a Curator LeaderLatch: 0 for the leading
/// participant's id, 1 for a follower's and for any other, and the answer moves on when the
/// leader closes its latch.
#[test]
fn election_is_leader_answers_for_curator_leaderlatch() {
    let Some(mut c) = Peer::start() else { return };
    let path = format!("{}/latch", unique_root("curator-latch"));
    let zk = connect();
    let is_leader = |id: &str| {
        let o = run(&["election", "is-leader", &path, "--id", id]);
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));
        o.status.code()
    };
    c.send(&format!("l1 latch {path} java-1"));
    c.expect("l1", &["leader"]);
    c.send(&format!("l2 latch {path} java-2"));
    assert!(wait_until(LONG, || zk.children(&path).map(|k| k.len()).unwrap_or(0) == 2), "no second participant");
    assert_eq!((is_leader("java-1"), is_leader("java-2"), is_leader("other")), (Some(0), Some(1), Some(1)));
    c.send("l1 release");
    c.expect("l1", &["released"]);
    c.expect("l2", &["leader"]);
    assert_eq!((is_leader("java-1"), is_leader("java-2")), (Some(1), Some(0)));
    c.close();
}

/// The double barrier with Curator's DistributedDoubleBarrier: mixed participants enter
/// only when the count is complete, whoever completes it, and nobody leaves before every
/// participant's work is done.
#[test]
fn double_barrier_with_curator_distributeddoublebarrier() {
    let Some(mut c) = Peer::start() else { return };
    let root = unique_root("curator-barrier");
    let zk = connect();
    let present = |p: &str, n: usize| wait_until(LONG, || zk.children(p).map(|k| k.len()).unwrap_or(0) == n);
    let work = "sleep 0.3; date +%s%6N";

    // two Curator participants wait for the third, zkutil's, which completes the count
    let path = format!("{root}/b1");
    c.send(&format!("b1 barrier {path} 3 60000"));
    c.send(&format!("b2 barrier {path} 3 60000"));
    assert!(present(&path, 2), "Curator's participants never arrived");
    assert!(c.replies("b1").is_empty() && c.replies("b2").is_empty(), "entered with 2 of 3");
    let out = ok(&["barrier", "wait", &path, "--count", "3", "--id", "z", "--timeout", "60s", "--", "sh", "-c", work]);
    let done: u64 = t!(out.trim().parse());
    for tag in ["b1", "b2"] {
        let left: u64 = t!(c.expect(tag, &["left"])["left ".len()..].parse());
        assert!(left >= done, "{tag} left before zkutil's work was done");
    }

    // two zkutil participants wait for the third, Curator's, which completes the count
    let path = format!("{root}/b2");
    let z: Vec<Proc> = (1..=2)
        .map(|i| {
            Proc::start(&[
                "barrier",
                "wait",
                &path,
                "--count",
                "3",
                "--id",
                &format!("z{i}"),
                "--timeout",
                "60s",
                "--",
                "sh",
                "-c",
                work,
            ])
        })
        .collect();
    assert!(present(&path, 2), "zkutil's participants never arrived");
    c.send(&format!("b3 barrier {path} 3 60000"));
    c.expect("b3", &["entered"]);
    let left: u64 = t!(c.expect("b3", &["left"])["left ".len()..].parse());
    for p in z {
        let (code, out, err) = p.finish();
        assert_eq!(code, Some(0), "{err}");
        let done: u64 = t!(out[0].parse());
        assert!(left >= done, "Curator left before zkutil's work was done");
    }
    c.close();
}

/// `queue produce --curator` items are taken by Curator's own DistributedDelayQueue
/// consumer: an undelayed one at once, a delayed one not before its due time.
#[test]
fn curator_delay_queue_takes_zkutils_curator_items_at_their_time() {
    let Some(mut c) = Peer::start() else { return };
    let q = format!("{}/q", unique_root("curator-delayq"));
    let before_ms = zkutil::recipes::queue::epoch_ms();
    ok(&["queue", "produce", "--curator", "--delay", "3s", &q, "later"]);
    ok(&["queue", "produce", "--curator", &q, "now"]);
    c.send(&format!("d1 delayconsume {q}"));
    c.expect("d1", &["started"]);
    let at = |r: String| -> (u64, String) {
        let mut w = r.splitn(3, ' ').skip(1);
        (w.next().unwrap().parse().unwrap(), w.next().unwrap_or_default().to_string())
    };
    let (_, first) = at(c.expect("d1", &["item"]));
    assert_eq!(first, "now", "the undelayed item comes first");
    let items =
        || -> Vec<(u64, String)> { c.replies("d1").into_iter().filter(|r| r.starts_with("item ")).map(at).collect() };
    assert!(wait_until(LONG, || items().len() >= 2), "{:?}", c.replies("d1"));
    let items = items();
    assert_eq!(items.len(), 2, "{items:?}");
    let (us, later) = &items[1];
    assert_eq!(later, "later");
    assert!(*us / 1000 >= before_ms + 3000, "taken {} ms before it was due", before_ms + 3000 - us / 1000);
    let zk = connect();
    assert!(wait_until(LONG, || zk.children(&q).map(|k| k.is_empty()).unwrap_or(false)), "Curator left items behind");
    c.close();
}
