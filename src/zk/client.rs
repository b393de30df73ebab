//! `ZooKeeper`: one session over one C handle. Send + Sync; Drop closes the session.

use std::ffi::{CStr, CString};
use std::os::raw::{c_char, c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded, unbounded};

use super::callbacks::{self, Pending, Shared};
use super::error::{Code, Error, Result};
use super::pipeline::Answer;
use super::sys;
use super::types::{Acl, CreateMode, Stat, check_request_size, validate_path};
use super::watch::{SessionEvent, WatchEvent};

/// How to connect. `ZooKeeper::connect` covers the common case.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Connect string, optional chroot: `h1:2181,h2:2181/app`.
    pub hosts: String,
    /// Session timeout asked of the server (it clamps to 2..20 ticks).
    pub session_timeout: Duration,
    /// How long `connect` waits for the first session before giving up.
    pub connect_timeout: Duration,
    /// Digest credentials (`user:password`); nodes this client creates then get the
    /// creator-only ACL.
    pub digest: Option<String>,
    /// Resume an existing session (id, password) instead of creating one.
    pub session: Option<(i64, [u8; 16])>,
}

impl ConnectOptions {
    /// Defaults: 10 s session timeout, 10 s connect timeout, no auth.
    pub fn new(hosts: impl Into<String>) -> ConnectOptions {
        ConnectOptions {
            hosts: hosts.into(),
            session_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            digest: None,
            session: None,
        }
    }

    /// Connects with these options.
    pub fn connect(&self) -> Result<ZooKeeper> {
        ZooKeeper::connect_with(self)
    }
}

/// A ZooKeeper session. Share it across threads behind an `Arc` (or by reference).
pub struct ZooKeeper {
    zh: NonNull<sys::zhandle_t>,
    pub(super) shared: Arc<Shared>, // what the C callbacks see; must outlive `zh` (see Drop)
    pub(super) acl: Vec<Acl>,       // default ACL of the nodes this client creates
    options: ConnectOptions,
}

// SAFETY: the mt build guards a handle's queues with its own mutexes (mt_adaptor.c
// adaptor_init: to_send, sent_requests, completions_to_process, auth_h), and the sync calls
// block on per-call completions, so calls may come from any thread. Callbacks never touch
// `ZooKeeper`, only `Shared` (whose fields are Mutex/atomic).
unsafe impl Send for ZooKeeper {}
// SAFETY: as above; no method hands out the raw pointer.
unsafe impl Sync for ZooKeeper {}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        // SAFETY: `zh` came from zookeeper_init2 and is closed exactly once, here. `&mut self`
        // means no Rust call is in flight. zookeeper_close joins the IO and completion threads
        // (mt_adaptor.c adaptor_finish), so once it returns no callback can still read
        // `shared`. Callbacks own no `ZooKeeper`, so Drop never runs on the completion thread.
        let rc = unsafe { sys::zookeeper_close(self.zh.as_ptr()) };
        if rc != sys::ZOK {
            log::debug!(target: "zookeeper", "close: {}", Code::from_raw(rc));
        }
    }
}

impl std::fmt::Debug for ZooKeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZooKeeper").field("hosts", &self.options.hosts).field("session", &self.session_id()).finish()
    }
}

/// Sets the C library's own level from what the `log` crate would show, so the C side
/// never formats lines nobody will see.
fn init_c_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let level = [
            (log::Level::Debug, sys::ZOO_LOG_LEVEL_DEBUG),
            (log::Level::Info, sys::ZOO_LOG_LEVEL_INFO),
            (log::Level::Warn, sys::ZOO_LOG_LEVEL_WARN),
            (log::Level::Error, sys::ZOO_LOG_LEVEL_ERROR),
        ]
        .into_iter()
        .find(|(lvl, _)| log::log_enabled!(target: "zookeeper", *lvl))
        .map(|(_, zl)| zl)
        .unwrap_or(0); // 0 turns the C library's logging off
        // SAFETY: sets a global int in the C library; any value is accepted.
        unsafe { sys::zoo_set_debug_level(level) };
    });
}

pub(super) fn cstr(path: &str) -> Result<CString> {
    CString::new(path).map_err(|_| Error::InvalidPath { path: path.into(), reason: "contains a NUL character" })
}

