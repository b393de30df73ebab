//! `zkutil semaphore PATH --leases N -- CMD`: run CMD holding one of N leases
//! (`recipes::semaphore`), so that at most N such CMDs run at once, whatever the machine.
//!
//! CMD's streams and exit code pass through. The lease outlives CMD: on Ctrl-C/SIGTERM CMD
//! is ended first and the lease deleted after (never N+1 CMDs running); if the session is
//! lost while CMD runs (expired, or no connection for a sixth of the session timeout),
//! another process may hold the lease by now, so CMD gets SIGTERM at once and zkutil
//! exits 1.

use std::num::NonZeroU32;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::select;

use super::Run;
use super::child::{Child, exit_code, margin};
use super::exit::after_stop;
use crate::cli::{Global, SemaphoreArgs};
use crate::recipes::semaphore::{Semaphore, SemaphoreError};
use crate::util::shutdown;

impl Run for SemaphoreArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        super::exit::check_runnable(&self.command)?;
        let stop = shutdown();
        let what = format!("semaphore {}", self.path);
        let max = NonZeroU32::new(self.leases).ok_or_else(|| anyhow!("{what}: --leases must be at least 1"))?;
        let zk = g.connect()?;
        let sem = Semaphore::new(&zk, &self.path, max)?;
        let deadline = self.timeout.map(crate::util::deadline_after);
        let lease = match sem.acquire(deadline, &stop, |_| {}) {
            Ok(l) => l,
            Err(SemaphoreError::Cancelled) => return Ok(after_stop()),
            Err(SemaphoreError::TimedOut) => {
                return Err(super::exit::gave_up(
                    self.conflict_exit_code,
                    format_args!(
                        "{what}: no free lease (of {max}) within {}; gave up",
                        humantime::format_duration(self.timeout.unwrap_or_default())
                    ),
                ));
            }
            Err(e) => return Err(anyhow!(e).context(format!("taking a lease of the {what}"))),
        };
        let mut child = Child::spawn(&self.command, margin(&zk))?; // on error the lease guard deletes the lease
        let status = select! {
            recv(child.done()) -> r => child.reaped(r)?,
            recv(lease.lost()) -> _ => {
                let program = &self.command[0];
                let _ = child.terminate();
                let why = lease.why_lost();
                lease.abandon();
                bail!("{what}: lost our lease ({why}); sent {program} SIGTERM");
            },
            recv(stop) -> _ => {
                // CMD first (SIGTERM, SIGKILL after a grace period), then the lease: the next
                // contender must not start while CMD still runs.
                child.forward_stop()?;
                drop(lease);
                drop(sem);
                drop(zk); // closes the session at once
                return Ok(after_stop());
            },
        };
        lease.release().with_context(|| format!("releasing our lease of the {what}"))?;
        Ok(exit_code(status))
    }
}
