//! Plain data the client takes and returns: create modes, Stat, ACLs, path validation.

use super::error::{Error, Result};

/// How a node is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateMode {
    /// Stays until deleted.
    Persistent,
    /// Deleted when the creating session ends.
    Ephemeral,
    /// Persistent, with a 10-digit sequence number appended to the name.
    PersistentSequential,
    /// Ephemeral, with a 10-digit sequence number appended to the name.
    EphemeralSequential,
    /// Deleted by the server once it has had children and has none left.
    Container,
    /// Persistent, deleted by the server after `ttl_ms` without changes once it has no children.
    PersistentWithTtl {
        /// Time to live in ms.
        ttl_ms: i64,
    },
    /// As `PersistentWithTtl`, with a sequence number.
    PersistentSequentialWithTtl {
        /// Time to live in ms.
        ttl_ms: i64,
    },
}

impl CreateMode {
    /// True when the server appends a sequence number.
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            CreateMode::PersistentSequential
                | CreateMode::EphemeralSequential
                | CreateMode::PersistentSequentialWithTtl { .. }
        )
    }

    /// True for the modes whose node dies with the session.
    pub fn is_ephemeral(self) -> bool {
        matches!(self, CreateMode::Ephemeral | CreateMode::EphemeralSequential)
    }

    /// The TTL in ms, or -1 (what the C client takes for "no TTL").
    pub(crate) fn ttl(self) -> i64 {
        match self {
            CreateMode::PersistentWithTtl { ttl_ms } | CreateMode::PersistentSequentialWithTtl { ttl_ms } => ttl_ms,
            _ => -1,
        }
    }
}

/// A node's metadata, as ZooKeeper keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    /// Transaction id of the create.
    pub czxid: i64,
    /// Transaction id of the last data change.
    pub mzxid: i64,
    /// Creation time, ms since the epoch.
    pub ctime: i64,
    /// Last modification time, ms since the epoch.
    pub mtime: i64,
    /// Data version.
    pub version: i32,
    /// Children version.
    pub cversion: i32,
    /// ACL version.
    pub aversion: i32,
    /// Session id of the owner for ephemeral nodes, 0 otherwise.
    pub ephemeral_owner: i64,
    /// Length of the data in bytes.
    pub data_length: i32,
    /// Number of children.
    pub num_children: i32,
    /// Transaction id of the last change to the children.
    pub pzxid: i64,
}

/// Permission bits of an ACL entry (ZOO_PERM_*).
pub mod perms {
    /// Read the data and list the children (`r`).
    pub const READ: i32 = 1;
    /// Set the data (`w`).
    pub const WRITE: i32 = 2;
    /// Create children (`c`).
    pub const CREATE: i32 = 4;
    /// Delete children (`d`).
    pub const DELETE: i32 = 8;
    /// Change the ACL (`a`).
    pub const ADMIN: i32 = 16;
    /// All of the above (`cdrwa`).
    pub const ALL: i32 = 31;
}

/// One ACL entry: who (`scheme:id`) may do what (`perms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// Bits of [`perms`].
    pub perms: i32,
    /// `world`, `digest`, `auth`, `ip`, ...
    pub scheme: String,
    /// Who, in the scheme's terms (`anyone`, `user:base64(sha1(user:password))`, ...).
    pub id: String,
}

impl Acl {
    /// `world:anyone` with every permission (ZOO_OPEN_ACL_UNSAFE).
    pub fn open() -> Vec<Acl> {
        vec![Acl { perms: perms::ALL, scheme: "world".into(), id: "anyone".into() }]
    }

    /// Every permission for the authenticated creator only (ZOO_CREATOR_ALL_ACL).
    pub fn creator_all() -> Vec<Acl> {
        vec![Acl { perms: perms::ALL, scheme: "auth".into(), id: String::new() }]
    }

    /// zkCli's `cdrwa` notation of the permission bits.
    pub fn perms_string(&self) -> String {
        [(perms::CREATE, 'c'), (perms::DELETE, 'd'), (perms::READ, 'r'), (perms::WRITE, 'w'), (perms::ADMIN, 'a')]
            .iter()
            .filter(|(bit, _)| self.perms & bit != 0)
            .map(|(_, c)| *c)
            .collect()
    }

