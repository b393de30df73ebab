//! The operator's toolkit end to end: the traversal engine, dump/load/cp/diff, find/grep/du/count.

use crate::support::*;
use crate::t;
use zkutil::zk::traverse::{self, Walk};
use zkutil::zk::{Acl, ConnectOptions, CreateMode, ZooKeeper, perms, sequence_of};

fn alice() -> ZooKeeper {
    let opts = ConnectOptions { digest: Some("alice:pw".into()), ..ConnectOptions::new(hosts()) };
    t!(opts.connect())
}

#[test]
fn walk_skips_nodes_deleted_meanwhile() {
    let root = unique_root("walk-vanish");
    let zk = connect();
    let mut paths = Vec::new();
    for top in ["a", "b", "c"] {
        paths.push(format!("{root}/{top}"));
        for i in 0..200 {
            paths.push(format!("{root}/{top}/n{i}"));
        }
    }
    for r in zk.create_many(paths.iter().map(|p| (p.as_str(), &b"x"[..], CreateMode::Persistent)), 500) {
        t!(r);
    }
    let other = connect();
    let mut seen = Vec::new();
    // A small window: b's subtree is still unread when the visit of a deletes it.
    let walk = Walk { window: 10, ..Default::default() };
    let stats = t!(walk.run(&zk, &root, |n| {
        if n.path == format!("{root}/a") {
            other.delete_tree(&format!("{root}/b")).unwrap();
        }
        seen.push(n.path);
        Ok(true)
    }));
    assert!(stats.vanished > 0, "{stats:?}");
    assert_eq!(seen[0], root);
    assert!(seen.iter().filter(|p| p.starts_with(&format!("{root}/c/"))).count() == 200);
    assert_eq!(stats.visited as usize, seen.len());
    // parents before children, children sorted: depth-first pre-order
    let a_kids: Vec<&String> = seen.iter().filter(|p| p.starts_with(&format!("{root}/a/"))).collect();
    let mut sorted = a_kids.clone();
    sorted.sort();
    assert_eq!(a_kids, sorted);
    let missing = Walk::default().run(&zk, &format!("{root}/none"), |_| Ok(true));
    assert!(missing.unwrap_err().to_string().contains("does not exist"));
    // delete_tree reports what it did
    let d = t!(traverse::delete_tree(&zk, &root, 50));
    assert_eq!(d.deleted as usize, 1 + 201 + 201);
    assert!(t!(zk.exists(&root)).is_none());
}

#[test]
fn bench_tree_runs() {
    let out = ok(&["bench", "tree", "--nodes", "3000", "--fanout", "10"]);
    for what in ["raw gets:", "walk (list):", "walk (dump):", "delete_tree:", "% of raw deletes"] {
        assert!(out.contains(what), "{out}");
    }
}

/// Builds the round-trip tree under `src` as alice; returns the sequence number a
/// sequential create under `src/q` got just before the dump.
fn build_round_trip_tree(al: &ZooKeeper, anyone: &ZooKeeper, src: &str) -> u32 {
    let open = Acl::open();
    let mk = |p: &str, data: &[u8], mode: CreateMode| {
        t!(al.create_with_acl(&format!("{src}{p}"), data, mode, &open));
    };
    mk("", b"root data", CreateMode::Persistent);
    mk("/bin", b"\x00\xff\xfe binary \x80", CreateMode::Persistent);
    mk("/empty", b"", CreateMode::Persistent);
    mk("/big", &vec![b'z'; 1_000_000], CreateMode::Persistent);
    mk("/utf8", "héllo ✓\nline".as_bytes(), CreateMode::Persistent);
    mk("/cont", b"", CreateMode::Container);
    mk("/cont/kid", b"k", CreateMode::Persistent);
    mk("/ttl", b"t", CreateMode::PersistentWithTtl { ttl_ms: 600_000 });
    mk("/q", b"", CreateMode::Persistent);
    for _ in 0..5 {
        t!(al.create_with_acl(&format!("{src}/q/item-"), b"i", CreateMode::PersistentSequential, &open));
    }
    t!(al.delete(&format!("{src}/q/item-0000000001"), None));
    // alice-only (auth scheme: digest:alice:...), with a subtree: the loader (anonymous) has
    // no READ there, nor CREATE under it once the ACL is in place
    t!(al.create(&format!("{src}/locked"), b"secret", CreateMode::Persistent));
    t!(al.create(&format!("{src}/locked/inner"), b"deeper", CreateMode::Persistent));
    t!(al.create(&format!("{src}/locked/inner/leaf"), b"", CreateMode::Persistent));
    // read-only for everyone, admin for alice's digest
    let (alice_acl, _) = t!(al.get_acl(&format!("{src}/locked")));
    let mut ro = vec![Acl { perms: perms::READ, scheme: "world".into(), id: "anyone".into() }];
    ro.push(Acl { perms: perms::ALL, ..alice_acl[0].clone() });
    mk("/ro", b"ro", CreateMode::Persistent);
    mk("/ro/kid", b"", CreateMode::Persistent);
    t!(al.set_acl(&format!("{src}/ro"), &ro, None));
    // an ephemeral node: left out of the dump
    t!(anyone.create(&format!("{src}/eph"), b"e", CreateMode::Ephemeral));
    // what the next sequential node would be numbered before the dump
    let probe = t!(al.create_with_acl(&format!("{src}/q/item-"), b"", CreateMode::PersistentSequential, &open)).0;
    t!(al.delete(&probe, None));
    sequence_of(&probe).unwrap()
}

