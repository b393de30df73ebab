//! A shared integer in one znode, as decimal text (Curator's DistributedAtomicLong, without
//! its lock fallback): every update is a versioned compare-and-set, retried on BADVERSION,
//! so concurrent updaters never lose an increment. After a connection loss during a write,
//! the check of whether it landed syncs first (a server that has not applied it would make
//! us count twice). Never prints.

use std::fmt;

use super::support::{ensure_parents, retrying};
use crate::zk::{self, Code, CreateMode, SessionWatch, ZooKeeper, validate_path};

/// What a counter can fail with.
#[derive(Debug)]
#[allow(missing_docs)] // fields are named for what they hold; each variant says what failed
pub enum Error {
    Zk(zk::Error),
    /// The node holds something other than a decimal integer.
    NotANumber {
        path: String,
        data: Vec<u8>,
    },
    /// The result does not fit in an i64; nothing was written.
    Overflow {
        path: String,
        value: i64,
        delta: i64,
    },
    /// The connection was lost while our write was in flight and the node changed since:
    /// our update may or may not be in `now`. Never retried blindly (it could count twice).
    OutcomeUnknown {
        path: String,
        now: i64,
    },
}

impl From<zk::Error> for Error {
    fn from(e: zk::Error) -> Error {
        Error::Zk(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Zk(e) => e.fmt(f),
            Error::NotANumber { path, data } => {
                write!(f, "{path}: holds {:?}, not a decimal integer", crate::util::escape_data(data))
            }
            Error::Overflow { path, value, delta } => {
                write!(f, "{path}: {value} + {delta} overflows a 64-bit integer; nothing was written")
            }
            Error::OutcomeUnknown { path, now } => write!(
                f,
                "{path}: connection lost during the update and the counter changed since (now {now}); \
                 the update may or may not have been applied"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Result of the counter recipe.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A counter at `path`. A missing node counts as 0; empty data counts as 0.
pub struct Counter<'zk> {
    zk: &'zk ZooKeeper,
    path: String,
    health: SessionWatch,
}

impl<'zk> Counter<'zk> {
    /// The counter at `path`.
    pub fn new(zk: &'zk ZooKeeper, path: &str) -> Result<Counter<'zk>> {
        validate_path(path, false)?;
        Ok(Counter { zk, path: path.to_string(), health: SessionWatch::watcher(zk) })
    }

    fn parse(&self, data: &[u8]) -> Result<i64> {
        let text = std::str::from_utf8(data).map(str::trim).unwrap_or("\u{0}");
        if text.is_empty() {
            return Ok(0);
        }
        text.parse().map_err(|_| Error::NotANumber { path: self.path.clone(), data: data.to_vec() })
    }

    /// The current value (0 when the node does not exist; nothing is created).
    pub fn get(&self) -> Result<i64> {
        match retrying(self.zk, &self.health, || self.zk.get(&self.path)) {
            Ok((data, _)) => self.parse(&data),
            Err(e) if e.code() == Some(Code::NoNode) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds `delta` (negative subtracts); returns the new value. A missing node (and its
    /// parents) is created first, holding 0.
    pub fn add(&self, delta: i64) -> Result<i64> {
        self.update(|old| old.checked_add(delta).ok_or(delta))
    }

    /// Sets the value; returns the previous one (0 when the node was missing).
    pub fn set(&self, value: i64) -> Result<i64> {
        let mut previous = 0;
        self.update(|old| {
            previous = old;
            Ok(value)
        })?;
        Ok(previous)
    }

    /// The compare-and-set loop: read value and version, write the new value only if the
    /// version is unchanged, else read again.
    fn update(&self, mut f: impl FnMut(i64) -> Result<i64, i64>) -> Result<i64> {
        let (zk, health) = (self.zk, &self.health);
        loop {
            let (old, version) = match retrying(zk, health, || zk.get(&self.path)) {
                Ok((data, stat)) => (self.parse(&data)?, Some(stat.version)),
                Err(e) if e.code() == Some(Code::NoNode) => (0, None),
                Err(e) => return Err(e.into()),
            };
            let new = f(old).map_err(|delta| Error::Overflow { path: self.path.clone(), value: old, delta })?;
            let text = new.to_string();
            let Some(version) = version else {
                // Missing: create it holding 0 (safe to repeat after a lost connection, unlike
                // creating it with our value), then compare-and-set as usual.
                ensure_parents(zk, health, &self.path)?;
                match retrying(zk, health, || zk.create(&self.path, b"0", CreateMode::Persistent)) {
                    Ok(_) => continue,
                    Err(e) if e.code() == Some(Code::NodeExists) => continue,
                    Err(e) => return Err(e.into()),
                }
            };
            match zk.set(&self.path, text.as_bytes(), Some(version)) {
                Ok(_) => return Ok(new),
                Err(e) if matches!(e.code(), Some(Code::BadVersion | Code::NoNode)) => continue,
                Err(e) if e.is_outcome_unknown() => {
                    // Did our write land? If the version is still ours, it certainly did not,
                    // on a server brought up to date (sync): a lagging one would say "not
                    // yet" for a write that landed, and we would count twice.
                    match retrying(zk, health, || {
                        zk.sync(&self.path)?;
                        zk.get(&self.path)
                    }) {
                        Ok((_, st)) if st.version == version => continue,
                        Ok((data, _)) => {
                            return Err(Error::OutcomeUnknown { path: self.path.clone(), now: self.parse(&data)? });
                        }
                        Err(e) if e.code() == Some(Code::NoNode) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}