    /// Parses zkCli's `scheme:id:perms` (e.g. `world:anyone:cdrwa`, `digest:u:hash=:r`).
    pub fn parse(s: &str) -> std::result::Result<Acl, String> {
        let (rest, p) = s.rsplit_once(':').ok_or_else(|| format!("ACL {s:?} is not scheme:id:perms"))?;
        let (scheme, id) = rest.split_once(':').ok_or_else(|| format!("ACL {s:?} is not scheme:id:perms"))?;
        let mut bits = 0;
        for c in p.chars() {
            bits |= match c {
                'c' => perms::CREATE,
                'd' => perms::DELETE,
                'r' => perms::READ,
                'w' => perms::WRITE,
                'a' => perms::ADMIN,
                _ => return Err(format!("ACL {s:?}: unknown permission {c:?} (use cdrwa)")),
            };
        }
        Ok(Acl { perms: bits, scheme: scheme.into(), id: id.into() })
    }
}

/// ZooKeeper's default packet limit (jute.maxbuffer, 0xfffff bytes). A request above it is
/// dropped by the server together with the connection, which the C client reports as a bare
/// connection loss, so requests are checked against it before sending.
pub const MAX_PACKET: usize = 0xfffff;

/// Room left in a packet for the header, path, ACL and flags of a create or set.
pub(crate) fn check_request_size(path: &str, data_len: usize) -> Result<()> {
    // header 12 + length prefixes + flags/version + a generous ACL allowance
    let size = data_len + path.len() + 256;
    if size > MAX_PACKET {
        return Err(Error::TooLarge { path: path.into(), size: data_len, limit: MAX_PACKET - path.len() - 256 });
    }
    Ok(())
}

/// Checks a path before any call reaches ZooKeeper. `sequential` allows a trailing `/`
/// (the server then names the node by its sequence number alone).
pub fn validate_path(path: &str, sequential: bool) -> Result<()> {
    let bad = |reason| Err(Error::InvalidPath { path: path.into(), reason });
    if path.is_empty() {
        return bad("empty path");
    }
    if !path.starts_with('/') {
        return bad("must start with '/'");
    }
    if path.contains('\0') {
        return bad("contains a NUL character");
    }
    if path == "/" {
        return Ok(());
    }
    let body = if sequential { path.strip_suffix('/').unwrap_or(path) } else { path };
    if body.ends_with('/') {
        return bad("must not end with '/'");
    }
    for comp in body[1..].split('/') {
        match comp {
            "" => return bad("empty component ('//')"),
            "." | ".." => return bad("'.' and '..' components are not allowed"),
            _ => {}
        }
        if comp.chars().any(|c| ('\u{1}'..='\u{1f}').contains(&c) || ('\u{7f}'..='\u{9f}').contains(&c)) {
            return bad("contains a control character");
        }
    }
    Ok(())
}

/// The 10-digit sequence number ZooKeeper appended to a sequential node's name, if any.
pub fn sequence_of(name: &str) -> Option<u32> {
    let tail = name.get(name.len().checked_sub(10)?..)?;
    if tail.bytes().all(|b| b.is_ascii_digit()) { tail.parse().ok() } else { None }
}

/// Joins a parent path and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" { format!("/{child}") } else { format!("{parent}/{child}") }
}

/// The parent of a path (`/` for top-level nodes), or None for `/`.
pub fn parent(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        for ok in ["/", "/a", "/a/b", "/a-b_c.d", "/a/.b"] {
            assert!(validate_path(ok, false).is_ok(), "{ok}");
        }
        for bad in ["", "a", "/a/", "//", "/a//b", "/a/./b", "/a/..", "/a\0b", "/a\u{1}"] {
            assert!(validate_path(bad, false).is_err(), "{bad:?}");
        }
        assert!(validate_path("/q/", true).is_ok());
        assert!(validate_path("/q//", true).is_err());
    }

    #[test]
    fn sequences() {
        assert_eq!(sequence_of("lock-0000000042"), Some(42));
        assert_eq!(sequence_of("_c_abc-lock-2147483647"), Some(2147483647));
        assert_eq!(sequence_of("lock-42"), None);
        assert_eq!(sequence_of("x"), None);
        assert_eq!(sequence_of("ééééééé"), None);
    }

    #[test]
    fn joins() {
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
        assert_eq!(parent("/a/b"), Some("/a"));
        assert_eq!(parent("/a"), Some("/"));
        assert_eq!(parent("/"), None);
    }

    #[test]
    fn acls() {
        let a = Acl::parse("world:anyone:cdrwa").unwrap();
        assert_eq!(a.perms, perms::ALL);
        assert_eq!(a.perms_string(), "cdrwa");
        let d = Acl::parse("digest:bob:abc=:r").unwrap();
        assert_eq!((d.scheme.as_str(), d.id.as_str(), d.perms), ("digest", "bob:abc=", perms::READ));
        assert!(Acl::parse("world:anyone:x").is_err());
    }
}
