//! kazoo's `NonBlockingLease` and `MultiNonBlockingLease`, node for node, so zkutil and
//! kazoo processes share one lease.
//!
//! A lease at `PATH` is the persistent node `PATH/lease_holder` holding, as kazoo writes it,
//! `{"version": 1, "holder": "<id>", "end": "<UTC %Y-%m-%dT%H:%M:%S>"}`. To take it, a
//! contender takes kazoo's lock at `PATH` (see [`super::kazoo`]), reads the record, and
//! writes its own when there is none, when the record is its own (a renewal: same id), or
//! when the record's end has passed by its own clock; otherwise another holder has it. The
//! record outlives the session by design: a lease is a right until a time, not a session.
//! `MultiNonBlockingLease(count)` is `count` such leases at `PATH/0` .. `PATH/<count-1>`,
//! tried in order; the first obtained wins.
//!
//! Where zkutil goes beyond kazoo (compatibly): the record is replaced in one multi (delete
//! at the version read, create), so even a contender that lost its lock (an expired
//! session) cannot overwrite a record written meanwhile; and a reply lost to a connection
//! drop is resolved by reading the record back.
//!
//! Clocks: the end time is the writer's wall clock plus the duration, compared by every
//! later contender with its own wall clock. A contender whose clock runs ahead by S takes
//! the lease S early; one whose clock lags extends a lease it holds by S. The lease is only
//! as exact as the hosts' clocks are in step (NTP keeps them within milliseconds; the
//! recipe's unit is the second).
//!
//! This module never prints.

use std::fmt;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;

use super::kazoo;
use super::lock::LockError;
use super::support::retrying;
use crate::zk::{self, Code, CreateMode, Op, SessionWatch, ZooKeeper};

/// The record's node under the lease path (kazoo: `path + "/lease_holder"`).
pub const HOLDER_NODE: &str = "lease_holder";
/// kazoo's `NonBlockingLease._version`: records of another version are left alone.
pub const VERSION: i64 = 1;

/// Why a lease call failed.
#[derive(Debug)]
pub enum Error {
    /// ZooKeeper refused or failed a call.
    Zk(zk::Error),
    /// The lease's lock was not had within the wait (a contender that died holding it keeps
    /// it until its session expires).
    LockTimedOut {
        /// The lease path.
        path: String,
    },
    /// Cancelled by the caller.
    Cancelled,
    /// `lease_holder` holds something that is not a kazoo lease record.
    BadRecord {
        /// The record's node.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Zk(e) => e.fmt(f),
            Error::LockTimedOut { path } => write!(
                f,
                "the lock of lease {path} stayed taken (a contender that died holding it keeps it until its session expires)"
            ),
            Error::Cancelled => f.write_str("cancelled"),
            Error::BadRecord { path, why } => write!(f, "{path}: not a kazoo lease record: {why}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<zk::Error> for Error {
    fn from(e: zk::Error) -> Error {
        Error::Zk(e)
    }
}

impl From<LockError> for Error {
    fn from(e: LockError) -> Error {
        match e {
            LockError::Zk(e) => Error::Zk(e),
            LockError::Cancelled => Error::Cancelled,
            LockError::TimedOut => Error::LockTimedOut { path: String::new() },
            LockError::Vanished { node } => Error::Zk(zk::Error::Zk { code: Code::SessionExpired, path: Some(node) }),
        }
    }
}

/// One lease record, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record format version (kazoo's is 1).
    pub version: i64,
    /// The holder's identifier.
    pub holder: String,
    /// The end as written: UTC, `%Y-%m-%dT%H:%M:%S`.
    pub end: String,
}

impl Record {
    /// The end as a time (None when it does not parse).
    pub fn end_time(&self) -> Option<SystemTime> {
        parse_end(&self.end)
    }

    /// True while the lease runs by `now` (kazoo: `now < current_end`).
    pub fn runs_at(&self, now: SystemTime) -> bool {
        self.end_time().is_some_and(|end| now < end)
    }

