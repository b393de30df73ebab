//! `zkutil barrier hold|release|wait`: the single barrier, and with `wait --count N` the
//! double barrier (optionally running CMD between enter and leave).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use crossbeam_channel::select;

use super::Run;
use super::child::{Child, exit_code, margin};
use super::exit::after_stop;
use crate::cli::{BarrierCmd, BarrierWaitArgs, Global};
use crate::recipes::barrier::{self, Barrier, DoubleBarrier, Outcome};
use crate::util::shutdown;

impl Run for BarrierCmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            BarrierCmd::Hold(p) => {
                let zk = g.connect()?;
                if Barrier::new(&zk, &p.path)?.hold()? {
                    crate::status!("barrier {} is up", p.path);
                } else {
                    crate::status!("barrier {} was already up", p.path);
                }
                Ok(ExitCode::SUCCESS)
            }
            BarrierCmd::Release(p) => {
                let zk = g.connect()?;
                if Barrier::new(&zk, &p.path)?.release()? {
                    crate::status!("barrier {} released", p.path);
                } else {
                    crate::status!("barrier {} was not up", p.path);
                }
                Ok(ExitCode::SUCCESS)
            }
            BarrierCmd::Wait(a) => match a.count {
                Some(n) => a.double(g, n as usize),
                None => a.single(g),
            },
        }
    }
}

/// A barrier error as one line; a lost session says what that means for the barrier.
fn failed(path: &str, e: barrier::Error) -> anyhow::Error {
    match &e {
        barrier::Error::Zk(z) if z.is_session_lost() => anyhow!(
            "barrier {path}: the session was lost (expired, or no connection to ZooKeeper for longer than the \
             session timeout); our participant node, if any, is gone with it"
        ),
        _ => anyhow!(e).context(format!("barrier {path}")),
    }
}

fn human(d: Duration) -> humantime::FormattedDuration {
    humantime::format_duration(d)
}

impl BarrierWaitArgs {
    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(crate::util::deadline_after)
    }

    /// A watcher: it rides through a lost session (watcher grace, T), says so on stderr and
    /// waits again with a new session, until the barrier goes, Ctrl-C or `--timeout`.
    fn single(&self, g: &Global) -> Result<ExitCode> {
        let stop = shutdown();
        let what = format!("barrier {}", self.path);
        let deadline = self.deadline();
        let still_up = || {
            super::exit::gave_up(
                self.conflict_exit_code,
                format_args!("{what}: still up after {}", human(self.timeout.unwrap_or_default())),
            )
        };
        let mut zk = g.connect_owned()?;
        loop {
            let barrier = Barrier::new(&zk, &self.path)?;
            match barrier.wait(deadline, &stop) {
                Ok(Outcome::Done) => return Ok(ExitCode::SUCCESS),
                Ok(Outcome::Stopped) => return Ok(after_stop()),
                Ok(Outcome::TimedOut) => return Err(still_up()),
                Err(barrier::Error::Zk(e)) if e.is_session_lost() => {
                    eprintln!("zkutil: {what}: the session was lost ({e}); waiting again with a new session");
                }
                Err(e) => return Err(failed(&self.path, e)),
            }
            drop(barrier);
            drop(zk);
            zk = match super::election::reconnect_until(g, &what, &stop, deadline)? {
                Some(zk) => zk,
                None if crate::util::stop_requested() => return Ok(after_stop()),
                None => return Err(still_up()),
            };
        }
    }

    fn double(&self, g: &Global, count: usize) -> Result<ExitCode> {
        super::exit::check_runnable(&self.cmd)?;
        let stop = shutdown();
        let zk = g.connect()?;
        let id = self.id.clone().unwrap_or_else(|| format!("{}-{:x}", std::process::id(), zk.session_id()));
        let mut barrier = DoubleBarrier::new(&zk, &self.path, count, &id)?;
        let timeout = human(self.timeout.unwrap_or_default());
        match barrier.enter(self.deadline(), &stop).map_err(|e| failed(&self.path, e))? {
            Outcome::Done => crate::status!("entered {} as {id}", self.path),
            Outcome::Stopped => return Ok(after_stop()),
            Outcome::TimedOut => {
                let present = barrier.present().map(|p| p.ids.len()).unwrap_or(0);
                return Err(super::exit::gave_up(
                    self.conflict_exit_code,
                    format_args!(
                        "barrier {}: timed out after {timeout} waiting for {count} participants ({present} others \
                         present); left the barrier",
                        self.path
                    ),
                ));
            }
        }
        let mut code = ExitCode::SUCCESS;
        if !self.cmd.is_empty() {
            let mut child = Child::spawn(&self.cmd, margin(&zk))?;
            select! {
                recv(child.done()) -> r => code = exit_code(child.reaped(r)?),
                recv(stop) -> _ => {
                    drop(barrier); // out of the barrier first, then end CMD
                    child.terminate()?;
                    return Ok(after_stop());
                }
            }
        }
        match barrier.leave(self.deadline(), &stop).map_err(|e| failed(&self.path, e))? {
            Outcome::Done => crate::status!("left {}", self.path),
            Outcome::Stopped => return Ok(after_stop()),
            Outcome::TimedOut => {
                return Err(super::exit::gave_up(
                    self.conflict_exit_code,
                    format_args!(
                        "barrier {}: timed out after {timeout} waiting for the others to leave; left alone",
                        self.path
                    ),
                ));
            }
        }
        Ok(code)
    }
}
