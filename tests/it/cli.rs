//! Every znode command end to end through the built binary; outcomes checked with the client.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;

use crate::support::*;
use crate::t;
use zkutil::zk::CreateMode;

#[test]
fn create_get_set_delete_through_the_binary() {
    let root = unique_root("cli-crud");
    let zk = connect();
    let p = format!("{root}/a");
    assert_eq!(ok(&["create", &p, "hello"]), format!("{p}\n"));
    assert_eq!(t!(zk.get(&p)).0, b"hello");
    assert_eq!(ok(&["get", &p]), "hello"); // unchanged through a pipe: no newline added
    let got = ok(&["get", "-s", &p]);
    assert!(got.starts_with("hello\ncZxid = 0x") && got.contains("dataVersion = 0\n"), "{got}");
    ok(&["set", &p, "world"]);
    assert_eq!(t!(zk.get(&p)).0, b"world");
    ok(&["set", "-v", "1", &p, "again"]);
    let err = fails(&["set", "-v", "1", &p, "nope"]);
    assert!(err.contains("version mismatch"), "{err}");
    assert_eq!(t!(zk.get(&p)).0, b"again");
    let st = ok(&["stat", &p]);
    assert!(st.contains("dataVersion = 2\n") && st.contains("dataLength = 5\n"), "{st}");
    ok(&["delete", "-v", "2", &p]);
    assert!(t!(zk.exists(&p)).is_none());
}

#[test]
fn create_flags() {
    let root = unique_root("cli-create");
    let zk = connect();
    let seq = ok(&["create", "-s", &format!("{root}/s-"), "x"]);
    assert!(seq.trim_end().len() == format!("{root}/s-").len() + 10, "{seq}");
    // ephemeral: gone as soon as zkutil exits (its session closes)
    let e = format!("{root}/e");
    ok(&["create", "-e", &e]);
    assert!(t!(zk.exists(&e)).is_none());
    let deep = format!("{root}/x/y/z");
    ok(&["create", "-p", &deep, "d"]);
    assert_eq!(t!(zk.get(&deep)).0, b"d");
    ok(&["create", "-c", &format!("{root}/c")]);
    ok(&["create", "-t", "1m", &format!("{root}/ttl"), "t"]);
    assert!(t!(zk.exists(&format!("{root}/ttl"))).is_some());
    // data from stdin
    let mut child = zkutil(&["create", &format!("{root}/stdin"), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"from\nstdin").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    assert_eq!(t!(zk.get(&format!("{root}/stdin"))).0, b"from\nstdin");
}

#[test]
fn ls_tree_and_deleteall() {
    let root = unique_root("cli-ls");
    let zk = connect();
    for p in ["b", "a", "a/x", "a/x/deep", "c"] {
        t!(zk.create(&format!("{root}/{p}"), b"12345", CreateMode::Persistent));
    }
    assert_eq!(ok(&["ls", &root]), "a\nb\nc\n");
    let all = ok(&["ls", "-R", &root]);
    let expect: Vec<String> =
        ["", "/a", "/a/x", "/a/x/deep", "/b", "/c"].iter().map(|s| format!("{root}{s}")).collect();
    assert_eq!(all.lines().collect::<Vec<_>>(), expect);
    let tree = ok(&["tree", &root]);
    assert!(
        tree.contains("├── a  [5 B]") && tree.contains("│   └── x  [5 B]") && tree.contains("└── c  [5 B]"),
        "{tree}"
    );
    ok(&["deleteall", &root]);
    assert!(t!(zk.exists(&root)).is_none());
    assert!(fails(&["deleteall", &root]).contains("node does not exist"));
}

#[test]
fn binary_data_is_raw_through_a_pipe() {
    let root = unique_root("cli-bin");
    let zk = connect();
    let p = format!("{root}/b");
    t!(zk.create(&p, b"\xff\x1b[31mred\x00", CreateMode::Persistent));
    // escaped only on a terminal (see conventions::get_escapes_only_on_a_terminal)
    assert_eq!(run(&["get", &p]).stdout, b"\xff\x1b[31mred\x00");
    let raw = run(&["get", "--raw", &p]);
    assert_eq!(raw.stdout, b"\xff\x1b[31mred\x00");
}

#[test]
fn watch_prints_each_event() {
    let root = unique_root("cli-watch");
    let zk = connect();
    let p = format!("{root}/w");
    let mut child = zkutil(&["watch", "--count", "2", &p]).stdout(Stdio::piped()).spawn().unwrap();
    // the first line is printed once the watch is armed: no sleep needed
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first, format!("{p}: (no node)\n"));
    t!(zk.create(&p, b"1", CreateMode::Persistent));
    let mut second = String::new();
    out.read_line(&mut second).unwrap();
    t!(zk.set(&p, b"2", None));
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(second + &rest, format!("NodeCreated {p}: 1\nNodeDataChanged {p}: 2\n"));
}

