//! `zkutil mutex` (the classic task loop) and `zkutil lock PATH -- CMD` (a distributed
//! flock), both on `recipes::lock`.

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::select;

use super::Run;
use super::child::{Child, exit_code, margin};
use super::exit::after_stop;
use crate::cli::{Global, LockArgs, MutexArgs};
use crate::recipes::lock::{Contender, Held, Lock, LockError, Mode};
use crate::util::shutdown;

/// `task-0000000003`: the sequence part of the lock node.
fn task_name(c: &Contender) -> String {
    format!("task-{:010}", c.seq)
}

/// One line on stdout, flushed at once (readers may sit behind a pipe).
fn say(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()
}

impl MutexArgs {
    /// A task line, stamped when `--timestamps` asks for it. Called after the lock is had
    /// and before it is released, so stamps of different processes order the holds.
    fn say(&self, line: &str) -> io::Result<()> {
        if self.timestamps {
            say(&format!("{} {line}", humantime::format_rfc3339_micros(std::time::SystemTime::now())))
        } else {
            say(line)
        }
    }
}

/// A random duration in `min..=max` (`min` when `max` is not above it).
fn random_between(min: Duration, max: Duration) -> Duration {
    let span = max.saturating_sub(min).as_nanos();
    if span == 0 {
        return min;
    }
    // 128 random bits from the OS: uuid v4 is already how contender ids are made.
    min + Duration::from_nanos((uuid::Uuid::new_v4().as_u128() % (span + 1)) as u64)
}

impl Run for MutexArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        if self.min_work > self.max_work {
            return Err(super::exit::usage(format!(
                "--min-work {} is above --max-work {}",
                humantime::format_duration(self.min_work),
                humantime::format_duration(self.max_work)
            )));
        }
        let stop = shutdown();
        let zk = g.connect()?;
        let lock = Lock::new(&zk, &self.path, Mode::Exclusive)?;
        // A finished task's hold, released by the next task's requeue (one round trip
        // releases it and queues again) or after the last task.
        let mut previous: Option<Held> = None;
        for task in 0..self.tasks {
            let mut awaiting = Ok(());
            let on_wait = |c: &Contender| awaiting = self.say(&format!("task {} is awaiting...", task_name(c)));
            let attempt = match previous.take() {
                None => lock.acquire(None, &stop, on_wait),
                Some(h) => h.requeue(None, &stop, on_wait),
            };
            let held = match attempt {
                Ok(h) => h,
                Err(LockError::Cancelled) => return Ok(after_stop()),
                Err(e) => return Err(anyhow!(e).context(format!("taking the lock {}", self.path))),
            };
            awaiting?;
            let name = task_name(held.contender());
            self.say(&format!("task {name} starts"))?;
            let started = Instant::now();
            let until = started + random_between(self.min_work, self.max_work);
            loop {
                let left = until.saturating_duration_since(Instant::now());
                select! {
                    recv(held.lost()) -> ev => if held.is_lost(ev) {
                        let why = held.why_lost();
                        held.abandon();
                        self.say(&format!("task {name} lost the lock ({why})"))?;
                        bail!("lost the lock {} ({why})", self.path);
                    },
                    recv(stop) -> _ => {
                        drop(held); // deletes our node: the next waiter starts at once
                        return Ok(after_stop());
                    },
                    default(left) => break,
                }
            }
            // Both lines before the release: the next holder's `starts` comes after them.
            self.say(&format!("task {name} ends"))?;
            self.say(&format!("task {name} consumes {:.2} s", started.elapsed().as_secs_f64()))?;
            if task + 1 < self.tasks {
                previous = Some(held);
            } else {
                held.release().with_context(|| format!("releasing the lock {}", self.path))?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Run for LockArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        super::exit::check_runnable(&self.command)?;
        let stop = shutdown();
        let zk = g.connect()?;
        let mode = match (self.shared, self.write) {
            (true, _) => Mode::Shared,
            (_, true) => Mode::Write,
            _ => Mode::Exclusive,
        };
        let lock = Lock::new(&zk, &self.path, mode)?;
        let deadline = self.timeout.map(crate::util::deadline_after);
        let held = match lock.acquire(deadline, &stop, |_| {}) {
            Ok(h) => h,
            Err(LockError::Cancelled) => return Ok(after_stop()),
            Err(LockError::TimedOut) => {
                return Err(super::exit::gave_up(
                    self.conflict_exit_code,
                    format_args!(
                        "lock {}: not acquired within {}; gave up",
                        self.path,
                        humantime::format_duration(self.timeout.unwrap_or_default())
                    ),
                ));
            }
            Err(e) => return Err(anyhow!(e).context(format!("taking the lock {}", self.path))),
        };
        let program = &self.command[0];
        let mut child = Child::spawn(&self.command, margin(&zk))?; // on error the guard releases the lock
        let status = loop {
            select! {
                recv(child.done()) -> r => break child.reaped(r)?,
                recv(held.lost()) -> ev => if held.is_lost(ev) {
                    let _ = child.terminate();
                    let why = held.why_lost();
                    held.abandon();
                    bail!("lost the lock {} ({why}); sent {program} SIGTERM", self.path);
                },
                recv(stop) -> _ => {
                    // CMD first, then the node: the next holder never overlaps with CMD.
                    child.forward_stop()?;
                    drop(held);
                    return Ok(after_stop());
                },
            }
        };
        held.release().with_context(|| format!("releasing the lock {}", self.path))?;
        Ok(exit_code(status))
    }
}
