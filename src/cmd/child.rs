//! Running a user's CMD beside a recipe: spawned with inherited stdio, waited for on its own
//! thread (so the caller can `select!` on its exit, a stop signal and session events), and
//! terminated with SIGTERM (then SIGKILL) when the recipe must end it.

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
        let (tx, done) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("child-wait".into())
            .spawn(move || {
                let _ = tx.send(child.wait());
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

/// The exit code a shell would report for `status`: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        _ => ExitCode::FAILURE,
    }
}
