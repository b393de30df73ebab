//! The safe client against a real server: every operation, its errors, and sessions.

use std::time::Duration;

use crate::support::*;
use crate::t;
use zkutil::zk::{
    Acl, Code, ConnectOptions, CreateMode, Error, MAX_PACKET, Op, OpResult, SessionEvent, ZooKeeper, sequence_of,
};

#[test]
fn create_get_set_delete() {
    let root = unique_root("crud");
    let zk = connect();
    let p = format!("{root}/a");
    assert_eq!(t!(zk.create(&p, b"one", CreateMode::Persistent)), p);
    let (data, stat) = t!(zk.get(&p));
    assert_eq!((data.as_slice(), stat.version, stat.data_length), (&b"one"[..], 0, 3));
    let err = zk.create(&p, b"", CreateMode::Persistent).unwrap_err();
    assert_eq!(err.code(), Some(Code::NodeExists));

    let s = t!(zk.set(&p, b"two", Some(0)));
    assert_eq!(s.version, 1);
    assert_eq!(zk.set(&p, b"three", Some(0)).unwrap_err().code(), Some(Code::BadVersion));
    assert_eq!(t!(zk.get(&p)).0, b"two");

    assert_eq!(zk.delete(&p, Some(0)).unwrap_err().code(), Some(Code::BadVersion));
    t!(zk.delete(&p, Some(1)));
    assert!(t!(zk.exists(&p)).is_none());
    assert_eq!(zk.get(&p).unwrap_err().code(), Some(Code::NoNode));
    assert_eq!(zk.delete(&p, None).unwrap_err().code(), Some(Code::NoNode));

    t!(zk.create(&p, b"", CreateMode::Persistent));
    t!(zk.create(&format!("{p}/child"), b"", CreateMode::Persistent));
    assert_eq!(zk.delete(&p, None).unwrap_err().code(), Some(Code::NotEmpty));
}

#[test]
fn empty_and_large_data_round_trip() {
    let root = unique_root("large");
    let zk = connect();
    let p = format!("{root}/empty");
    t!(zk.create(&p, b"", CreateMode::Persistent));
    assert!(t!(zk.get(&p)).0.is_empty());
    // Bigger than the first read buffer: zoo_get would truncate silently.
    let big: Vec<u8> = (0..900_000u32).map(|i| (i % 251) as u8).collect();
    t!(zk.set(&p, &big, None));
    let (data, stat) = t!(zk.get(&p));
    assert_eq!(data.len(), big.len());
    assert_eq!(data, big);
    assert_eq!(stat.data_length as usize, big.len());
    let (data, _, _watch) = t!(zk.get_w(&p));
    assert_eq!(data, big);
}

#[test]
fn oversized_request_is_refused_before_sending() {
    let root = unique_root("oversize");
    let zk = connect();
    let p = format!("{root}/n");
    let too_big = vec![b'x'; MAX_PACKET];
    let err = zk.create(&p, &too_big, CreateMode::Persistent).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("jute.maxbuffer"), "{err}");
    t!(zk.create(&p, b"", CreateMode::Persistent));
    assert!(matches!(zk.set(&p, &too_big, None), Err(Error::TooLarge { .. })));
    // the session is unharmed
    assert_eq!(t!(zk.get(&p)).0, b"");
}

#[test]
fn invalid_paths_never_reach_zookeeper() {
    let zk = connect();
    for bad in ["", "a", "/a/", "/a//b", "/a/./b", "/..", "/a\0b"] {
        let err = zk.get(bad).unwrap_err();
        assert!(matches!(err, Error::InvalidPath { .. }), "{bad:?}: {err}");
        assert!(matches!(zk.create(bad, b"", CreateMode::Persistent), Err(Error::InvalidPath { .. })));
    }
}

#[test]
fn sequential_names_are_ten_digits_and_increasing() {
    let root = unique_root("seq");
    let zk = connect();
    let mut last = None;
    for _ in 0..5 {
        let p = t!(zk.create(&format!("{root}/n-"), b"", CreateMode::PersistentSequential));
        let name = p.rsplit('/').next().unwrap();
        let digits = &name[2..];
        assert_eq!(digits.len(), 10, "{p}");
        let seq = sequence_of(name).expect("sequence");
        assert!(last.is_none_or(|l| seq > l), "{seq} after {last:?}");
        last = Some(seq);
    }
    // sequential with a trailing slash: the name is the number alone
    let p = t!(zk.create(&format!("{root}/"), b"", CreateMode::PersistentSequential));
    assert_eq!(p.rsplit('/').next().unwrap().len(), 10);
}

#[test]
fn ephemeral_nodes_vanish_when_the_session_closes() {
    let root = unique_root("eph");
    let observer = connect();
    let zk = connect();
    let e = t!(zk.create(&format!("{root}/e"), b"", CreateMode::Ephemeral));
    let es = t!(zk.create(&format!("{root}/es-"), b"", CreateMode::EphemeralSequential));
    let stat = t!(observer.exists(&e)).expect("exists");
    assert_eq!(stat.ephemeral_owner, zk.session_id());
    assert_eq!(
        zk.create(&format!("{e}/child"), b"", CreateMode::Persistent).unwrap_err().code(),
        Some(Code::NoChildrenForEphemerals)
    );
    drop(zk);
    // closing is synchronous: gone at once, not after the session timeout
    assert!(t!(observer.exists(&e)).is_none());
    assert!(t!(observer.exists(&es)).is_none());
}

