//! Group membership (Curator's GroupMember, kazoo's Party): each member is an ephemeral
//! node `PATH/NAME` holding its data (an address, for service discovery), alive exactly as
//! long as the member's session. Never prints.

use std::fmt;

use std::time::Instant;

use crossbeam_channel::{Receiver, select};

use super::support::{Taken, create_containers, create_ephemeral, retrying};
use crate::zk::{self, Code, SessionWatch, WatchEvent, ZooKeeper, join, validate_path};

/// What group membership can fail with.
#[derive(Debug)]
#[allow(missing_docs)] // fields are named for what they hold; each variant says what failed
pub enum Error {
    Zk(zk::Error),
    /// Another member (session `owner`; 0 for a persistent node) already has this name.
    NameTaken {
        node: String,
        owner: i64,
    },
    /// The name cannot be a node name.
    BadName(String),
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
            Error::NameTaken { node, owner: 0 } => write!(f, "{node} exists and is not a member (persistent node)"),
            Error::NameTaken { node, owner } => write!(
                f,
                "{node}: the name is taken by a live member (session {owner:#x}); if that member crashed, \
                 its node goes when its session times out"
            ),
            Error::BadName(name) => write!(f, "{name:?} cannot be a member name (non-empty, no '/', not . or ..)"),
        }
    }
}

impl std::error::Error for Error {}

/// Result of the group recipe.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One member as listed: its name and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's name (its node's name).
    pub name: String,
    /// What it published (for service discovery: an address, ...).
    pub data: Vec<u8>,
    /// The czxid of its node: a member that left and joined again under the same name (a
    /// restart) has a new one, even with the same data.
    pub created: i64,
}

/// The group at `path`.
pub struct Group<'zk> {
    zk: &'zk ZooKeeper,
    path: String,
    /// The session's health for a member or a watcher of the list (watcher grace, T): a
    /// member is not a holder; it re-joins on a new session when this says lost.
    health: SessionWatch,
}

/// Our membership: the ephemeral node. Dropping it deletes the node (best effort); the
/// session's end deletes it in any case.
#[must_use = "the membership ends when this is dropped"]
pub struct Membership<'zk> {
    zk: &'zk ZooKeeper,
    node: String,
    owned: bool,
}

impl Membership<'_> {
    /// Gives the node up to the session's end without deleting it (for a session that is
    /// gone or unreachable: a delete would only wait for the connection).
    pub fn abandon(mut self) {
        self.owned = false;
    }

    /// Our member node.
    pub fn node(&self) -> &str {
        &self.node
    }
}

impl Drop for Membership<'_> {
    fn drop(&mut self) {
        if !self.owned || self.zk.is_dead() {
            return;
        }
        if let Err(e) = self.zk.delete(&self.node, None)
            && e.code() != Some(Code::NoNode)
        {
            log::warn!("leaving the group: {}: {e}", self.node);
        }
    }
}

impl<'zk> Group<'zk> {
    /// The group at `path`.
    pub fn new(zk: &'zk ZooKeeper, path: &str) -> Result<Group<'zk>> {
        validate_path(path, false)?;
        Ok(Group { zk, path: path.to_string(), health: SessionWatch::watcher(zk) })
    }

    /// The session's health as this group's members and watchers see it (watcher grace).
    pub fn health(&self) -> &SessionWatch {
        &self.health
    }

    /// Joins as `name` with `data`. The group node (and its missing parents) is created as
    /// a container (the server removes it once the last member left).
    pub fn join(&self, name: &str, data: &[u8]) -> Result<Membership<'zk>> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::BadName(name.to_string()));
        }
        let node = join(&self.path, name);
        validate_path(&node, false)?;
        let mut tries = 0;
        loop {
            retrying(self.zk, &self.health, || create_containers(self.zk, &self.path))?;
            return match create_ephemeral(self.zk, &self.health, &node, data) {
                Ok(()) => Ok(Membership { zk: self.zk, node, owned: true }),
                Err(Taken::By(owner)) => Err(Error::NameTaken { node, owner }),
                // the server removed the empty container meanwhile: create it again
                Err(Taken::Zk(e)) if e.code() == Some(Code::NoNode) && tries < 10 => {
                    tries += 1;
                    continue;
                }
                Err(Taken::Zk(e)) => Err(e.into()),
            };
        }
    }

    /// Waits until member `name` is gone (a watch on its node), e.g. the node of our own
    /// expired session, which the server deletes when it notices. False on deadline or stop.
    pub fn wait_gone(&self, name: &str, deadline: Instant, stop: &Receiver<()>) -> Result<bool> {
        let node = join(&self.path, name);
        let timer = crossbeam_channel::at(deadline);
        loop {
            let (stat, watch) = retrying(self.zk, &self.health, || self.zk.exists_w(&node))?;
            if stat.is_none() {
                return Ok(true);
            }
            select! {
                recv(watch) -> ev => if ev.is_err() {
                    return Err(Error::Zk(zk::Error::Zk { code: Code::SessionExpired, path: Some(node) }));
                },
                recv(stop) -> _ => return Ok(false),
                recv(timer) -> _ => return Ok(false),
            }
        }
    }

    /// The members now, sorted by name (none when the group node does not exist).
    pub fn members(&self) -> Result<Vec<Member>> {
        match retrying(self.zk, &self.health, || self.zk.children(&self.path)) {
            Ok(names) => self.read(names),
            Err(e) if e.code() == Some(Code::NoNode) => Ok(Vec::new()),
            Err(e) => Err(e.into()),
        }
    }

    /// The members now, and a watch that fires at the next join or leave (or, when the group
    /// node is missing, at its creation).
    pub fn members_w(&self) -> Result<(Vec<Member>, Receiver<WatchEvent>)> {
        loop {
            match retrying(self.zk, &self.health, || self.zk.children_w(&self.path)) {
                Ok((names, _, watch)) => return Ok((self.read(names)?, watch)),
                Err(e) if e.code() == Some(Code::NoNode) => {
                    let (stat, watch) = retrying(self.zk, &self.health, || self.zk.exists_w(&self.path))?;
                    if stat.is_none() {
                        return Ok((Vec::new(), watch));
                    } // created between the two calls: list it
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn read(&self, mut names: Vec<String>) -> Result<Vec<Member>> {
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            match retrying(self.zk, &self.health, || self.zk.get(&join(&self.path, &name))) {
                Ok((data, st)) => out.push(Member { name, data, created: st.czxid }),
                Err(e) if e.code() == Some(Code::NoNode) => {} // left meanwhile
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }
}
