//! The across-hosts rig: three network-namespace "hosts" (zkrig1..3, 10.77.0.1-3) joined
//! by a bridge, driven through tools/rig.sh (the same script a user runs by hand), with one
//! ZooKeeper member per host. Only the rig's own addresses are ever contacted.
//!
//! It needs root and `ip netns`: [`Rig::start`] returns `None` (after printing why) where
//! it cannot be built, and the caller skips. One rig exists at a time (the names are
//! fixed): a process-wide lock serialises the tests that use it. Dropping the rig removes
//! the namespaces and the bridge; starting one first removes leftovers of an earlier run.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use zkutil::server::{Ensemble, Options};

/// Host numbers are 1, 2, 3: host `h` is namespace `zkrig<h>` with address `10.77.0.<h>`
/// and runs ensemble member `h - 1`.
pub const HOSTS: [usize; 3] = [1, 2, 3];

pub struct Rig {
    _one_at_a_time: MutexGuard<'static, ()>,
    /// The rig's names are the machine's: this lock also serialises test binaries of other
    /// checkouts (and a hand-run `flock /tmp/zkutil-rig.lock ...`). Released when dropped.
    _machine_wide: Option<std::fs::File>,
}

/// Takes the machine-wide rig lock (blocking); `None` when the lock file cannot be had.
fn machine_wide_lock() -> Option<std::fs::File> {
    let f = std::fs::OpenOptions::new().create(true).append(true).open("/tmp/zkutil-rig.lock").ok()?;
    f.lock().ok()?;
    Some(f)
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/rig.sh")
}

/// Runs `tools/rig.sh ARGS`; the error names the command and its stderr.
fn rig_sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new("sh")
        .arg(script())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("run tools/rig.sh: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "tools/rig.sh {}: {:?}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Rig {
    /// Builds the rig, or prints why it cannot (not root, no `ip netns`) and returns `None`:
    /// the test then skips.
    pub fn start(test: &str) -> Option<Rig> {
        static ONE: Mutex<()> = Mutex::new(());
        let guard = ONE.lock().unwrap_or_else(|e| e.into_inner());
        let machine_wide = machine_wide_lock();
        match rig_sh(&["up"]) {
            Ok(()) => Some(Rig { _one_at_a_time: guard, _machine_wide: machine_wide }),
            Err(e) => {
                let _ = rig_sh(&["down"]);
                eprintln!("SKIPPED {test}: needs root and network namespaces (`ip netns add`), here: {e}");
                None
            }
        }
    }

    /// `10.77.0.<h>`.
    pub fn addr(h: usize) -> String {
        format!("10.77.0.{h}")
    }

    /// `ip netns exec zkrig<h> PROGRAM`: add arguments, then spawn.
    pub fn exec(h: usize, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &format!("zkrig{h}"), program]).stdin(Stdio::null());
        c
    }

    /// The built zkutil inside host `h`, pointed at `hosts`.
    pub fn zkutil(h: usize, hosts: &str, args: &[&str]) -> Command {
        let mut c = Rig::exec(h, env!("CARGO_BIN_EXE_zkutil"));
        c.args(args).env("ZK_HOSTS", hosts).env_remove("RUST_LOG");
        c
    }

    /// A 3-node ensemble, member `h - 1` on host `h` (`10.77.0.<h>:218<h>`), tickTime 500 ms.
    pub fn ensemble(&self) -> Ensemble {
        let opts = Options {
            base_port: Some(2181),
            bind: HOSTS.iter().map(|&h| Rig::addr(h).parse().unwrap()).collect(),
            launch_prefix: HOSTS
                .iter()
                .map(|&h| ["ip", "netns", "exec", &format!("zkrig{h}")].map(String::from).to_vec())
                .collect(),
            ready_timeout: Duration::from_secs(60),
            ..Options::for_tests(3)
        };
        crate::t!(Ensemble::start(opts))
    }

    /// Cuts host `h` off: every packet to or from it is lost (its veth is down).
    pub fn cut(&self, h: usize) {
        crate::t!(rig_sh(&["cut", &h.to_string()]));
    }

    /// Undoes [`Rig::cut`].
    pub fn heal(&self, h: usize) {
        crate::t!(rig_sh(&["heal", &h.to_string()]));
    }

    /// Adds `ms` of latency each way to host `h` (0: none). Needs the kernel's netem
    /// qdisc (`sch_netem`); the error says so where it is missing.
    pub fn delay(&self, h: usize, ms: u32) -> Result<(), String> {
        rig_sh(&["delay", &h.to_string(), &ms.to_string()])
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Err(e) = rig_sh(&["down"]) {
            eprintln!("rig teardown: {e}");
        }
    }
}