#[test]
fn container_and_ttl_modes() {
    let root = unique_root("modes");
    let zk = connect();
    let c = t!(zk.create(&format!("{root}/c"), b"", CreateMode::Container));
    assert!(t!(zk.exists(&c)).is_some());
    let ttl = t!(zk.create(&format!("{root}/ttl"), b"x", CreateMode::PersistentWithTtl { ttl_ms: 60_000 }));
    assert!(t!(zk.exists(&ttl)).is_some());
    let ttls = t!(zk.create(&format!("{root}/ttl-"), b"x", CreateMode::PersistentSequentialWithTtl { ttl_ms: 60_000 }));
    assert!(sequence_of(&ttls).is_some());
}

#[test]
fn children_with_and_without_stat() {
    let root = unique_root("kids");
    let zk = connect();
    for n in ["b", "a", "c"] {
        t!(zk.create(&format!("{root}/{n}"), b"", CreateMode::Persistent));
    }
    let mut kids = t!(zk.children(&root));
    kids.sort();
    assert_eq!(kids, ["a", "b", "c"]);
    let (kids, stat) = t!(zk.children2(&root));
    assert_eq!((kids.len(), stat.num_children), (3, 3));
    assert_eq!(zk.children(&format!("{root}/nope")).unwrap_err().code(), Some(Code::NoNode));
}

#[test]
fn multi_commits_all_or_nothing() {
    let root = unique_root("multi");
    let zk = connect();
    let a = format!("{root}/a");
    let b = format!("{root}/b");
    t!(zk.create(&a, b"0", CreateMode::Persistent));
    let res = t!(zk.multi(&[
        Op::Create { path: b.clone(), data: b"b".to_vec(), mode: CreateMode::Persistent },
        Op::Set { path: a.clone(), data: b"1".to_vec(), version: Some(0) },
        Op::Check { path: a.clone(), version: 1 },
        Op::Create { path: format!("{root}/s-"), data: vec![], mode: CreateMode::PersistentSequential },
    ]));
    assert_eq!(res[0], OpResult::Created(b.clone()));
    assert!(matches!(res[1], OpResult::Set(s) if s.version == 1));
    assert_eq!(res[2], OpResult::Checked);
    assert!(matches!(&res[3], OpResult::Created(p) if sequence_of(p).is_some()));

    // one failing check: nothing changes
    let err = zk
        .multi(&[
            Op::Delete { path: b.clone(), version: None },
            Op::Set { path: a.clone(), data: b"2".to_vec(), version: None },
            Op::Check { path: a.clone(), version: 99 },
        ])
        .unwrap_err();
    match &err {
        Error::Multi { index, code, path, .. } => {
            assert_eq!((*index, *code, path.as_str()), (2, Code::BadVersion, a.as_str()));
        }
        e => panic!("expected Error::Multi, got {e:?}"),
    }
    assert!(t!(zk.exists(&b)).is_some());
    assert_eq!(t!(zk.get(&a)).0, b"1");
}

#[test]
fn sync_and_acls() {
    let root = unique_root("acl");
    t!(connect().sync(&root));
    let alice = t!(ConnectOptions { digest: Some("alice:secret".into()), ..ConnectOptions::new(hosts()) }.connect());
    let p = t!(alice.create(&format!("{root}/private"), b"x", CreateMode::Persistent));
    let (acl, _) = t!(alice.get_acl(&p));
    assert_eq!(acl.len(), 1);
    assert_eq!((acl[0].scheme.as_str(), acl[0].perms_string().as_str()), ("digest", "cdrwa"));
    assert!(acl[0].id.starts_with("alice:"));

    let anon = connect();
    assert_eq!(anon.get(&p).unwrap_err().code(), Some(Code::NoAuth));
    assert_eq!(anon.set(&p, b"y", None).unwrap_err().code(), Some(Code::NoAuth));

    // opening it up again
    t!(alice.set_acl(&p, &Acl::open(), None));
    assert_eq!(t!(anon.get(&p)).0, b"x");
}