    /// The bytes kazoo's `json.dumps` writes for this record (key order, separators and
    /// ASCII escapes included), so either side reads the other's records byte for byte.
    pub fn encode(&self) -> Vec<u8> {
        format!(
            "{{\"version\": {}, \"holder\": {}, \"end\": {}}}",
            self.version,
            py_json_string(&self.holder),
            py_json_string(&self.end)
        )
        .into_bytes()
    }

    /// Reads a record (any JSON with the three keys).
    pub fn decode(raw: &[u8]) -> Result<Record, String> {
        let v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
        let version = v.get("version").and_then(|x| x.as_i64()).ok_or("no integer \"version\"")?;
        let holder = v.get("holder").and_then(|x| x.as_str()).ok_or("no string \"holder\"")?.to_string();
        let end = v.get("end").and_then(|x| x.as_str()).ok_or("no string \"end\"")?.to_string();
        Ok(Record { version, holder, end })
    }
}

/// `t` as kazoo's `strftime("%Y-%m-%dT%H:%M:%S")` of a naive UTC datetime (fraction cut).
pub fn format_end(t: SystemTime) -> String {
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s.trim_end_matches('Z').to_string()
}

/// Parses an end written by [`format_end`] (or kazoo).
pub fn parse_end(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(&format!("{s}Z")).ok()
}

/// A string as Python's `json.dumps` (ensure_ascii) writes it.
fn py_json_string(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The lease paths a request covers: `PATH` itself, or `PATH/0` .. `PATH/<limit-1>`.
pub fn slots(path: &str, limit: Option<u32>) -> Vec<String> {
    match limit {
        None => vec![path.to_string()],
        Some(n) => (0..n).map(|i| zk::join(path, &i.to_string())).collect(),
    }
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// We hold the lease at `slot` until `record.end`.
    Obtained {
        /// The lease path obtained (`PATH`, or `PATH/i` with a limit).
        slot: String,
        /// What we wrote.
        record: Record,
        /// True when the record was already ours (a renewal).
        renewed: bool,
    },
    /// Others hold every slot: (slot, its record) for each.
    Held(Vec<(String, Record)>),
}

/// A request for a lease.
pub struct Request<'a> {
    /// The lease path (with `limit`: the parent of the slots).
    pub path: &'a str,
    /// How long the lease runs from now.
    pub duration: Duration,
    /// Our identifier: the same identifier renews.
    pub identifier: &'a str,
    /// None: kazoo's NonBlockingLease at `path`; Some(n): MultiNonBlockingLease(n).
    pub limit: Option<u32>,
    /// How long to wait for each slot's lock.
    pub lock_wait: Duration,
}

/// Tries to obtain the lease (each slot in order), never blocking on another holder:
/// only on the lock that orders contenders, for at most `lock_wait` per slot.
pub fn obtain(zk: &ZooKeeper, req: &Request<'_>, cancel: &Receiver<()>) -> Result<Outcome, Error> {
    let health = SessionWatch::holder(zk);
    let mut held = Vec::new();
    for slot in slots(req.path, req.limit) {
        match obtain_one(zk, &health, &slot, req, cancel)? {
            Ok((record, renewed)) => return Ok(Outcome::Obtained { slot, record, renewed }),
            Err(other) => held.push((slot, other)),
        }
    }
    Ok(Outcome::Held(held))
}

/// One NonBlockingLease: Ok(Ok((ours, renewed))) or Ok(Err(theirs)).
fn obtain_one(
    zk: &ZooKeeper,
    health: &SessionWatch,
    slot: &str,
    req: &Request<'_>,
    cancel: &Receiver<()>,
) -> Result<Result<(Record, bool), Record>, Error> {
    let deadline = Instant::now() + req.lock_wait;
    let lock = kazoo::acquire(zk, health, slot, req.identifier, Some(deadline), cancel).map_err(|e| match e {
        LockError::TimedOut => Error::LockTimedOut { path: slot.to_string() },
        e => e.into(),
    })?;
    let holder_path = zk::join(slot, HOLDER_NODE);
    let r = decide(zk, health, &holder_path, req);
    // kazoo's `with lock:` releases however the body ended
    let _ = lock.release();
    r
}

/// The check and the write, under the lock.
fn decide(
    zk: &ZooKeeper,
    health: &SessionWatch,
    holder_path: &str,
    req: &Request<'_>,
) -> Result<Result<(Record, bool), Record>, Error> {
    for _ in 0..10 {
        let now = SystemTime::now();
        let current = match retrying(zk, health, || zk.get(holder_path)) {
            Ok((raw, stat)) => {
                let rec =
                    Record::decode(&raw).map_err(|why| Error::BadRecord { path: holder_path.to_string(), why })?;
                Some((rec, stat.version))
            }
            Err(e) if e.code() == Some(Code::NoNode) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some((rec, _)) = &current
            && (rec.version != VERSION || (rec.holder != req.identifier && rec.runs_at(now)))
        {
            // another version (kazoo: "we need an upgrade, let someone else take the lease"),
            // or another holder whose lease runs
            return Ok(Err(rec.clone()));
        }
        let renewed = current.as_ref().is_some_and(|(rec, _)| rec.holder == req.identifier);
        let mine = Record { version: VERSION, holder: req.identifier.to_string(), end: format_end(now + req.duration) };
        let create = Op::Create { path: holder_path.to_string(), data: mine.encode(), mode: CreateMode::Persistent };
        let ops = match &current {
            Some((_, version)) => vec![Op::Delete { path: holder_path.to_string(), version: Some(*version) }, create],
            None => vec![create],
        };
        match zk.multi(&ops) {
            Ok(_) => return Ok(Ok((mine, renewed))),
            // changed under us (a writer without the lock): look again
            Err(e) if matches!(e.code(), Some(Code::BadVersion | Code::NoNode | Code::NodeExists)) => continue,
            Err(e) if e.is_outcome_unknown() => {
                // did it land? our exact record says so
                match retrying(zk, health, || {
                    zk.sync(holder_path)?;
                    zk.get(holder_path)
                }) {
                    Ok((raw, _)) if raw == mine.encode() => return Ok(Ok((mine, renewed))),
                    Ok(_) => continue,
                    Err(e) if e.code() == Some(Code::NoNode) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Zk(zk::Error::Zk { code: Code::BadVersion, path: Some(holder_path.to_string()) }))
}

/// Each slot's record (None: never taken), for `--status`.
pub fn status(zk: &ZooKeeper, path: &str, limit: Option<u32>) -> Result<Vec<(String, Option<Record>)>, Error> {
    let health = SessionWatch::watcher(zk);
    let mut out = Vec::new();
    for slot in slots(path, limit) {
        let holder_path = zk::join(&slot, HOLDER_NODE);
        let rec = match retrying(zk, &health, || zk.get(&holder_path)) {
            Ok((raw, _)) => Some(Record::decode(&raw).map_err(|why| Error::BadRecord { path: holder_path, why })?),
            Err(e) if e.code() == Some(Code::NoNode) => None,
            Err(e) => return Err(e.into()),
        };
        out.push((slot, rec));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_byte_for_byte_kazoo() {
        let r = Record { version: 1, holder: "host-a".into(), end: "2026-12-03T08:00:05".into() };
        assert_eq!(r.encode(), br#"{"version": 1, "holder": "host-a", "end": "2026-12-03T08:00:05"}"#.to_vec());
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        // json.dumps("h\u00e9\"\n\U0001f600")
        assert_eq!(py_json_string("h\u{e9}\"\n\u{1f600}"), r#""h\u00e9\"\n\ud83d\ude00""#);
        assert!(Record::decode(b"{}").is_err());
        assert!(Record::decode(b"junk").is_err());
    }

    #[test]
    fn end_times_round_trip_at_second_precision() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_284_805_750);
        let s = format_end(t);
        assert_eq!(s, "2026-12-03T08:00:05");
        let back = parse_end(&s).unwrap();
        assert_eq!(back, SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_284_805));
        let r = Record { version: 1, holder: "x".into(), end: s };
        assert!(r.runs_at(back - Duration::from_millis(1)));
        assert!(!r.runs_at(back));
        assert_eq!(slots("/l", Some(2)), ["/l/0", "/l/1"]);
        assert_eq!(slots("/l", None), ["/l"]);
    }
}
