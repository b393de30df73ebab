//! Test support: a shared server per test binary, unique roots, the built binary, deadlines.

#![allow(dead_code)]

use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use zkutil::server::Ensemble;
use zkutil::zk::{CreateMode, ZooKeeper};

pub mod curator;
mod proc;
pub mod proxy;
pub mod rig;
pub use proc::Proc;
pub use proxy::Proxy;

/// One standalone server for every test that only needs a healthy one. It dies with the
/// test process (a static is never dropped).
pub fn shared() -> &'static Ensemble {
    static S: OnceLock<Ensemble> = OnceLock::new();
    S.get_or_init(|| Ensemble::standalone().expect("start ZooKeeper"))
}

pub fn hosts() -> String {
    shared().connect_string()
}

pub fn connect() -> ZooKeeper {
    connect_to(&hosts())
}

pub fn connect_to(hosts: &str) -> ZooKeeper {
    ZooKeeper::connect(hosts, Duration::from_secs(4)).expect("connect")
}

/// A fresh, existing root path for one test.
pub fn unique_root(test: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let root = format!("/t-{test}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    connect().create(&root, b"", CreateMode::Persistent).expect("create root");
    root
}

/// Polls `cond` every 10 ms until it holds or the deadline passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The built zkutil binary, pointed at the shared server.
pub fn zkutil(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_zkutil"));
    c.args(args).env("ZK_HOSTS", hosts()).env_remove("RUST_LOG").stdin(Stdio::null());
    c
}

/// Runs zkutil to completion.
pub fn run(args: &[&str]) -> Output {
    zkutil(args).output().expect("run zkutil")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs zkutil and expects success; returns stdout.
#[track_caller]
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "zkutil {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs zkutil and expects exit 1 with one `zkutil: ` line on stderr; returns that line.
#[track_caller]
pub fn fails(args: &[&str]) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "zkutil {args:?}: {:?}\nstdout: {}\nstderr: {err}", o.status, stdout(&o));
    assert!(err.starts_with("zkutil: ") && err.lines().count() == 1, "zkutil {args:?}: stderr not one line: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Runs zkutil and expects a usage error: exit 2, clap's `error: ...` and a usage line.
#[track_caller]
pub fn usage_fails(args: &[&str]) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "zkutil {args:?}: {:?}\nstdout: {}\nstderr: {err}", o.status, stdout(&o));
    assert!(err.starts_with("error: ") && err.contains("\nUsage: zkutil"), "zkutil {args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// Runs zkutil and expects "not acquired": exit 75 (`--conflict-exit-code`'s default), one line.
#[track_caller]
pub fn conflict_fails(args: &[&str]) -> String {
    let o = run(args);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(75), "zkutil {args:?}: {:?}\nstdout: {}\nstderr: {err}", o.status, stdout(&o));
    assert!(err.starts_with("zkutil: ") && err.lines().count() == 1, "zkutil {args:?}: stderr not one line: {err}");
    err
}

/// `expect` with the expression in the message (git2's `t!`).
#[macro_export]
macro_rules! t {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => panic!("{} failed with {e}", stringify!($e)),
        }
    };
}

/// Expires `zk`'s session the way ZooKeeper's own tests do: a second handle takes the
/// session over and closes it. The original client may reconnect first and take the
/// session back (then the close does not reach the server), so repeat until the expiry
/// is seen. Returns once `zk` has received the Expired event.
pub fn expire_session(zk: &ZooKeeper, hosts: &str) {
    use zkutil::zk::{ConnectOptions, SessionEvent};
    let events = zk.session_events();
    for _ in 0..10 {
        if zk.is_dead() {
            return;
        }
        let (id, pw) = zk.client_id();
        if let Ok(thief) = (ConnectOptions { session: Some((id, pw)), ..ConnectOptions::new(hosts) }).connect() {
            drop(thief);
        }
        let deadline = Instant::now() + zk.session_timeout() * 2;
        while let Ok(ev) = events.recv_deadline(deadline) {
            if ev == SessionEvent::Expired {
                return;
            }
        }
    }
    panic!("could not expire session {:#x}", zk.session_id());
}

/// True while `pid` is a live process (not gone, not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // the state is the first field after the parenthesised command name
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => false,
    }
}