#[test]
fn dump_deleteall_load_round_trip() {
    let root = unique_root("roundtrip");
    let src = format!("{root}/src");
    let al = alice();
    let anyone = connect();
    let probe = build_round_trip_tree(&al, &anyone, &src);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tree.ndjson.gz");
    let file = file.to_str().unwrap();

    assert_eq!(ok(&["--auth", "alice:pw", "dump", &src, "--out", file]), "");
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(&bytes[..2], b"\x1f\x8b", "not gzip");
    // anonymous cannot read the locked subtree: a clear error, not a partial silent dump
    let err = fails(&["dump", &src, "--out", dir.path().join("partial").to_str().unwrap()]);
    assert!(err.contains("not authorized"), "{err}");

    ok(&["--auth", "alice:pw", "deleteall", &src]);
    assert!(t!(anyone.exists(&src)).is_none());
    let o = run(&["load", "--preserve-sequence", file]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("created"), "{}", stderr(&o));

    // no difference, seen by alice (who can read everything)
    let d = run(&["--auth", "alice:pw", "diff", file, &src]);
    assert_eq!(d.status.code(), Some(0), "{}{}", stdout(&d), stderr(&d));
    assert_eq!(stdout(&d), "");
    // the outcomes, through the client
    assert_eq!(t!(al.get(&format!("{src}/bin"))).0, b"\x00\xff\xfe binary \x80");
    assert_eq!(t!(al.get(&format!("{src}/big"))).0.len(), 1_000_000);
    assert_eq!(t!(al.get(&format!("{src}/locked/inner"))).0, b"deeper");
    assert!(t!(anyone.exists(&format!("{src}/eph"))).is_none(), "the ephemeral was restored");
    let denied = anyone.get(&format!("{src}/locked")).unwrap_err();
    assert!(denied.to_string().contains("not authorized"), "{denied}");
    assert_eq!(t!(anyone.get(&format!("{src}/ro"))).0, b"ro");
    assert!(anyone.set(&format!("{src}/ro"), b"no", None).is_err());
    // sequential numbering continues past what it had reached
    let next = t!(al.create_with_acl(&format!("{src}/q/item-"), b"", CreateMode::PersistentSequential, &Acl::open())).0;
    assert!(sequence_of(&next).unwrap() > probe, "{next} after probe {probe}");
    t!(al.delete(&next, None));

    // a second load stops at the first existing node; --skip-existing and --dry-run do not write
    let err = fails(&["load", file]);
    assert!(err.contains("exists already"), "{err}");
    ok(&["load", "--skip-existing", file]);
    let plan = ok(&["load", "--dry-run", "--to", &format!("{root}/elsewhere"), file]);
    assert!(plan.contains(&format!("create {root}/elsewhere/bin\n")), "{plan}");
    assert!(t!(anyone.exists(&format!("{root}/elsewhere"))).is_none());
    ok(&["--auth", "alice:pw", "deleteall", &root]);
}

