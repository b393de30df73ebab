//! kazoo's `SetPartitioner`, node for node: members of a party divide a set of items among
//! themselves, so zkutil and kazoo members can share one partition.
//!
//! Layout (kazoo's): `PATH/party/<32 hex>-<id>`, one ephemeral node per member (kazoo's
//! ShallowParty: the id is in the name), and `PATH/locks/<item>`, a kazoo lock per item
//! (see [`super::kazoo`]). The division is kazoo's default: items sorted, member ids
//! sorted, the member at index i takes items i, i+n, i+2n, ...
//!
//! Allocation: wait until the party has not changed for the time boundary, divide, then
//! take the lock of every item of our share (each try bounded by a short reaction time, so
//! that a party change during the acquisition is noticed: then release everything and
//! start over). Holding: the share is ours while we hold its locks, so no item is ever held
//! by two members, even while a slow member has not yet noticed a change. When the party
//! changes, every member releases its share (the caller stops its work first) and
//! allocates again. Whether the share may still be held is the session-health model's
//! answer for a holder ([`SessionWatch::holder`]): lost when the session ends, or when the
//! connection has been down for a sixth of the session timeout.
//!
//! This module never prints.

use std::fmt;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError, select};

use super::kazoo;
use super::lock::LockError;
use super::support::retrying;
use crate::zk::{self, Code, CreateMode, SessionWatch, WatchEvent, ZooKeeper};

/// kazoo's `max_reaction_time`: how long one lock try may block before the party is
/// looked at again.
pub const REACTION: Duration = Duration::from_secs(1);

/// Why a partitioner call failed.
#[derive(Debug)]
pub enum Error {
    /// ZooKeeper refused or failed a call.
    Zk(zk::Error),
    /// Our party node is gone (the session ended, or someone deleted it): join again with
    /// a new session.
    Lost,
    /// Cancelled by the caller.
    Cancelled,
    /// Bad input (an item or id that cannot be a node name, an id already in the party).
    Invalid(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Zk(e) => e.fmt(f),
            Error::Lost => f.write_str("our membership was lost (session ended or party node deleted)"),
            Error::Cancelled => f.write_str("cancelled"),
            Error::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for Error {}

impl From<zk::Error> for Error {
    fn from(e: zk::Error) -> Error {
        if e.is_session_lost() { Error::Lost } else { Error::Zk(e) }
    }
}

impl From<LockError> for Error {
    fn from(e: LockError) -> Error {
        match e {
            LockError::Zk(e) => e.into(),
            LockError::Cancelled => Error::Cancelled,
            LockError::TimedOut | LockError::Vanished { .. } => Error::Lost,
        }
    }
}

/// kazoo's `_partitioner`: our share of `items` among `members` (both sorted first).
pub fn divide(me: &str, members: &[String], items: &[String]) -> Vec<String> {
    let mut items = items.to_vec();
    items.sort();
    let mut members = members.to_vec();
    members.sort();
    let Some(i) = members.iter().position(|m| m == me) else { return Vec::new() };
    items.into_iter().skip(i).step_by(members.len()).collect()
}

/// The member id in a party node's name (kazoo: what follows the first `-`).
pub fn member_id(node: &str) -> &str {
    node.split_once('-').map_or(node, |(_, id)| id)
}

/// True once `rx` fired (or disconnected: fired earlier, or the session ended).
fn fired(rx: &Receiver<WatchEvent>) -> bool {
    !matches!(rx.try_recv(), Err(TryRecvError::Empty))
}

/// One member of the partition at `path`, on one session.
pub struct Partitioner<'z> {
    zk: &'z ZooKeeper,
    path: String,
    id: String,
    items: Vec<String>,
    boundary: Duration,
    party: String,
    node: String,
    /// A holder's view of the session: may we still hold the share?
    health: SessionWatch,
}

impl<'z> Partitioner<'z> {
    /// Joins the party at `path` as `id`. `items` must be node names. When `previous` (our
    /// earlier session) still has a party node under `id`, waits (up to three session
    /// timeouts) for the server to expire it.
    pub fn join(
        zk: &'z ZooKeeper,
        path: &str,
        id: &str,
        items: &[String],
        boundary: Duration,
        previous: Option<i64>,
        cancel: &Receiver<()>,
    ) -> Result<Partitioner<'z>, Error> {
        zk::validate_path(path, false)?;
        if id.is_empty() || id.contains('/') {
            return Err(Error::Invalid(format!("{id:?} cannot be a member id (a node name part)")));
        }
        for item in items {
            if item.is_empty() || item.contains('/') || item == "." || item == ".." {
                return Err(Error::Invalid(format!("{item:?} cannot be an item (items are node names)")));
            }
        }
        let mut items = items.to_vec();
        items.sort();
        items.dedup();
        let party = zk::join(path, "party");
        let health = SessionWatch::holder(zk);
        for p in [path.to_string(), zk::join(path, "locks"), party.clone()] {
            retrying(zk, &health, || zk.ensure_path(&p, CreateMode::Persistent))?;
        }
        // one member per id (kazoo would give two the same share, and one would wait forever)
        let deadline = Instant::now() + zk.session_timeout() * 3;
        loop {
            let (kids, _, changed) = retrying(zk, &health, || zk.children_w(&party))?;
            let mut owners = Vec::new();
            for k in kids.iter().filter(|k| member_id(k) == id) {
                if let Some(st) = retrying(zk, &health, || zk.exists(&zk::join(&party, k)))? {
                    owners.push(st.ephemeral_owner);
                }
            }
            if owners.is_empty() {
                break;
            }
            if previous.is_none() || owners.iter().any(|o| Some(*o) != previous) || Instant::now() >= deadline {
                return Err(Error::Invalid(format!("a member with id {id:?} is already in {party}")));
            }
            select! {
                recv(changed) -> _ => {},
                recv(cancel) -> _ => return Err(Error::Cancelled),
                recv(crossbeam_channel::at(deadline)) -> _ => {},
            }
        }
        let node = zk::join(&party, &format!("{}-{id}", uuid::Uuid::new_v4().simple()));
        match retrying(zk, &health, || zk.create(&node, id.as_bytes(), CreateMode::Ephemeral)) {
            Ok(_) => {}
            Err(e) if e.code() == Some(Code::NodeExists) => {} // our create landed before a lost reply
            Err(e) => return Err(e.into()),
        }
        Ok(Partitioner { zk, path: path.to_string(), id: id.to_string(), items, boundary, party, node, health })
    }

