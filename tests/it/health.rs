//! The session-health model under injected faults: a create or a set whose reply is lost
//! (a proxy cuts the connection right after forwarding it), watchers riding through a lost
//! session, and leader election waking only the successor.

use std::time::{Duration, Instant};

use crossbeam_channel::never;
use nix::sys::signal::Signal;
use zkutil::recipes::counter::{self, Counter};
use zkutil::recipes::election::{Election, Wake};
use zkutil::recipes::lock::{Lock, Mode};
use zkutil::server::{Ensemble, Options};
use zkutil::zk::{CreateMode, ZooKeeper};

use crate::support::proxy::{After, op};
use crate::support::*;
use crate::t;

/// A 3-server ensemble; `attempt` runs with a client connected through a proxy to member 0
/// that knows the other two members as well (so after a cut it reconnects to any of them),
/// a client of member `i`, and a fresh attempt number. The C client picks a host at random
/// and may move off the proxy on its own (a member busy under load): an attempt whose fault
/// never fired proves nothing and is repeated.
fn with_ensemble_via_proxy(i: usize, mut attempt: impl FnMut(&Proxy, &ZooKeeper, &ZooKeeper, usize)) {
    let ens = t!(Ensemble::start(Options::for_tests(3)));
    let other = t!(ZooKeeper::connect(&ens.member_address(i), Duration::from_secs(6)));
    for n in 0..5 {
        let proxy = Proxy::to(&ens.member_address(0));
        let hosts = format!("{},{},{}", proxy.addr, ens.member_address(1), ens.member_address(2));
        let zk = (0..30)
            .find_map(|_| {
                let zk = t!(ZooKeeper::connect(&hosts, Duration::from_secs(6)));
                (proxy.accepted() == 1).then_some(zk)
            })
            .expect("never connected through the proxy");
        attempt(&proxy, &zk, &other, n);
        if proxy.fired() == 1 {
            return;
        }
    }
    panic!("the fault never fired in 5 attempts");
}

#[test]
fn a_lost_create_reply_against_an_ensemble_makes_no_second_contender_node() {
    with_ensemble_via_proxy(1, |proxy, zk, other, n| {
        let dir = format!("/lock-cut-{n}");
        let lock = t!(Lock::new(zk, &dir, Mode::Exclusive));
        proxy.cut_after(op::CREATES, "lock-", After::Close);
        let held = t!(lock.acquire(Some(Instant::now() + Duration::from_secs(30)), &never(), |_| {}));
        t!(other.sync(&dir));
        let kids = t!(other.children(&dir));
        assert_eq!(kids.len(), 1, "a second contender node: {kids:?}");
        assert!(held.contender().node.ends_with(&kids[0]), "{kids:?} {:?}", held.contender());
        t!(held.release());
        t!(other.sync(&dir));
        assert!(t!(other.children(&dir)).is_empty());
    });
}

#[test]
fn a_lost_counter_set_reply_against_an_ensemble_never_counts_twice() {
    with_ensemble_via_proxy(2, |proxy, zk, other, n| {
        let path = format!("/counter-cut-{n}");
        let c = t!(Counter::new(zk, &path));
        assert_eq!(t!(c.add(1)), 1);
        proxy.cut_after(&[op::SET_DATA], &path, After::Close);
        match c.add(1) {
            Ok(v) => assert_eq!(v, 2),
            // the write landed but the node changed since: reported, not retried
            Err(counter::Error::OutcomeUnknown { now, .. }) => assert_eq!(now, 2),
            Err(e) => panic!("{e}"),
        }
        t!(other.sync(&path));
        assert_eq!(t!(other.get(&path)).0, b"2", "counted twice (or not at all)");
    });
}