#[test]
fn cp_and_diff() {
    let root = unique_root("cp");
    let zk = connect();
    for (p, d) in [("", "0"), ("/a", "1"), ("/a/b", "2"), ("/c", "3")] {
        t!(zk.create(&format!("{root}/src{p}"), d.as_bytes(), CreateMode::Persistent));
    }
    t!(zk.create(&format!("{root}/src/eph"), b"", CreateMode::Ephemeral));
    let (src, dst) = (format!("{root}/src"), format!("{root}/dst"));
    ok(&["cp", &src, &dst]);
    assert_eq!(t!(zk.get(&format!("{dst}/a/b"))).0, b"2");
    assert!(t!(zk.exists(&format!("{dst}/eph"))).is_none());
    // the same copy through HOSTS:PATH on both sides
    let other = format!("{}:{root}/dst2", hosts());
    ok(&["cp", &format!("{}:{src}", hosts()), &other]);
    assert_eq!(ok(&["diff", &src, &other]), "");
    // differences: changed data, removed, added; exit 1 like diff(1)
    t!(zk.set(&format!("{dst}/a"), b"changed", None));
    t!(zk.delete(&format!("{dst}/c"), None));
    t!(zk.create(&format!("{dst}/new"), b"", CreateMode::Persistent));
    let d = run(&["diff", &src, &dst]);
    assert_eq!(d.status.code(), Some(1));
    let out = stdout(&d);
    assert!(out.contains(&format!("~ {src}/a data: 1 -> changed\n")), "{out}");
    assert!(out.contains(&format!("- {src}/c\n")), "{out}");
    assert!(out.contains(&format!("+ {dst}/new\n")), "{out}");
    let err = fails(&["cp", &src, &format!("{src}/inside")]);
    assert!(err.contains("copy itself"), "{err}");
    // copying onto an existing tree: refused, then --overwrite
    assert!(fails(&["cp", &src, &dst]).contains("exists already"));
    ok(&["cp", "--overwrite", &src, &dst]);
    assert_eq!(t!(zk.get(&format!("{dst}/a"))).0, b"1");
}

#[test]
fn find_grep_du_count() {
    let root = unique_root("find");
    let zk = connect();
    for (p, d) in [("/app", ""), ("/app/cfg", "port=8080\nhost=db1\n"), ("/app/x.lock", "12345"), ("/big", "")] {
        t!(zk.create(&format!("{root}{p}"), d.as_bytes(), CreateMode::Persistent));
    }
    for i in 0..3 {
        t!(zk.create(&format!("{root}/big/k{i}"), b"0123456789", CreateMode::Persistent));
    }
    let eph = t!(zk.create(&format!("{root}/app/member"), b"m", CreateMode::Ephemeral));
    // a node this session may not read: skipped with a warning, the search goes on
    t!(zk.create(&format!("{root}/app/secret"), b"port=1", CreateMode::Persistent));
    t!(zk.set_acl(
        &format!("{root}/app/secret"),
        &[Acl { perms: perms::ADMIN, scheme: "world".into(), id: "anyone".into() }],
        None
    ));

    assert_eq!(ok(&["find", "--name", "*.lock", &root]), format!("{root}/app/x.lock\n"));
    assert_eq!(ok(&["find", "--ephemeral", &root]), format!("{eph}\n"));
    let owner = format!("{:#x}", zk.session_id());
    assert_eq!(ok(&["find", "--owner", &owner, &root]), format!("{eph}\n"));
    assert_eq!(ok(&["find", "--min-children", "3", &root]), format!("{root}/app\n{root}/big\n"));
    assert_eq!(ok(&["find", "--data", "^[0-9]{5}$", &root]), format!("{root}/app/x.lock\n"));
    assert_eq!(ok(&["find", "--older-than", "1h", &root]), "");
    let json = ok(&["find", "--name", "k1", "-o", "json", &root]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(v["path"], format!("{root}/big/k1"));
    assert_eq!(v["stat"]["data_length"], 10);

    let o = run(&["grep", "port=", &root]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), format!("{root}/app/cfg:port=8080\n"));
    assert!(stderr(&o).contains("1 nodes not readable"), "{}", stderr(&o));
    assert_eq!(run(&["grep", "nowhere", &root]).status.code(), Some(1));
    assert_eq!(ok(&["grep", "-l", "db1", &root]), format!("{root}/app/cfg\n"));

    let du = ok(&["du", &root]);
    let lines: Vec<&str> = du.lines().collect();
    assert_eq!(
        lines,
        vec![format!("30\t4\t{root}/big"), format!("25\t4\t{root}/app"), format!("55\t9\t{root}")],
        "{du}"
    );
    // the unreadable node is not counted (and a warning says so)
    assert_eq!(ok(&["count", &root]), "8\n");
    assert_eq!(ok(&["count", &format!("{root}/big/k0")]), "0\n");
    assert!(fails(&["count", &format!("{root}/none")]).contains("does not exist"));
}

/// A tiny deterministic generator (no rand dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

/// The tree under `root` as path -> data, read with the client.
fn snapshot(zk: &ZooKeeper, root: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut m = std::collections::BTreeMap::new();
    t!(Walk { data: true, ..Default::default() }.run(zk, root, |n| {
        m.insert(n.path, n.data.unwrap_or_default());
        Ok(true)
    }));
    m
}

