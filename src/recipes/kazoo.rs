//! kazoo's `Lock`, node for node, for the recipes that must share a path with kazoo
//! processes (the lease, the set partitioner): an ephemeral-sequential node
//! `DIR/<32 hex digits>__lock__<seq>` holding the contender's identifier, blocked by every
//! earlier node whose name matches `__lock__` and ten digits (kazoo's contender regex, so
//! other children such as a lease's `lease_holder` never count).
//!
//! As kazoo (and Curator) do, the random hex prefix finds our node again after a create
//! whose reply was lost, so an attempt never leaves two nodes. A waiter watches only its
//! predecessor, with `get_w` (never `exists_w`, which would arm a watch that a missing node
//! never fires). Giving up (deadline, cancel, error) deletes our node.
//!
//! This module never prints.

use std::time::Instant;

use crossbeam_channel::{Receiver, never, select};

use super::lock::LockError;
use super::support::retrying;
use crate::zk::{self, Code, CreateMode, SessionWatch, ZooKeeper};

/// kazoo's `Lock._NODE_NAME`: what comes between the uuid and the sequence number.
pub const NODE_NAME: &str = "__lock__";

/// The sequence part of a kazoo contender name (`…__lock__0000000007` -> `0000000007`),
/// None for any other child. Kazoo compares these as strings (`-?\d{10}`): so do we.
pub fn contender_seq(name: &str) -> Option<&str> {
    let i = name.rfind(NODE_NAME)?;
    let seq = &name[i + NODE_NAME.len()..];
    let digits = seq.strip_prefix('-').unwrap_or(seq);
    (digits.len() == 10 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(seq)
}

/// Our predecessor among `children` (the contender with the greatest sequence smaller than
/// ours), None when we are first. Err when our node is not among them.
pub(crate) fn predecessor<'a>(children: &'a [String], ours: &str) -> Result<Option<&'a str>, ()> {
    let my_seq = contender_seq(ours).ok_or(())?;
    if !children.iter().any(|c| c == ours) {
        return Err(());
    }
    Ok(children
        .iter()
        .filter_map(|c| contender_seq(c).map(|s| (s, c.as_str())))
        .filter(|(s, _)| *s < my_seq)
        .max()
        .map(|(_, c)| c))
}

/// A kazoo lock, held. Dropping it deletes the node (best effort).
#[must_use = "the lock is released when the guard is dropped"]
pub struct Held<'z> {
    zk: &'z ZooKeeper,
    health: &'z SessionWatch,
    node: String,
    released: bool,
}

impl Held<'_> {
    /// Our lock node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Releases the lock: deletes our node (retrying through connection loss).
    pub fn release(mut self) -> zk::Result<()> {
        self.released = true;
        delete(self.zk, self.health, &self.node)
    }

    /// Forgets the node without deleting it (the session is gone, and the node with it).
    pub fn abandon(mut self) {
        self.released = true;
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if !self.released
            && !self.zk.is_dead()
            && let Err(e) = delete(self.zk, self.health, &self.node)
        {
            log::warn!("releasing {}: {e}; it goes when the session ends", self.node);
        }
    }
}

fn delete(zk: &ZooKeeper, health: &SessionWatch, node: &str) -> zk::Result<()> {
    retrying(zk, health, || match zk.delete(node, None) {
        Err(e) if e.code() == Some(Code::NoNode) => Ok(()),
        r => r,
    })
}

/// Takes the kazoo lock at `dir` (created, with its parents, as persistent nodes, as
/// kazoo's `ensure_path` does), the contender node holding `identifier`. Waits until
/// `deadline` (None: forever) unless `cancel` fires. `health` is the caller's watch of the
/// session (a holder's: it says when the lock must be given up).
pub fn acquire<'z>(
    zk: &'z ZooKeeper,
    health: &'z SessionWatch,
    dir: &str,
    identifier: &str,
    deadline: Option<Instant>,
    cancel: &Receiver<()>,
) -> Result<Held<'z>, LockError> {
    zk::validate_path(dir, false)?;
    if !health.may_act() {
        return Err(LockError::Zk(health.error()));
    }
    retrying(zk, health, || zk.ensure_path(dir, CreateMode::Persistent))?;
    let prefix = format!("{}{NODE_NAME}", uuid::Uuid::new_v4().simple());
    let node = match create(zk, health, dir, &prefix, identifier) {
        Ok(n) => n,
        Err(e) => {
            // the create may have landed: find it and delete it
            if let Ok(Some(n)) = retrying(zk, health, || find(zk, dir, &prefix)) {
                let _ = delete(zk, health, &n);
            }
            return Err(e.into());
        }
    };
    let held = Held { zk, health, node, released: false };
    match wait(zk, health, dir, &held.node, deadline, cancel) {
        Ok(()) => Ok(held),
        Err(e) => {
            if matches!(e, LockError::Vanished { .. }) {
                held.abandon();
            } else {
                drop(held); // deletes the node
            }
            Err(e)
        }
    }
}

