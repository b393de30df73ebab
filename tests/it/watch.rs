//! Watches: each kind fires once, with the right type and path.

use std::time::Duration;

use crate::support::*;
use crate::t;
use zkutil::zk::{CreateMode, EventKind};

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn each_watch_kind_fires_once() {
    let root = unique_root("watch");
    let zk = connect();
    let other = connect();
    let p = format!("{root}/n");

    let (stat, created) = t!(zk.exists_w(&p));
    assert!(stat.is_none());
    t!(other.create(&p, b"1", CreateMode::Persistent));
    let ev = t!(created.recv_timeout(WAIT));
    assert_eq!((ev.kind, ev.path.as_str()), (EventKind::Created, p.as_str()));

    let (_, _, changed) = t!(zk.get_w(&p));
    t!(other.set(&p, b"2", None));
    t!(other.set(&p, b"3", None));
    assert_eq!(t!(changed.recv_timeout(WAIT)).kind, EventKind::DataChanged);
    // one-shot: the second set does not fire it again, and the receiver then disconnects
    assert!(changed.recv_timeout(Duration::from_millis(300)).is_err());

    let (_, _, kids) = t!(zk.children_w(&root));
    t!(other.create(&format!("{p}x"), b"", CreateMode::Persistent));
    let ev = t!(kids.recv_timeout(WAIT));
    assert_eq!((ev.kind, ev.path.as_str()), (EventKind::ChildrenChanged, root.as_str()));

    let (_, _, deleted) = t!(zk.get_w(&p));
    t!(other.delete(&p, None));
    assert_eq!(t!(deleted.recv_timeout(WAIT)).kind, EventKind::Deleted);
}

#[test]
fn failed_reads_arm_no_watch_and_closing_disconnects() {
    let root = unique_root("watch-close");
    let zk = connect();
    assert!(zk.get_w(&format!("{root}/missing")).is_err());
    assert!(zk.children_w(&format!("{root}/missing")).is_err());
    let (_, _, rx) = t!(zk.get_w(&root));
    drop(zk);
    assert!(rx.recv_timeout(WAIT).is_err(), "closing the session must disconnect armed watches");
}

#[test]
fn session_events_neither_fire_nor_disarm_node_watches() {
    // The C client calls every per-call watcher for session events without disarming it
    // (collectWatchers); the watch must stay quiet through a reconnect and fire on the change.
    let mut server = t!(zkutil::server::Ensemble::standalone());
    let zk = t!(zkutil::zk::ZooKeeper::connect(&server.connect_string(), Duration::from_secs(10)));
    let events = zk.session_events();
    t!(zk.create("/w", b"1", CreateMode::Persistent));
    let (_, _, changed) = t!(zk.get_w("/w"));
    t!(server.restart(0));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut saw_disconnect = false;
    loop {
        match t!(events.recv_deadline(deadline)) {
            zkutil::zk::SessionEvent::Connecting => saw_disconnect = true,
            zkutil::zk::SessionEvent::Connected if saw_disconnect => break,
            _ => {}
        }
    }
    assert!(changed.try_recv().is_err_and(|e| e.is_empty()), "watch fired or was dropped by a session event");
    let other = t!(zkutil::zk::ZooKeeper::connect(&server.connect_string(), Duration::from_secs(10)));
    t!(other.set("/w", b"2", None));
    let ev = t!(changed.recv_timeout(WAIT));
    assert_eq!((ev.kind, ev.path.as_str()), (EventKind::DataChanged, "/w"));
}
