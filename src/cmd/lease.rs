//! `zkutil lease PATH --duration D [--id ID] [--limit N] [-- CMD]` and `zkutil lease PATH
//! --status`, on `recipes::lease` (kazoo's NonBlockingLease / MultiNonBlockingLease).
//!
//! The lease is taken (or renewed) and the session closed before CMD starts: the lease is a
//! right until its end time, written in ZooKeeper, not a session, so CMD does not depend on
//! the connection, and a killed zkutil (or CMD) leaves the lease in place until its end.
//! Another holder gets `--conflict-exit-code` (75) and one line on stderr naming the holder.
//! If CMD still runs when the lease ends, zkutil says so on stderr (another host may take
//! the lease from then on) and lets CMD finish: ending it is the caller's choice (a
//! `timeout` around CMD, or a longer --duration).

use std::io::{self, Write};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Result, anyhow, bail};
use crossbeam_channel::{never, select};
use serde_json::{Value, json};

use super::Run;
use super::child::{Child, exit_code, margin};
use super::exit::after_stop;
use super::output::print_json;
use crate::cli::{Global, LeaseArgs};
use crate::recipes::lease::{self, Outcome, Record, Request};
use crate::util::shutdown;

/// kazoo's default identifier: `socket.gethostname()`.
fn hostname() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_else(|| "localhost".into())
}

/// `2026-12-03T09:00:00Z`: a record's end, marked as UTC.
fn end_utc(rec: &Record) -> String {
    format!("{}Z", rec.end)
}

/// "held (59m 58s left)" / "ended 3s ago" by our clock.
fn state(rec: &Record, now: SystemTime) -> String {
    if rec.version != lease::VERSION {
        return format!("record version {} (not ours: left alone)", rec.version);
    }
    match rec.end_time() {
        Some(end) if now < end => format!("held ({} left)", round(end.duration_since(now).unwrap_or_default())),
        Some(end) => format!("free (ended {} ago)", round(now.duration_since(end).unwrap_or_default())),
        None => format!("unreadable end {:?}", rec.end),
    }
}

fn round(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

impl Run for LeaseArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let stop = shutdown();
        let what = format!("lease {}", self.path);
        crate::zk::validate_path(&self.path, false)?;
        if self.status {
            let zk = g.connect()?;
            let now = SystemTime::now();
            let slots = lease::status(&zk, &self.path, self.limit)?;
            if g.json() {
                let list: Vec<Value> = slots
                    .iter()
                    .map(|(slot, rec)| match rec {
                        Some(r) => json!({
                            "path": slot,
                            "holder": r.holder,
                            "end": end_utc(r),
                            "held": r.version == lease::VERSION && r.runs_at(now),
                            "state": state(r, now),
                        }),
                        None => json!({ "path": slot, "holder": null, "end": null, "held": false, "state": "free (never taken)" }),
                    })
                    .collect();
                print_json(&json!({ "path": self.path, "leases": list }))?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut out = io::stdout().lock();
            for (slot, rec) in slots {
                match rec {
                    Some(r) => writeln!(out, "{slot}\t{}\t{}\t{}", r.holder, end_utc(&r), state(&r, now))?,
                    None => writeln!(out, "{slot}\t-\t-\tfree (never taken)")?,
                }
            }
            return Ok(ExitCode::SUCCESS);
        }
        let duration = self.duration.ok_or_else(|| anyhow!("{what}: --duration is required"))?;
        let id = self.id.clone().unwrap_or_else(hostname);
        if id.is_empty() {
            bail!("{what}: --id must not be empty");
        }
        let zk = g.connect()?;
        let req = Request {
            path: &self.path,
            duration,
            identifier: &id,
            limit: self.limit,
            lock_wait: (zk.session_timeout() * 3).max(Duration::from_secs(30)),
        };
        let outcome = match lease::obtain(&zk, &req, &stop) {
            Ok(o) => o,
            Err(lease::Error::Cancelled) => return Ok(after_stop()),
            Err(e) => return Err(anyhow!(e).context(format!("taking the {what}"))),
        };
        let margin = margin(&zk);
        drop(zk); // the lease lives in its record, not in our session
        let (slot, record) = match outcome {
            Outcome::Held(others) => {
                let now = SystemTime::now();
                let who: Vec<String> = others
                    .iter()
                    .map(|(_, r)| match r.end_time().and_then(|e| e.duration_since(now).ok()) {
                        Some(left) if r.version == lease::VERSION => {
                            format!("{} until {} ({} left)", r.holder, end_utc(r), round(left))
                        }
                        _ => format!("{} until {} ({})", r.holder, end_utc(r), state(r, now)),
                    })
                    .collect();
                eprintln!("zkutil: {what}: held by {}", who.join(", "));
                return Ok(ExitCode::from(self.conflict_exit_code));
            }
            Outcome::Obtained { slot, record, .. } => (slot, record),
        };
        if self.command.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        let mut child = Child::spawn(&self.command, margin)?;
        let left = record.end_time().and_then(|e| e.duration_since(SystemTime::now()).ok()).unwrap_or_default();
        let mut ends = crossbeam_channel::after(left);
        let status = loop {
            select! {
                recv(child.done()) -> r => break child.reaped(r)?,
                recv(ends) -> _ => {
                    eprintln!(
                        "zkutil: lease {slot} ended at {} while {} still runs: another holder may take it now",
                        end_utc(&record),
                        self.command[0]
                    );
                    ends = never();
                },
                recv(stop) -> _ => {
                    child.forward_stop()?;
                    return Ok(after_stop());
                },
            }
        };
        Ok(exit_code(status))
    }
}
