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
