//! Barriers: the single barrier (a node whose existence holds everyone back) and the double
//! barrier (Curator's DistributedDoubleBarrier: enter when N participants are present,
//! leave together). Never prints; the `barrier` command decides the words.
//!
//! Double barrier layout under PATH (a container: the server removes it once the last
//! participant left): one ephemeral node per participant (named
//! by its id) and `ready`, an ephemeral node created by whoever completes the count and
//! deleted, in one multi with the last participant's node, when the last one leaves. Entering
//! watches `ready` (no herd on the children list); leaving follows the ZooKeeper recipe: the
//! lowest participant waits on the highest, every other deletes its node and waits on the
//! lowest. A participant that has left is done once its round's `ready` (told apart from the
//! next round's by its czxid) is gone, so the path serves round after round: the fastest
//! participant may already be back for the next round while the slowest is still leaving.

use std::fmt;
use std::time::Instant;

use crossbeam_channel::{Receiver, never, select};

use super::support::{Taken, create_containers, create_ephemeral, ensure_node, ensure_parents, retrying};
use crate::zk::{self, Code, CreateMode, EventKind, Lost, Op, SessionWatch, ZooKeeper, join, validate_path};

/// The name of the node that opens a double barrier.
pub const READY: &str = "ready";

/// How a wait ended (errors aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed: entered, left, or the single barrier was released.
    Done,
    /// The deadline passed first; our participant node (if any) is deleted.
    TimedOut,
    /// The stop channel fired first; our participant node (if any) is deleted.
    Stopped,
}

/// What a barrier can fail with.
#[derive(Debug)]
#[allow(missing_docs)] // fields are named for what they hold; each variant says what failed
pub enum Error {
    Zk(zk::Error),
    /// Another participant (session `owner`, 0 for a persistent node) already uses this id.
    IdTaken {
        node: String,
        owner: i64,
    },
    /// The arguments cannot make a barrier.
    Invalid(String),
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
            Error::IdTaken { node, owner: 0 } => write!(f, "{node} exists and is not a participant (persistent node)"),
            Error::IdTaken { node, owner } => {
                write!(f, "{node}: this id is taken by another participant (session {owner:#x}); use another --id")
            }
            Error::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

/// Result of the barrier recipes.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn deadline_channel(deadline: Option<Instant>) -> Receiver<Instant> {
    deadline.map_or_else(never, crossbeam_channel::at)
}

/// How [`wait_watch`] ended: the watch fired, or stop, or the deadline. A lost session is an
/// Err (`zk::Error::SessionLost`).
enum Woken {
    Fired(EventKind),
    Stopped,
    TimedOut,
}

fn wait_watch(
    watch: &Receiver<zk::WatchEvent>,
    health: &SessionWatch,
    stop: &Receiver<()>,
    deadline: &Receiver<Instant>,
) -> zk::Result<Woken> {
    // A reconnect keeps armed watches; only a lost session (expired, or no connection for
    // longer than the session timeout: a dead ZooKeeper) ends the wait.
    select! {
        recv(watch) -> ev => match ev {
            Ok(ev) => Ok(Woken::Fired(ev.kind)),
            Err(_) => Err(zk::Error::SessionLost(health.lost_why().unwrap_or(Lost::Expired))),
        },
        recv(health.lost()) -> _ => Err(health.error()),
        recv(stop) -> _ => Ok(Woken::Stopped),
        recv(deadline) -> _ => Ok(Woken::TimedOut),
    }
}

/// The single barrier: while the node at `path` exists, `wait` blocks.
pub struct Barrier<'zk> {
    zk: &'zk ZooKeeper,
    path: String,
    health: SessionWatch, // watcher grace
}