    /// How long a CMD working on a share gets between SIGTERM and SIGKILL: a holder's
    /// margin, a sixth of the session timeout.
    pub fn margin(&self) -> Duration {
        self.zk.session_timeout() / 6
    }

    /// The member ids now in the party.
    pub fn members(&self) -> Result<Vec<String>, Error> {
        let kids = retrying(self.zk, &self.health, || self.zk.children(&self.party))?;
        Ok(kids.iter().map(|k| member_id(k).to_string()).collect())
    }

    /// Waits until the party has not changed for the time boundary; returns the member ids
    /// and a watch that fires at the next change.
    fn settled(&self, cancel: &Receiver<()>) -> Result<(Vec<String>, Receiver<WatchEvent>), Error> {
        loop {
            let (kids, _, changed) = retrying(self.zk, &self.health, || self.zk.children_w(&self.party))?;
            let mine = self.node.rsplit('/').next().unwrap_or_default();
            if !kids.iter().any(|k| k == mine) {
                return Err(Error::Lost);
            }
            select! {
                recv(changed) -> ev => {
                    if ev.is_err() || !self.health.may_act() {
                        return Err(Error::Lost);
                    }
                }
                recv(self.health.lost()) -> _ => return Err(Error::Lost),
                recv(cancel) -> _ => return Err(Error::Cancelled),
                default(self.boundary) => {
                    return Ok((kids.iter().map(|k| member_id(k).to_string()).collect(), changed));
                }
            }
        }
    }

    /// Divides the set and takes the locks of our share; starts over whenever the party
    /// changes meanwhile. `on_settled` hears each division before its locks are taken.
    pub fn allocate(
        &self,
        cancel: &Receiver<()>,
        mut on_settled: impl FnMut(&[String], &[String]),
    ) -> Result<Share<'_, 'z>, Error> {
        'settle: loop {
            let (members, changed) = self.settled(cancel)?;
            let share = divide(&self.id, &members, &self.items);
            on_settled(&members, &share);
            let mut locks = Vec::new();
            for item in &share {
                let dir = zk::join(&zk::join(&self.path, "locks"), item);
                loop {
                    match kazoo::acquire(self.zk, &self.health, &dir, &self.id, Some(Instant::now() + REACTION), cancel)
                    {
                        Ok(h) => {
                            locks.push(h);
                            break;
                        }
                        Err(LockError::TimedOut) => {
                            if fired(&changed) {
                                drop(locks); // releases what we took
                                continue 'settle;
                            }
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                if fired(&changed) {
                    drop(locks);
                    continue 'settle;
                }
            }
            return Ok(Share { part: self, items: share, members, locks, changed });
        }
    }

    /// Leaves the party (deletes our node).
    pub fn leave(self) -> Result<(), Error> {
        retrying(self.zk, &self.health, || match self.zk.delete(&self.node, None) {
            Err(e) if e.code() == Some(Code::NoNode) => Ok(()),
            r => r,
        })?;
        Ok(())
    }
}

/// Our share, held: the locks of its items. Dropping it releases them.
#[must_use = "the share's locks are released when it is dropped"]
pub struct Share<'p, 'z> {
    part: &'p Partitioner<'z>,
    /// Our items, sorted.
    pub items: Vec<String>,
    /// The member ids of this division.
    pub members: Vec<String>,
    locks: Vec<kazoo::Held<'p>>,
    changed: Receiver<WatchEvent>,
}

impl Share<'_, '_> {
    /// Fires when the party changes: stop working on the share, release it, allocate again.
    pub fn changed(&self) -> &Receiver<WatchEvent> {
        &self.changed
    }

    /// Disconnects when the share must be given up at once: the session ended, or the
    /// connection has been down for a sixth of the session timeout (others may take the
    /// items once the server expires us).
    pub fn lost(&self) -> &Receiver<()> {
        self.part.health.lost()
    }

    /// Why `lost()` fired, in words.
    pub fn why_lost(&self) -> String {
        self.part.health.error().to_string()
    }

    /// Releases every item's lock.
    pub fn release(self) -> Result<(), Error> {
        for l in self.locks {
            l.release()?;
        }
        Ok(())
    }

    /// Gives the share up without deleting the lock nodes (they go with the session).
    pub fn abandon(self) {
        for l in self.locks {
            l.abandon();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn divides_as_kazoo() {
        let items = s(&["i3", "i1", "i2", "i4", "i5"]);
        let members = s(&["b", "a"]);
        assert_eq!(divide("a", &members, &items), s(&["i1", "i3", "i5"]));
        assert_eq!(divide("b", &members, &items), s(&["i2", "i4"]));
        assert_eq!(divide("c", &members, &items), s(&[]));
        assert_eq!(member_id("0123abcd-host-1-42"), "host-1-42");
    }
}
