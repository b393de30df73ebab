//! Issue 12, "at home in a minute": faithful output, `-o json`, exit codes that mean one
//! thing, help and conventions. Every test runs the built binary.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use zkutil::cmd::crawl::site::{self, Server};
use zkutil::zk::CreateMode;

use crate::support::*;
use crate::t;

/// Parses stdout as exactly one JSON document.
#[track_caller]
fn json(args: &[&str]) -> Value {
    let out = ok(args);
    assert_eq!(out.lines().count(), 1, "{args:?}: one document on one line: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

/// Reads NDJSON lines from a running zkutil until `n` are in; each must parse and carry
/// type, path and time.
fn events(p: &Proc, n: usize) -> Vec<Value> {
    assert!(wait_until(Duration::from_secs(30), || p.lines().len() >= n), "only {:?}", p.lines());
    p.lines()
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert!(v["type"].is_string() && v["path"].is_string() && v["time"].is_string(), "{v}");
            v
        })
        .collect()
}

#[test]
fn get_copies_data_byte_for_byte_through_a_pipe() {
    let root = unique_root("conv-get");
    let zk = connect();
    for (name, data) in [("json", &br#"{"path":"C:\\tmp"}"#[..]), ("bin", b"\xff\x00\x1b[31m\\x"), ("nl", b"line\n")] {
        let (a, b) = (format!("{root}/{name}"), format!("{root}/{name}-copy"));
        t!(zk.create(&a, data, CreateMode::Persistent));
        assert_eq!(run(&["get", &a]).stdout, data, "get changed {name}");
        let exe = env!("CARGO_BIN_EXE_zkutil");
        let o = t!(std::process::Command::new("sh")
            .args(["-c", "\"$0\" get \"$1\" | \"$0\" create \"$2\" -", exe, &a, &b])
            .env("ZK_HOSTS", hosts())
            .output());
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(t!(zk.get(&b)).0, data, "round trip of {name}");
    }
    // what python reads through a pipe is the value itself
    let o = t!(std::process::Command::new("sh")
        .args(["-c", "\"$0\" get \"$1\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"path\"])'"])
        .arg(env!("CARGO_BIN_EXE_zkutil"))
        .arg(format!("{root}/json"))
        .env("ZK_HOSTS", hosts())
        .output());
    assert_eq!(stdout(&o), "C:\\tmp\n", "{}", stderr(&o));
}

#[test]
fn get_escapes_only_on_a_terminal() {
    let root = unique_root("conv-tty");
    let zk = connect();
    let p = format!("{root}/b");
    t!(zk.create(&p, b"\xffok\\", CreateMode::Persistent));
    // script(1) gives the command a pseudo-terminal as stdout
    let cmd = format!("{} get {p}", env!("CARGO_BIN_EXE_zkutil"));
    let o =
        t!(std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("ZK_HOSTS", hosts()).output());
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "\\xffok\\\r\n", "escaped binary, backslash kept, newline added");
    let cmd = format!("{} get --raw {p}", env!("CARGO_BIN_EXE_zkutil"));
    let o =
        t!(std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("ZK_HOSTS", hosts()).output());
    assert_eq!(o.stdout, b"\xffok\\");
}

#[test]
fn usage_errors_exit_2_with_the_commands_usage_line() {
    for (args, usage) in [
        (&["crawl"][..], "Usage: zkutil crawl"),
        (&["crawl", "--reset"], "Usage: zkutil crawl"),
        (&["--auth", "bobnopass", "ls", "/"], "Usage: zkutil ls"),
        (&["get", "ttl"], "Usage: zkutil get"),
        (&["ls", "/a/"], "Usage: zkutil ls"),
        (&["setacl", "/x", "nonsense"], "Usage: zkutil setacl"),
        (&["mutex", "--min-work", "2s", "--max-work", "1s"], "Usage: zkutil mutex"),
        (&["counter", "/c", "add"], "Usage: zkutil counter"),
        (&["queue", "len", "rel/path"], "Usage: zkutil queue len"),
        (&["create", "no-slash"], "Usage: zkutil create"),
        (&["lock", "/l"], "Usage: zkutil lock"),
    ] {
        let err = usage_fails(args);
        let line = err.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(line.starts_with(usage), "{args:?}: {err}");
        // ZK_HOSTS is set: clap would list --hosts in the usage as if it were required
        assert!(!line.contains("--hosts"), "{args:?}: {line}");
    }
}

