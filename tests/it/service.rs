//! `zkutil service register|list`: Curator's ServiceDiscovery layout and ServiceInstance
//! field names, an instance written as Curator writes it, `list --watch`, and a registration
//! that survives the loss of its session (ZooKeeper down for longer than the session timeout).

use std::io::{BufRead, BufReader};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;
use zkutil::server::{Ensemble, Options};
use zkutil::zk::CreateMode;

use crate::support::*;
use crate::t;

#[test]
fn register_writes_a_curator_service_instance_and_list_reads_it() {
    let base = format!("{}/services", unique_root("service"));
    let p = Proc::start(&[
        "service",
        "register",
        "web",
        "--base",
        &base,
        "--address",
        "10.0.0.7",
        "--port",
        "8080",
        "--payload",
        r#"{"zone": "a"}"#,
        "--uri-spec",
        "{scheme}://{address}:{port}",
    ]);
    let id = p.wait_line("-", Duration::from_secs(20)).expect("the instance id");
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let zk = connect();
    let node = format!("{base}/web/{id}");
    let (raw, st) = t!(zk.get(&node));
    assert_ne!(st.ephemeral_owner, 0, "DYNAMIC: an ephemeral node");
    let v: Value = t!(serde_json::from_slice(&raw));
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    // curator-x-discovery's OldServiceInstance (the default serializer's fields)
    assert_eq!(
        keys,
        ["address", "id", "name", "payload", "port", "registrationTimeUTC", "serviceType", "sslPort", "uriSpec"]
    );
    assert_eq!(v["name"], "web");
    assert_eq!(v["id"], id.as_str());
    assert_eq!(v["port"], 8080);
    assert_eq!(v["sslPort"], Value::Null);
    assert_eq!(v["payload"]["zone"], "a");
    assert_eq!(v["serviceType"], "DYNAMIC");
    assert!(v["registrationTimeUTC"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(v["uriSpec"]["parts"][0], serde_json::json!({"value": "scheme", "variable": true}));
    assert_eq!(v["uriSpec"]["parts"][1], serde_json::json!({"value": "://", "variable": false}));

    // as a Java service with Curator registers (Jackson's type id in the payload, `enabled`)
    let java = format!("{base}/web/java-1");
    let curator = r#"{"name":"web","id":"java-1","address":"10.0.0.8","port":9090,"sslPort":null,"payload":{"@class":"java.util.LinkedHashMap","zone":"b"},"registrationTimeUTC":1796284805000,"serviceType":"DYNAMIC","uriSpec":null,"enabled":true}"#;
    t!(zk.create(&java, curator.as_bytes(), CreateMode::Ephemeral));
    let mut lines: Vec<String> = ok(&["service", "list", "web", "--base", &base]).lines().map(str::to_string).collect();
    lines.sort();
    let mut want = vec![
        format!("{id}\t10.0.0.7\t8080\t{{\"zone\":\"a\"}}"),
        "java-1\t10.0.0.8\t9090\t{\"@class\":\"java.util.LinkedHashMap\",\"zone\":\"b\"}".to_string(),
    ];
    want.sort();
    assert_eq!(lines, want);
    assert_eq!(ok(&["service", "list", "--base", &base]), "web\n");
    let v: Value = t!(serde_json::from_str(&ok(&["-o", "json", "service", "list", "web", "--base", &base])));
    let ids: Vec<&str> = v["instances"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert!(ids.contains(&"java-1") && ids.contains(&id.as_str()), "{v}");

    p.signal(Signal::SIGTERM);
    let (code, _, err) = p.finish();
    assert_eq!(code, Some(143), "{err}");
    assert!(t!(zk.exists(&node)).is_none(), "unregistered at once");
}

#[test]
fn list_watch_reports_instances_coming_and_going() {
    let base = format!("{}/services", unique_root("service-watch"));
    let w = Proc::start(&["service", "list", "api", "--watch", "--base", &base]);
    let r =
        Proc::start(&["service", "register", "api", "--base", &base, "--address", "h1", "--port", "1", "--id", "i1"]);
    assert!(w.wait_line("+i1\th1\t1\t-", Duration::from_secs(20)).is_some(), "{:?}", w.lines());
    r.signal(Signal::SIGTERM);
    assert!(w.wait_line("-i1", Duration::from_secs(20)).is_some(), "{:?}", w.lines());
    // a CMD: the registration ends when it exits (here once the watcher saw it), with its code
    let dir = t!(tempfile::tempdir());
    let flag = dir.path().join("go");
    let cmd = format!("while [ ! -e {} ]; do sleep 0.05; done; exit 3", flag.display());
    let r2 = Proc::start(&[
        "service",
        "register",
        "api",
        "--base",
        &base,
        "--address",
        "h2",
        "--id",
        "i2",
        "--",
        "sh",
        "-c",
        &cmd,
    ]);
    assert!(w.wait_line("+i2\th2\t-\t-", Duration::from_secs(20)).is_some(), "{:?}", w.lines());
    t!(std::fs::write(&flag, b""));
    let (code, lines, err) = r2.finish();
    assert_eq!(code, Some(3), "{err}");
    assert_eq!(lines, ["i2"]);
    assert!(w.wait_line("-i2", Duration::from_secs(20)).is_some(), "{:?}", w.lines());
}

#[test]
fn bad_input_is_one_error_line() {
    let err = fails(&["service", "register", "web", "--address", "h", "--payload", "{nope"]);
    assert!(err.contains("--payload: not JSON"), "{err}");
    let err = fails(&["service", "register", "web", "--address", "h", "--uri-spec", "{a"]);
    assert!(err.contains("--uri-spec"), "{err}");
    let err = fails(&["service", "register", "a/b", "--address", "h"]);
    assert!(err.contains("cannot be a service name"), "{err}");
}

#[test]
fn a_registration_comes_back_after_its_session_is_lost() {
    let mut server = t!(Ensemble::start(Options::for_tests(1)));
    let hosts = server.connect_string();
    let mut p = Proc::start_on(
        &hosts,
        &[
            "--session-timeout",
            "2s",
            "--connect-timeout",
            "2s",
            "service",
            "register",
            "db",
            "--address",
            "h",
            "--id",
            "d1",
        ],
    );
    let errs = Arc::new(Mutex::new(String::new()));
    let (e, pipe) = (errs.clone(), p.child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            e.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    assert!(p.wait_line("d1", Duration::from_secs(20)).is_some());
    let zk = connect_to(&hosts);
    let old = t!(zk.exists("/services/db/d1")).expect("registered").ephemeral_owner;
    drop(zk);
    // ZooKeeper down for longer than the session timeout: the instance knows it is gone
    t!(server.stop(0));
    let err = || errs.lock().unwrap().clone();
    assert!(
        wait_until(Duration::from_secs(30), || err().contains("registering again with a new session")),
        "{}",
        err()
    );
    t!(server.restart(0));
    let zk = connect_to(&hosts);
    assert!(
        wait_until(Duration::from_secs(40), || zk
            .exists("/services/db/d1")
            .ok()
            .flatten()
            .is_some_and(|s| s.ephemeral_owner != old)),
        "never registered again: {}",
        err()
    );
    let v: Value = t!(serde_json::from_slice(&t!(zk.get("/services/db/d1")).0));
    assert_eq!(v["id"], "d1");
}