pub(super) fn raw_mode(mode: CreateMode) -> c_int {
    // SAFETY: the ZOO_* create-mode statics are initialised constants of the C library.
    unsafe {
        match mode {
            CreateMode::Persistent => sys::ZOO_PERSISTENT,
            CreateMode::Ephemeral => sys::ZOO_EPHEMERAL,
            CreateMode::PersistentSequential => sys::ZOO_PERSISTENT_SEQUENTIAL,
            CreateMode::EphemeralSequential => sys::ZOO_EPHEMERAL_SEQUENTIAL,
            CreateMode::Container => sys::ZOO_CONTAINER,
            CreateMode::PersistentWithTtl { .. } => sys::ZOO_PERSISTENT_WITH_TTL,
            CreateMode::PersistentSequentialWithTtl { .. } => sys::ZOO_PERSISTENT_SEQUENTIAL_WITH_TTL,
        }
    }
}

pub(super) fn stat_from(s: &sys::Stat) -> Stat {
    Stat {
        czxid: s.czxid,
        mzxid: s.mzxid,
        ctime: s.ctime,
        mtime: s.mtime,
        version: s.version,
        cversion: s.cversion,
        aversion: s.aversion,
        ephemeral_owner: s.ephemeralOwner,
        data_length: s.dataLength,
        num_children: s.numChildren,
        pzxid: s.pzxid,
    }
}

pub(super) fn zero_stat() -> sys::Stat {
    sys::Stat {
        czxid: 0,
        mzxid: 0,
        ctime: 0,
        mtime: 0,
        version: 0,
        cversion: 0,
        aversion: 0,
        ephemeralOwner: 0,
        dataLength: 0,
        numChildren: 0,
        pzxid: 0,
    }
}

/// An ACL list laid out for C. The strings and entries live on the heap, so the
/// `ACL_vector` stays valid when this value moves.
pub(super) struct CAcl {
    _strings: Vec<CString>,
    entries: Vec<sys::ACL>,
}

impl CAcl {
    pub(super) fn new(acl: &[Acl]) -> Result<CAcl> {
        let bad = |_| Error::Zk { code: Code::InvalidAcl, path: None };
        let mut strings = Vec::with_capacity(acl.len() * 2);
        let mut entries = Vec::with_capacity(acl.len());
        for a in acl {
            let scheme = CString::new(a.scheme.as_str()).map_err(bad)?;
            let id = CString::new(a.id.as_str()).map_err(bad)?;
            // The C client only reads these strings (serialize_ACL_vector).
            entries.push(sys::ACL {
                perms: a.perms,
                id: sys::Id { scheme: scheme.as_ptr() as *mut c_char, id: id.as_ptr() as *mut c_char },
            });
            strings.push(scheme);
            strings.push(id);
        }
        Ok(CAcl { _strings: strings, entries })
    }

    pub(super) fn vector(&mut self) -> sys::ACL_vector {
        sys::ACL_vector { count: self.entries.len() as i32, data: self.entries.as_mut_ptr() }
    }
}

/// Copies a C `ACL_vector` (not freed: its owner does that).
///
/// # Safety
/// `v` holds `count` ACL entries with NUL-terminated strings (as the C client fills it).
pub(super) unsafe fn acls_of(v: &sys::ACL_vector) -> Vec<Acl> {
    (0..v.count.max(0) as usize)
        .map(|i| {
            // SAFETY: per the contract, `i < count` entries are valid.
            let a = unsafe { &*v.data.add(i) };
            // SAFETY: as above.
            let (scheme, id) = unsafe { (CStr::from_ptr(a.id.scheme), CStr::from_ptr(a.id.id)) };
            Acl { perms: a.perms, scheme: scheme.to_string_lossy().into_owned(), id: id.to_string_lossy().into_owned() }
        })
        .collect()
}

/// Converts and frees a C `String_vector`.
fn take_strings(v: &mut sys::String_vector) -> Vec<String> {
    let mut out = Vec::with_capacity(v.count.max(0) as usize);
    for i in 0..v.count.max(0) as usize {
        // SAFETY: on ZOK the C client filled `data` with `count` NUL-terminated strings.
        let s = unsafe { CStr::from_ptr(*v.data.add(i)) };
        out.push(s.to_string_lossy().into_owned());
    }
    // SAFETY: `v` was filled by the C client (or is zeroed); deallocate frees each string
    // and the array, and resets it, so it is freed once.
    unsafe { sys::deallocate_String_vector(v) };
    out
}