#[test]
fn acl_commands_and_auth() {
    let root = unique_root("cli-acl");
    let p = format!("{root}/secret");
    ok(&["--auth", "bob:pw", "create", &p, "s"]);
    let acl = ok(&["--auth", "bob:pw", "getacl", &p]);
    assert!(acl.starts_with("digest:bob:") && acl.trim_end().ends_with(":cdrwa"), "{acl}");
    assert!(fails(&["get", &p]).contains("not authorized"));
    assert_eq!(ok(&["--auth", "bob:pw", "get", &p]), "s");
    // an ACL granting ADMIN to nobody could never be changed again: refused unless --force
    let err = usage_fails(&["--auth", "bob:pw", "setacl", &p, "world:anyone:r"]);
    assert!(err.contains("grants ADMIN") && err.contains("--force"), "{err}");
    assert!(ok(&["--auth", "bob:pw", "getacl", &p]).starts_with("digest:bob:"), "ACL changed by a refused setacl");
    ok(&["--auth", "bob:pw", "setacl", &p, "world:anyone:r,auth::cdrwa"]);
    assert_eq!(ok(&["get", &p]), "s");
    assert!(fails(&["set", &p, "x"]).contains("not authorized"));
    ok(&["--auth", "bob:pw", "set", &p, "x"]);
    let locked = format!("{root}/locked");
    ok(&["create", &locked]);
    ok(&["setacl", "--force", &locked, "world:anyone:r"]);
    assert!(fails(&["setacl", &locked, "world:anyone:cdrwa"]).contains("not authorized"));
}

#[test]
fn bad_input_gives_one_line_and_exit_1() {
    let root = unique_root("cli-bad");
    let zk = connect();
    t!(zk.create(&format!("{root}/full/child"), b"", CreateMode::Persistent).or_else(|_| {
        zk.create(&format!("{root}/full"), b"", CreateMode::Persistent)?;
        zk.create(&format!("{root}/full/child"), b"", CreateMode::Persistent)
    }));
    assert!(usage_fails(&["get", "no-slash"]).contains("must start with '/'"));
    assert!(usage_fails(&["get", &format!("{root}/")]).contains("invalid path"));
    assert!(fails(&["get", &format!("{root}/missing")]).contains("node does not exist"));
    assert!(fails(&["create", &format!("{root}/full")]).contains("node already exists"));
    assert!(fails(&["delete", &format!("{root}/full")]).contains("node has children"));
    let err = fails(&["create", &format!("{root}/nope/child")]);
    assert!(err.contains(&format!("the parent {root}/nope does not exist")) && err.contains("-p"), "{err}");
    let chroot = format!("{}{root}/missing", hosts());
    let o = zkutil(&["ls", "/"]).env("ZK_HOSTS", &chroot).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&format!("the chroot {root}/missing does not exist")), "{}", stderr(&o));
    let o = zkutil(&["--connect-timeout", "500ms", "ls", "/"]).env("ZK_HOSTS", "127.0.0.1:1").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot reach ZooKeeper at 127.0.0.1:1: connection refused"), "{}", stderr(&o));
    let o = zkutil(&["ls", "/"]).env("ZK_HOSTS", "localhost:notaport").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("bad connect string"), "{}", stderr(&o));
    // usage errors exit 2; a bare number is refused with the expected form
    let o = run(&["--session-timeout", "10", "ls", "/"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("300ms, 2s or 1m"), "{}", stderr(&o));
}

