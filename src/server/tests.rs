//! Tests of the launcher against real ZooKeeper JVMs. Waits are deadlines, not sleeps.

use super::process::{self, proc_state};
use super::*;

const HELPER_ENV: &str = "ZKUTIL_SERVER_TEST_HELPER";

/// Polls `cond` every 20 ms until it holds or `within` passes.
fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// No process with this pid, or only a zombie (exited, waiting for a reaper that is not us).
fn gone(pid: u32) -> bool {
    matches!(proc_state(pid), None | Some('Z'))
}

fn start(opts: Options) -> Ensemble {
    let t = Instant::now();
    let nodes = opts.nodes;
    let e = Ensemble::start(opts).unwrap_or_else(|e| panic!("start ZooKeeper: {e}"));
    eprintln!("{nodes}-node ZooKeeper serving after {:?}", t.elapsed());
    e
}

#[test]
fn standalone_serves_and_drop_kills() {
    let zk = start(Options::for_tests(1));
    assert_eq!(zk.len(), 1);
    let addr = zk.connect_string();
    let port: u16 =
        addr.strip_prefix("127.0.0.1:").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("connect string {addr}"));
    assert_eq!(zk.member_address(0), addr);
    let srvr = process::four_letter(IpAddr::V4(Ipv4Addr::LOCALHOST), port, "srvr").expect("srvr");
    assert!(srvr.contains("Mode: standalone"), "srvr said {srvr:?}");
    assert_eq!(zk.mode(0).as_deref(), Some("standalone"));
    assert_eq!(zk.leader(), Some(0));
    let pid = zk.pids()[0].expect("pid");
    // The pid is the JVM's, not a wrapper's.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).expect("cmdline");
    assert!(String::from_utf8_lossy(&cmdline).contains("QuorumPeerMain"));
    let log = zk.log_path(0);
    assert!(wait_until(Duration::from_secs(5), || { std::fs::metadata(&log).map(|m| m.len() > 0).unwrap_or(false) }));
    let base = zk.base_dir().to_path_buf();
    drop(zk);
    assert!(gone(pid), "JVM {pid} survived Drop");
    assert!(!base.exists(), "temporary directory {} kept", base.display());
}

#[test]
fn standalone_restart_on_same_data_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = Options { data_dir: Some(dir.path().to_path_buf()), ..Options::for_tests(1) };
    let mut zk = start(opts.clone());
    let first = zk.pids()[0].expect("pid");
    let t = Instant::now();
    zk.restart(0).expect("restart");
    eprintln!("standalone restart (graceful stop + start) took {:?}", t.elapsed());
    let second = zk.pids()[0].expect("pid");
    assert_ne!(first, second);
    assert!(gone(first));
    assert_eq!(zk.mode(0).as_deref(), Some("standalone"));

    zk.kill(0).expect("kill");
    assert_eq!(zk.pids(), vec![None]);
    assert!(gone(second));
    assert_eq!(zk.mode(0), None);
    assert_eq!(zk.leader(), None);
    drop(zk);

    // A new Ensemble on the same directory finds the old data and serves.
    assert!(dir.path().join("zk0/data/version-2").is_dir());
    let zk = start(opts);
    assert_eq!(zk.mode(0).as_deref(), Some("standalone"));
    drop(zk);
    assert!(dir.path().exists(), "a given data dir must be kept");
}

#[test]
fn ensemble_survives_leader_crash_and_member_rejoins() {
    let mut zk = start(Options::for_tests(3));
    assert_eq!(zk.len(), 3);
    assert_eq!(zk.connect_string().split(',').count(), 3);
    assert!(zk.connect_string().split(',').all(|a| a.starts_with("127.0.0.1:")));
    let leader = zk.leader().expect("a leader");
    let modes: Vec<_> = (0..3).map(|i| zk.mode(i)).collect();
    assert_eq!(modes.iter().filter(|m| m.as_deref() == Some("follower")).count(), 2, "modes {modes:?}");

    let old_pid = zk.pids()[leader].expect("leader pid");
    let t = Instant::now();
    zk.kill(leader).expect("kill leader");
    assert!(gone(old_pid), "leader JVM {old_pid} still alive after kill");
    assert!(!zk.is_running(leader));
    let mut new_leader = None;
    assert!(
        wait_until(Duration::from_secs(15), || {
            new_leader = zk.leader();
            new_leader.is_some()
        }),
        "no new leader"
    );
    eprintln!("new leader {new_leader:?} after {:?}", t.elapsed());
    assert_ne!(new_leader, Some(leader));

    let t = Instant::now();
    zk.restart(leader).expect("restart old leader");
    eprintln!("old leader rejoined after {:?}", t.elapsed());
    assert_eq!(zk.mode(leader).as_deref(), Some("follower"));
    assert_eq!(zk.leader(), new_leader);

    let pids: Vec<u32> = zk.pids().into_iter().map(|p| p.expect("pid")).collect();
    drop(zk);
    for pid in pids {
        assert!(gone(pid), "JVM {pid} survived Drop");
    }
}