/// One operation of a `multi` transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)] // the fields mean what they mean for create/delete/set
pub enum Op {
    /// Create `path` with `data` in `mode` (the client's default ACL).
    Create { path: String, data: Vec<u8>, mode: CreateMode },
    /// Delete `path` if its version is `version` (None: any).
    Delete { path: String, version: Option<i32> },
    /// Replace the data of `path` if its version is `version` (None: any).
    Set { path: String, data: Vec<u8>, version: Option<i32> },
    /// Fail the transaction unless `path` has data version `version`.
    Check { path: String, version: i32 },
}

impl Op {
    /// The path the operation is about.
    pub fn path(&self) -> &str {
        match self {
            Op::Create { path, .. } | Op::Delete { path, .. } | Op::Set { path, .. } | Op::Check { path, .. } => path,
        }
    }
}

/// The result of one operation of a successful `multi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    /// The created path (with the sequence number for sequential modes).
    Created(String),
    /// The node was deleted.
    Deleted,
    /// The node's new Stat.
    Set(Stat),
    /// The version check passed.
    Checked,
}

impl ZooKeeper {
    /// Connects with the default options (10 s connect timeout).
    pub fn connect(hosts: &str, session_timeout: Duration) -> Result<ZooKeeper> {
        ConnectOptions { session_timeout, ..ConnectOptions::new(hosts) }.connect()
    }

    /// Connects and blocks until the session is established, or fails after the connect timeout.
    pub fn connect_with(opts: &ConnectOptions) -> Result<ZooKeeper> {
        init_c_logging();
        let hosts = opts.hosts.trim();
        let bad = |why: &str| Error::BadHosts { hosts: opts.hosts.clone(), why: why.into() };
        if hosts.is_empty() {
            return Err(bad("empty"));
        }
        let servers = hosts.split('/').next().unwrap_or("");
        for hp in servers.split(',') {
            match hp.rsplit_once(':') {
                Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0) => {}
                Some(_) => return Err(bad(&format!("{hp:?} is not host:port"))),
                None if !hp.is_empty() => {} // the C client defaults the port
                None => return Err(bad("empty host")),
            }
        }
        if let Some(chroot) = hosts.find('/').map(|i| &hosts[i..]) {
            validate_path(chroot, false).map_err(|e| bad(&format!("chroot: {e}")))?;
        }
        let c_hosts = CString::new(hosts).map_err(|_| bad("contains a NUL character"))?;

        let shared = Arc::new(Shared::new());
        let (tx, rx) = unbounded();
        shared.subscribe(tx);
        let clientid = opts.session.map(|(id, pw)| sys::clientid_t { client_id: id, passwd: pw.map(|b| b as c_char) });
        let timeout_ms = opts.session_timeout.as_millis().clamp(1, i32::MAX as u128) as c_int;
        // SAFETY: every pointer is valid for the call; the C client copies `hosts` and the
        // client id. The context is our Shared, which outlives the handle (see Drop). Flag
        // ZOO_NO_LOG_CLIENTENV keeps the client's environment dump out of the logs.
        let zh = unsafe {
            sys::zookeeper_init2(
                c_hosts.as_ptr(),
                Some(callbacks::global_watcher),
                timeout_ms,
                clientid.as_ref().map_or(ptr::null(), |c| c as *const _),
                Arc::as_ptr(&shared) as *mut c_void,
                sys::ZOO_NO_LOG_CLIENTENV as c_int,
                Some(callbacks::log_line),
            )
        };
        let Some(zh) = NonNull::new(zh) else {
            // zookeeper_init2 resolves every host at once (getaddrs) and maps a failed
            // getaddrinfo to errno: ENOENT for an unknown name, EINVAL for the rest.
            let err = std::io::Error::last_os_error();
            return Err(bad(&match err.raw_os_error() {
                Some(2) => "a host name does not resolve".to_string(),
                _ => format!("the ZooKeeper client refused it ({err})"),
            }));
        };
        let acl = if opts.digest.is_some() { Acl::creator_all() } else { Acl::open() };
        // From here Drop closes the handle on every error path.
        let zk = ZooKeeper { zh, shared, acl, options: opts.clone() };