#[test]
fn pipelined_creates_and_deletes() {
    let root = unique_root("pipe");
    let zk = connect();
    let paths: Vec<String> = (0..500).map(|i| format!("{root}/n{i}")).collect();
    let results = zk.create_many(paths.iter().map(|p| (p.as_str(), &b"x"[..], CreateMode::Persistent)), 100);
    assert_eq!(results.len(), 500);
    for (r, p) in results.iter().zip(&paths) {
        assert_eq!(r.as_ref().unwrap(), p);
    }
    // a second pass collides on every node
    let again = zk.create_many(paths.iter().take(3).map(|p| (p.as_str(), &b""[..], CreateMode::Persistent)), 10);
    assert!(again.iter().all(|r| r.as_ref().unwrap_err().code() == Some(Code::NodeExists)));
    assert_eq!(t!(zk.children(&root)).len(), 500);
    // every mode goes through the same async call
    let modes = [
        (format!("{root}/c"), CreateMode::Container),
        (format!("{root}/e"), CreateMode::Ephemeral),
        (format!("{root}/ttl"), CreateMode::PersistentWithTtl { ttl_ms: 60_000 }),
    ];
    let made = zk.create_many(modes.iter().map(|(p, m)| (p.as_str(), &b""[..], *m)), 10);
    for (r, (p, _)) in made.iter().zip(&modes) {
        assert_eq!(r.as_ref().unwrap(), p);
    }
    let ttl = t!(zk
        .create_many(
            [(format!("{root}/ttl-").as_str(), &b""[..], CreateMode::PersistentSequentialWithTtl { ttl_ms: 60_000 })],
            1
        )
        .remove(0));
    assert!(sequence_of(&ttl).is_some(), "{ttl}");
    zk.delete_many(modes.iter().map(|(p, _)| p.as_str()).chain([ttl.as_str()]), 10);
    let deleted = zk.delete_many(paths.iter().map(String::as_str), 100);
    assert!(deleted.iter().all(|r| r.is_ok()));
    assert!(t!(zk.children(&root)).is_empty());
}

#[test]
fn connect_fails_clearly() {
    let err = ZooKeeper::connect_with(&ConnectOptions {
        connect_timeout: Duration::from_millis(500),
        ..ConnectOptions::new("127.0.0.1:1")
    })
    .unwrap_err();
    assert!(matches!(err, Error::ConnectTimeout { .. }), "{err}");
    for bad in ["", "host:notaport", "127.0.0.1:2181/bad/", ":2181"] {
        let err = ZooKeeper::connect(bad, Duration::from_secs(4)).unwrap_err();
        assert!(matches!(err, Error::BadHosts { .. }), "{bad:?}: {err}");
    }
    let err = ZooKeeper::connect("no-such-host.invalid:2181", Duration::from_secs(4)).unwrap_err();
    assert!(err.to_string().contains("does not resolve"), "{err}");
    // a chroot that does not exist fails the connect, instead of every later call
    let root = unique_root("no-chroot");
    let err = ZooKeeper::connect(&format!("{}{root}/missing", hosts()), Duration::from_secs(4)).unwrap_err();
    assert!(matches!(err, Error::BadHosts { .. }) && err.to_string().contains("chroot"), "{err}");
    t!(ZooKeeper::connect(&format!("{}{root}", hosts()), Duration::from_secs(4)));
}

#[test]
fn chroot_scopes_every_path() {
    let root = unique_root("chroot");
    let zk = connect_to(&format!("{}{root}", hosts()));
    t!(zk.create("/inside", b"x", CreateMode::Persistent));
    assert_eq!(t!(zk.create("/seq-", b"", CreateMode::PersistentSequential)).len(), "/seq-".len() + 10);
    assert!(t!(connect().exists(&format!("{root}/inside"))).is_some());
}

#[test]
fn session_expiry_is_detected_and_reported() {
    let root = unique_root("expire");
    let zk = connect();
    let events = zk.session_events();
    let e = t!(zk.create(&format!("{root}/e"), b"", CreateMode::Ephemeral));
    let (_, _, watch) = t!(zk.get_w(&e));
    // expire it: a second handle takes the session over and closes it
    let (id, _) = zk.client_id();
    expire_session(&zk, &hosts());
    assert!(events.try_iter().any(|e| e == SessionEvent::Expired));
    assert_ne!(connect().session_id(), id);
    assert!(zk.is_dead());
    // a watch armed before the expiry disconnects instead of hanging
    // (or delivers the deletion of the ephemeral node, if it raced the expiry)
    match watch.recv_timeout(Duration::from_secs(1)) {
        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {}
        Ok(ev) => assert_eq!(ev.kind, zkutil::zk::EventKind::Deleted),
        Err(e) => panic!("watch still armed after expiry: {e}"),
    }
    let err = zk.get(&e).unwrap_err();
    assert!(err.code().is_some_and(|c| c.is_session_lost()), "{err}");
    assert!(t!(connect().exists(&e)).is_none());
}

#[test]
fn a_dead_server_fails_calls_fast_and_loses_the_session() {
    let mut server = t!(zkutil::server::Ensemble::standalone());
    let zk = t!(ZooKeeper::connect(&server.connect_string(), Duration::from_secs(2)));
    let health = zkutil::zk::SessionWatch::watcher(&zk);
    let lost = health.lost();
    t!(server.kill(0));
    // outcome-unknown errors, at once, not a hang
    let err = zk.get("/").unwrap_err();
    assert!(err.is_outcome_unknown(), "{err}");
    // disconnected for longer than the session timeout: lost
    let started = std::time::Instant::now();
    assert!(lost.recv_timeout(Duration::from_secs(15)).is_err());
    assert!(started.elapsed() >= Duration::from_millis(1500), "lost too early: {:?}", started.elapsed());
}