#[test]
fn watch_recursive_rebuilds_the_tree_through_a_server_restart() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    let mut ens = zkutil::server::Ensemble::standalone().expect("start ZooKeeper");
    let hosts = ens.connect_string();
    let zk = connect_to(&hosts);
    let root = "/watched";
    t!(zk.create(root, b"", CreateMode::Persistent));
    let mut child = zkutil(&["watch", "-R", "-o", "json", root])
        .env("ZK_HOSTS", &hosts)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(line.contains("watching 1 nodes"), "{line}");
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                lines.lock().unwrap().push(l.unwrap());
            }
        })
    };

    // 10,000 random creates, sets and deletes; ZooKeeper restarted half way
    let mut rng = Lcg(42);
    for i in 0..10_000u32 {
        if i == 5_000 {
            ens.restart(0).expect("restart ZooKeeper");
        }
        let d = rng.next(8);
        let path = if rng.next(3) == 0 { format!("{root}/d{d}") } else { format!("{root}/d{d}/n{}", rng.next(12)) };
        let _ = match rng.next(3) {
            0 => zk.create(&path, format!("c{i}").as_bytes(), CreateMode::Persistent).map(|_| ()),
            1 => zk.set(&path, format!("s{i}").as_bytes(), None).map(|_| ()),
            _ => zk.delete(&path, None),
        }; // failures (no parent, not empty, connection loss during the restart) are fine
    }

    let expect = snapshot(&zk, root);
    let rebuilt = || {
        let mut m = std::collections::BTreeMap::new();
        m.insert(root.to_string(), Vec::new());
        for l in lines.lock().unwrap().iter() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let p = v["path"].as_str().unwrap().to_string();
            match v["event"].as_str().unwrap() {
                "deleted" => {
                    m.remove(&p);
                }
                _ => {
                    m.insert(p, v["data"].as_str().unwrap_or_default().as_bytes().to_vec());
                }
            }
        }
        m
    };
    let same = wait_until(Duration::from_secs(60), || rebuilt() == expect);
    let got = rebuilt();
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    assert!(
        same,
        "rebuilt from {} events: {} nodes, tree: {} nodes",
        lines.lock().unwrap().len(),
        got.len(),
        expect.len()
    );
    assert!(expect.len() > 20, "the writer built too little: {}", expect.len());
}

