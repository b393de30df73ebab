//! What the recipes share: the retry of a call whose outcome is unknown (through the
//! session-health model), the error of a lost session, and creating parents and nodes.
//! Retries are only for calls that are safe to repeat: reads, creates whose NodeExists the
//! caller resolves, deletes whose NoNode the caller accepts, unconditional sets.

use std::time::Instant;

use crossbeam_channel::never;

use crate::zk::{Code, CreateMode, Error, Halt, Result, SessionWatch, ZooKeeper};

/// Runs `f`, repeating it while its outcome is unknown and the session is not lost (per
/// `health`'s grace), for at most twice the session timeout: [`SessionWatch::retry`] with no
/// stop signal. A lost session comes back as `Error::SessionLost`.
pub(crate) fn retrying<T>(zk: &ZooKeeper, health: &SessionWatch, f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + (zk.session_timeout() * 2).max(std::time::Duration::from_secs(2));
    health.retry(&never::<()>(), Some(deadline), f).map_err(|h| match h {
        Halt::Zk(e) => e,
        Halt::Stopped | Halt::TimedOut => Error::Zk { code: Code::ConnectionLoss, path: None },
    })
}

/// Creates `dir` and its missing ancestors as containers (the server removes them once
/// they had children and have none left), as Curator's creatingParentContainersIfNeeded.
/// Every recipe's parent node is one: lock, semaphore, election, group, barrier.
pub fn create_containers(zk: &ZooKeeper, dir: &str) -> Result<()> {
    zk.ensure_path(dir, CreateMode::Container)
}

/// Creates every missing ancestor of `path` as a persistent node (races are fine).
pub(crate) fn ensure_parents(zk: &ZooKeeper, health: &SessionWatch, path: &str) -> Result<()> {
    match crate::zk::parent(path) {
        Some(parent) => retrying(zk, health, || zk.ensure_path(parent, CreateMode::Persistent)),
        None => Ok(()),
    }
}

/// Creates a persistent node unless it exists; true when this call created it.
pub(crate) fn ensure_node(zk: &ZooKeeper, health: &SessionWatch, path: &str, data: &[u8]) -> Result<bool> {
    match retrying(zk, health, || zk.create(path, data, CreateMode::Persistent)) {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some(Code::NodeExists) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates an ephemeral node owned by this session. A NodeExists after a lost connection is
/// resolved by its owner: ours means our first attempt went through. Another session's node
/// is returned as `NodeExists` (with the owner's session id).
/// The check syncs first, so a server that has not applied our create cannot mislead it.
pub(crate) fn create_ephemeral(zk: &ZooKeeper, health: &SessionWatch, path: &str, data: &[u8]) -> Result<(), Taken> {
    match retrying(zk, health, || zk.create(path, data, CreateMode::Ephemeral)) {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(Code::NodeExists) => match retrying(zk, health, || {
            zk.sync(path)?;
            zk.exists(path)
        }) {
            Ok(Some(st)) if st.ephemeral_owner == zk.session_id() => Ok(()),
            Ok(Some(st)) => Err(Taken::By(st.ephemeral_owner)),
            Ok(None) => create_ephemeral(zk, health, path, data), // it just went away: try again
            Err(e) => Err(Taken::Zk(e)),
        },
        Err(e) => Err(Taken::Zk(e)),
    }
}

/// Why an ephemeral node could not be created.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Another session (0 for a persistent node) holds the name.
    By(i64),
    Zk(Error),
}