#[test]
fn absurd_durations_are_usage_errors_never_panics() {
    let huge = "18446744073709551615s";
    let big = "9223372036854775807s";
    for args in [
        &["--connect-timeout", huge, "ls", "/"][..],
        &["--session-timeout", big, "ls", "/"],
        &["lock", "--timeout", big, "/l", "--", "true"],
        &["semaphore", "-n", "1", "--timeout", big, "/s", "--", "true"],
        &["barrier", "wait", "--timeout", big, "/b"],
        &["queue", "consume", "-f", "--timeout", big, "/q"],
        &["kv", "serve", "--request-timeout", big],
        &["kv", "serve", "--write-timeout", huge],
        &["crawl", "--timeout", big, "http://127.0.0.1:1/"],
        &["crawl", "--delay", big, "http://127.0.0.1:1/"],
        &["crawl", "--delay-ms", "18446744073709551615", "http://127.0.0.1:1/"],
        &["mutex", "--max-work", big],
        &["create", "-t", big, "/ttl"],
        &["demo", "--pause", huge],
        &["lock", "--timeout", "101y", "/l", "--", "true"],
    ] {
        let err = usage_fails(args);
        assert!(!err.contains("overflow"), "{args:?}: {err}");
    }
}

#[test]
fn session_timeouts_the_client_cannot_use_are_usage_errors() {
    for t in ["0s", "1ms", "30d"] {
        let err = usage_fails(&["--session-timeout", t, "ls", "/"]);
        assert!(err.contains("not a session timeout the client can use"), "{err}");
    }
    ok(&["--session-timeout", "100ms", "ls", "/"]); // the server raises it to its minimum
}

