//! `zkutil commit PATH --participants N --id ID [--timeout D] -- CMD`: two-phase commit on
//! `recipes::commit`.
//!
//! CMD runs with `ZKUTIL_PHASE=prepare` (and `ZKUTIL_TXN`, `ZKUTIL_ID`); its exit code is
//! the vote (0 commit, anything else abort). Once the transaction is decided, CMD runs
//! again with `ZKUTIL_PHASE=commit` or `abort`. Exit: CMD's commit-step code on commit
//! (0 when it succeeds), 1 on abort, with one line on stderr saying why.
//!
//! Faults: everything is persistent, so a lost session is replaced and the participant
//! resumes where it was (its vote is never asked twice). Ctrl-C/SIGTERM during prepare ends
//! CMD and votes abort (the others need not wait for the timeout); after voting it just
//! leaves: running `zkutil commit` again with the same id finds the decision and runs the
//! matching step.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use crossbeam_channel::select;

use super::Run;
use super::child::{Child, exit_code};
use super::exit::{Stopped, after_stop};
use crate::cli::{CommitArgs, Global};
use crate::recipes::commit::{Decision, Error, Joined, Participant, Vote};
use crate::util::{shutdown, stop_requested};

/// How a phase's CMD ended.
enum Ran {
    Exited(std::process::ExitStatus),
    Stopped,
}

impl CommitArgs {
    /// CMD with `ZKUTIL_PHASE` and friends in its environment (through env(1): the child
    /// module starts argv as given).
    fn argv(&self, phase: &str) -> Vec<String> {
        let mut v = vec![
            "env".to_string(),
            "--".to_string(),
            format!("ZKUTIL_PHASE={phase}"),
            format!("ZKUTIL_TXN={}", self.path),
            format!("ZKUTIL_ID={}", self.id),
        ];
        v.extend(self.command.iter().cloned());
        v
    }

    fn run_phase(&self, phase: &str, margin: Duration, stop: &crossbeam_channel::Receiver<()>) -> Result<Ran> {
        let mut child = Child::spawn(&self.argv(phase), margin)?;
        select! {
            recv(child.done()) -> r => Ok(Ran::Exited(child.reaped(r)?)),
            recv(stop) -> _ => {
                child.forward_stop()?;
                Ok(Ran::Stopped)
            },
        }
    }
}

/// A session-level failure after which a new session resumes the transaction.
fn resumable(e: &Error) -> bool {
    matches!(e, Error::Zk(e) if e.is_session_lost() || e.is_outcome_unknown())
}

impl Run for CommitArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let stop = shutdown();
        let what = format!("commit {}", self.path);
        let deadline = Instant::now() + self.timeout;
        // SIGTERM to SIGKILL, as a holder's margin (a sixth of the session timeout)
        let margin = g.session_timeout / 6;
        let mut my_vote: Option<Vote> = None;
        let mut first = true;
        let decision: Decision = loop {
            if stop_requested() {
                return Ok(after_stop());
            }
            let session = match (first, g.connect_owned()) {
                (_, Ok(z)) => z,
                (true, Err(e)) => return Err(e),
                // resuming: ZooKeeper may be away for a while; our vote waits in it
                (false, Err(e)) if e.is::<Stopped>() => return Ok(after_stop()),
                (false, Err(e)) => {
                    eprintln!("zkutil: {what}: reconnecting: {e:#}");
                    select! {
                        recv(stop) -> _ => return Ok(after_stop()),
                        default(Duration::from_secs(1)) => continue,
                    }
                }
            };
            first = false;
            let step = (|| -> Result<Decision> {
                let (p, joined) = Participant::join(&session, &self.path, &self.id, self.participants)?;
                let vote = match joined {
                    Joined::Decided(d) => return Ok(d),
                    Joined::Voted(v) => v,
                    Joined::ToVote => match my_vote {
                        Some(v) => v, // prepared already, before a session was lost
                        None => {
                            let v = match self.run_phase("prepare", margin, &stop)? {
                                Ran::Exited(s) if s.success() => Vote::Commit,
                                Ran::Exited(_) => Vote::Abort,
                                Ran::Stopped => {
                                    // the others need not wait for our timeout
                                    let _ = p.vote(Vote::Abort);
                                    return Err(Error::Cancelled.into());
                                }
                            };
                            my_vote = Some(v);
                            v
                        }
                    },
                };
                let stands = p.vote(vote)?;
                my_vote = Some(stands);
                Ok(p.await_decision(deadline, &stop)?)
            })();
            match step {
                Ok(d) => break d,
                Err(e) => match e.downcast_ref::<Error>() {
                    Some(Error::Cancelled) => return Ok(after_stop()),
                    Some(r) if resumable(r) => {
                        crate::status!("zkutil: {what}: {r}; resuming with a new session");
                        drop(session);
                    }
                    _ => bail!("{what}: {e:#}"),
                },
            }
        };
        match self.run_phase(decision.outcome.word(), margin, &stop)? {
            Ran::Stopped => Ok(after_stop()),
            Ran::Exited(status) => match decision.outcome {
                Vote::Commit => Ok(exit_code(status)),
                Vote::Abort => {
                    if !status.success() {
                        eprintln!("zkutil: {what}: the abort step failed ({status})");
                    }
                    eprintln!("zkutil: {what}: aborted: {}", decision.why);
                    Ok(ExitCode::FAILURE)
                }
            },
        }
    }
}
