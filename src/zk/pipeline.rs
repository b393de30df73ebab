//! `Requests`: async reads and writes in flight on one session (zoo_aget_children2,
//! zoo_aget, zoo_aexists, zoo_aget_acl, zoo_adelete, zoo_acreate2_ttl, zoo_aset_acl).
//!
//! Each request carries the caller's tag; `recv` hands back `(tag, answer)` in completion
//! order, which on one session is submission order (the server answers a session's
//! requests in order). The trampolines here copy what C hands them and send it over a
//! channel, nothing more; the C client frees its reply after the completion returns.

use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, unbounded};

use super::callbacks::{self, Shared, guard};
use super::client::{CAcl, ZooKeeper, acls_of, cstr, raw_mode, stat_from};
use super::error::{Code, Error, Result};
use super::sys;
use super::types::{Acl, CreateMode, Stat, check_request_size, validate_path};
use super::watch::WatchEvent;

/// What one pipelined request returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `children`: the names (unsorted, as the server sends them) and the node's Stat.
    Children(Vec<String>, Stat),
    /// `get`: the data and the Stat.
    Data(Vec<u8>, Stat),
    /// `exists` on an existing node (a missing one answers `Err(Code::NoNode)`).
    Exists(Stat),
    /// `get_acl`: the ACL and the Stat.
    Acl(Vec<Acl>, Stat),
    /// `create`: the created path and its Stat.
    Created(String, Stat),
    /// `delete`, `set_acl`.
    Done,
}

type Reply = (u64, std::result::Result<Answer, Code>);

/// The data pointer of one async call: reclaimed exactly once, by its completion.
struct Req {
    tag: u64,
    tx: Sender<Reply>,
    watch: Option<Armed>,
}

/// A watch registered (in `Shared`) before a zoo_aw* call. The C client arms it only when
/// the call succeeds (data and children), or also on ZNONODE (exists); otherwise it is
/// forgotten again, so its Sender does not linger in the table.
struct Armed {
    shared: Arc<Shared>,
    id: u64,
    exists: bool,
}

impl Req {
    /// # Safety
    /// `data` must be a pointer from `Box::into_raw(Box<Req>)` not reclaimed before; the C
    /// client calls each registered completion exactly once (with ZCLOSING or
    /// ZCONNECTIONLOSS when the handle closes or the connection drops first).
    unsafe fn finish(data: *const c_void, rc: c_int, answer: impl FnOnce() -> Answer) {
        // SAFETY: per the contract above.
        let req = unsafe { Box::from_raw(data as *mut Req) };
        if let Some(w) = &req.watch {
            let armed = rc == sys::ZOK || (w.exists && rc == sys::ZNONODE);
            if !armed {
                w.shared.remove_watch(w.id);
            }
        }
        let r = if rc == sys::ZOK { Ok(answer()) } else { Err(Code::from_raw(rc)) };
        let _ = req.tx.send((req.tag, r)); // unbounded: never blocks the completion thread
    }
}

/// # Safety
/// `s` is null or points to a Stat valid for the call.
unsafe fn stat_of(s: *const sys::Stat) -> Stat {
    // SAFETY: per the contract.
    unsafe { s.as_ref() }.map(stat_from).unwrap_or_default()
}

unsafe extern "C" fn children_done(
    rc: c_int,
    strings: *const sys::String_vector,
    stat: *const sys::Stat,
    data: *const c_void,
) {
    guard("children completion", || {
        let answer = || {
            let mut names = Vec::new();
            // SAFETY: on ZOK `strings` is null or holds `count` NUL-terminated strings, valid
            // for the call (the C client deallocates them after we return; we copy).
            if let Some(v) = unsafe { strings.as_ref() } {
                names.reserve(v.count.max(0) as usize);
                for i in 0..v.count.max(0) as usize {
                    // SAFETY: as above, `i < count`.
                    names.push(unsafe { CStr::from_ptr(*v.data.add(i)) }.to_string_lossy().into_owned());
                }
            }
            // SAFETY: on ZOK `stat` points to the reply's Stat, valid for the call.
            Answer::Children(names, unsafe { stat_of(stat) })
        };
        // SAFETY: `data` is the Box<Req> leaked by `Requests::children`.
        unsafe { Req::finish(data, rc, answer) };
    });
}