#[test]
fn every_json_output_parses() {
    let root = unique_root("conv-json");
    let zk = connect();
    let a = format!("{root}/a");
    t!(zk.create(&a, br#"{"k":"C:\\x"}"#, CreateMode::Persistent));
    t!(zk.create(&format!("{a}/kid"), b"\xff\x00", CreateMode::Persistent));

    let v = json(&["-o", "json", "ls", "-s", &a]);
    assert_eq!(v["children"], serde_json::json!(["kid"]));
    assert_eq!(v["stat"]["numChildren"], 1);
    for field in [
        "czxid",
        "mzxid",
        "ctime",
        "mtime",
        "version",
        "cversion",
        "aversion",
        "ephemeralOwner",
        "dataLength",
        "numChildren",
        "pzxid",
    ] {
        assert!(v["stat"][field].is_i64(), "stat field {field}: {v}");
    }
    let v = json(&["ls", "-R", &a, "--output", "json"]);
    assert_eq!(v["paths"], serde_json::json!([a.clone(), format!("{a}/kid")]));
    let v = json(&["-o", "json", "get", "-s", &a]);
    assert_eq!((v["data"].as_str(), v["encoding"].as_str()), (Some(r#"{"k":"C:\\x"}"#), Some("utf-8")));
    assert_eq!(v["stat"]["dataLength"], 13);
    let v = json(&["-o", "json", "get", &format!("{a}/kid")]);
    assert_eq!((v["data"].as_str(), v["encoding"].as_str()), (Some("/wA="), Some("base64")));
    assert_eq!(json(&["-o", "json", "stat", &a])["stat"]["numChildren"], 1);
    let v = json(&["-o", "json", "tree", &root]);
    assert_eq!(v["children"][0]["children"][0]["path"], format!("{a}/kid"));
    assert_eq!(json(&["-o", "json", "getacl", &a])["acl"][0]["scheme"], "world");
    assert_eq!(json(&["-o", "json", "create", &format!("{root}/c"), "x"])["path"], format!("{root}/c"));
    assert_eq!(json(&["-o", "json", "set", "-s", &format!("{root}/c"), "y"])["stat"]["version"], 1);
    assert_eq!(json(&["-o", "json", "counter", &format!("{root}/n"), "add", "3"])["value"], 3);
    assert_eq!(json(&["-o", "json", "digest", "super:test"])["id"], "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");

    let q = format!("{root}/q");
    assert_eq!(json(&["-o", "json", "queue", "produce", &q, "one", "two"])["queued"], 2);
    assert_eq!(json(&["-o", "json", "queue", "len", &q])["length"], 2);
    assert_eq!(json(&["-o", "json", "queue", "peek", "-n", "2", &q])["items"][1]["data"], "two");

    let txn = |json_out: bool| {
        let mut c = zkutil(&if json_out { vec!["-o", "json", "txn"] } else { vec!["txn"] });
        let mut child = t!(c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn());
        let script = format!("create {root}/t1 a\nset {root}/c z\ncheck {root}/c 2\n");
        t!(child.stdin.take().unwrap().write_all(script.as_bytes()));
        t!(child.wait_with_output())
    };
    let o = txn(true);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = t!(serde_json::from_str(&stdout(&o)));
    assert_eq!(v["committed"], true);
    assert_eq!(v["results"][0]["created"], format!("{root}/t1"));
    let o = txn(true); // t1 exists now: rolled back, results still JSON, exit 1
    assert_eq!(o.status.code(), Some(1));
    let v: Value = t!(serde_json::from_str(&stdout(&o)));
    assert_eq!(v["committed"], false);

    let g = format!("{root}/g");
    let member = Proc::start(&["group", "join", &g, "m1", "--data", "10.0.0.1:80", "--", "sleep", "60"]);
    assert!(wait_until(Duration::from_secs(20), || zk.exists(&format!("{g}/m1")).ok().flatten().is_some()));
    let v = json(&["-o", "json", "group", "list", &g]);
    assert_eq!((v["members"][0]["name"].as_str(), v["members"][0]["data"].as_str()), (Some("m1"), Some("10.0.0.1:80")));
    let watch = Proc::start(&["-o", "json", "group", "list", "--watch", &g]);
    assert_eq!(events(&watch, 1)[0]["type"], "join");
    member.signal(nix::sys::signal::Signal::SIGTERM);
    let ev = events(&watch, 2);
    assert_eq!((ev[1]["type"].as_str(), ev[1]["name"].as_str()), (Some("leave"), Some("m1")));
    drop(watch);
    drop(member);

    let e = format!("{root}/e");
    let _leader = Proc::start(&["election", "run", "--id", "boss", &e, "--", "sleep", "60"]);
    assert!(wait_until(Duration::from_secs(20), || run(&["election", "leader", &e]).status.success()));
    assert_eq!(json(&["-o", "json", "election", "leader", &e])["leader"], "boss");
    let watch = Proc::start(&["-o", "json", "election", "leader", "--watch", &e]);
    assert_eq!(events(&watch, 1)[0]["leader"], "boss");

    let w = format!("{root}/w");
    let watch = Proc::start(&["-o", "json", "watch", "-n", "1", &w]);
    assert_eq!(events(&watch, 1)[0]["exists"], false);
    t!(zk.create(&w, b"hi", CreateMode::Persistent));
    let ev = events(&watch, 2);
    assert_eq!((ev[1]["type"].as_str(), ev[1]["data"].as_str()), (Some("NodeCreated"), Some("hi")));

    let consume = run(&["-o", "json", "queue", "consume", &q]);
    let items: Vec<Value> = stdout(&consume).lines().map(|l| t!(serde_json::from_str(l))).collect();
    assert_eq!(items.len(), 2);
    assert_eq!((items[0]["type"].as_str(), items[0]["data"].as_str()), (Some("item"), Some("one")));

    let server = t!(Server::start(site::generated(3, 2)));
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("urls.txt");
    let start = format!("{}/p/0.html", server.base("127.0.0.1"));
    let args = ["-o", "json", "crawl", &start, "--dedupe", "memory", "--ignore-robots", "--out", out.to_str().unwrap()];
    let v = json(&args);
    assert_eq!(v["fetched"], 3, "{v}");
}

#[test]
fn status_goes_to_stderr_and_q_silences_it() {
    let root = unique_root("conv-status");
    let b = format!("{root}/b");
    let o = run(&["barrier", "hold", &b]);
    assert!(o.status.success() && o.stdout.is_empty() && stderr(&o).contains("is up"), "{o:?}");
    let o = run(&["-q", "barrier", "release", &b]);
    assert!(o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(), "{o:?}");
    // group join: stdout is CMD's alone
    let o = run(&["group", "join", &format!("{root}/g"), "m", "--", "echo", "from-cmd"]);
    assert_eq!(stdout(&o), "from-cmd\n");
    assert!(stderr(&o).contains("joined"), "{}", stderr(&o));
    // double barrier: entered/left on stderr, CMD's line alone on stdout
    let o = run(&["barrier", "wait", "-n", "1", &format!("{root}/d"), "--", "echo", "work"]);
    assert_eq!(stdout(&o), "work\n");
    assert!(stderr(&o).contains("entered") && stderr(&o).contains("left"), "{}", stderr(&o));
    let o = run(&["-q", "barrier", "wait", "-n", "1", &format!("{root}/d"), "--", "echo", "work"]);
    assert_eq!((stdout(&o).as_str(), stderr(&o).as_str()), ("work\n", ""));
}

#[test]
fn not_acquired_exits_with_the_conflict_code() {
    let root = unique_root("conv-conflict");
    let l = format!("{root}/l");
    let holder = Proc::start(&["lock", &l, "--", "sleep", "60"]);
    assert!(wait_until(Duration::from_secs(20), || connect().children(&l).is_ok_and(|c| c.len() == 1)));
    // --timeout 0s: do not wait
    let err = conflict_fails(&["lock", "--timeout", "0s", &l, "--", "echo", "never"]);
    assert!(err.contains("not acquired"), "{err}");
    let o = run(&["lock", "--timeout", "0s", "--conflict-exit-code", "9", &l, "--", "true"]);
    assert_eq!(o.status.code(), Some(9));
    // CMD's own failure keeps its code: distinguishable from "someone else had it"
    holder.signal(nix::sys::signal::Signal::SIGTERM);
    holder.finish();
    assert_eq!(run(&["lock", &l, "--", "sh", "-c", "exit 75"]).status.code(), Some(75));
    assert_eq!(run(&["lock", &l, "--", "sh", "-c", "exit 3"]).status.code(), Some(3));

    let s = format!("{root}/s");
    let _lease = Proc::start(&["semaphore", "-n", "1", &s, "--", "sleep", "60"]);
    assert!(wait_until(Duration::from_secs(20), || run(&[
        "semaphore",
        "-n",
        "1",
        "--timeout",
        "0s",
        &s,
        "--",
        "true"
    ])
    .status
    .code()
        == Some(75)));
    let b = format!("{root}/b");
    ok(&["barrier", "hold", &b]);
    conflict_fails(&["barrier", "wait", "--timeout", "100ms", &b]);
    conflict_fails(&["barrier", "wait", "-n", "2", "--timeout", "100ms", &format!("{root}/d")]);
}

#[test]
fn a_cmd_that_cannot_start_exits_127_or_126_before_anything_is_taken() {
    let root = unique_root("conv-cmd");
    let zk = connect();
    let dir = t!(tempfile::tempdir());
    let noexec = dir.path().join("script.sh");
    t!(std::fs::write(&noexec, "#!/bin/sh\necho hi\n"));
    let noexec = noexec.to_str().unwrap();
    for (cmd, code) in [("no-such-command-zk12", 127), ("/no/such/file", 127), (noexec, 126)] {
        for sub in [
            vec!["lock", "ROOT/l", "--", cmd],
            vec!["semaphore", "-n", "1", "ROOT/s", "--", cmd],
            vec!["barrier", "wait", "-n", "1", "ROOT/b", "--", cmd],
            vec!["group", "join", "ROOT/g", "m", "--", cmd],
            vec!["election", "run", "ROOT/e", "--", cmd],
            vec!["queue", "consume", "ROOT/q", "--", cmd],
        ] {
            let args: Vec<String> = sub.iter().map(|a| a.replace("ROOT", &root)).collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let o = run(&args);
            assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
            assert!(stderr(&o).starts_with("zkutil: ") && stderr(&o).contains(cmd), "{}", stderr(&o));
        }
    }
    assert_eq!(t!(zk.children(&root)), Vec::<String>::new(), "something was taken");
}

#[test]
fn refused_connections_fail_fast_and_hosts_get_default_ports() {
    let t0 = Instant::now();
    let o =
        zkutil(&["--connect-timeout", "30s", "ls", "/"]).env("ZK_HOSTS", "127.0.0.1:1,127.0.0.1:2").output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(t0.elapsed() < Duration::from_secs(10), "waited {:?}", t0.elapsed());
    assert!(stderr(&o).contains("at 127.0.0.1:1,127.0.0.1:2: connection refused by every host"), "{}", stderr(&o));
    // no port: 2181 (something may listen there on a shared machine: then it simply works)
    let o = zkutil(&["--connect-timeout", "2s", "ls", "/"]).env("ZK_HOSTS", "127.0.0.1").output().unwrap();
    assert!(o.status.success() || stderr(&o).contains("127.0.0.1:2181"), "{}", stderr(&o));
    // an IPv6 literal: a relay on [::1] in front of the shared server
    let Ok(relay) = TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback here; skipping the [::1] case");
        return;
    };
    let port = relay.local_addr().unwrap().port();
    let target = hosts();
    std::thread::spawn(move || {
        for client in relay.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else { continue };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (mut c, mut s) = (client, server);
            std::thread::spawn(move || std::io::copy(&mut c, &mut s2));
            std::thread::spawn(move || std::io::copy(&mut s, &mut c2));
        }
    });
    let o = zkutil(&["ls", "/"]).env("ZK_HOSTS", format!("[::1]:{port}")).output().unwrap();
    assert!(o.status.success() && stdout(&o).contains("zookeeper"), "{}", stderr(&o));
}

/// Every (sub)command path, e.g. ["queue", "consume"].
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let mut p = prefix.to_vec();
            p.push(sub.get_name().to_string());
            out.push(p.clone());
            walk(sub, &p, out);
        }
    }
    let mut out = vec![vec![]];
    walk(&<zkutil::cli::Cli as clap::CommandFactory>::command(), &[], &mut out);
    out
}

