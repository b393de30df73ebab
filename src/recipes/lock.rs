//! The distributed lock: Curator's InterProcessMutex semantics, plus a read/write lock.
//!
//! Every contender creates an ephemeral-sequential node under the lock's directory and
//! waits until no node that blocks it precedes it:
//! - exclusive (write) contenders `_c_<uuid>-lock-<seq>` are blocked by any earlier node;
//! - shared (read) contenders `_c_<uuid>-__READ__<seq>` only by an earlier writer;
//! - writers of Curator's InterProcessReadWriteLock, `_c_<uuid>-__WRIT__<seq>`, are
//!   exclusive contenders under the name Curator's readers look for ([`Mode::Write`]).
//!
//! Contenders are ordered by the 10-digit sequence suffix whatever the prefix (all children
//! of one parent share one counter), so the lock is shared with Curator's InterProcessMutex
//! (same names), and with kazoo's Lock when kazoo is told the `-lock-` pattern. A node whose
//! name (before the suffix) ends with `__READ__` (Curator) or `__rlock__` (kazoo) is a
//! reader; every other sequential child is a writer.
//!
//! Curator itself tells its two kinds apart by name, so one exclusive name cannot serve
//! both: InterProcessMutex orders only `lock-` nodes by their suffix, and
//! InterProcessReadWriteLock only `__READ__`/`__WRIT__` nodes, and its readers wait only
//! for `__WRIT__` nodes. Share a lock with an InterProcessMutex as [`Mode::Exclusive`], with
//! an InterProcessReadWriteLock as [`Mode::Shared`] and [`Mode::Write`]
//! (tests/it/curator.rs runs Curator against each).
//!
//! Safety properties:
//! - a waiter watches only the node that blocks it (`get_w`, never `exists_w`, which would
//!   arm a watch on a missing node that never fires): no herd, no polling;
//! - the uuid is new for every attempt: after a connection loss during the create, the
//!   children are searched for it before anything is created again (never two nodes);
//! - before acting as holder, the node's ephemeralOwner must be this session;
//! - a contender that gives up (deadline, cancel) deletes its node;
//! - the guard deletes its node on Drop; `Held::lost` tells the holder to let go when the
//!   session ended, or when the connection has been down for a sixth of the session timeout
//!   (the session-health model's holder grace, [`SessionWatch::holder`]: waiting for the full
//!   timeout, as Curator's LOST does, lets a holder cut off from ZooKeeper run on after the
//!   server expired it and handed the lock on).
//!
//! This module never prints: it returns typed results and lets the command choose words.

use std::time::Instant;

use crossbeam_channel::{Receiver, RecvError, never, select};

pub use super::contender::LockError;
use super::contender::{self, Site};
pub use super::support::create_containers;
use crate::zk::{self, Code, CreateMode, EventKind, Op, OpResult, SessionWatch, Stat, ZooKeeper};

/// How a contender takes the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write lock: excludes every other holder (Curator's InterProcessMutex).
    Exclusive,
    /// Read lock: held together with other readers, never with a writer.
    Shared,
    /// Write lock under Curator InterProcessReadWriteLock's writer name (`__WRIT__`):
    /// excludes every other holder, as `Exclusive`, and Curator's readers see it as a writer.
    Write,
}

impl Mode {
    /// The part of the node name between `_c_<uuid>-` and the sequence number.
    pub fn tag(self) -> &'static str {
        match self {
            Mode::Exclusive => "lock-",
            Mode::Shared => "__READ__",
            Mode::Write => "__WRIT__",
        }
    }
}

/// A contender node: its name (without the directory) and sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contender {
    /// Full path of the node.
    pub node: String,
    /// The 10-digit sequence number the server appended.
    pub seq: u32,
}

/// A lock at one directory, used through one session. Make one per session and call
/// `acquire` as often as needed (each attempt creates a fresh node).
pub struct Lock<'z> {
    zk: &'z ZooKeeper,
    dir: String,
    mode: Mode,
    /// The session's health for a holder (T/6 grace): one thread for the lock's lifetime,
    /// whatever the number of attempts and holds.
    health: SessionWatch,
}