impl<'zk> Barrier<'zk> {
    /// A single barrier at `path`.
    pub fn new(zk: &'zk ZooKeeper, path: &str) -> Result<Barrier<'zk>> {
        validate_path(path, false)?;
        if path == "/" {
            return Err(Error::Invalid("the root cannot be a barrier".into()));
        }
        Ok(Barrier { zk, path: path.to_string(), health: SessionWatch::watcher(zk) })
    }

    /// Raises the barrier: creates the node (persistent, parents too) so that it outlives
    /// this process. True when this call created it, false when it was already up.
    pub fn hold(&self) -> Result<bool> {
        ensure_parents(self.zk, &self.health, &self.path)?;
        Ok(ensure_node(self.zk, &self.health, &self.path, b"")?)
    }

    /// Lowers the barrier: deletes the node. True when this call deleted it, false when it
    /// was not up.
    pub fn release(&self) -> Result<bool> {
        match retrying(self.zk, &self.health, || self.zk.delete(&self.path, None)) {
            Ok(()) => Ok(true),
            Err(e) if e.code() == Some(Code::NoNode) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Blocks while the node exists (a watch on it, no polling).
    pub fn wait(&self, deadline: Option<Instant>, stop: &Receiver<()>) -> Result<Outcome> {
        let deadline = deadline_channel(deadline);
        loop {
            let (stat, watch) = retrying(self.zk, &self.health, || self.zk.exists_w(&self.path))?;
            if stat.is_none() {
                return Ok(Outcome::Done);
            }
            match wait_watch(&watch, &self.health, stop, &deadline)? {
                Woken::Fired(EventKind::Deleted) => return Ok(Outcome::Done),
                Woken::Fired(_) => {} // data changed: still up, watch again
                Woken::Stopped => return Ok(Outcome::Stopped),
                Woken::TimedOut => return Ok(Outcome::TimedOut),
            }
        }
    }
}

/// A participant of a double barrier. Dropping it deletes its node (best effort).
pub struct DoubleBarrier<'zk> {
    zk: &'zk ZooKeeper,
    path: String,
    count: usize,
    id: String,
    node: String,
    ready: String,
    /// Our node may exist (between enter and the end of leave).
    joined: bool,
    /// The czxid of our round's `ready` node (known once entered, unless it was gone by then).
    round: Option<i64>,
    health: SessionWatch, // watcher grace
}

/// Where a double barrier stands, for reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// Participant ids present, sorted.
    pub ids: Vec<String>,
}

impl<'zk> DoubleBarrier<'zk> {
    /// Participant `id` of the double barrier at `path` for `count` participants.
    pub fn new(zk: &'zk ZooKeeper, path: &str, count: usize, id: &str) -> Result<DoubleBarrier<'zk>> {
        validate_path(path, false)?;
        if count == 0 {
            return Err(Error::Invalid("the count of participants must be at least 1".into()));
        }
        if id.is_empty() || id.contains('/') || id == READY || id == "." || id == ".." {
            return Err(Error::Invalid(format!("{id:?} cannot be a participant id (no '/', not {READY:?})")));
        }
        let node = join(path, id);
        validate_path(&node, false)?;
        Ok(DoubleBarrier {
            zk,
            path: path.to_string(),
            count,
            id: id.to_string(),
            ready: join(path, READY),
            node,
            joined: false,
            round: None,
            health: SessionWatch::watcher(zk),
        })
    }

    /// Our participant node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The participants present now, sorted (the `ready` node left out).
    pub fn present(&self) -> Result<Present> {
        let mut ids = retrying(self.zk, &self.health, || self.zk.children(&self.path))?;
        ids.retain(|c| c != READY);
        ids.sort();
        Ok(Present { ids })
    }

    /// Joins and waits until `count` participants are present (or already were: `ready`
    /// exists). On timeout or stop our node is deleted before returning.
    pub fn enter(&mut self, deadline: Option<Instant>, stop: &Receiver<()>) -> Result<Outcome> {
        let zk = self.zk;
        let deadline = deadline_channel(deadline);
        let mut tries = 0;
        let (mut ready, mut watch) = loop {
            retrying(zk, &self.health, || create_containers(zk, &self.path))?;
            // Arm the watch on `ready` before our node appears (Curator's order), so the
            // participant that completes the count and creates `ready` always wakes us.
            let (ready, watch) = retrying(zk, &self.health, || zk.exists_w(&self.ready))?;
            match create_ephemeral(zk, &self.health, &self.node, b"") {
                Ok(()) => self.joined = true,
                Err(Taken::By(owner)) => return Err(Error::IdTaken { node: self.node.clone(), owner }),
                // the server removed the empty container meanwhile: create it again
                Err(Taken::Zk(e)) if e.code() == Some(Code::NoNode) && tries < 10 => {
                    tries += 1;
                    continue;
                }
                Err(Taken::Zk(e)) => return Err(e.into()),
            }
            break (ready, watch);
        };
        loop {
            if ready.is_some() {
                return self.entered();
            }
            let present = self.present()?;
            if !present.ids.contains(&self.id) {
                return Err(zk::Error::SessionLost(self.health.lost_why().unwrap_or(Lost::Expired)).into());
            }
            if present.ids.len() >= self.count {
                // Ephemeral: should every participant die inside the barrier, `ready` goes
                // with its creator's session instead of opening the next round at once.
                match retrying(zk, &self.health, || zk.create(&self.ready, b"", CreateMode::Ephemeral)) {
                    Ok(_) => {}
                    Err(e) if e.code() == Some(Code::NodeExists) => {}
                    Err(e) => return Err(e.into()),
                }
                return self.entered();
            }
            match wait_watch(&watch, &self.health, stop, &deadline)? {
                // `ready` cannot go away while our node is there (see leave), so a creation
                // means everyone is in.
                Woken::Fired(EventKind::Created) => return self.entered(),
                Woken::Fired(_) => (ready, watch) = retrying(zk, &self.health, || zk.exists_w(&self.ready))?,
                Woken::Stopped => return self.abandon(Outcome::Stopped),
                Woken::TimedOut => return self.abandon(Outcome::TimedOut),
            }
        }
    }

    /// Waits until every participant has called leave, then leaves with them. On timeout or
    /// stop our node is deleted before returning (the others may then leave without us).
    pub fn leave(&mut self, deadline: Option<Instant>, stop: &Receiver<()>) -> Result<Outcome> {
        let zk = self.zk;
        let deadline = deadline_channel(deadline);
        let mut ours_exists = self.joined;
        loop {
            let ids = self.present()?.ids;
            let ours = ids.iter().position(|id| *id == self.id);
            if ours_exists && ours.is_none() {
                self.joined = false;
                return Err(zk::Error::SessionLost(self.health.lost_why().unwrap_or(Lost::Expired)).into());
            }
            if !ours_exists && self.round_over()? {
                // the last one out took `ready` with it: whoever is here now is the next round
                return Ok(Outcome::Done);
            }
            let target = match (ours, ids.len()) {
                (_, 0) => break,
                (Some(_), 1) => {
                    // the last one out (always the lowest)
                    self.last_out()?;
                    return Ok(Outcome::Done);
                }
                (Some(0), _) => ids.last(), // lowest: wait for the highest to go
                (Some(_), _) => {
                    self.delete_ours()?;
                    ours_exists = false;
                    ids.first() // wait for the lowest, which goes last
                }
                (None, _) => ids.first(),
            };
            let Some(target) = target.map(|t| join(&self.path, t)) else { break };
            // get_w, not exists_w: on a node already gone it arms nothing and we re-read
            let watch = match retrying(zk, &self.health, || zk.get_w(&target)) {
                Ok((_, _, w)) => w,
                Err(e) if e.code() == Some(Code::NoNode) => continue,
                Err(e) => return Err(e.into()),
            };
            match wait_watch(&watch, &self.health, stop, &deadline)? {
                Woken::Fired(_) => {}
                Woken::Stopped => return self.abandon(Outcome::Stopped),
                Woken::TimedOut => return self.abandon(Outcome::TimedOut),
            }
        }
        // Everyone is out, yet our round's `ready` may still be up (the last one out died
        // inside): take it down so that the path can serve another round.
        if let Some(round) = self.round
            && let Some(st) = retrying(zk, &self.health, || zk.exists(&self.ready))?
            && st.czxid == round
        {
            match retrying(zk, &self.health, || zk.delete(&self.ready, Some(st.version))) {
                Ok(()) => {}
                Err(e) if matches!(e.code(), Some(Code::NoNode | Code::BadVersion)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Outcome::Done)
    }

    /// Entered: remember which `ready` opened our round.
    fn entered(&mut self) -> Result<Outcome> {
        self.round = retrying(self.zk, &self.health, || self.zk.exists(&self.ready))?.map(|st| st.czxid);
        Ok(Outcome::Done)
    }

    /// True once our round's `ready` is gone (unknown round: false).
    fn round_over(&self) -> Result<bool> {
        let Some(round) = self.round else { return Ok(false) };
        Ok(retrying(self.zk, &self.health, || self.zk.exists(&self.ready))?.is_none_or(|st| st.czxid != round))
    }

    /// The last one out deletes its node and `ready` in one multi: nobody can see an empty
    /// barrier with a stale `ready` (which would let the next round through at once).
    fn last_out(&mut self) -> Result<()> {
        if !self.joined {
            return Ok(());
        }
        let ops = [
            Op::Delete { path: self.node.clone(), version: None },
            Op::Delete { path: self.ready.clone(), version: None },
        ];
        match retrying(self.zk, &self.health, || self.zk.multi(&ops)) {
            Ok(_) => {}
            // our node already gone: a first attempt whose reply was lost went through
            Err(zk::Error::Multi { index: 0, code: Code::NoNode, .. }) => {}
            // no `ready` (its creator died inside): just our node
            Err(zk::Error::Multi { index: 1, code: Code::NoNode, .. }) => return self.delete_ours(),
            Err(e) => return Err(e.into()),
        }
        self.joined = false;
        Ok(())
    }

    fn delete_ours(&mut self) -> Result<()> {
        if !self.joined {
            return Ok(());
        }
        match retrying(self.zk, &self.health, || self.zk.delete(&self.node, None)) {
            Ok(()) => {}
            Err(e) if e.code() == Some(Code::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
        self.joined = false;
        Ok(())
    }

    fn abandon(&mut self, outcome: Outcome) -> Result<Outcome> {
        self.delete_ours()?;
        Ok(outcome)
    }
}

impl Drop for DoubleBarrier<'_> {
    fn drop(&mut self) {
        // (a lost connection: the node goes with the session, nothing to say)
        if self.joined
            && let Err(e) = self.zk.delete(&self.node, None)
            && e.code() != Some(Code::NoNode)
            && !e.is_outcome_unknown()
            && !e.is_session_lost()
        {
            log::warn!("leaving {}: {e}", self.node);
        }
    }
}