#[test]
fn every_help_puts_global_options_under_their_own_heading() {
    let paths = command_paths();
    assert!(paths.len() > 40, "{paths:?}");
    for p in &paths {
        let mut args: Vec<&str> = p.iter().map(String::as_str).collect();
        args.push("--help");
        let help = ok(&args);
        let (own, global) = help.split_once("\nGlobal options:\n").unwrap_or_else(|| panic!("{args:?}:\n{help}"));
        for flag in ["--hosts", "--session-timeout", "--connect-timeout", "--auth", "--output", "--quiet"] {
            assert!(global.contains(flag), "{args:?}: {flag} not under Global options:\n{help}");
            // the whole flag: `--hosts-rig` is not `--hosts`
            let names = |r: &str| {
                r.strip_prefix(flag).is_some_and(|rest| !rest.starts_with(|c: char| c.is_alphanumeric() || c == '-'))
            };
            let listed = |l: &str| {
                let l = l.trim_start();
                names(l) || (l.starts_with('-') && l.get(4..).is_some_and(names))
            };
            let own_options = own.split_once("\nOptions:\n").map_or("", |(_, o)| o);
            assert!(!own_options.lines().any(listed), "{args:?}: {flag} among the command's own:\n{help}");
        }
        let usage = help.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(!usage.contains("--hosts"), "{args:?}: {usage}");
    }
    // every argument and subcommand has a description
    fn undescribed(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            if a.get_help().is_none() && !["help", "version"].contains(&a.get_id().as_str()) {
                out.push(format!("{path} {}", a.get_id()));
            }
        }
        for s in cmd.get_subcommands() {
            let sp = format!("{path} {}", s.get_name());
            if s.get_about().is_none() {
                out.push(sp.clone());
            }
            undescribed(s, &sp, out);
        }
    }
    let mut missing = Vec::new();
    undescribed(&<zkutil::cli::Cli as clap::CommandFactory>::command(), "zkutil", &mut missing);
    assert!(missing.is_empty(), "no description: {missing:?}");
}