#[test]
fn watch_rides_through_a_dead_zookeeper() {
    // A watcher rides through a lost session (DESIGN: watchers use T and go on with a new
    // session): it says so on stderr, and once ZooKeeper is back it re-reads and goes on.
    let mut server = t!(zkutil::server::Ensemble::standalone());
    let dir = tempfile::tempdir().unwrap();
    let err_file = dir.path().join("stderr");
    let mut child = zkutil(&["--session-timeout", "2s", "--connect-timeout", "2s", "watch", "/"])
        .env("ZK_HOSTS", server.connect_string())
        .stdout(Stdio::piped())
        .stderr(t!(std::fs::File::create(&err_file)))
        .spawn()
        .unwrap();
    let (tx, lines) = crossbeam_channel::unbounded();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || BufReader::new(out).lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let deadline = std::time::Duration::from_secs(30);
    assert_eq!(lines.recv_timeout(deadline).as_deref(), Ok("/: "));
    t!(server.kill(0));
    let said = || std::fs::read_to_string(&err_file).unwrap_or_default();
    assert!(
        wait_until(std::time::Duration::from_secs(30), || said().contains("session was lost")),
        "no word of the lost session: {}",
        said()
    );
    assert!(child.try_wait().unwrap().is_none(), "the watch ended: {}", said());
    t!(server.restart(0));
    // the node as it is now, read with the new session
    assert_eq!(lines.recv_timeout(deadline).as_deref(), Ok("/: "), "{}", said());
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn server_start_status_stop() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("server.state");
    let state = state.to_str().unwrap();
    let data = dir.path().join("data");
    // --port 0: free ports (a fixed base port races with other tests for base+1, base+2)
    let started = ok(&["server", "start", "--port", "0", "--state-file", state, "--data-dir", data.to_str().unwrap()]);
    let port: u16 = started
        .strip_prefix("export ZK_HOSTS=127.0.0.1:")
        .and_then(|p| p.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("{started}"));
    // it outlived `server start`: reachable and reported
    let zk = connect_to(&format!("127.0.0.1:{port}"));
    t!(zk.create("/started", b"", CreateMode::Persistent));
    drop(zk);
    let st = ok(&["server", "status", "--state-file", state]);
    assert!(st.contains(&format!("127.0.0.1:{port}")) && st.contains("standalone"), "{st}");
    assert!(fails(&["server", "start", "--port", &port.to_string(), "--state-file", state]).contains("still running"));
    let o = run(&["server", "stop", "--state-file", state]);
    assert!(o.status.success() && stderr(&o).contains("stopped") && stderr(&o).contains("data kept"), "{o:?}");
    assert!(data.join("zk0").exists(), "server stop removed a --data-dir");
    assert!(fails(&["server", "status", "--state-file", state]).contains("no server recorded"));
    let o = zkutil(&["--connect-timeout", "300ms", "ls", "/"])
        .env("ZK_HOSTS", format!("127.0.0.1:{port}"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "server still serving after stop");
}

#[test]
fn demo_runs_end_to_end() {
    let o = zkutil(&["demo"]).output().unwrap();
    let out = stdout(&o);
    assert!(o.status.success(), "demo failed: {}\n{}", out, stderr(&o));
    assert!(out.contains("$ zkutil create -s /app/job- first\n/app/job-0000000001\n"), "{out}");
    assert!(stderr(&o).contains("zkutil: /app: node has children"), "{}", stderr(&o));
}

#[test]
fn a_closed_stdout_is_success_not_a_panic() {
    let root = unique_root("cli-pipe");
    let zk = connect();
    for i in 0..50 {
        t!(zk.create(&format!("{root}/n{i}"), b"", CreateMode::Persistent));
    }
    // stdout is a pipe whose reader is already gone: every write fails with EPIPE
    for args in [
        vec!["create", "ROOT/made", "x"],
        vec!["ls", "-R", "ROOT"],
        vec!["get", "-s", "ROOT/n1"],
        vec!["completions", "bash"],
        vec!["man"],
    ] {
        let args: Vec<String> = args.iter().map(|a| a.replace("ROOT", &root)).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = zkutil(&args).stdout(writer).stderr(Stdio::piped()).output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{args:?}: {}", stderr(&o));
    }
    assert!(t!(zk.exists(&format!("{root}/made"))).is_some());
}

#[test]
fn ctrl_c_while_connecting_stops_at_once() {
    // A listener that never answers: the connect would wait out its 30 s timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut child = zkutil(&["--connect-timeout", "30s", "watch", "/"])
        .env("ZK_HOSTS", silent.local_addr().unwrap().to_string())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // the handler is armed before the connect starts on its own thread
    let connecting = || {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == "zk-connect"))
    };
    assert!(wait_until(std::time::Duration::from_secs(20), connecting), "never started connecting");
    let asked = std::time::Instant::now();
    t!(zkutil::util::send_signal(pid, nix::sys::signal::Signal::SIGINT));
    assert!(wait_until(std::time::Duration::from_secs(10), || child.try_wait().unwrap().is_some()), "hangs");
    assert!(asked.elapsed() < std::time::Duration::from_secs(10));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn deleteall_clears_a_wide_and_deep_subtree() {
    let root = unique_root("cli-rmr");
    let zk = connect();
    let mut paths = Vec::new();
    for a in 0..5 {
        paths.push(format!("{root}/a{a}"));
        for b in 0..4 {
            paths.push(format!("{root}/a{a}/b{b}"));
            for c in 0..50 {
                paths.push(format!("{root}/a{a}/b{b}/c{c}"));
            }
        }
    }
    let deep: String = (0..30).map(|i| format!("/d{i}")).collect();
    let created = zk.create_many(paths.iter().map(|p| (p.as_str(), &b"x"[..], CreateMode::Persistent)), 500);
    assert!(created.iter().all(|r| r.is_ok()));
    t!(zk.ensure_path(&format!("{root}{deep}"), CreateMode::Persistent));
    let sibling = format!("{root}-sibling");
    t!(zk.create(&sibling, b"", CreateMode::Persistent));
    ok(&["deleteall", &root]);
    assert!(t!(zk.exists(&root)).is_none());
    assert!(t!(zk.exists(&sibling)).is_some(), "deleteall went beyond its subtree");
    assert!(usage_fails(&["deleteall", "/"]).contains("refusing to delete the root"));
}
