//! The C side's view of a client: `Shared`, and the trampolines the C completion thread
//! calls. Each trampoline does one thing: hand its event to Rust over a channel, inside
//! `catch_unwind`. None calls back into ZooKeeper, blocks, or runs user code.

use std::collections::HashMap;
use std::ffi::CStr;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crossbeam_channel::Sender;

use super::sys;
use super::watch::{EventKind, SessionEvent, WatchEvent};

/// Everything the C side may touch; owned by `ZooKeeper`, pointed to by the handle's context.
pub(crate) struct Shared {
    session_subs: Mutex<Vec<Sender<SessionEvent>>>,
    /// Armed one-shot watches, by id. The id, not a pointer, is the watcher context, because
    /// C calls per-call watchers for session events too without disarming them
    /// (collectWatchers copies the session watchers), so a per-watch Box could never be freed
    /// safely on "first call".
    watches: Mutex<HashMap<u64, Sender<WatchEvent>>>,
    next_watch: AtomicU64,
    /// Last session state, as a `SessionEvent` discriminant + 1 (0 = none yet).
    state: AtomicU8,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

const STATES: [SessionEvent; 5] = [
    SessionEvent::Connecting,
    SessionEvent::Connected,
    SessionEvent::ConnectedReadOnly,
    SessionEvent::Expired,
    SessionEvent::AuthFailed,
];

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared {
            session_subs: Mutex::new(Vec::new()),
            watches: Mutex::new(HashMap::new()),
            next_watch: AtomicU64::new(1),
            state: AtomicU8::new(0),
        }
    }

    pub(crate) fn subscribe(&self, tx: Sender<SessionEvent>) {
        lock(&self.session_subs).push(tx);
    }

    pub(crate) fn state(&self) -> Option<SessionEvent> {
        match self.state.load(Ordering::Acquire) {
            0 => None,
            n => STATES.get(usize::from(n) - 1).copied(),
        }
    }

    /// Registers a one-shot watch before the C call that arms it; returns its id.
    pub(crate) fn add_watch(&self, tx: Sender<WatchEvent>) -> u64 {
        let id = self.next_watch.fetch_add(1, Ordering::Relaxed);
        lock(&self.watches).insert(id, tx);
        id
    }

    /// Forgets a watch the C call did not arm (its receiver then disconnects).
    pub(crate) fn remove_watch(&self, id: u64) {
        lock(&self.watches).remove(&id);
    }

    fn on_session(&self, ev: SessionEvent) {
        let n = STATES.iter().position(|s| *s == ev).unwrap_or(0) as u8 + 1;
        self.state.store(n, Ordering::Release);
        if ev.is_terminal() {
            // The server dropped every watch with the session: disconnect their receivers
            // so whoever waits on one wakes at once instead of hanging.
            lock(&self.watches).clear();
        }
        lock(&self.session_subs).retain(|tx| tx.send(ev).is_ok());
    }

    fn on_node(&self, id: u64, ev: Option<WatchEvent>) {
        let tx = lock(&self.watches).remove(&id);
        if let (Some(tx), Some(ev)) = (tx, ev) {
            let _ = tx.send(ev); // bounded(1), one send: never blocks
        }
    }
}

/// A panic must never unwind into C. The caller is the C completion thread, so there is no
/// one to resume the panic on: log it and drop the event (its Sender drops with it, so the
/// receiver sees a disconnect instead of hanging).
pub(super) fn guard(what: &'static str, f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        log::error!(target: "zookeeper", "panic in {what} callback; event dropped");
    }
}

/// # Safety
/// `zh` must be a live handle whose context is the `Shared` owned by its `ZooKeeper`.
unsafe fn shared_of<'a>(zh: *mut sys::zhandle_t) -> &'a Shared {
    // SAFETY: per the contract, the context is `Arc::as_ptr(&shared)`, which `ZooKeeper`
    // keeps alive until zookeeper_close has joined the completion thread.
    unsafe { &*(sys::zoo_get_context(zh) as *const Shared) }
}

