//! Retrying a call whose outcome is unknown (ZCONNECTIONLOSS / ZOPERATIONTIMEOUT) once the
//! C client has reconnected. Only for calls that are safe to repeat: reads, creates whose
//! NodeExists the caller resolves, deletes whose NoNode the caller accepts, unconditional sets.

use std::time::{Duration, Instant};

use crate::zk::{Code, CreateMode, Error, Result, SessionEvent, ZooKeeper};

/// Runs `f`, repeating it while its outcome is unknown and the session can still come back
/// (the C client reconnects by itself within the session timeout). Waits for the
/// reconnection on the session events, never spins. Gives up after twice the session timeout.
pub(crate) fn retrying<T>(zk: &ZooKeeper, mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let events = zk.session_events();
    let deadline = Instant::now() + (zk.session_timeout() * 2).max(Duration::from_secs(2));
    loop {
        match f() {
            Err(e) if e.is_outcome_unknown() && !zk.is_dead() && Instant::now() < deadline => {
                if zk.state() == Some(SessionEvent::Connected) {
                    // Already reconnected (or never noticed the loss): pause briefly on the
                    // event channel so a flapping connection does not spin.
                    let _ = events.recv_timeout(Duration::from_millis(50));
                    continue;
                }
                loop {
                    match events.recv_deadline(deadline) {
                        Ok(SessionEvent::Connected | SessionEvent::ConnectedReadOnly) => break,
                        Ok(SessionEvent::Connecting) => continue,
                        Ok(ev) if ev.is_terminal() => return Err(Error::Zk { code: Code::SessionExpired, path: None }),
                        Ok(_) => continue,
                        Err(_) => return Err(e), // deadline or closed: report the original error
                    }
                }
            }
            r => return r,
        }
    }
}

/// The error a recipe reports when its session is gone (its ephemeral nodes with it).
pub(crate) fn session_expired(path: &str) -> Error {
    Error::Zk { code: Code::SessionExpired, path: Some(path.to_string()) }
}

/// Creates every missing ancestor of `path` as a persistent node (races are fine).
pub(crate) fn ensure_parents(zk: &ZooKeeper, path: &str) -> Result<()> {
    match crate::zk::parent(path) {
        Some(parent) => retrying(zk, || zk.ensure_path(parent, CreateMode::Persistent)),
        None => Ok(()),
    }
}

/// Creates a persistent node unless it exists; true when this call created it.
pub(crate) fn ensure_node(zk: &ZooKeeper, path: &str, data: &[u8]) -> Result<bool> {
    match retrying(zk, || zk.create(path, data, CreateMode::Persistent)) {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some(Code::NodeExists) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates an ephemeral node owned by this session. A NodeExists after a lost connection is
/// resolved by its owner: ours means our first attempt went through. Another session's node
/// is returned as `NodeExists` (with the owner's session id).
pub(crate) fn create_ephemeral(zk: &ZooKeeper, path: &str, data: &[u8]) -> Result<(), Taken> {
    match retrying(zk, || zk.create(path, data, CreateMode::Ephemeral)) {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(Code::NodeExists) => match retrying(zk, || zk.exists(path)) {
            Ok(Some(st)) if st.ephemeral_owner == zk.session_id() => Ok(()),
            Ok(Some(st)) => Err(Taken::By(st.ephemeral_owner)),
            Ok(None) => create_ephemeral(zk, path, data), // it just went away: try again
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
