//! The shell's one session, lent to the commands it runs: `Global::connect` returns it
//! (as [`Session::Shared`]) while `zkutil shell` runs a line on this thread, so a line pays
//! no connect and its ephemeral nodes live as long as the shell.
//!
//! Thread-local on purpose: only the shell's own thread borrows it. A helper thread that a
//! command spawns, and a command that asks for a session of its own
//! (`Global::connect_owned`), still get a new session.

use std::cell::RefCell;
use std::ops::Deref;
use std::sync::Arc;

use crate::zk::{ConnectOptions, ZooKeeper};

thread_local! {
    static CURRENT: RefCell<Option<Arc<ZooKeeper>>> = const { RefCell::new(None) };
}

/// What `Global::connect` returns: the shell's session, or one of the command's own
/// (closed when this is dropped). Derefs to [`ZooKeeper`].
#[derive(Debug)]
pub enum Session {
    /// A session this command opened; dropping it closes the session.
    Owned(ZooKeeper),
    /// The shell's session, kept open after the command.
    Shared(Arc<ZooKeeper>),
}

impl Deref for Session {
    type Target = ZooKeeper;
    fn deref(&self) -> &ZooKeeper {
        match self {
            Session::Owned(zk) => zk,
            Session::Shared(zk) => zk,
        }
    }
}

/// The shell's session when `opts` names the same ensemble (chroot included) and the
/// same credentials, and the session is still alive.
pub fn current(opts: &ConnectOptions) -> Option<Arc<ZooKeeper>> {
    CURRENT.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|zk| {
                let own = zk.options();
                own.hosts.trim() == opts.hosts.trim() && own.digest == opts.digest && !zk.is_dead()
            })
            .cloned()
    })
}

/// Lends `zk` to every `Global::connect` on this thread until the guard is dropped.
pub fn lend(zk: Arc<ZooKeeper>) -> Lent {
    CURRENT.with(|c| *c.borrow_mut() = Some(zk));
    Lent(())
}

/// Ends the loan of [`lend`] when dropped.
#[must_use = "the session is lent only while the guard lives"]
pub struct Lent(());

impl Drop for Lent {
    fn drop(&mut self) {
        CURRENT.with(|c| c.borrow_mut().take());
    }
}
