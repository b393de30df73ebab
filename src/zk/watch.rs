//! Watch and session events, as the receivers of crossbeam channels hand them out.

use std::os::raw::c_int;

use super::sys;

/// What happened to a watched node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The node was created (watches armed by `exists_w`).
    Created,
    /// The node was deleted.
    Deleted,
    /// The node's data changed.
    DataChanged,
    /// A child was added or removed.
    ChildrenChanged,
}

impl EventKind {
    /// Maps a node event type; None for session and "not watching" events.
    pub(crate) fn from_raw(kind: c_int) -> Option<EventKind> {
        // SAFETY: the ZOO_*_EVENT statics are initialised constants of the C library,
        // never written after load.
        let (created, deleted, changed, child) =
            unsafe { (sys::ZOO_CREATED_EVENT, sys::ZOO_DELETED_EVENT, sys::ZOO_CHANGED_EVENT, sys::ZOO_CHILD_EVENT) };
        match kind {
            k if k == created => Some(EventKind::Created),
            k if k == deleted => Some(EventKind::Deleted),
            k if k == changed => Some(EventKind::DataChanged),
            k if k == child => Some(EventKind::ChildrenChanged),
            _ => None,
        }
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EventKind::Created => "NodeCreated",
            EventKind::Deleted => "NodeDeleted",
            EventKind::DataChanged => "NodeDataChanged",
            EventKind::ChildrenChanged => "NodeChildrenChanged",
        })
    }
}

/// One fired watch. A watch fires at most once; the receiver then disconnects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventKind,
    /// To which node (relative to the chroot).
    pub path: String,
}

/// A change of the session's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    /// Lost the connection; the client is trying the servers (the session may survive).
    Connecting,
    /// Connected (or reconnected within the session timeout).
    Connected,
    /// Connected to a read-only server.
    ConnectedReadOnly,
    /// The session is gone: its ephemeral nodes and watches with it. The handle is dead.
    Expired,
    /// Authentication failed; the handle is dead.
    AuthFailed,
}

impl SessionEvent {
    pub(crate) fn from_state(state: c_int) -> Option<SessionEvent> {
        // SAFETY: the ZOO_*_STATE statics are initialised constants of the C library.
        let s = unsafe {
            [
                (sys::ZOO_CONNECTING_STATE, SessionEvent::Connecting),
                (sys::ZOO_ASSOCIATING_STATE, SessionEvent::Connecting),
                (sys::ZOO_NOTCONNECTED_STATE, SessionEvent::Connecting),
                (sys::ZOO_CONNECTED_STATE, SessionEvent::Connected),
                (sys::ZOO_READONLY_STATE, SessionEvent::ConnectedReadOnly),
                (sys::ZOO_EXPIRED_SESSION_STATE, SessionEvent::Expired),
                (sys::ZOO_AUTH_FAILED_STATE, SessionEvent::AuthFailed),
            ]
        };
        s.iter().find(|(raw, _)| *raw == state).map(|(_, ev)| *ev)
    }

    /// True once the session can never be used again.
    pub fn is_terminal(self) -> bool {
        matches!(self, SessionEvent::Expired | SessionEvent::AuthFailed)
    }
}