#[test]
fn completions_man_page_and_version() {
    let dir = t!(tempfile::tempdir());
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(&["completions", shell]);
        assert!(script.contains("zkutil") && script.contains("deleteall"), "{shell}");
        if shell == "bash" {
            let f = dir.path().join("zkutil.bash");
            t!(std::fs::write(&f, &script));
            let o = t!(std::process::Command::new("bash").arg("-n").arg(&f).output());
            assert!(o.status.success(), "bash -n: {}", stderr(&o));
        }
    }
    usage_fails(&["completions", "powershell-ish"]);
    let man = ok(&["man"]);
    assert!(man.starts_with(".ie") || man.contains(".TH zkutil"), "{}", &man[..200.min(man.len())]);
    let mandir = dir.path().join("man");
    ok(&["man", "--dir", mandir.to_str().unwrap()]);
    assert!(mandir.join("zkutil.1").exists() && mandir.join("zkutil-queue-consume.1").exists());
    let v = ok(&["--version"]);
    assert!(v.starts_with("zkutil ") && v.contains("ZooKeeper C client 3.8.") && v.contains(", git "), "{v}");
}

#[test]
fn digest_prints_the_id_and_setacl_refuses_a_password_for_a_hash() {
    let root = unique_root("conv-digest");
    let p = format!("{root}/n");
    ok(&["create", &p, "d"]);
    let id = ok(&["digest", "bob:pw"]);
    let id = id.trim_end();
    assert!(id.starts_with("digest:bob:") && id.len() == "digest:bob:".len() + 28, "{id}");
    let err = usage_fails(&["setacl", &p, "digest:bob:pw:cdrwa"]);
    assert!(err.contains("zkutil digest") && err.contains("--force"), "{err}");
    assert_eq!(ok(&["getacl", &p]), "world:anyone:cdrwa\n", "a refused setacl changed the ACL");
    ok(&["setacl", &p, &format!("{id}:cdrwa")]);
    assert!(fails(&["get", &p]).contains("not authorized"));
    assert_eq!(ok(&["--auth", "bob:pw", "get", &p]), "d");
    // --force sets it anyway
    let q = format!("{root}/forced");
    ok(&["create", &q]);
    ok(&["setacl", "--force", &q, "digest:bob:pw:r,world:anyone:cdrwa"]);
}

