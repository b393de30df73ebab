//! The counting semaphore: at most N holders at once, with Curator's InterProcessSemaphoreV2
//! layout, so zkutil and Curator processes can share one semaphore.
//!
//! Under the semaphore's node `PATH`:
//! - `PATH/locks` is an exclusive lock (`recipes::lock`, Curator's InterProcessMutex names);
//! - `PATH/leases` holds one ephemeral-sequential node `_c_<uuid>-lease-<seq>` per contender.
//!
//! A contender takes the lock, creates its lease, and lists the leases (with a children
//! watch): when fewer than N leases precede its own (by the 10-digit sequence), it holds a
//! lease; otherwise it waits for the next change of the leases and looks again. The lock is
//! held across that wait and released once the lease is had (or given up), as Curator does
//! (`internalAcquire1Lease` releases it in its outer `finally`). So at most one contender at
//! a time watches the leases; the others queue on the lock, each watching only its
//! predecessor there: no herd, first come first served, and a Curator contender waiting
//! under the lock (it counts all leases) never sees new leases pile up in front of it.
//!
//! Safety does not depend on the lock: a holder saw fewer than N leases before its own, and
//! leases created later get higher sequence numbers, so N+1 holders would need the last of
//! them to have listed N earlier, still living, leases. Curator's rule (`children <= N`,
//! counted under the lock) is the same one when a single contender waits.
//!
//! Safety properties as for the lock: the uuid in the name finds our lease after a
//! connection loss during the create (never two); the lease must belong to this session;
//! a contender that gives up (deadline, cancel) deletes its lease; the guard deletes it on
//! Drop; `Lease::lost` fires when the session ended, or the connection has been down for a
//! sixth of the session timeout (the holder grace of the session-health model: the server may have handed the lease on).
//!
//! This module never prints: it returns typed results and lets the command choose words.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Instant;

use crossbeam_channel::{Receiver, never, select};

use super::contender::Site;
use super::lock::{self, Lock, LockError, Mode};
use crate::zk::{self, Code, ZooKeeper};

/// The name of a lease node, after the protection prefix `_c_<uuid>-` (Curator's).
pub const LEASE_NAME: &str = "lease-";

/// Why `acquire` did not return a lease.
#[derive(Debug)]
#[allow(missing_docs)] // fields are named for what they hold; each variant says what failed
pub enum SemaphoreError {
    /// The deadline passed first; our lease (if any) is deleted and the lock released.
    TimedOut,
    /// The cancel receiver fired; our lease is deleted and the lock released.
    Cancelled,
    /// Our lease or lock node disappeared, or belongs to another session: someone deleted
    /// it, or the session ended.
    Vanished { node: String },
    /// ZooKeeper refused, or the session is gone.
    Zk(zk::Error),
}

impl fmt::Display for SemaphoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SemaphoreError::TimedOut => f.write_str("timed out waiting for a lease"),
            SemaphoreError::Cancelled => f.write_str("cancelled while waiting for a lease"),
            SemaphoreError::Vanished { node } => write!(f, "our node {node} vanished (session ended?)"),
            SemaphoreError::Zk(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SemaphoreError {}

impl From<zk::Error> for SemaphoreError {
    fn from(e: zk::Error) -> SemaphoreError {
        SemaphoreError::Zk(e)
    }
}

impl From<LockError> for SemaphoreError {
    fn from(e: LockError) -> SemaphoreError {
        match e {
            LockError::TimedOut => SemaphoreError::TimedOut,
            LockError::Cancelled => SemaphoreError::Cancelled,
            LockError::Vanished { node } => SemaphoreError::Vanished { node },
            LockError::Zk(e) => SemaphoreError::Zk(e),
        }
    }
}

/// A semaphore at one node, used through one session. Make one per session and call
/// `acquire` as often as needed (each attempt creates a fresh lease).
pub struct Semaphore<'z> {
    zk: &'z ZooKeeper,
    path: String,
    leases_dir: String,
    max: NonZeroU32,
    /// The lock on `PATH/locks`; its session health (holder grace) serves the leases too.
    lock: Lock<'z>,
}

