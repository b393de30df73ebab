//! One error enum for the zk layer: every ZOO_* code, plus what is refused before any
//! call reaches ZooKeeper.

use std::ffi::CStr;
use std::fmt;
use std::os::raw::c_int;
use std::time::Duration;

use super::sys;

/// Anything the zk layer can report. Display is one human sentence; the CLI prefixes `zkutil: `.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)] // the fields are named for what they hold; the variants say what failed
pub enum Error {
    /// The server or the C client returned a ZOO_* code for the call about `path`.
    Zk { code: Code, path: Option<String> },
    /// A multi failed: op `index` (about `path`) failed with `code`; nothing was applied.
    Multi { index: usize, code: Code, path: String, results: Vec<Code> },
    /// No session was established within the connect timeout.
    ConnectTimeout { hosts: String, waited: Duration },
    /// The connect string could not be parsed or resolved by the C client.
    BadHosts { hosts: String, why: String },
    /// Rejected before any call reached ZooKeeper.
    InvalidPath { path: String, reason: &'static str },
    /// The request would exceed ZooKeeper's packet limit (jute.maxbuffer); nothing was sent.
    TooLarge { path: String, size: usize, limit: usize },
    /// The session is lost, as the session-health model decided (`zk::health`): expired,
    /// or silent past the caller's grace. The one error every recipe reports for it.
    SessionLost(super::health::Lost),
}

/// Shorthand used by the whole zk layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The ZooKeeper code, if this came from ZooKeeper.
    pub fn code(&self) -> Option<Code> {
        match self {
            Error::Zk { code, .. } | Error::Multi { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True when the outcome of the call is unknown: it may or may not have been applied.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self.code(), Some(c) if c.is_outcome_unknown())
    }

    /// True when the session is gone (or must be given up): expired, closed, authentication
    /// failed, or lost per the session-health model. A new session is needed.
    pub fn is_session_lost(&self) -> bool {
        matches!(self, Error::SessionLost(_)) || self.code().is_some_and(Code::is_session_lost)
    }

    pub(crate) fn zk(rc: c_int, path: &str) -> Error {
        Error::Zk { code: Code::from_raw(rc), path: Some(path.to_string()) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Zk { code, path: Some(p) } => write!(f, "{p}: {code}"),
            Error::Zk { code, path: None } => write!(f, "{code}"),
            Error::Multi { index, code, path, .. } => {
                write!(f, "transaction failed at operation {} ({path}): {code}; nothing was applied", index + 1)
            }
            Error::ConnectTimeout { hosts, waited } => write!(
                f,
                "cannot reach ZooKeeper at {hosts} (no session after {}); is the server running?",
                humantime::format_duration(*waited)
            ),
            Error::BadHosts { hosts, why } => write!(f, "bad connect string {hosts:?}: {why}"),
            Error::InvalidPath { path, reason } => write!(f, "invalid path {path:?}: {reason}"),
            Error::SessionLost(why) => write!(f, "{why}"),
            Error::TooLarge { path, size, limit } => write!(
                f,
                "{path}: {size} bytes of data exceed ZooKeeper's limit of {limit} bytes for \
                 this request (the server's jute.maxbuffer); nothing was sent"
            ),
        }
    }
}

impl std::error::Error for Error {}

macro_rules! codes {
    ($($variant:ident = $raw:ident, $text:expr;)*) => {
        /// ZOO_* return codes. `Other` keeps codes this version does not name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Code {
            $(#[doc = $text] $variant,)*
            /// A code this version of zkutil does not know.
            Other(i32),
        }

        impl Code {
            /// Maps a raw ZOO_ERRORS value.
            pub fn from_raw(rc: c_int) -> Code {
                match rc {
                    $(sys::$raw => Code::$variant,)*
                    other => Code::Other(other),
                }
            }

            /// The raw ZOO_ERRORS value.
            pub fn raw(self) -> c_int {
                match self {
                    $(Code::$variant => sys::$raw,)*
                    Code::Other(rc) => rc,
                }
            }
        }

        impl fmt::Display for Code {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Code::$variant => f.write_str($text),)*
                    Code::Other(rc) => write!(f, "{} (code {rc})", zerror_text(*rc)),
                }
            }
        }

        #[cfg(test)]
        pub(crate) const ALL_RAW: &[c_int] = &[$(sys::$raw,)*];
    };
}