#[test]
fn server_start_on_port_0_is_evalable_and_stop_removes_its_temp_dir() {
    let dir = t!(tempfile::tempdir());
    let state = dir.path().join("s.state");
    let state = state.to_str().unwrap();
    let script = format!(
        "eval \"$(\"$0\" server start --port 0 --state-file {state})\" && \"$0\" create /evaled yes && echo \"$ZK_HOSTS\""
    );
    let o = t!(std::process::Command::new("sh").args(["-c", &script, env!("CARGO_BIN_EXE_zkutil")]).output());
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("log in ") && err.contains("removed by stop"), "{err}");
    let hosts = stdout(&o).lines().last().unwrap().to_string();
    assert!(hosts.starts_with("127.0.0.1:") && !hosts.ends_with(":2181"), "{hosts}");
    let st: Value = t!(serde_json::from_str(&ok(&["-o", "json", "server", "status", "--state-file", state])));
    assert_eq!(st["hosts"], hosts.as_str());
    assert_eq!(st["members"][0]["mode"], "standalone");
    let data_dir = std::path::PathBuf::from(st["data_dir"].as_str().unwrap());
    assert!(data_dir.exists());
    // a second default server while this one runs: the error names --state-file
    let again = fails(&["server", "start", "--port", "0", "--state-file", state]);
    assert!(again.contains("--state-file"), "{again}");
    let o = run(&["server", "stop", "--state-file", state]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!data_dir.exists(), "server stop left its temporary data directory {}", data_dir.display());
}