/// The handle's global watcher: session state changes only.
pub(crate) unsafe extern "C" fn global_watcher(
    zh: *mut sys::zhandle_t,
    kind: c_int,
    state: c_int,
    _path: *const c_char,
    _ctx: *mut c_void,
) {
    guard("session", || {
        // SAFETY: the ZOO_SESSION_EVENT static is an initialised constant of the C library.
        if kind != unsafe { sys::ZOO_SESSION_EVENT } {
            return; // node watches are all per-call; none is set on the global watcher
        }
        if let Some(ev) = SessionEvent::from_state(state) {
            // SAFETY: called by the C client for this handle, whose context is our Shared.
            unsafe { shared_of(zh) }.on_session(ev);
        }
    });
}

/// Per-call watcher for zoo_wget / zoo_wexists / zoo_wget_children2. `ctx` is a watch id.
pub(crate) unsafe extern "C" fn node_watcher(
    zh: *mut sys::zhandle_t,
    kind: c_int,
    _state: c_int,
    path: *const c_char,
    ctx: *mut c_void,
) {
    guard("watch", || {
        // SAFETY: the ZOO_*_EVENT statics are initialised constants of the C library.
        let (session, not_watching) = unsafe { (sys::ZOO_SESSION_EVENT, sys::ZOO_NOTWATCHING_EVENT) };
        if kind == session {
            return; // reaches every armed watcher without disarming it; the global watcher reports it
        }
        // SAFETY: called by the C client for this handle, whose context is our Shared.
        let shared = unsafe { shared_of(zh) };
        let ev = EventKind::from_raw(kind).map(|kind| WatchEvent {
            kind,
            path: if path.is_null() {
                String::new()
            } else {
                // SAFETY: C passes a valid NUL-terminated path for node events.
                unsafe { CStr::from_ptr(path) }.to_string_lossy().into_owned()
            },
        });
        // A node event fires the watch; NOTWATCHING (watch removed) just disarms it.
        if ev.is_some() || kind == not_watching {
            shared.on_node(ctx as u64, ev);
        }
    });
}

/// The data pointer of a one-off async call (`sync`, `add_auth`): reclaimed exactly once, by
/// its completion, which sends the call's return code. (Pipelined requests use
/// `pipeline::Req`.)
pub(crate) struct Pending {
    pub tx: Sender<c_int>,
}

/// string_completion_t for zoo_async.
pub(crate) unsafe extern "C" fn string_done(rc: c_int, _value: *const c_char, data: *const c_void) {
    guard("completion", || {
        // SAFETY: `data` is the Box<Pending> leaked when the call was submitted; the C client
        // calls each registered completion exactly once (with ZCLOSING or ZCONNECTIONLOSS
        // when the handle closes or the connection drops first).
        let pending = unsafe { Box::from_raw(data as *mut Pending) };
        let _ = pending.tx.send(rc);
    });
}

/// void_completion_t for zoo_add_auth.
pub(crate) unsafe extern "C" fn void_done(rc: c_int, data: *const c_void) {
    guard("completion", || {
        // SAFETY: as in `string_done`: our leaked Box<Pending>, reclaimed exactly once.
        let pending = unsafe { Box::from_raw(data as *mut Pending) };
        let _ = pending.tx.send(rc);
    });
}

/// log_callback_fn: the C library's log lines into the `log` crate, target "zookeeper".
/// The callback has no context pointer, so it only forwards.
pub(crate) unsafe extern "C" fn log_line(msg: *const c_char) {
    guard("log", || {
        if msg.is_null() {
            return;
        }
        // SAFETY: the C client passes a NUL-terminated message valid for the call.
        let line = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
        let (level, text) = [
            ("ZOO_ERROR@", log::Level::Error),
            ("ZOO_WARN@", log::Level::Warn),
            ("ZOO_INFO@", log::Level::Info),
            ("ZOO_DEBUG@", log::Level::Debug),
        ]
        .iter()
        .find_map(|(tag, lvl)| line.find(tag).map(|i| (*lvl, &line[i + tag.len()..])))
        .unwrap_or((log::Level::Info, &line[..]));
        log::log!(target: "zookeeper", level, "{}", text.trim_end());
    });
}