        let deadline = Instant::now() + opts.connect_timeout;
        loop {
            match rx.recv_deadline(deadline) {
                Ok(SessionEvent::Connected | SessionEvent::ConnectedReadOnly) => break,
                Ok(SessionEvent::Connecting) => continue,
                Ok(SessionEvent::Expired) => return Err(Error::Zk { code: Code::SessionExpired, path: None }),
                Ok(SessionEvent::AuthFailed) => return Err(Error::Zk { code: Code::AuthFailed, path: None }),
                Err(_) => {
                    return Err(Error::ConnectTimeout { hosts: opts.hosts.clone(), waited: opts.connect_timeout });
                }
            }
        }
        if let Some(digest) = &opts.digest {
            zk.add_auth("digest", digest.as_bytes())?;
        }
        // A missing chroot would make every later call fail with a baffling "/: node does
        // not exist" (and nothing can create it from inside). With a chroot, "/" is the
        // chroot itself; exists needs no permission.
        if let Some(chroot) = hosts.find('/').map(|i| &hosts[i..])
            && zk.exists("/")?.is_none()
        {
            return Err(bad(&format!("the chroot {chroot} does not exist (create it without the chroot first)")));
        }
        Ok(zk)
    }

    /// The options this client connected with.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    pub(super) fn zh(&self) -> *mut sys::zhandle_t {
        self.zh.as_ptr()
    }

    /// The session id (as `ephemeralOwner` shows it).
    pub fn session_id(&self) -> i64 {
        self.client_id().0
    }

    /// Session id and password: enough for another handle to take the session over.
    pub fn client_id(&self) -> (i64, [u8; 16]) {
        // SAFETY: zoo_client_id returns a pointer into the live handle, read at once.
        let c = unsafe { &*sys::zoo_client_id(self.zh()) };
        (c.client_id, c.passwd.map(|b| b as u8))
    }

    /// The session timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        // SAFETY: reads an int of the live handle.
        let ms = unsafe { sys::zoo_recv_timeout(self.zh()) };
        Duration::from_millis(ms.max(0) as u64)
    }

    /// The latest session state.
    pub fn state(&self) -> Option<SessionEvent> {
        self.shared.state()
    }

    /// True once the session expired (or authentication failed): the handle is dead.
    pub fn is_dead(&self) -> bool {
        self.state().is_some_and(SessionEvent::is_terminal)
    }

    /// A receiver of every later session state change.
    pub fn session_events(&self) -> Receiver<SessionEvent> {
        let (tx, rx) = unbounded();
        self.shared.subscribe(tx);
        rx
    }

    /// Creates a node with the client's default ACL; returns the created path (with the
    /// sequence number for sequential modes).
    pub fn create(&self, path: &str, data: &[u8], mode: CreateMode) -> Result<String> {
        let acl = self.acl.clone();
        self.create_with_acl(path, data, mode, &acl).map(|(p, _)| p)
    }

    /// Creates a node with the given ACL; returns the created path and its Stat.
    pub fn create_with_acl(&self, path: &str, data: &[u8], mode: CreateMode, acl: &[Acl]) -> Result<(String, Stat)> {
        validate_path(path, mode.is_sequential())?;
        check_request_size(path, data.len())?;
        let c_path = cstr(path)?;
        let mut c_acl = CAcl::new(acl)?;
        let vector = c_acl.vector();
        // the created path: ours plus a 10-digit sequence number, and room for the NUL
        let mut buf = vec![0u8; path.len() + 16];
        let mut stat = zero_stat();
        let ttl = mode.ttl();
        // SAFETY: all pointers are valid for the call; `buf` is writable for its length; the
        // C client copies `data`, `path` and the ACL into the request before returning.
        // (zoo_create2_ttl serves every mode: a TTL of -1 means none, as mode.ttl() gives.)
        let rc = unsafe {
            sys::zoo_create2_ttl(
                self.zh(),
                c_path.as_ptr(),
                data.as_ptr() as *const c_char,
                data.len() as c_int,
                &vector,
                raw_mode(mode),
                ttl,
                buf.as_mut_ptr() as *mut c_char,
                buf.len() as c_int,
                &mut stat,
            )
        };
        if rc != sys::ZOK {
            return Err(Error::zk(rc, path));
        }
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok((String::from_utf8_lossy(&buf[..end]).into_owned(), stat_from(&stat)))
    }

    /// Makes sure `path` exists, creating it and every missing ancestor with `mode` (empty
    /// data). Nodes that exist already, or that a rival creates meanwhile, are fine.
    pub fn ensure_path(&self, path: &str, mode: CreateMode) -> Result<()> {
        validate_path(path, false)?;
        let mut missing = Vec::new();
        let mut p = Some(path);
        while let Some(node) = p {
            if node == "/" || self.exists(node)?.is_some() {
                break;
            }
            missing.push(node);
            p = super::types::parent(node);
        }
        for node in missing.into_iter().rev() {
            match self.create(node, b"", mode) {
                Err(e) if e.code() != Some(Code::NodeExists) => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Deletes `path` and its subtree, pipelined ([`super::traverse::delete_tree`]). Every
    /// node is first simply deleted; only the ones that turn out to have children are listed, their children
    /// cleared the same way, and they are deleted again. Leaves, most of any big tree, thus
    /// cost one pipelined delete and no listing. Nodes deleted by someone else meanwhile are
    /// fine; a node that keeps getting new children fails after 10 rounds.
    pub fn delete_tree(&self, path: &str) -> Result<()> {
        super::traverse::delete_tree(self, path, super::traverse::DEFAULT_WINDOW).map(|_| ())
    }

    /// Reads a node's data and Stat.
    pub fn get(&self, path: &str) -> Result<(Vec<u8>, Stat)> {
        self.get_inner(path, None)
    }

    /// Reads a node's data and arms a one-shot watch on it (data changed or deleted).
    pub fn get_w(&self, path: &str) -> Result<(Vec<u8>, Stat, Receiver<WatchEvent>)> {
        self.watched(|id| self.get_inner(path, Some(id))).map(|((data, stat), rx)| (data, stat, rx))
    }

    /// Registers a one-shot watch, runs the C call that arms it (given the watch id), and
    /// forgets the watch again if the call fails: the C client arms a watch only on success
    /// (data/child_result_checker; exists_result_checker also on ZNONODE, which
    /// `exists_inner` turns into `Ok(None)`).
    fn watched<T>(&self, call: impl FnOnce(u64) -> Result<T>) -> Result<(T, Receiver<WatchEvent>)> {
        let (tx, rx) = bounded(1);
        let id = self.shared.add_watch(tx);
        match call(id) {
            Ok(v) => Ok((v, rx)),
            Err(e) => {
                self.shared.remove_watch(id);
                Err(e)
            }
        }
    }

    fn get_inner(&self, path: &str, mut watch: Option<u64>) -> Result<(Vec<u8>, Stat)> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let mut cap = 4096usize;
        loop {
            let mut buf = vec![0u8; cap];
            let mut len = cap as c_int;
            let mut stat = zero_stat();
            let (watcher, ctx) = match watch.take() {
                Some(id) => (Some(callbacks::node_watcher as _), id as *mut c_void),
                None => (None, ptr::null_mut()),
            };
            // SAFETY: `buf` is writable for `len` bytes; zoo_wget writes at most `len` bytes and
            // stores the length it wrote (-1 for NULL data). The watcher context is a watch id
            // registered in Shared, not a pointer.
            let rc = unsafe {
                sys::zoo_wget(
                    self.zh(),
                    c_path.as_ptr(),
                    watcher,
                    ctx,
                    buf.as_mut_ptr() as *mut c_char,
                    &mut len,
                    &mut stat,
                )
            };
            if rc != sys::ZOK {
                return Err(Error::zk(rc, path));
            }
            // zoo_get silently truncates to the buffer: size it from the Stat and read again
            // (the watch, if any, was armed by the first read).
            let full = stat.dataLength.max(0) as usize;
            if full > cap {
                cap = full;
                continue;
            }
            buf.truncate(len.max(0) as usize);
            return Ok((buf, stat_from(&stat)));
        }
    }

    /// Replaces a node's data; `version` None means any version. Returns the new Stat.
    pub fn set(&self, path: &str, data: &[u8], version: Option<i32>) -> Result<Stat> {
        validate_path(path, false)?;
        check_request_size(path, data.len())?;
        let c_path = cstr(path)?;
        let mut stat = zero_stat();
        // SAFETY: pointers valid for the call; the C client copies `data`.
        let rc = unsafe {
            sys::zoo_set2(
                self.zh(),
                c_path.as_ptr(),
                data.as_ptr() as *const c_char,
                data.len() as c_int,
                version.unwrap_or(-1),
                &mut stat,
            )
        };
        if rc != sys::ZOK {
            return Err(Error::zk(rc, path));
        }
        Ok(stat_from(&stat))
    }

    /// Deletes a node; `version` None means any version.
    pub fn delete(&self, path: &str, version: Option<i32>) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        // SAFETY: `c_path` is valid for the call.
        let rc = unsafe { sys::zoo_delete(self.zh(), c_path.as_ptr(), version.unwrap_or(-1)) };
        if rc != sys::ZOK {
            return Err(Error::zk(rc, path));
        }
        Ok(())
    }

    /// The node's Stat, or None when it does not exist.
    pub fn exists(&self, path: &str) -> Result<Option<Stat>> {
        self.exists_inner(path, None)
    }

    /// As `exists`, and arms a watch that fires when the node is created, changed or deleted.
    /// Unlike `get_w`, the watch is armed even when the node does not exist.
    pub fn exists_w(&self, path: &str) -> Result<(Option<Stat>, Receiver<WatchEvent>)> {
        self.watched(|id| self.exists_inner(path, Some(id)))
    }

    fn exists_inner(&self, path: &str, watch: Option<u64>) -> Result<Option<Stat>> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let mut stat = zero_stat();
        let (watcher, ctx) = match watch {
            Some(id) => (Some(callbacks::node_watcher as _), id as *mut c_void),
            None => (None, ptr::null_mut()),
        };
        // SAFETY: pointers valid for the call; the watcher context is a watch id. On ZNONODE
        // the watch *is* armed (exists_result_checker), which is how "wait for creation" works.
        let rc = unsafe { sys::zoo_wexists(self.zh(), c_path.as_ptr(), watcher, ctx, &mut stat) };
        match rc {
            sys::ZOK => Ok(Some(stat_from(&stat))),
            sys::ZNONODE => Ok(None),
            rc => Err(Error::zk(rc, path)),
        }
    }

    /// The names of a node's children (unsorted, as the server sends them).
    pub fn children(&self, path: &str) -> Result<Vec<String>> {
        self.children_inner(path, None).map(|(c, _)| c)
    }

    /// The children's names and the parent's Stat.
    pub fn children2(&self, path: &str) -> Result<(Vec<String>, Stat)> {
        self.children_inner(path, None)
    }

    /// As `children2`, and arms a watch that fires when a child is added or removed (or the
    /// node is deleted).
    pub fn children_w(&self, path: &str) -> Result<(Vec<String>, Stat, Receiver<WatchEvent>)> {
        self.watched(|id| self.children_inner(path, Some(id))).map(|((kids, stat), rx)| (kids, stat, rx))
    }

    fn children_inner(&self, path: &str, watch: Option<u64>) -> Result<(Vec<String>, Stat)> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let mut stat = zero_stat();
        let mut v = sys::String_vector { count: 0, data: ptr::null_mut() };
        let (watcher, ctx) = match watch {
            Some(id) => (Some(callbacks::node_watcher as _), id as *mut c_void),
            None => (None, ptr::null_mut()),
        };
        // SAFETY: pointers valid for the call; on ZOK the C client fills `v`, freed in take_strings.
        let rc = unsafe { sys::zoo_wget_children2(self.zh(), c_path.as_ptr(), watcher, ctx, &mut v, &mut stat) };
        if rc != sys::ZOK {
            return Err(Error::zk(rc, path));
        }
        Ok((take_strings(&mut v), stat_from(&stat)))
    }

    /// Applies all operations or none. On failure, `Error::Multi` names the failing op.
    pub fn multi(&self, ops: &[Op]) -> Result<Vec<OpResult>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut total = 0;
        let mut paths = Vec::with_capacity(ops.len());
        for op in ops {
            let seq = matches!(op, Op::Create { mode, .. } if mode.is_sequential());
            validate_path(op.path(), seq)?;
            paths.push(cstr(op.path())?);
            total += op.path().len()
                + 64
                + match op {
                    Op::Create { data, .. } | Op::Set { data, .. } => data.len(),
                    _ => 0,
                };
        }
        check_request_size(ops[0].path(), total)?;
        let mut c_acl = CAcl::new(&self.acl)?;
        let vector = c_acl.vector();
        let mut bufs: Vec<Vec<u8>> = ops.iter().map(|op| vec![0u8; op.path().len() + 16]).collect();
        let mut stats: Vec<sys::Stat> = ops.iter().map(|_| zero_stat()).collect();
        // SAFETY: zoo_op_t and zoo_op_result_t are plain C structs for which all-zero is a
        // valid (empty) value; each op is then filled by its *_op_init.
        let mut c_ops: Vec<sys::zoo_op_t> = ops.iter().map(|_| unsafe { std::mem::zeroed() }).collect();
        // SAFETY: as above.
        let mut results: Vec<sys::zoo_op_result_t> = ops.iter().map(|_| unsafe { std::mem::zeroed() }).collect();
        for (i, op) in ops.iter().enumerate() {
            let p = paths[i].as_ptr();
            // SAFETY: every pointer stored in the op (path, data, ACL, buffers, stat) lives in
            // `paths`, `ops`, `vector`, `bufs` and `stats`, which outlive the zoo_multi call.
            unsafe {
                match op {
                    Op::Create { data, mode, .. } => {
                        sys::zoo_create_op_init(
                            &mut c_ops[i],
                            p,
                            data.as_ptr() as *const c_char,
                            data.len() as c_int,
                            &vector,
                            raw_mode(*mode),
                            bufs[i].as_mut_ptr() as *mut c_char,
                            bufs[i].len() as c_int,
                        );
                        if mode.ttl() > 0 {
                            c_ops[i].__bindgen_anon_1.create_op.ttl = mode.ttl();
                        }
                    }
                    Op::Delete { version, .. } => sys::zoo_delete_op_init(&mut c_ops[i], p, version.unwrap_or(-1)),
                    Op::Set { data, version, .. } => sys::zoo_set_op_init(
                        &mut c_ops[i],
                        p,
                        data.as_ptr() as *const c_char,
                        data.len() as c_int,
                        version.unwrap_or(-1),
                        &mut stats[i],
                    ),
                    Op::Check { version, .. } => sys::zoo_check_op_init(&mut c_ops[i], p, *version),
                }
            }
        }
        // SAFETY: `c_ops` and `results` hold `ops.len()` entries; everything they point to
        // outlives the call (see above).
        let rc = unsafe { sys::zoo_multi(self.zh(), ops.len() as c_int, c_ops.as_ptr(), results.as_mut_ptr()) };
        if rc != sys::ZOK {
            let codes: Vec<Code> = results.iter().map(|r| Code::from_raw(r.err)).collect();
            let failed = results
                .iter()
                .position(|r| r.err != sys::ZOK && r.err != sys::ZRUNTIMEINCONSISTENCY && rc != sys::ZCONNECTIONLOSS);
            return Err(match failed {
                Some(index) => Error::Multi {
                    index,
                    code: Code::from_raw(results[index].err),
                    path: ops[index].path().to_string(),
                    results: codes,
                },
                None => Error::Zk { code: Code::from_raw(rc), path: Some(ops[0].path().to_string()) },
            });
        }
        Ok(ops
            .iter()
            .enumerate()
            .map(|(i, op)| match op {
                Op::Create { .. } => {
                    let end = bufs[i].iter().position(|&b| b == 0).unwrap_or(bufs[i].len());
                    OpResult::Created(String::from_utf8_lossy(&bufs[i][..end]).into_owned())
                }
                Op::Delete { .. } => OpResult::Deleted,
                Op::Set { .. } => OpResult::Set(stat_from(&stats[i])),
                Op::Check { .. } => OpResult::Checked,
            })
            .collect())
    }

    /// Waits until the server this client talks to has caught up with the leader for `path`.
    pub fn sync(&self, path: &str) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let (tx, rx) = bounded(1);
        let data = Box::into_raw(Box::new(Pending { tx }));
        // SAFETY: on ZOK the completion owns `data` and reclaims it exactly once; when the call
        // fails up front (ZBADARGUMENTS/ZINVALIDSTATE) no completion was registered.
        let rc =
            unsafe { sys::zoo_async(self.zh(), c_path.as_ptr(), Some(callbacks::string_done), data as *const c_void) };
        self.await_one(rc, data, rx, path)
    }

    /// Adds credentials to the session (`digest`, `user:password`).
    pub fn add_auth(&self, scheme: &str, cert: &[u8]) -> Result<()> {
        let c_scheme = CString::new(scheme).map_err(|_| Error::Zk { code: Code::BadArguments, path: None })?;
        let (tx, rx) = bounded(1);
        let data = Box::into_raw(Box::new(Pending { tx }));
        // SAFETY: as in `sync`; the C client copies scheme and cert.
        let rc = unsafe {
            sys::zoo_add_auth(
                self.zh(),
                c_scheme.as_ptr(),
                cert.as_ptr() as *const c_char,
                cert.len() as c_int,
                Some(callbacks::void_done),
                data as *const c_void,
            )
        };
        self.await_one(rc, data, rx, "auth")
    }

    fn await_one(&self, rc: c_int, data: *mut Pending, rx: Receiver<c_int>, what: &str) -> Result<()> {
        if rc != sys::ZOK {
            if rc == sys::ZBADARGUMENTS || rc == sys::ZINVALIDSTATE {
                // SAFETY: the call returned before registering the completion, so the box is ours.
                drop(unsafe { Box::from_raw(data) });
            } // otherwise the completion may be registered: leak rather than risk a double free
            return Err(Error::zk(rc, what));
        }
        match rx.recv() {
            Ok(rc) if rc == sys::ZOK => Ok(()),
            Ok(rc) => Err(Error::zk(rc, what)),
            Err(_) => Err(Error::Zk { code: Code::Closing, path: Some(what.into()) }),
        }
    }

    /// A node's ACL and Stat.
    pub fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat)> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let mut v = sys::ACL_vector { count: 0, data: ptr::null_mut() };
        let mut stat = zero_stat();
        // SAFETY: pointers valid for the call; on ZOK `v` is filled by the C client.
        let rc = unsafe { sys::zoo_get_acl(self.zh(), c_path.as_ptr(), &mut v, &mut stat) };
        if rc != sys::ZOK {
            return Err(Error::zk(rc, path));
        }
        // SAFETY: on ZOK the C client filled `v`.
        let out = unsafe { acls_of(&v) };
        // SAFETY: frees what zoo_get_acl allocated, once.
        unsafe { sys::deallocate_ACL_vector(&mut v) };
        Ok((out, stat_from(&stat)))
    }

    /// Replaces a node's ACL; `version` is the ACL version (None: any).
    pub fn set_acl(&self, path: &str, acl: &[Acl], version: Option<i32>) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let mut c_acl = CAcl::new(acl)?;
        let vector = c_acl.vector();
        // SAFETY: pointers valid for the call; the ACL is serialized before return.
        let rc = unsafe { sys::zoo_set_acl(self.zh(), c_path.as_ptr(), version.unwrap_or(-1), &vector) };
        if rc != sys::ZOK {
            return Err(Error::zk(rc, path));
        }
        Ok(())
    }

    /// Creates every node, keeping up to `window` requests in flight. Results in input order.
    pub fn create_many<'a>(
        &self,
        nodes: impl IntoIterator<Item = (&'a str, &'a [u8], CreateMode)>,
        window: usize,
    ) -> Vec<Result<String>> {
        let mut results = Vec::new();
        let mut p = self.requests();
        let created = |r: std::result::Result<Answer, Code>| match r {
            Ok(Answer::Created(path, _)) => Ok(path),
            Ok(_) => Ok(String::new()),
            Err(code) => Err(Error::Zk { code, path: None }),
        };
        for (i, (path, data, mode)) in nodes.into_iter().enumerate() {
            results.push(Err(Error::Zk { code: Code::Nothing, path: None }));
            while p.in_flight() >= window.max(1) {
                if let Some((tag, r)) = p.recv() {
                    results[tag as usize] = created(r);
                }
            }
            if let Err(e) = p.create(i as u64, path, data, mode, None) {
                results[i] = Err(e);
            }
        }
        while let Some((tag, r)) = p.recv() {
            results[tag as usize] = created(r);
        }
        results
    }

    /// Deletes every node (any version), keeping up to `window` requests in flight.
    pub fn delete_many<'a>(&self, paths: impl IntoIterator<Item = &'a str>, window: usize) -> Vec<Result<()>> {
        let mut results = Vec::new();
        let mut p = self.requests();
        let done = |r: std::result::Result<Answer, Code>| r.map(|_| ()).map_err(|code| Error::Zk { code, path: None });
        for (i, path) in paths.into_iter().enumerate() {
            results.push(Err(Error::Zk { code: Code::Nothing, path: None }));
            while p.in_flight() >= window.max(1) {
                if let Some((tag, r)) = p.recv() {
                    results[tag as usize] = done(r);
                }
            }
            if let Err(e) = p.delete(i as u64, path, None) {
                results[i] = Err(e);
            }
        }
        while let Some((tag, r)) = p.recv() {
            results[tag as usize] = done(r);
        }
        results
    }
}