/// Creates `dir/<prefix><seq>`, never two: after an unknown outcome, looks for the prefix.
fn create(zk: &ZooKeeper, health: &SessionWatch, dir: &str, prefix: &str, identifier: &str) -> zk::Result<String> {
    let path = zk::join(dir, prefix);
    let mut tried = false;
    retrying(zk, health, || {
        // a retry after an unknown outcome: look for the first attempt (on a server that
        // has caught up with it)
        if tried
            && let Some(n) = {
                zk.sync(dir)?;
                find(zk, dir, prefix)?
            }
        {
            return Ok(n);
        }
        tried = true;
        zk.create(&path, identifier.as_bytes(), CreateMode::EphemeralSequential)
    })
}

/// Our node under `dir` (by its unique prefix), if it exists.
fn find(zk: &ZooKeeper, dir: &str, prefix: &str) -> zk::Result<Option<String>> {
    Ok(zk.children(dir)?.into_iter().find(|c| c.starts_with(prefix)).map(|c| zk::join(dir, &c)))
}

/// Waits until no kazoo contender precedes `node`.
fn wait(
    zk: &ZooKeeper,
    health: &SessionWatch,
    dir: &str,
    node: &str,
    deadline: Option<Instant>,
    cancel: &Receiver<()>,
) -> Result<(), LockError> {
    let ours = node.rsplit('/').next().unwrap_or_default();
    let timer = deadline.map_or_else(never, crossbeam_channel::at);
    loop {
        let kids = retrying(zk, health, || zk.children(dir))?;
        let pred = match predecessor(&kids, ours) {
            Ok(None) => {
                // ours must still be ours (a node of an earlier, expired session would not do)
                return match retrying(zk, health, || zk.exists(node))? {
                    Some(st) if st.ephemeral_owner == zk.session_id() => Ok(()),
                    _ => Err(LockError::Vanished { node: node.to_string() }),
                };
            }
            Ok(Some(p)) => zk::join(dir, p),
            Err(()) => return Err(LockError::Vanished { node: node.to_string() }),
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(LockError::TimedOut);
        }
        let watch = match zk.get_w(&pred) {
            Ok((_, _, rx)) => rx,
            Err(e) if e.code() == Some(Code::NoNode) || e.is_outcome_unknown() => continue,
            Err(e) => return Err(e.into()),
        };
        select! {
            recv(watch) -> ev => if ev.is_err() {
                // watches disconnect when the session ends
                return Err(LockError::Zk(health.error()));
            },
            recv(health.lost()) -> _ => return Err(LockError::Zk(health.error())),
            recv(cancel) -> _ => return Err(LockError::Cancelled),
            recv(timer) -> _ => return Err(LockError::TimedOut),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contenders_are_kazoo_lock_nodes_only() {
        assert_eq!(contender_seq("0123abcd__lock__0000000003"), Some("0000000003"));
        assert_eq!(contender_seq("x__lock__-2147483648"), Some("-2147483648"));
        assert_eq!(contender_seq("lease_holder"), None);
        assert_eq!(contender_seq("_c_x-lock-0000000001"), None);
        assert_eq!(contender_seq("x__lock__00000003"), None);
        let kids: Vec<String> = ["b__lock__0000000005", "lease_holder", "a__lock__0000000002", "c__lock__0000000009"]
            .map(String::from)
            .into();
        assert_eq!(predecessor(&kids, "c__lock__0000000009"), Ok(Some("b__lock__0000000005")));
        assert_eq!(predecessor(&kids, "a__lock__0000000002"), Ok(None));
        assert_eq!(predecessor(&kids, "d__lock__0000000010"), Err(()));
    }
}
