//! The contender node shared by the lock and the semaphore: an ephemeral-sequential node
//! `DIR/_c_<uuid>-<tag><seq>` (Curator's protected names), created never twice (after a
//! connection loss the uuid finds it, on a server that `sync` brought up to date), deleted
//! through connection loss; every retry goes through the session-health model
//! ([`SessionWatch::retry`]), bounded by a deadline, a cancel receiver and the session.
//!
//! Errors come as [`LockError`] (the lock's error; the semaphore converts it to its own).

use std::time::{Duration, Instant};

use std::fmt;

use crossbeam_channel::Receiver;

use super::support::create_containers;
use crate::zk::{self, Acl, Code, CreateMode, Halt, SessionWatch, Stat, ZooKeeper};

/// Why a lock (or the lock inside a semaphore) was not obtained or kept.
#[derive(Debug)]
#[allow(missing_docs)] // fields are named for what they hold; each variant says what failed
pub enum LockError {
    /// The deadline passed first; our contender node is deleted.
    TimedOut,
    /// The cancel receiver fired; our contender node is deleted (or dies with the session).
    Cancelled,
    /// Our contender node disappeared, or belongs to another session: someone deleted it,
    /// or the session ended.
    Vanished { node: String },
    /// ZooKeeper refused, or the session is lost (`zk::Error::SessionLost`).
    Zk(zk::Error),
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::TimedOut => f.write_str("timed out waiting for the lock"),
            LockError::Cancelled => f.write_str("cancelled while waiting for the lock"),
            LockError::Vanished { node } => write!(f, "our contender node {node} vanished (session ended?)"),
            LockError::Zk(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LockError {}

impl From<zk::Error> for LockError {
    fn from(e: zk::Error) -> LockError {
        LockError::Zk(e)
    }
}

impl From<Halt> for LockError {
    fn from(h: Halt) -> LockError {
        match h {
            Halt::Zk(e) => LockError::Zk(e),
            Halt::Stopped => LockError::Cancelled,
            Halt::TimedOut => LockError::TimedOut,
        }
    }
}

/// The protection prefix of attempt `id`: `_c_<uuid>-`.
pub(crate) fn protection(id: &str) -> String {
    format!("_c_{id}-")
}

/// The path (before the sequence number) of the node of attempt `id` under `dir`.
pub(crate) fn node_path(dir: &str, id: &str, tag: &str) -> String {
    zk::join(dir, &format!("{}{tag}", protection(id)))
}

/// Where contender nodes live, and what ends a wait there besides deadline and cancel.
pub(crate) struct Site<'a> {
    pub(crate) zk: &'a ZooKeeper,
    /// The directory of the contender nodes (created as containers when missing).
    pub(crate) dir: &'a str,
    /// The owner's session health (holder grace): ends every wait and retry when lost.
    pub(crate) health: &'a SessionWatch,
}

impl Site<'_> {
    fn acl(&self) -> Vec<Acl> {
        if self.zk.options().digest.is_some() { Acl::creator_all() } else { Acl::open() }
    }

    /// Creates our node `_c_<id>-<tag><seq>`, never two: after an unknown outcome, looks
    /// for our uuid first.
    pub(crate) fn create_node(
        &self,
        id: &str,
        tag: &str,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
    ) -> Result<(String, Stat), LockError> {
        let prefix = protection(id);
        let path = node_path(self.dir, id, tag);
        let acl = self.acl();
        let mut parent_tries = 0;
        loop {
            match self.zk.create_with_acl(&path, b"", CreateMode::EphemeralSequential, &acl) {
                Ok(r) => return Ok(r),
                // The directory is missing (first use, or the server removed the empty
                // container meanwhile).
                Err(e) if e.code() == Some(Code::NoNode) && parent_tries < 10 => {
                    parent_tries += 1;
                    self.retrying(|| create_containers(self.zk, self.dir), deadline, cancel)?;
                }
                Err(e) if e.is_outcome_unknown() => {
                    self.health.recover(cancel, deadline)?;
                    if let Some(r) = self.retrying(|| self.find_ours(&prefix), deadline, cancel)? {
                        return Ok(r);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Our node (by its protection prefix) and its Stat, if the create landed. Syncs first:
    /// after a reconnect to another server, that server may not have applied our create yet.
    pub(crate) fn find_ours(&self, prefix: &str) -> zk::Result<Option<(String, Stat)>> {
        match self.zk.sync(self.dir) {
            Err(e) if e.code() == Some(Code::NoNode) => return Ok(None),
            r => r?,
        }
        let kids = match self.zk.children(self.dir) {
            Ok(k) => k,
            Err(e) if e.code() == Some(Code::NoNode) => return Ok(None),
            Err(e) => return Err(e),
        };
        for k in kids.iter().filter(|k| k.starts_with(prefix)) {
            let p = zk::join(self.dir, k);
            if let Some(stat) = self.zk.exists(&p)? {
                return Ok(Some((p, stat)));
            }
        }
        Ok(None)
    }

    /// After a failed attempt whose create may have landed: find and delete the node, for
    /// at most a session timeout (after that the session is gone, and the node with it).
    pub(crate) fn cleanup_unknown(&self, id: &str, cancel: &Receiver<()>) {
        let until = Some(Instant::now() + self.zk.session_timeout() + Duration::from_secs(1));
        let prefix = protection(id);
        if let Ok(Some((node, _))) = self.retrying(|| self.find_ours(&prefix), until, cancel) {
            let _ = self.delete_node(&node, cancel);
        }
    }

    /// Deletes a node, retrying through connection loss for at most a session timeout.
    pub(crate) fn delete_node(&self, node: &str, cancel: &Receiver<()>) -> Result<(), LockError> {
        let until = Some(Instant::now() + self.zk.session_timeout() + Duration::from_secs(1));
        self.retrying(
            || match self.zk.delete(node, None) {
                Err(e) if e.code() == Some(Code::NoNode) => Ok(()),
                r => r,
            },
            until,
            cancel,
        )
    }

    /// Runs an idempotent call, again after each connection loss (the health model's
    /// retry: a pause, then the reconnection, within the deadline, cancel and session).
    pub(crate) fn retrying<T>(
        &self,
        f: impl FnMut() -> zk::Result<T>,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
    ) -> Result<T, LockError> {
        Ok(self.health.retry(cancel, deadline, f)?)
    }
}
