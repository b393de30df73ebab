//! Running a user's CMD beside a recipe: spawned with inherited stdio, waited for on its own
//! thread (so the caller can `select!` on its exit, a stop signal and session events), and
//! terminated with SIGTERM (then SIGKILL) when the recipe must end it.
//!
//! A CMD must never outlive the zkutil that holds the lock (lease, leadership) it runs
//! under, even when zkutil is SIGKILLed and cannot clean up: otherwise the next holder's
//! CMD would run beside it once the session times out. A tiny `sh` watchdog beside each
//! CMD blocks on a pipe only we hold; when we die for any reason the kernel closes it, and
//! the watchdog sends CMD SIGTERM (SIGKILL after the grace period). PR_SET_PDEATHSIG would
//! do it in the child itself, but needs `unsafe` (pre_exec), which lives in src/zk alone.

use std::io;
use std::process::{Command, ExitCode, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam_channel::Receiver;
use nix::sys::signal::Signal;

use crate::util::send_signal;

/// How long a CMD gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(10);

/// A CMD we started.
pub struct Child {
    pid: u32,
    done: Receiver<io::Result<ExitStatus>>,
    exited: Option<ExitStatus>,
}

impl Child {
    /// Starts `argv` (non-empty) with stdin, stdout and stderr inherited.
    pub fn spawn(argv: &[String]) -> Result<Child> {
        Child::start(argv, None)
    }

    /// Starts `argv` (non-empty) with `input` on its stdin (written from a thread, so a CMD
    /// that does not read it all cannot block us), stdout and stderr inherited.
    pub fn spawn_fed(argv: &[String], input: Vec<u8>) -> Result<Child> {
        Child::start(argv, Some(input))
    }

    fn start(argv: &[String], input: Option<Vec<u8>>) -> Result<Child> {
        let (prog, args) = argv.split_first().context("no command given")?;
        let mut cmd = Command::new(prog);
        cmd.args(args);
        if input.is_some() {
            cmd.stdin(std::process::Stdio::piped());
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {prog}"))?;
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            std::thread::Builder::new()
                .name("child-stdin".into())
                .spawn(move || {
                    use std::io::Write;
                    let _ = stdin.write_all(&input); // EPIPE: CMD did not want it all
                })
                .context("spawning the thread that feeds CMD")?;
        }
        let pid = child.id();
        let watchdog = match watchdog(pid) {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("no watchdog for {prog} (it could outlive a killed zkutil): {e}");
                None
            }
        };
        let (tx, done) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("child-wait".into())
            .spawn(move || {
                let status = child.wait();
                // CMD is gone: retire its watchdog before anything could reuse the pid.
                if let Some(mut w) = watchdog {
                    let _ = w.kill();
                    let _ = w.wait();
                }
                let _ = tx.send(status);
            })
            .context("spawning the thread that waits for CMD")?;
        Ok(Child { pid, done, exited: None })
    }

    /// Fires (once) when the CMD exits: `select!` on it, then call [`Child::reaped`].
    pub fn done(&self) -> &Receiver<io::Result<ExitStatus>> {
        &self.done
    }

    /// Records what `done` delivered.
    pub fn reaped(
        &mut self,
        status: Result<io::Result<ExitStatus>, crossbeam_channel::RecvError>,
    ) -> Result<ExitStatus> {
        let status = status.context("lost track of CMD")?.context("waiting for CMD")?;
        self.exited = Some(status);
        Ok(status)
    }

    /// SIGTERM, then SIGKILL after [`GRACE`]; returns how it ended.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        self.stop(Signal::SIGTERM)
    }

    /// Passes on the signal that stopped zkutil (SIGINT for Ctrl-C, else SIGTERM), then
    /// SIGKILL after [`GRACE`]; returns how it ended.
    pub fn forward_stop(&mut self) -> Result<ExitStatus> {
        match crate::util::stopped_by() {
            Some(crate::util::Stop::Interrupt) => self.stop(Signal::SIGINT),
            _ => self.stop(Signal::SIGTERM),
        }
    }

    /// `sig`, then SIGKILL after [`GRACE`]; returns how it ended.
    fn stop(&mut self, sig: Signal) -> Result<ExitStatus> {
        if let Some(s) = self.exited {
            return Ok(s);
        }
        let _ = send_signal(self.pid, sig);
        let r = match self.done.recv_timeout(GRACE) {
            Ok(r) => r,
            Err(_) => {
                log::warn!("CMD (pid {}) ignored {sig} for {GRACE:?}: killing it", self.pid);
                let _ = send_signal(self.pid, Signal::SIGKILL);
                self.done.recv().context("lost track of CMD")?
            }
        };
        let status = r.context("waiting for CMD")?;
        self.exited = Some(status);
        Ok(status)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // never leave a CMD running behind us (an error path returned early)
        if self.exited.is_none() {
            let _ = self.terminate();
        }
    }
}

/// Starts the watchdog of CMD `pid`: it ignores the terminal's signals and waits for EOF on
/// its stdin (the returned Child's stdin pipe, held by the caller's wait thread).
fn watchdog(pid: u32) -> io::Result<std::process::Child> {
    let grace_ticks = GRACE.as_millis() / 100;
    let script = format!(
        "trap '' INT TERM HUP QUIT; read _ignored; kill -TERM {pid} 2>/dev/null || exit 0; \
         i=0; while kill -0 {pid} 2>/dev/null && [ $i -lt {grace_ticks} ]; do sleep 0.1; i=$((i+1)); done; \
         kill -0 {pid} 2>/dev/null && kill -KILL {pid} 2>/dev/null; exit 0"
    );
    Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
}

/// The exit code a shell would report for `status`: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        _ => ExitCode::FAILURE,
    }
}