#[test]
fn election_run_stops_on_sigterm_after_its_create_was_cut_off() {
    // A partition right after the candidate's create: the create lands, the reply never
    // comes, the client cannot reach any server. The search for our node must not loop
    // forever: SIGTERM ends it.
    let root = unique_root("election-cut");
    let path = format!("{root}/e");
    let proxy = Proxy::to(&hosts());
    proxy.cut_after(op::CREATES, "candidate-", After::Partition);
    let p = Proc::start_on(&proxy.addr, &["--session-timeout", "3s", "election", "run", &path, "--", "sleep", "60"]);
    assert!(wait_until(Duration::from_secs(20), || proxy.fired() == 1), "the create never went through");
    let zk = connect();
    assert!(wait_until(Duration::from_secs(10), || zk.children(&path).is_ok_and(|k| k.len() == 1)));
    p.signal(Signal::SIGTERM);
    let (code, lines, err) = p.finish_within(Duration::from_secs(20));
    assert_eq!(code, Some(143), "{lines:?} {err}");
}

#[test]
fn watch_rides_through_a_lost_session() {
    let root = unique_root("watch-ride");
    let node = format!("{root}/n");
    let zk = connect();
    t!(zk.create(&node, b"1", CreateMode::Persistent));
    let proxy = Proxy::to(&hosts());
    let w = Proc::start_on(&proxy.addr, &["--session-timeout", "2s", "watch", &node]);
    let first = format!("{node}: 1");
    assert!(wait_until(Duration::from_secs(20), || w.lines() == [first.clone()]), "{:?}", w.lines());
    // A partition of 5 s: longer than the session timeout (the server expires the session)
    // and than the watcher's grace (T after the client noticed, at 2T/3).
    proxy.cut();
    std::thread::sleep(Duration::from_secs(5)); // the length of the fault, not a synchronisation
    proxy.heal();
    // re-armed on a new session: the node as it is now, again
    assert!(wait_until(Duration::from_secs(30), || w.lines() == [first.clone(), first.clone()]), "{:?}", w.lines());
    t!(zk.set(&node, b"2", None));
    let changed = format!("NodeDataChanged {node}: 2");
    assert!(wait_until(Duration::from_secs(20), || w.has_line(&changed)), "{:?}", w.lines());
    w.signal(Signal::SIGTERM);
    let (code, _, err) = w.finish();
    assert_eq!(code, Some(143), "{err}");
    assert!(err.contains("the session was lost") && err.contains("watching again with a new session"), "{err}");
}

#[test]
fn a_new_leader_wakes_only_its_successor() {
    let root = unique_root("election-herd");
    let dir = format!("{root}/e");
    let (za, zb, zc) = (connect(), connect(), connect());
    let mut a = t!(Election::campaign(&za, &dir, "c-", b"A"));
    let mut b = t!(Election::campaign(&zb, &dir, "c-", b"B"));
    let mut c = t!(Election::campaign(&zc, &dir, "c-", b"C"));
    let zd = connect();
    let mut d = t!(Election::campaign(&zd, &dir, "c-", b"D"));
    d.follow_leader(true); // opted in: D wakes at every change of leader
    assert_eq!(t!(d.state()).leader.data, b"A");
    assert!(t!(a.state()).is_leader());
    assert_eq!(t!(b.state()).leader.data, b"A");
    assert_eq!(t!(c.state()).leader.data, b"A");
    let stop = never::<()>();
    t!(a.resign());
    // B, A's successor, learns it leads
    match t!(b.wait(&stop, Some(Instant::now() + Duration::from_secs(20)))) {
        Wake::Changed(s) => assert!(s.is_leader(), "{s:?}"),
        w => panic!("{w:?}"),
    }
    match t!(d.wait(&stop, Some(Instant::now() + Duration::from_secs(20)))) {
        Wake::Changed(s) => assert_eq!(s.leader.data, b"B"),
        w => panic!("{w:?}"),
    }
    // C watches only B: the change of leader does not wake it
    let w = t!(c.wait(&stop, Some(Instant::now() + Duration::from_millis(1500))));
    assert_eq!(w, Wake::TimedOut, "C woke for a leader change that is not its predecessor's");
    // C learns the leader when asked, and wakes when its predecessor goes
    assert_eq!(t!(c.state()).leader.data, b"B");
    t!(b.resign());
    match t!(c.wait(&stop, Some(Instant::now() + Duration::from_secs(20)))) {
        Wake::Changed(s) => assert!(s.is_leader(), "{s:?}"),
        w => panic!("{w:?}"),
    }
}
