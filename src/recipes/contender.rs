//! The contender node shared by the lock and the semaphore: an ephemeral-sequential node
//! `DIR/_c_<uuid>-<tag><seq>` (Curator's protected names), created never twice (after a
//! connection loss the uuid finds it), deleted through connection loss, and the retry/pause
//! around the calls, bounded by a deadline and a cancel receiver.
//!
//! Errors come as [`LockError`] (only `TimedOut`, `Cancelled` and `Zk`); the semaphore
//! converts them to its own variant of the same name.

use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};

use super::lock::{LockError, create_containers};
use crate::zk::{self, Acl, Code, CreateMode, SessionEvent, Stat, ZooKeeper};

/// The protection prefix of attempt `id`: `_c_<uuid>-`.
pub(crate) fn protection(id: &str) -> String {
    format!("_c_{id}-")
}

/// The path (before the sequence number) of the node of attempt `id` under `dir`.
pub(crate) fn node_path(dir: &str, id: &str, tag: &str) -> String {
    zk::join(dir, &format!("{}{tag}", protection(id)))
}

/// The error of an ended session.
pub(crate) fn session_gone() -> LockError {
    LockError::Zk(zk::Error::Zk { code: Code::SessionExpired, path: None })
}

/// Where contender nodes live, and what ends a wait there besides deadline and cancel.
pub(crate) struct Site<'a> {
    pub(crate) zk: &'a ZooKeeper,
    /// The directory of the contender nodes (created as containers when missing).
    pub(crate) dir: &'a str,
    /// The owner's session events (one subscription for its lifetime).
    pub(crate) events: &'a Receiver<SessionEvent>,
    /// Disconnects when the session is lost, if the owner watches for it.
    pub(crate) lost: Option<&'a Receiver<()>>,
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
                    self.pause(deadline, cancel)?;
                    if let Some(r) = self.retrying(|| self.find_ours(&prefix), deadline, cancel)? {
                        return Ok(r);
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Our node (by its protection prefix) and its Stat, if the create landed.
    pub(crate) fn find_ours(&self, prefix: &str) -> zk::Result<Option<(String, Stat)>> {
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

    /// Runs an idempotent call, again after each connection loss.
    pub(crate) fn retrying<T>(
        &self,
        mut f: impl FnMut() -> zk::Result<T>,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
    ) -> Result<T, LockError> {
        loop {
            match f() {
                Err(e) if e.is_outcome_unknown() => self.pause(deadline, cancel)?,
                r => return r.map_err(LockError::from),
            }
        }
    }

    /// Waits a little after a connection loss (less if the session reconnects), unless
    /// the deadline passes, `cancel` fires or the session ends (or is lost).
    pub(crate) fn pause(&self, deadline: Option<Instant>, cancel: &Receiver<()>) -> Result<(), LockError> {
        let mut wait = Duration::from_millis(100);
        if let Some(d) = deadline {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LockError::TimedOut);
            }
            wait = wait.min(left);
        }
        let never = crossbeam_channel::never();
        select! {
            recv(self.events) -> ev => match ev {
                Ok(ev) if ev.is_terminal() => Err(session_gone()),
                _ => Ok(()),
            },
            recv(self.lost.unwrap_or(&never)) -> _ => Err(session_gone()),
            recv(cancel) -> _ => Err(LockError::Cancelled),
            default(wait) => Ok(()),
        }
    }
}
