//! `zkutil partition PATH --set ITEMS... [--id ID] [--time-boundary D] (--print | -- CMD)`:
//! a member of kazoo's SetPartitioner (`recipes::partitioner`).
//!
//! Once the group has been unchanged for the time boundary, the set is divided and this
//! member takes the lock of each item of its share; then CMD runs with the share (one item
//! per line on stdin, and `ZKUTIL_PARTITION`, space-separated; `ZKUTIL_MEMBER` is the id),
//! or `--print` prints it as one line. When a member joins or leaves, CMD gets SIGTERM (then
//! SIGKILL after a grace period) and the share's locks are released only after CMD exited,
//! so two CMDs never work on one item; then the set is divided again.
//!
//! CMD exiting by itself ends the membership: zkutil leaves the group and exits with CMD's
//! code. Ctrl-C/SIGTERM: CMD first, then the locks and the membership, exit 130/143. A lost
//! session (or the connection down for a sixth of the session timeout): CMD gets SIGTERM,
//! and the member joins again with a new session.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Result, bail};
use crossbeam_channel::{never, select};
use serde_json::json;

use super::Run;
use super::child::{Child, exit_code};
use super::exit::{Stopped, after_stop};
use super::output::{Ndjson, event};
use crate::cli::{Global, PartitionArgs};
use crate::recipes::partitioner::{Error, Partitioner};
use crate::util::{shutdown, stop_requested};

/// kazoo's default identifier is `<fqdn>-<pid>`.
fn default_id() -> String {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok());
    format!("{}-{}", host.as_deref().unwrap_or("localhost"), std::process::id())
}

/// How one division ended.
enum Then {
    Again,
    Exit(ExitCode),
    Rejoin(String),
}

impl PartitionArgs {
    fn argv(&self, id: &str, items: &[String]) -> Vec<String> {
        let mut v = vec![
            "env".to_string(),
            "--".to_string(),
            format!("ZKUTIL_PARTITION={}", items.join(" ")),
            format!("ZKUTIL_MEMBER={id}"),
        ];
        v.extend(self.command.iter().cloned());
        v
    }

    /// Works on one division: allocate, run CMD (or print), wait for what ends it.
    fn division(
        &self,
        part: &Partitioner<'_>,
        id: &str,
        json: bool,
        stop: &crossbeam_channel::Receiver<()>,
    ) -> Result<Then> {
        let share = match part.allocate(stop, |_, _| {}) {
            Ok(s) => s,
            Err(Error::Cancelled) => return Ok(Then::Exit(after_stop())),
            Err(Error::Lost) => return Ok(Then::Rejoin("our membership was lost".into())),
            Err(e) => bail!(e),
        };
        let mut child = if self.print {
            if json {
                let fields = json!({ "member": id, "items": share.items, "members": share.members });
                Ndjson::stdout().emit(&event("share", &self.path, fields))?;
            } else {
                let mut out = io::stdout().lock();
                writeln!(out, "{}", share.items.join(" "))?;
                out.flush()?;
            }
            None
        } else {
            let input: String = share.items.iter().map(|i| format!("{i}\n")).collect();
            Some(Child::spawn_fed(&self.argv(id, &share.items), input.into_bytes(), part.margin())?)
        };
        let done = child.as_ref().map_or_else(never, |c| c.done().clone());
        select! {
            recv(share.changed()) -> ev => {
                if let Some(c) = child.as_mut() {
                    c.terminate()?; // CMD first: only then may another member take our items
                }
                if ev.is_err() {
                    share.abandon();
                    return Ok(Then::Rejoin("the session ended".into()));
                }
                Ok(match share.release() {
                    Ok(()) => Then::Again,
                    Err(e) => Then::Rejoin(format!("releasing our share: {e}")),
                })
            },
            recv(done) -> r => {
                let status = child.as_mut().map(|c| c.reaped(r)).transpose()?;
                let _ = share.release();
                Ok(Then::Exit(status.map_or(ExitCode::SUCCESS, exit_code)))
            },
            recv(share.lost()) -> _ => {
                if let Some(c) = child.as_mut() {
                    let _ = c.terminate();
                }
                let why = share.why_lost();
                share.abandon();
                Ok(Then::Rejoin(why))
            },
            recv(stop) -> _ => {
                if let Some(c) = child.as_mut() {
                    c.forward_stop()?;
                }
                let _ = share.release();
                Ok(Then::Exit(after_stop()))
            },
        }
    }
}

impl Run for PartitionArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let stop = shutdown();
        let what = format!("partition {}", self.path);
        let id = match &self.id {
            Some(id) if id.is_empty() => bail!("{what}: --id must not be empty"),
            Some(id) => id.clone(),
            None => default_id(),
        };
        let mut previous: Option<i64> = None;
        loop {
            let zk = match g.connect_owned() {
                Ok(z) => z,
                Err(e) if previous.is_none() => return Err(e),
                // joining again: ZooKeeper may be away for a while
                Err(e) if e.is::<Stopped>() => return Ok(after_stop()),
                Err(e) => {
                    eprintln!("zkutil: {what}: reconnecting: {e:#}");
                    select! {
                        recv(stop) -> _ => return Ok(after_stop()),
                        default(std::time::Duration::from_secs(1)) => continue,
                    }
                }
            };
            let part = match Partitioner::join(&zk, &self.path, &id, &self.set, self.time_boundary, previous, &stop) {
                Ok(p) => p,
                Err(Error::Cancelled) => return Ok(after_stop()),
                Err(Error::Lost) => {
                    previous = Some(zk.session_id());
                    continue;
                }
                Err(e) => bail!("{what}: {e}"),
            };
            previous = Some(zk.session_id());
            let why = loop {
                match self.division(&part, &id, g.json(), &stop)? {
                    Then::Again => continue,
                    Then::Exit(code) => {
                        let _ = part.leave();
                        return Ok(code);
                    }
                    Then::Rejoin(why) => break why,
                }
            };
            if stop_requested() {
                return Ok(after_stop());
            }
            crate::status!("zkutil: {what}: {why}; joining again with a new session");
            drop(part);
            drop(zk); // closes the old session if it is still there: its nodes go at once
        }
    }
}
