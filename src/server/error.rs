//! The launcher's one error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why starting, probing or stopping a local ZooKeeper failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Java or the ZooKeeper jars are missing; the message names `vendor/setup.sh`.
    Setup(String),
    /// An I/O operation failed; `what` says which one.
    Io {
        /// What we were doing, e.g. "write /tmp/x/zk0/zoo.cfg".
        what: String,
        /// The underlying error.
        source: io::Error,
    },
    /// A member's JVM exited while we waited for it to serve.
    Exited {
        /// Index of the member (0-based).
        member: usize,
        /// Its exit status, as text.
        status: String,
        /// Where its log is.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },
    /// Members did not serve within the ready timeout.
    Timeout {
        /// What we waited for.
        what: String,
        /// Where the first member still not serving logs to.
        log: PathBuf,
        /// The last lines of that log.
        log_tail: String,
    },
    /// No member with this index.
    NoSuchMember(usize),
    /// A state file could not be parsed.
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Error {
        Error::Io { what: what.into(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Setup(msg) => f.write_str(msg),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::Exited { member, status, log, log_tail } => write!(
                f,
                "ZooKeeper member {member} exited before serving ({status}); last lines of {}:\n{log_tail}",
                log.display()
            ),
            Error::Timeout { what, log, log_tail } => {
                write!(f, "timed out waiting for {what}; last lines of {}:\n{log_tail}", log.display())
            }
            Error::NoSuchMember(i) => write!(f, "no ZooKeeper member {i}"),
            Error::State { path, why } => write!(f, "bad state file {}: {why}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