impl<'z> Semaphore<'z> {
    /// The semaphore at `path` (its nodes are created as containers on first use) with at
    /// most `max` holders.
    pub fn new(zk: &'z ZooKeeper, path: &str, max: NonZeroU32) -> zk::Result<Semaphore<'z>> {
        zk::validate_path(path, false)?;
        let lock = Lock::new(zk, &zk::join(path, "locks"), Mode::Exclusive)?;
        Ok(Semaphore { zk, path: path.to_string(), leases_dir: zk::join(path, "leases"), max, lock })
    }

    /// The semaphore's node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The directory of the lease nodes (`PATH/leases`).
    pub fn leases_dir(&self) -> &str {
        &self.leases_dir
    }

    /// The most holders at once.
    pub fn max(&self) -> NonZeroU32 {
        self.max
    }

    /// Takes a lease, waiting until `deadline` (None: forever) unless `cancel` fires (a
    /// message or a disconnect). `on_wait` is called once, with the number of leases that
    /// must go before ours is had, when all leases are taken and we have to wait.
    pub fn acquire(
        &self,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
        on_wait: impl FnOnce(usize),
    ) -> Result<Lease<'_, 'z>, SemaphoreError> {
        if !self.lock.health().may_act() {
            return Err(SemaphoreError::Zk(self.lock.health().error()));
        }
        let held = self.lock.acquire(deadline, cancel, |_| {})?;
        let id = uuid::Uuid::new_v4().to_string();
        let (node, stat) = match self.site().create_node(&id, LEASE_NAME, deadline, cancel) {
            Ok(r) => r,
            Err(e) => {
                // The create's outcome may be unknown: find and delete the lease if it landed.
                self.site().cleanup_unknown(&id, cancel);
                return Err(e.into()); // `held` drops: the lock is released
            }
        };
        let seq = zk::sequence_of(&node);
        let waited = match seq {
            // A node of another session (an earlier one of ours) must not count.
            Some(_) if stat.ephemeral_owner == self.zk.session_id() => self.wait_turn(&node, deadline, cancel, on_wait),
            _ => Err(SemaphoreError::Vanished { node: node.clone() }),
        };
        let lease = Lease { sem: self, node, seq: seq.unwrap_or_default(), released: false };
        match waited {
            Ok(()) => {
                // Ours now: let the next contender in. A failed release means the session
                // is in trouble; the lease guard then deletes the lease on the way out.
                held.release()?;
                if !self.lock.health().may_act() {
                    return Err(SemaphoreError::Zk(self.lock.health().error()));
                }
                Ok(lease)
            }
            Err(e) => {
                drop(lease); // deletes it (unless the session is gone)
                drop(held);
                Err(e)
            }
        }
    }

    /// The lease nodes, in order (by sequence); the first `max` are the holders.
    pub fn leases(&self) -> zk::Result<Vec<String>> {
        match self.zk.children(&self.leases_dir) {
            Ok(kids) => Ok(lock::contenders(&kids).into_iter().map(str::to_string).collect()),
            Err(e) if e.code() == Some(Code::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Where our leases live: creating, finding, deleting them, retrying through connection loss.
    fn site(&self) -> Site<'_> {
        Site { zk: self.zk, dir: &self.leases_dir, health: self.lock.health() }
    }

    /// Deletes a node, retrying through connection loss for at most a session timeout.
    fn delete_node(&self, node: &str, cancel: &Receiver<()>) -> Result<(), SemaphoreError> {
        Ok(self.site().delete_node(node, cancel)?)
    }

    /// Waits (holding the lock) until fewer than `max` leases precede ours.
    fn wait_turn(
        &self,
        node: &str,
        deadline: Option<Instant>,
        cancel: &Receiver<()>,
        on_wait: impl FnOnce(usize),
    ) -> Result<(), SemaphoreError> {
        let my_name = node.rsplit('/').next().unwrap_or_default();
        let timer = deadline.map_or_else(never, crossbeam_channel::at);
        let mut on_wait = Some(on_wait);
        let max = self.max.get() as usize;
        loop {
            let (kids, _, watch) = self.site().retrying(|| self.zk.children_w(&self.leases_dir), deadline, cancel)?;
            let order = lock::contenders(&kids);
            let Some(ahead) = order.iter().position(|c| *c == my_name) else {
                return Err(SemaphoreError::Vanished { node: node.to_string() });
            };
            if ahead < max {
                return Ok(());
            }
            if let Some(f) = on_wait.take() {
                f(ahead + 1 - max);
            }
            select! {
                recv(watch) -> ev => match ev {
                    Ok(_) => continue, // a lease came or went: look again
                    // Watches disconnect when the session ends.
                    Err(_) => return Err(SemaphoreError::Zk(zk::Error::SessionLost(zk::Lost::Expired))),
                },
                recv(self.lock.health().lost()) -> _ => return Err(SemaphoreError::Zk(self.lock.health().error())),
                recv(cancel) -> _ => return Err(SemaphoreError::Cancelled),
                recv(timer) -> _ => return Err(SemaphoreError::TimedOut),
            }
        }
    }
}

/// A lease, held. Dropping it releases the lease (deletes its node).
#[must_use = "the lease is released when the guard is dropped"]
pub struct Lease<'s, 'z> {
    sem: &'s Semaphore<'z>,
    node: String,
    seq: u32,
    released: bool,
}

impl Lease<'_, '_> {
    /// The lease node's full path.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The lease node's sequence number.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// Disconnects when the lease must be given up (the session ended, or the connection
    /// has been down for a sixth of the session timeout: the holder grace): another
    /// contender may hold it now, or soon. Select on it while holding.
    pub fn lost(&self) -> &Receiver<()> {
        self.sem.lock.health().lost()
    }

    /// Why `lost()` fired, in words.
    pub fn why_lost(&self) -> String {
        let why = self.sem.lock.health().lost_why().unwrap_or(zk::Lost::Closed);
        match why {
            zk::Lost::Silent(_) => format!("{why}, a sixth of the session timeout"),
            zk::Lost::Expired => "session expired".to_string(),
            _ => why.to_string(),
        }
    }

    /// Gives the lease up without deleting its node, after `lost()` fired: the connection
    /// is down or the session gone, so a delete would only wait. The node goes with the
    /// session (closing the client deletes it at once if the connection is back).
    pub fn abandon(mut self) {
        self.released = true;
    }

    /// Releases the lease: deletes its node, through connection loss.
    pub fn release(mut self) -> Result<(), SemaphoreError> {
        self.released = true;
        self.sem.delete_node(&self.node, &never())
    }
}

impl Drop for Lease<'_, '_> {
    fn drop(&mut self) {
        if !self.released
            && self.sem.lock.health().may_act()
            && let Err(e) = self.sem.delete_node(&self.node, &never())
        {
            log::warn!("releasing {}: {e}; it goes when the session ends", self.node);
        }
    }
}