unsafe extern "C" fn data_done(
    rc: c_int,
    value: *const c_char,
    len: c_int,
    stat: *const sys::Stat,
    data: *const c_void,
) {
    guard("get completion", || {
        let answer = || {
            let bytes = if value.is_null() || len <= 0 {
                Vec::new() // -1: NULL data, read as empty like the sync `get`
            } else {
                // SAFETY: on ZOK `value` points to `len` bytes valid for the call; copied.
                unsafe { std::slice::from_raw_parts(value as *const u8, len as usize) }.to_vec()
            };
            // SAFETY: on ZOK `stat` points to the reply's Stat, valid for the call.
            Answer::Data(bytes, unsafe { stat_of(stat) })
        };
        // SAFETY: `data` is the Box<Req> leaked by `Requests::get`.
        unsafe { Req::finish(data, rc, answer) };
    });
}

unsafe extern "C" fn stat_done(rc: c_int, stat: *const sys::Stat, data: *const c_void) {
    guard("exists completion", || {
        // SAFETY: on ZOK `stat` points to the reply's Stat, valid for the call; `data` is the
        // Box<Req> leaked by `Requests::exists`.
        unsafe { Req::finish(data, rc, || Answer::Exists(stat_of(stat))) };
    });
}

unsafe extern "C" fn acl_done(rc: c_int, acl: *mut sys::ACL_vector, stat: *mut sys::Stat, data: *const c_void) {
    guard("acl completion", || {
        let answer = || {
            // SAFETY: on ZOK `acl` is null or holds `count` entries with NUL-terminated
            // strings, valid for the call (the C client frees the reply after we return).
            let out = unsafe { acl.as_ref() }.map(|v| unsafe { acls_of(v) }).unwrap_or_default();
            // SAFETY: on ZOK `stat` points to the reply's Stat, valid for the call.
            Answer::Acl(out, unsafe { stat_of(stat) })
        };
        // SAFETY: `data` is the Box<Req> leaked by `Requests::get_acl`.
        unsafe { Req::finish(data, rc, answer) };
    });
}

unsafe extern "C" fn created_done(rc: c_int, path: *const c_char, stat: *const sys::Stat, data: *const c_void) {
    guard("create completion", || {
        let answer = || {
            let p = if path.is_null() {
                String::new()
            } else {
                // SAFETY: on ZOK `path` is the created path, NUL-terminated, valid for the call.
                unsafe { CStr::from_ptr(path) }.to_string_lossy().into_owned()
            };
            // SAFETY: on ZOK `stat` points to the reply's Stat, valid for the call.
            Answer::Created(p, unsafe { stat_of(stat) })
        };
        // SAFETY: `data` is the Box<Req> leaked by `Requests::create`.
        unsafe { Req::finish(data, rc, answer) };
    });
}

unsafe extern "C" fn void_done(rc: c_int, data: *const c_void) {
    guard("completion", || {
        // SAFETY: `data` is the Box<Req> leaked by `Requests::delete` / `set_acl`.
        unsafe { Req::finish(data, rc, || Answer::Done) };
    });
}

impl ZooKeeper {
    /// Starts a pipeline of async reads and writes (see [`Requests`]).
    pub fn requests(&self) -> Requests<'_> {
        let (tx, rx) = unbounded();
        Requests { zk: self, tx, rx, in_flight: 0 }
    }
}

/// Async requests in flight on one session, each with the caller's tag. Submitting never
/// blocks on the network; the caller bounds what is in flight with [`Requests::in_flight`].
/// Errors from a submit mean nothing was sent.
pub struct Requests<'zk> {
    zk: &'zk ZooKeeper,
    tx: Sender<Reply>,
    rx: Receiver<Reply>,
    in_flight: usize,
}