codes! {
    Ok = ZOK, "ok";
    SystemError = ZSYSTEMERROR, "system error in the ZooKeeper client";
    RuntimeInconsistency = ZRUNTIMEINCONSISTENCY, "not applied (an earlier operation of the transaction failed)";
    DataInconsistency = ZDATAINCONSISTENCY, "data inconsistency";
    ConnectionLoss = ZCONNECTIONLOSS, "connection to ZooKeeper lost (the outcome is unknown)";
    MarshallingError = ZMARSHALLINGERROR, "request could not be encoded";
    Unimplemented = ZUNIMPLEMENTED, "operation not implemented by the server";
    OperationTimeout = ZOPERATIONTIMEOUT, "operation timed out (the outcome is unknown)";
    BadArguments = ZBADARGUMENTS, "bad arguments";
    InvalidState = ZINVALIDSTATE, "the session is no longer valid (expired or closed)";
    NewConfigNoQuorum = ZNEWCONFIGNOQUORUM, "new configuration has no quorum";
    ReconfigInProgress = ZRECONFIGINPROGRESS, "reconfiguration in progress";
    SslConnectionError = ZSSLCONNECTIONERROR, "SSL connection error";
    ApiError = ZAPIERROR, "API error";
    NoNode = ZNONODE, "node does not exist";
    NoAuth = ZNOAUTH, "not authorized (the node's ACL denies this; try --auth)";
    BadVersion = ZBADVERSION, "version mismatch (the node changed since it was read)";
    NoChildrenForEphemerals = ZNOCHILDRENFOREPHEMERALS, "ephemeral nodes cannot have children";
    NodeExists = ZNODEEXISTS, "node already exists";
    NotEmpty = ZNOTEMPTY, "node has children (use deleteall)";
    SessionExpired = ZSESSIONEXPIRED, "session expired";
    InvalidCallback = ZINVALIDCALLBACK, "invalid callback";
    InvalidAcl = ZINVALIDACL, "invalid ACL";
    AuthFailed = ZAUTHFAILED, "authentication failed";
    Closing = ZCLOSING, "the session is closing";
    Nothing = ZNOTHING, "no server response";
    SessionMoved = ZSESSIONMOVED, "session moved to another server";
    NotReadonly = ZNOTREADONLY, "the server is read-only";
    EphemeralOnLocalSession = ZEPHEMERALONLOCALSESSION, "ephemeral nodes need a global session";
    NoWatcher = ZNOWATCHER, "no such watcher";
    ReconfigDisabled = ZRECONFIGDISABLED, "reconfiguration is disabled";
    SessionClosedRequireSaslAuth = ZSESSIONCLOSEDREQUIRESASLAUTH, "the server requires SASL authentication";
    ThrottledOp = ZTHROTTLEDOP, "operation throttled by the server";
}

impl Code {
    /// ZCONNECTIONLOSS and ZOPERATIONTIMEOUT both mean the request may or may not have
    /// been applied; the caller must find out before retrying a non-idempotent call.
    pub fn is_outcome_unknown(self) -> bool {
        matches!(self, Code::ConnectionLoss | Code::OperationTimeout)
    }

    /// The session is gone for good: a new one is needed.
    pub fn is_session_lost(self) -> bool {
        matches!(self, Code::SessionExpired | Code::InvalidState | Code::Closing | Code::AuthFailed)
    }
}

fn zerror_text(rc: c_int) -> String {
    // SAFETY: zerror returns a pointer to a static NUL-terminated string for any input.
    let p = unsafe { sys::zerror(rc) };
    if p.is_null() {
        return "unknown error".into();
    }
    // SAFETY: non-null, static and NUL-terminated (see above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for &rc in ALL_RAW {
            let code = Code::from_raw(rc);
            assert!(!matches!(code, Code::Other(_)), "{rc} unmapped");
            assert_eq!(code.raw(), rc);
            assert!(!code.to_string().is_empty());
        }
        assert_eq!(Code::from_raw(-999), Code::Other(-999));
        assert!(Code::Other(-999).to_string().contains("-999"));
    }

    #[test]
    fn display_reads_like_ls() {
        let e = Error::zk(sys::ZNONODE, "/app/x");
        assert_eq!(e.to_string(), "/app/x: node does not exist");
        assert_eq!(e.code(), Some(Code::NoNode));
    }
}