#[test]
fn ensemble_status_owner_and_config_on_three_nodes() {
    use zkutil::server::{Ensemble, Options};
    let mut ens = Ensemble::start(Options::for_tests(3)).expect("start a 3-node ensemble");
    let hosts = ens.connect_string();
    let run_on = |args: &[&str]| zkutil(args).env("ZK_HOSTS", &hosts).output().unwrap();

    let o = run_on(&["ensemble", "status"]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let table = stdout(&o);
    assert_eq!(table.matches(" leader ").count(), 1, "{table}");
    assert_eq!(table.matches(" follower ").count(), 2, "{table}");
    let o = run_on(&["ensemble", "status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["healthy"], true);
    assert_eq!(v["members"].as_array().unwrap().len(), 3);
    assert!(v["members"].as_array().unwrap().iter().all(|m| m["lag"].is_i64()), "{v}");

    // owner: the session and client address of an ephemeral node
    let zk = connect_to(&hosts);
    t!(zk.create("/held", b"", CreateMode::Ephemeral));
    let o = run_on(&["owner", "/held"]);
    let line = stdout(&o);
    assert!(line.starts_with(&format!("session {:#x} client 127.0.0.1:", zk.session_id())), "{line}{}", stderr(&o));
    t!(zk.create("/plain", b"", CreateMode::Persistent));
    let o = run_on(&["owner", "/plain"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not an ephemeral node"), "{}", stderr(&o));

    // config: whatever the ensemble holds in /zookeeper/config, and never a failure
    let o = run_on(&["config"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // one member killed: its row says so, and the exit code is 1
    let victim = (0..3).find(|&i| ens.leader() != Some(i)).unwrap();
    ens.kill(victim).unwrap();
    let o = run_on(&["ensemble", "status"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let table = stdout(&o);
    let row = table.lines().find(|l| l.starts_with(&ens.member_address(victim))).unwrap_or_default();
    assert!(row.contains(" down "), "{table}");
}

#[test]
fn watch_recursive_reports_what_changed_while_its_session_was_lost() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    let root = unique_root("watch-lost");
    let zk = connect();
    for p in ["a", "b", "c", "c/d"] {
        t!(zk.create(&format!("{root}/{p}"), p.as_bytes(), CreateMode::Persistent));
    }
    let initial = snapshot(&zk, &root);
    let proxy = Proxy::to(&hosts());
    let mut child = zkutil(&["--session-timeout", "2s", "watch", "-R", "-o", "json", &root])
        .env("ZK_HOSTS", &proxy.addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let collect = |r: Box<dyn std::io::Read + Send>| {
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let l2 = Arc::clone(&lines);
        std::thread::spawn(move || {
            for l in BufReader::new(r).lines() {
                l2.lock().unwrap().push(l.unwrap());
            }
        });
        lines
    };
    let out = collect(Box::new(child.stdout.take().unwrap()));
    let err = collect(Box::new(child.stderr.take().unwrap()));
    let said = |what: &str| err.lock().unwrap().iter().any(|l| l.contains(what));
    assert!(wait_until(Duration::from_secs(30), || said("watching 5 nodes")), "{:?}", err.lock().unwrap());

    // cut off: these changes' events never reach the watcher's session, which is lost
    proxy.cut();
    t!(zk.create(&format!("{root}/new"), b"n", CreateMode::Persistent));
    t!(zk.set(&format!("{root}/a"), b"changed", None));
    t!(zk.delete(&format!("{root}/c/d"), None));
    assert!(wait_until(Duration::from_secs(30), || said("session was lost")), "{:?}", err.lock().unwrap());
    proxy.heal();
    // after the re-read on the new session, events again
    t!(zk.create(&format!("{root}/after"), b"x", CreateMode::Persistent));

    let expect = snapshot(&zk, &root);
    let rebuilt = || {
        let mut m = initial.clone();
        for l in out.lock().unwrap().iter() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let p = v["path"].as_str().unwrap().to_string();
            match v["event"].as_str().unwrap() {
                "deleted" => {
                    m.remove(&p);
                }
                _ => {
                    m.insert(p, v["data"].as_str().unwrap_or_default().as_bytes().to_vec());
                }
            }
        }
        m
    };
    let same = wait_until(Duration::from_secs(60), || rebuilt() == expect);
    let _ = child.kill();
    let _ = child.wait();
    assert!(same, "events: {:?}\nstderr: {:?}", out.lock().unwrap(), err.lock().unwrap());
    // each change reported once: no duplicates from the re-read
    let lines = out.lock().unwrap().clone();
    assert_eq!(lines.iter().filter(|l| l.contains("\"changed\"")).count(), 1, "{lines:?}");
    assert_eq!(lines.len(), 4, "{lines:?}");
}

#[test]
fn dump_filters_and_a_load_of_a_filtered_dump() {
    let root = unique_root("filters");
    let zk = connect();
    for p in ["/s", "/s/a", "/s/a/b", "/s/c", "/s/c/b"] {
        t!(zk.create(&format!("{root}{p}"), p.as_bytes(), CreateMode::Persistent));
    }
    t!(zk.create(&format!("{root}/s/eph"), b"e", CreateMode::Ephemeral));
    let src = format!("{root}/s");
    let paths = |dump: &str| -> Vec<String> {
        dump.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["path"].as_str().map(|p| p.strip_prefix(&src).unwrap().to_string()))
            .collect()
    };
    assert_eq!(paths(&ok(&["dump", &src])), ["", "/a", "/a/b", "/c", "/c/b"]);
    assert_eq!(paths(&ok(&["dump", "--exclude", &format!("{src}/a"), &src])), ["", "/c", "/c/b"]);
    assert_eq!(paths(&ok(&["dump", "--include", &format!("{src}/**/b"), &src])), ["/a/b", "/c/b"]);
    let with_eph = ok(&["dump", "--ephemeral", &src]);
    assert_eq!(paths(&with_eph), ["", "/a", "/a/b", "/c", "/c/b", "/eph"]);
    assert!(with_eph.contains("\"ephemeral\":true"), "{with_eph}");

    // a load of the --include dump creates the missing parents (empty); the ephemeral one
    // comes back persistent
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("part.ndjson");
    std::fs::write(
        &file,
        ok(&["dump", "--include", &format!("{src}/**/b"), "--include", &format!("{src}/eph"), "--ephemeral", &src]),
    )
    .unwrap();
    let to = format!("{root}/restored");
    ok(&["load", "--to", &to, file.to_str().unwrap()]);
    assert_eq!(t!(zk.get(&format!("{to}/a/b"))).0, b"/s/a/b");
    assert_eq!(t!(zk.get(&format!("{to}/a"))).0, b"");
    let (data, stat) = t!(zk.get(&format!("{to}/eph")));
    assert_eq!((data.as_slice(), stat.ephemeral_owner), (&b"e"[..], 0));
}