impl Requests<'_> {
    /// Requests submitted and not yet received.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    fn boxed(&self, tag: u64) -> *mut Req {
        Box::into_raw(Box::new(Req { tag, tx: self.tx.clone(), watch: None }))
    }

    /// Registers a one-shot watch whose event goes to `events`; returns the box and the
    /// watch id (the watcher context).
    fn boxed_watch(&self, tag: u64, events: &Sender<WatchEvent>, exists: bool) -> (*mut Req, u64) {
        let id = self.zk.shared.add_watch(events.clone());
        let watch = Some(Armed { shared: Arc::clone(&self.zk.shared), id, exists });
        (Box::into_raw(Box::new(Req { tag, tx: self.tx.clone(), watch })), id)
    }

    /// As [`Requests::get`], and arms a one-shot data watch (changed or deleted) whose event
    /// is sent to `events` (any number of watches may share one channel).
    pub fn get_w(&mut self, tag: u64, path: &str, events: &Sender<WatchEvent>) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let (data, id) = self.boxed_watch(tag, events, false);
        // SAFETY: as in `children`; the watcher context is a watch id, not a pointer
        // (node_watcher looks it up in the handle's Shared).
        let rc = unsafe {
            sys::zoo_awget(
                self.zk.zh(),
                c_path.as_ptr(),
                Some(callbacks::node_watcher),
                id as *mut c_void,
                Some(data_done),
                data as *const c_void,
            )
        };
        self.submitted_w(rc, data, id, path)
    }

    /// As [`Requests::children`], and arms a one-shot children watch (created/deleted child,
    /// or the node deleted) whose event is sent to `events`.
    pub fn children_w(&mut self, tag: u64, path: &str, events: &Sender<WatchEvent>) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let (data, id) = self.boxed_watch(tag, events, false);
        // SAFETY: as in `get_w`.
        let rc = unsafe {
            sys::zoo_awget_children2(
                self.zk.zh(),
                c_path.as_ptr(),
                Some(callbacks::node_watcher),
                id as *mut c_void,
                Some(children_done),
                data as *const c_void,
            )
        };
        self.submitted_w(rc, data, id, path)
    }

    /// As [`Requests::exists`], and arms a one-shot watch (also on a missing node: it fires
    /// on its creation) whose event is sent to `events`.
    pub fn exists_w(&mut self, tag: u64, path: &str, events: &Sender<WatchEvent>) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let (data, id) = self.boxed_watch(tag, events, true);
        // SAFETY: as in `get_w`.
        let rc = unsafe {
            sys::zoo_awexists(
                self.zk.zh(),
                c_path.as_ptr(),
                Some(callbacks::node_watcher),
                id as *mut c_void,
                Some(stat_done),
                data as *const c_void,
            )
        };
        self.submitted_w(rc, data, id, path)
    }

    fn submitted_w(&mut self, rc: c_int, data: *mut Req, id: u64, path: &str) -> Result<()> {
        if rc == sys::ZBADARGUMENTS || rc == sys::ZINVALIDSTATE {
            self.zk.shared.remove_watch(id); // nothing was sent: no watch
        }
        self.submitted(rc, data, path)
    }

    /// Lists a node's children with its Stat (zoo_aget_children2, no watch).
    pub fn children(&mut self, tag: u64, path: &str) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let data = self.boxed(tag);
        // SAFETY: the C client copies the path into the request before returning; the
        // completion reclaims `data` exactly once.
        let rc = unsafe {
            sys::zoo_aget_children2(self.zk.zh(), c_path.as_ptr(), 0, Some(children_done), data as *const c_void)
        };
        self.submitted(rc, data, path)
    }

    /// Reads a node's data and Stat (zoo_aget, no watch).
    pub fn get(&mut self, tag: u64, path: &str) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let data = self.boxed(tag);
        // SAFETY: as in `children`.
        let rc = unsafe { sys::zoo_aget(self.zk.zh(), c_path.as_ptr(), 0, Some(data_done), data as *const c_void) };
        self.submitted(rc, data, path)
    }

    /// A node's Stat (zoo_aexists, no watch); a missing node answers `Code::NoNode`.
    pub fn exists(&mut self, tag: u64, path: &str) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let data = self.boxed(tag);
        // SAFETY: as in `children`.
        let rc = unsafe { sys::zoo_aexists(self.zk.zh(), c_path.as_ptr(), 0, Some(stat_done), data as *const c_void) };
        self.submitted(rc, data, path)
    }

    /// A node's ACL and Stat (zoo_aget_acl).
    pub fn get_acl(&mut self, tag: u64, path: &str) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let data = self.boxed(tag);
        // SAFETY: as in `children`.
        let rc = unsafe { sys::zoo_aget_acl(self.zk.zh(), c_path.as_ptr(), Some(acl_done), data as *const c_void) };
        self.submitted(rc, data, path)
    }

    /// Deletes a node; `version` None means any version.
    pub fn delete(&mut self, tag: u64, path: &str, version: Option<i32>) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let data = self.boxed(tag);
        // SAFETY: as in `children`.
        let rc = unsafe {
            sys::zoo_adelete(
                self.zk.zh(),
                c_path.as_ptr(),
                version.unwrap_or(-1),
                Some(void_done),
                data as *const c_void,
            )
        };
        self.submitted(rc, data, path)
    }

    /// Creates a node with an explicit ACL (None: the client's default ACL), any mode.
    pub fn create(&mut self, tag: u64, path: &str, data: &[u8], mode: CreateMode, acl: Option<&[Acl]>) -> Result<()> {
        validate_path(path, mode.is_sequential())?;
        check_request_size(path, data.len())?;
        let c_path = cstr(path)?;
        let mut c_acl = CAcl::new(acl.unwrap_or(&self.zk.acl))?;
        let vector = c_acl.vector();
        let ptr = self.boxed(tag);
        // SAFETY: the C client serializes path, data and ACL into the request before
        // returning; the completion reclaims `ptr` exactly once. A TTL of -1 means none.
        let rc = unsafe {
            sys::zoo_acreate2_ttl(
                self.zk.zh(),
                c_path.as_ptr(),
                data.as_ptr() as *const c_char,
                data.len() as c_int,
                &vector,
                raw_mode(mode),
                mode.ttl(),
                Some(created_done),
                ptr as *const c_void,
            )
        };
        self.submitted(rc, ptr, path)
    }

    /// Replaces a node's ACL; `version` is the ACL version (None: any).
    pub fn set_acl(&mut self, tag: u64, path: &str, acl: &[Acl], version: Option<i32>) -> Result<()> {
        validate_path(path, false)?;
        let c_path = cstr(path)?;
        let mut c_acl = CAcl::new(acl)?;
        let mut vector = c_acl.vector();
        let data = self.boxed(tag);
        // SAFETY: as in `create`; the C client only reads the ACL vector.
        let rc = unsafe {
            sys::zoo_aset_acl(
                self.zk.zh(),
                c_path.as_ptr(),
                version.unwrap_or(-1),
                &mut vector,
                Some(void_done),
                data as *const c_void,
            )
        };
        self.submitted(rc, data, path)
    }

    fn submitted(&mut self, rc: c_int, data: *mut Req, path: &str) -> Result<()> {
        if rc == sys::ZOK {
            self.in_flight += 1;
            return Ok(());
        }
        if rc == sys::ZBADARGUMENTS || rc == sys::ZINVALIDSTATE {
            // SAFETY: the zoo_a* calls return these before registering the completion, so
            // the box is still ours.
            drop(unsafe { Box::from_raw(data) });
        } else {
            // ZMARSHALLINGERROR: the completion may be registered and will still run.
            self.in_flight += 1;
        }
        Err(Error::zk(rc, path))
    }

    /// The next answer, blocking; None when nothing is in flight.
    pub fn recv(&mut self) -> Option<Reply> {
        if self.in_flight == 0 {
            return None;
        }
        // We hold a Sender ourselves, so this only returns with a completion.
        let r = self.rx.recv().ok()?;
        self.in_flight -= 1;
        Some(r)
    }
}

impl Drop for Requests<'_> {
    fn drop(&mut self) {
        // Each completion holds its own Sender clone, so nothing dangles; draining keeps
        // a dropped pipeline's answers from outliving it.
        while self.in_flight > 0 && self.rx.recv().is_ok() {
            self.in_flight -= 1;
        }
    }
}

impl ZooKeeper {
    /// The ensemble's dynamic configuration (zoo_getconfig: the data of /zookeeper/config)
    /// and its Stat.
    pub fn config(&self) -> Result<(Vec<u8>, Stat)> {
        let mut buf = vec![0u8; 1 << 20];
        let mut len = buf.len() as c_int;
        let mut stat = super::client::zero_stat();
        // SAFETY: `buf` is writable for `len` bytes; the C client writes at most that many
        // and stores the length it wrote in `len` (-1 for no data).
        let rc = unsafe { sys::zoo_getconfig(self.zh(), 0, buf.as_mut_ptr() as *mut c_char, &mut len, &mut stat) };
        if rc != sys::ZOK {
            return Err(Error::zk(rc, "/zookeeper/config"));
        }
        buf.truncate(len.max(0) as usize);
        Ok((buf, stat_from(&stat)))
    }
}