impl<'z> Lock<'z> {
    /// A lock at `dir` (created as containers on first use) in `mode`.
    pub fn new(zk: &'z ZooKeeper, dir: &str, mode: Mode) -> zk::Result<Lock<'z>> {
        zk::validate_path(dir, false)?;
        Ok(Lock { zk, dir: dir.to_string(), mode, health: SessionWatch::holder(zk) })
    }

    /// The session's health as this lock's holders see it (T/6 grace).
    pub fn health(&self) -> &SessionWatch {
        &self.health
    }

    /// The lock's directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Takes the lock, waiting until `deadline` (None: forever) unless `cancel` fires
    /// (a message or a disconnect). `on_wait` is called once, with our node, when another
    /// contender holds the lock and we have to wait.
    pub fn acquire(
        &self,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
        on_wait: impl FnOnce(&Contender),
    ) -> Result<Held<'_, 'z>, LockError> {
        if !self.health.may_act() {
            return Err(LockError::Zk(self.health.error()));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let created = self.create_node(&id, deadline, cancel);
        self.queued(&id, created.map(|(node, stat)| (node, stat.ephemeral_owner)), deadline, cancel, on_wait)
    }

    /// Continues an attempt whose create returned `created` (node, ephemeralOwner): waits
    /// for the lock, cleaning up on every way out but success.
    fn queued(
        &self,
        id: &str,
        created: Result<(String, i64), LockError>,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
        on_wait: impl FnOnce(&Contender),
    ) -> Result<Held<'_, 'z>, LockError> {
        let (node, owner) = match created {
            Ok(n) => n,
            Err(e) => {
                // The create's outcome may be unknown: find and delete the node if it landed.
                self.site().cleanup_unknown(id, cancel);
                return Err(e);
            }
        };
        let seq = zk::sequence_of(&node).ok_or_else(|| LockError::Vanished { node: node.clone() })?;
        let me = Contender { node, seq };
        match self.wait(&me, owner, deadline, cancel, on_wait) {
            Ok(()) if !self.health.may_act() => Err(LockError::Zk(self.health.error())),
            Ok(()) => Ok(Held { lock: self, me, released: false }),
            Err(e) => {
                if !matches!(e, LockError::Vanished { .. }) {
                    let _ = self.site().delete_node(&me.node, cancel);
                }
                Err(e)
            }
        }
    }

    /// The path (before the sequence number) of the node for attempt `id`.
    fn node_prefix(&self, id: &str) -> String {
        contender::node_path(&self.dir, id, self.mode.tag())
    }

    /// Where our nodes live: creating, finding, deleting them, retrying through connection loss.
    fn site(&self) -> Site<'_> {
        Site { zk: self.zk, dir: &self.dir, health: &self.health }
    }

    /// Creates our node, never two: after an unknown outcome, looks for our uuid first.
    fn create_node(
        &self,
        id: &str,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
    ) -> Result<(String, Stat), LockError> {
        self.site().create_node(id, self.mode.tag(), deadline, cancel)
    }

    /// Waits until nothing that blocks `me` precedes it.
    fn wait(
        &self,
        me: &Contender,
        owner: i64,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
        on_wait: impl FnOnce(&Contender),
    ) -> Result<(), LockError> {
        // A node of another session (an earlier one of ours) must not count.
        if owner != self.zk.session_id() {
            return Err(LockError::Vanished { node: me.node.clone() });
        }
        let my_name = me.node.rsplit('/').next().unwrap_or_default();
        let timer = deadline.map_or_else(never, crossbeam_channel::at);
        let mut on_wait = Some(on_wait);
        loop {
            let kids = self.site().retrying(|| self.zk.children(&self.dir), deadline, cancel)?;
            let order = contenders(&kids);
            let Some(idx) = order.iter().position(|c| *c == my_name) else {
                return Err(LockError::Vanished { node: me.node.clone() });
            };
            let blockers: Vec<&str> = match self.mode {
                Mode::Exclusive | Mode::Write => order[..idx].to_vec(),
                Mode::Shared => order[..idx].iter().copied().filter(|n| !is_reader(n)).collect(),
            };
            let Some(&pred) = blockers.last() else { return Ok(()) };
            // When the only blocker goes, nothing can take its place: later nodes get
            // higher sequence numbers. Then its deletion alone hands us the lock, without
            // listing the children again.
            let only = blockers.len() == 1;
            if let Some(f) = on_wait.take() {
                f(me);
            }
            let pred_path = zk::join(&self.dir, pred);
            let watch = match self.zk.get_w(&pred_path) {
                Ok((_, _, rx)) => rx,
                Err(e) if e.code() == Some(Code::NoNode) => {
                    if only {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) if e.is_outcome_unknown() => {
                    self.health.recover(cancel, deadline)?;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            select! {
                recv(watch) -> ev => match ev {
                    Ok(ev) if ev.kind == EventKind::Deleted && only => return Ok(()),
                    Ok(_) => continue,
                    // Watches disconnect when the session ends.
                    Err(_) => return Err(LockError::Zk(zk::Error::SessionLost(zk::Lost::Expired))),
                },
                recv(self.health.lost()) -> _ => return Err(LockError::Zk(self.health.error())),
                recv(cancel) -> _ => return Err(LockError::Cancelled),
                recv(timer) -> _ => return Err(LockError::TimedOut),
            }
        }
    }
}

/// The sequential children in lock order (by the 10-digit suffix, whatever the prefix).
pub fn contenders<S: AsRef<str>>(children: &[S]) -> Vec<&str> {
    let mut v: Vec<(u32, &str)> =
        children.iter().filter_map(|c| zk::sequence_of(c.as_ref()).map(|s| (s, c.as_ref()))).collect();
    v.sort_unstable();
    v.into_iter().map(|(_, n)| n).collect()
}

/// True for a read-lock contender (Curator's `__READ__`, kazoo's `__rlock__`).
pub fn is_reader(name: &str) -> bool {
    let head = &name[..name.len().saturating_sub(10)];
    head.ends_with("__READ__") || head.ends_with("__rlock__")
}

/// The lock, held. Dropping it releases the lock (deletes our node).
#[must_use = "the lock is released when the guard is dropped"]
pub struct Held<'l, 'z> {
    lock: &'l Lock<'z>,
    me: Contender,
    released: bool,
}

impl<'l, 'z> Held<'l, 'z> {
    /// Our node.
    pub fn contender(&self) -> &Contender {
        &self.me
    }

    /// Select on it while holding and ask `is_lost`: it fires when the session ended, or
    /// when the client has been cut off for a sixth of the session timeout (the holder grace
    /// of [`SessionWatch::holder`]).
    /// Either way the holder must stop acting as one: someone else may hold the lock now,
    /// or will soon.
    pub fn lost(&self) -> &Receiver<()> {
        self.lock.health.lost()
    }

    /// True when what `lost()` delivered means the lock is gone (it only ever disconnects).
    pub fn is_lost(&self, ev: Result<(), RecvError>) -> bool {
        ev.is_err()
    }

    /// Why `lost()` fired, in words: the session expired, or the connection is down.
    pub fn why_lost(&self) -> String {
        let why = self.lock.health.lost_why().unwrap_or(zk::Lost::Closed);
        match why {
            zk::Lost::Silent(_) => format!("{why}, a sixth of the session timeout"),
            zk::Lost::Expired => "session expired".to_string(),
            _ => why.to_string(),
        }
    }

    /// Releases the lock and queues for it again, as `acquire` does, in one round trip: a
    /// multi deletes our node and creates the next one (a loop that takes the lock again
    /// and again saves a round trip per turn). Waiters queued behind us go first.
    pub fn requeue(
        mut self,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
        on_wait: impl FnOnce(&Contender),
    ) -> Result<Held<'l, 'z>, LockError> {
        self.released = true;
        let lock = self.lock;
        let id = uuid::Uuid::new_v4().to_string();
        let ops = [
            Op::Delete { path: self.me.node.clone(), version: None },
            Op::Create { path: lock.node_prefix(&id), data: Vec::new(), mode: CreateMode::EphemeralSequential },
        ];
        let created = match lock.zk.multi(&ops) {
            // Created by this session in this call: ours by construction.
            Ok(r) => match r.get(1) {
                Some(OpResult::Created(node)) => Ok((node.clone(), lock.zk.session_id())),
                _ => Err(LockError::Vanished { node: self.me.node.clone() }),
            },
            Err(e) if e.is_outcome_unknown() => {
                // Both or neither applied: our uuid tells which.
                let (site, prefix) = (lock.site(), contender::protection(&id));
                match site.retrying(|| site.find_ours(&prefix), deadline, cancel) {
                    Ok(Some((node, stat))) => Ok((node, stat.ephemeral_owner)),
                    Ok(None) => site
                        .delete_node(&self.me.node, cancel)
                        .and_then(|()| lock.create_node(&id, deadline, cancel))
                        .map(|(node, stat)| (node, stat.ephemeral_owner)),
                    Err(e) => Err(e),
                }
            }
            // Our node is gone already (deleted by someone, or the session ended): queue
            // the ordinary way (which reports an ended session).
            Err(e) if e.code() == Some(Code::NoNode) => {
                lock.create_node(&id, deadline, cancel).map(|(node, stat)| (node, stat.ephemeral_owner))
            }
            Err(e) => {
                let _ = lock.site().delete_node(&self.me.node, cancel);
                Err(e.into())
            }
        };
        lock.queued(&id, created, deadline, cancel, on_wait)
    }

    /// Gives the hold up without deleting the node, after `lost()` fired: the connection is
    /// down or the session gone, so a delete would only wait. The node goes with the
    /// session (closing the client deletes it at once if the connection is back).
    pub fn abandon(mut self) {
        self.released = true;
    }

    /// Releases the lock: deletes our node, through connection loss.
    pub fn release(mut self) -> Result<(), LockError> {
        self.released = true;
        self.lock.site().delete_node(&self.me.node, &never())
    }
}

impl Drop for Held<'_, '_> {
    fn drop(&mut self) {
        if !self.released
            && self.lock.health.may_act()
            && let Err(e) = self.lock.site().delete_node(&self.me.node, &never())
        {
            log::warn!("releasing {}: {e}; it goes when the session ends", self.me.node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_suffix_whatever_the_prefix() {
        let kids = [
            "_c_b-lock-0000000003",
            "lock-0000000001",
            "_c_a-__READ__0000000002",
            "not-a-contender",
            "x__rlock__0000000010",
        ];
        assert_eq!(
            contenders(&kids),
            ["lock-0000000001", "_c_a-__READ__0000000002", "_c_b-lock-0000000003", "x__rlock__0000000010"]
        );
        assert!(is_reader("_c_a-__READ__0000000002"));
        assert!(is_reader("x__rlock__0000000010"));
        assert!(!is_reader("_c_b-lock-0000000003"));
        assert!(!is_reader("_c_b-__WRIT__0000000003"));
    }
}