#[test]
fn detached_state_status_and_stop() {
    let zk = start(Options { tick_ms: 500, light_jvm: true, ..Options::default() });
    let state = zk.detach();
    // Stop it whatever happens below.
    struct Guard(State);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = stop_detached(&self.0, Duration::from_secs(5));
            let _ = std::fs::remove_dir_all(&self.0.base_dir);
        }
    }
    let guard = Guard(state.clone());

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sub/server.state");
    state.save(&path).expect("save");
    let loaded = State::load(&path).expect("load");
    assert_eq!(loaded, state);

    let st = status(&loaded);
    assert_eq!(st.len(), 1);
    assert!(st[0].alive);
    assert_eq!(st[0].mode.as_deref(), Some("standalone"));
    assert_eq!(st[0].address, loaded.connect_string());

    stop_detached(&loaded, Duration::from_secs(10)).expect("stop");
    let st = status(&loaded);
    assert!(!st[0].alive);
    assert_eq!(st[0].mode, None);
    drop(guard);
}

#[test]
fn die_with_parent_kills_jvm_when_process_exits() {
    // Run the helper below in a child test process; it starts a server, prints the pid and
    // exits without dropping the Ensemble.
    let out = std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", "server::tests::helper_start_and_exit", "--ignored", "--nocapture", "--test-threads=1"])
        .env(HELPER_ENV, "1")
        .output()
        .expect("run helper");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.split_once("ZKPID=").map(|(_, p)| p))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "helper printed no pid: {}\nstdout: {stdout}\nstderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let t = Instant::now();
    assert!(wait_until(Duration::from_secs(10), || gone(pid)), "JVM {pid} outlived its parent");
    eprintln!("orphaned JVM gone {:?} after its parent exited", t.elapsed());
}

/// Not a test on its own: the child process of `die_with_parent_kills_jvm_when_process_exits`.
#[test]
#[ignore = "helper run by die_with_parent_kills_jvm_when_process_exits"]
fn helper_start_and_exit() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    let zk = Ensemble::standalone().expect("start");
    println!("ZKPID={}", zk.pids()[0].expect("pid"));
    println!("ZKDIR={}", zk.base_dir().display());
    // Like a `static`: never dropped.
    std::mem::forget(zk);
    std::process::exit(0);
}

#[test]
fn bad_node_count_is_an_error() {
    let err = Ensemble::start(Options { nodes: 2, ..Options::default() }).unwrap_err();
    assert!(err.to_string().contains("1 or 3"), "{err}");
}

#[test]
fn state_text_round_trip_and_errors() {
    let s = State {
        base_dir: PathBuf::from("/tmp/a b"),
        temporary: true,
        members: vec![
            MemberState {
                pid: 1,
                address: IpAddr::V4(Ipv4Addr::LOCALHOST),
                client_port: 2181,
                dir: PathBuf::from("/tmp/a b/zk0"),
            },
            MemberState {
                pid: 2,
                address: "10.77.0.2".parse().unwrap(),
                client_port: 2182,
                dir: PathBuf::from("/tmp/a b/zk1"),
            },
        ],
    };
    let p = Path::new("x.state");
    assert_eq!(State::from_text(&s.to_text(), p).unwrap(), s);
    assert_eq!(s.connect_string(), "127.0.0.1:2181,10.77.0.2:2182");
    // State files written before `address` existed: 127.0.0.1.
    let old = State::from_text("base_dir=/x\nmember.0.pid=1\nmember.0.client_port=5\nmember.0.dir=/y\n", p).unwrap();
    assert_eq!(old.connect_string(), "127.0.0.1:5");
    for bad in [
        "",
        "base_dir=/x\n",
        "base_dir=/x\nmember.0.pid=1\n",
        "base_dir=/x\nmember.1.pid=1\nmember.1.client_port=1\nmember.1.dir=/y\n",
        "base_dir=/x\nmember.0.pid=x\n",
        "garbage\n",
        "base_dir=/x\nfoo=1\n",
        "base_dir=/x\nmember.0.pid=1\nmember.0.client_port=1\nmember.0.dir=/y\nmember.0.address=nope\n",
    ] {
        assert!(State::from_text(bad, p).is_err(), "accepted {bad:?}");
    }
}

#[test]
fn proc_state_parses_own_stat() {
    let me = std::process::id();
    assert!(matches!(proc_state(me), Some('R' | 'S')));
    assert!(process::is_our_process(me, &[]));
}

#[test]
fn port_in_use_is_refused_up_front() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let t = Instant::now();
    let err = Ensemble::start(Options { base_port: Some(port), ..Options::for_tests(1) }).unwrap_err();
    eprintln!("port-in-use failure after {:?}: {err}", t.elapsed());
    assert!(matches!(err, Error::Setup(_)), "{err}");
    assert!(err.to_string().contains(&format!("port {port} on 127.0.0.1 is already in use")), "{err}");
}

/// Tests keep an Ensemble in a `static OnceLock`.
#[test]
fn ensemble_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Ensemble>();
    check::<Error>();
}

#[test]
fn a_port_held_by_another_zookeeper_is_refused() {
    // The readiness probe must not be answered by someone else's server.
    let other = Ensemble::standalone().expect("start");
    let port: u16 = other.connect_string().rsplit(':').next().unwrap().parse().unwrap();
    let err = Ensemble::start(Options { base_port: Some(port), ..Options::for_tests(1) }).unwrap_err();
    assert!(err.to_string().contains("already in use"), "{err}");
}