#[test]
fn crawl_keeps_the_out_file_when_nothing_is_new_and_takes_delay_with_a_unit() {
    let server = t!(Server::start(site::generated(4, 2)));
    let dir = t!(tempfile::tempdir());
    let out = dir.path().join("urls.txt");
    let out_s = out.to_str().unwrap();
    let name = format!("conv-crawl-{}", std::process::id());
    let start = format!("{}/p/0.html", server.base("127.0.0.1"));
    let crawl = |extra: &[&str]| {
        let mut args = vec!["crawl", &start, "--name", &name, "--ignore-robots", "--delay", "1ms"];
        args.extend_from_slice(extra);
        run(&args)
    };
    let o = crawl(&["--out", out_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = t!(std::fs::read_to_string(&out));
    assert_eq!(first.lines().count(), 4, "{first}");
    let o = crawl(&["--out", out_s]); // everything claimed already: nothing to fetch
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(t!(std::fs::read_to_string(&out)), first, "an empty second crawl emptied --out");
    // --out - : stdout
    let o = crawl(&["--reset", "--out", "-", "--format", "plain"]);
    assert_eq!(stdout(&o).lines().count(), 4, "{}", stderr(&o));
    assert!(!ok(&["crawl", "--help"]).contains("--delay-ms"), "the old flag is hidden");
    ok(&["crawl", "--reset", "--name", &name]);
    let err = fails(&["crawl", "--reset", "--name", &name]);
    assert!(err.contains("no crawl named"), "{err}");
}

#[test]
fn counter_set_repairs_a_non_integer() {
    let root = unique_root("conv-counter");
    let c = format!("{root}/c");
    ok(&["create", &c, "not a number"]);
    assert!(fails(&["counter", &c, "add", "1"]).contains("not a decimal integer"));
    assert_eq!(ok(&["counter", &c, "set", "5"]), "5\n");
    assert_eq!(ok(&["counter", &c, "add", "1"]), "6\n");
}

#[test]
fn tools_zkbench_builds_with_its_one_line_command_and_runs() {
    let dir = t!(tempfile::tempdir());
    let exe = dir.path().join("zkbench");
    // the command of tools/zkbench.c's header and the README
    let build = format!(
        "cc -O2 -o {} {}/tools/zkbench.c -I/usr/include/zookeeper /usr/lib/$(gcc -print-multiarch)/libzookeeper_mt.a -lpthread",
        exe.display(),
        env!("CARGO_MANIFEST_DIR")
    );
    let o = t!(std::process::Command::new("sh").args(["-c", &build]).output());
    assert!(o.status.success(), "{}", stderr(&o));
    let o = t!(std::process::Command::new(&exe).args([hosts().as_str(), "20"]).output());
    assert!(o.status.success() && stdout(&o).contains("pairs/s"), "{}{}", stdout(&o), stderr(&o));
}
