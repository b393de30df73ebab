//! Session health: the ONE model every recipe and long-running command asks "is my session
//! still mine, and may I still act on it?". No other module writes its own disconnect loop.
//!
//! A [`SessionWatch`] follows one session's events and reports [`Health`]:
//! - `Connected`;
//! - `Suspended { since }`: the C client lost the connection and is trying the servers; the
//!   session may survive (its ephemeral nodes are still there);
//! - `Lost(why)`: the session expired (or authentication failed, or the client was closed),
//!   or the connection has been down for longer than the caller's *grace*. `Lost` is final for
//!   this watch: the caller gives up what it holds and, if it goes on, does so on a new
//!   session.
//!
//! The grace is the caller's. The server expires a silent session T (the session timeout)
//! after it last heard from the client; an idle client pings T/3 after its last request; the
//! C client notices a silent connection 2T/3 after it last heard from the server. So when the
//! client notices, the server may hand a lock on T/3 later already:
//! - holders of a lock, lease, leadership or semaphore use [`SessionWatch::holder`], T/6
//!   after the notice (a margin of T/6 before the server can expire the session; at T/3 the
//!   old and new holder would race);
//! - watchers use [`SessionWatch::watcher`], T after the notice (by then the server has
//!   expired the session or will; a watcher then re-arms on a new session and says so).
//!
//! Waiting: [`SessionWatch::lost`] disconnects once lost, [`SessionWatch::changes`] delivers
//! every later change: both are crossbeam receivers, to `select!` with a stop signal or a
//! child's exit. [`SessionWatch::wait_connected`] blocks until connected, and
//! [`SessionWatch::retry`] is the one loop for "repeat a call whose outcome is unknown": a
//! deadline, a pause, a stop check and a session check. A check of whether an outcome-unknown
//! write landed must call [`ZooKeeper::sync`] on the path first (inside the retried closure),
//! so that it does not read a server that has not applied the write yet.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, never, select, unbounded};

use super::client::ZooKeeper;
use super::error::{Error, Result};
use super::watch::SessionEvent;

/// Why a session counts as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lost {
    /// The server expired the session: its ephemeral nodes and watches are gone.
    Expired,
    /// Authentication failed: the handle is dead.
    AuthFailed,
    /// The client was closed (dropped) while someone still watched it.
    Closed,
    /// No connection to ZooKeeper for this long after the client noticed (the caller's
    /// grace): the server may have expired the session, or will before we hear of it.
    Silent(Duration),
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Expired => f.write_str("the session expired"),
            Lost::AuthFailed => f.write_str("authentication failed"),
            Lost::Closed => f.write_str("the ZooKeeper client was closed"),
            Lost::Silent(d) => write!(
                f,
                "no connection to ZooKeeper for {}",
                humantime::format_duration(Duration::from_millis(d.as_millis() as u64))
            ),
        }
    }
}

/// A session's health, as a [`SessionWatch`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Connected to a server (possibly read-only).
    Connected,
    /// Disconnected since `since` (when the client noticed); within the grace.
    Suspended {
        /// When the client reported the disconnection.
        since: Instant,
    },
    /// Lost for good (see [`Lost`]); final.
    Lost(Lost),
}

/// Why [`SessionWatch::wait_connected`] or [`SessionWatch::retry`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Halt {
    /// ZooKeeper refused, or the session is lost (`Error::SessionLost`).
    Zk(Error),
    /// The stop receiver delivered or disconnected.
    Stopped,
    /// The deadline passed.
    TimedOut,
}

impl From<Error> for Halt {
    fn from(e: Error) -> Halt {
        Halt::Zk(e)
    }
}

impl fmt::Display for Halt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Halt::Zk(e) => e.fmt(f),
            Halt::Stopped => f.write_str("stopped"),
            Halt::TimedOut => f.write_str("timed out"),
        }
    }
}

impl std::error::Error for Halt {}

/// How long [`SessionWatch::retry`] pauses after an outcome-unknown error when the client is
/// (still or again) connected, so a flapping connection does not spin.
pub const RETRY_PAUSE: Duration = Duration::from_millis(50);

struct Inner {
    health: Mutex<Health>,
    subs: Mutex<Vec<Sender<Health>>>,
}

impl Inner {
    fn get(&self) -> Health {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, h: Health) {
        *self.health.lock().unwrap_or_else(PoisonError::into_inner) = h;
        self.subs.lock().unwrap_or_else(PoisonError::into_inner).retain(|tx| tx.send(h).is_ok());
    }
}

/// Follows one session's health for a caller with one grace (see the module docs). One
/// thread per watch; dropping the watch ends it. Cheap enough for one per recipe object,
/// not for one per call.
pub struct SessionWatch {
    inner: Arc<Inner>,
    lost: Receiver<()>,
    grace: Duration,
    _alive: Sender<()>, // dropped with the watch: ends its thread
}

impl fmt::Debug for SessionWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWatch").field("health", &self.health()).field("grace", &self.grace).finish()
    }
}

impl SessionWatch {
    /// For a holder of a lock, lease, leadership or semaphore: lost T/6 after the client
    /// noticed a silent connection (T = the session timeout).
    pub fn holder(zk: &ZooKeeper) -> SessionWatch {
        SessionWatch::new(zk, zk.session_timeout() / 6)
    }

    /// For a watcher: lost T after the client noticed a silent connection (or on expiry).
    pub fn watcher(zk: &ZooKeeper) -> SessionWatch {
        SessionWatch::new(zk, zk.session_timeout())
    }

    /// Follows `zk`'s session; lost once disconnected for `grace` (or on expiry).
    pub fn new(zk: &ZooKeeper, grace: Duration) -> SessionWatch {
        let events = zk.session_events(); // subscribe before reading the state: no gap
        SessionWatch::from_events(events, zk.state(), grace)
    }

    /// The watch over an event stream whose latest state is `now`.
    pub(crate) fn from_events(events: Receiver<SessionEvent>, now: Option<SessionEvent>, grace: Duration) -> Self {
        let start = match now {
            Some(SessionEvent::Expired) => Health::Lost(Lost::Expired),
            Some(SessionEvent::AuthFailed) => Health::Lost(Lost::AuthFailed),
            Some(SessionEvent::Connecting) => Health::Suspended { since: Instant::now() },
            _ => Health::Connected,
        };
        let inner = Arc::new(Inner { health: Mutex::new(start), subs: Mutex::new(Vec::new()) });
        let (lost_tx, lost) = bounded::<()>(0);
        let (alive, alive_rx) = bounded::<()>(0);
        if !matches!(start, Health::Lost(_)) {
            let inner2 = inner.clone();
            let spawned = std::thread::Builder::new()
                .name("zk-health".into())
                .spawn(move || follow(&inner2, &events, &alive_rx, grace, lost_tx));
            if let Err(e) = spawned {
                // Without the thread we cannot tell: report lost (safe for holders, and
                // watchers start over on a new session).
                log::warn!("starting the session-health thread: {e}");
                inner.publish(Health::Lost(Lost::Closed));
            }
        }
        SessionWatch { inner, lost, grace, _alive: alive }
    }

    /// The grace this watch allows a silent connection.
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The health now.
    pub fn health(&self) -> Health {
        self.inner.get()
    }

    /// Why the session is lost, once it is.
    pub fn lost_why(&self) -> Option<Lost> {
        match self.health() {
            Health::Lost(why) => Some(why),
            _ => None,
        }
    }

    /// The error to report for a lost session (`why` as [`Error::SessionLost`]).
    pub fn error(&self) -> Error {
        Error::SessionLost(self.lost_why().unwrap_or(Lost::Closed))
    }

    /// True while connected, or suspended within the grace: a holder may still act.
    pub fn may_act(&self) -> bool {
        !matches!(self.health(), Health::Lost(_))
    }

    /// Disconnects once the session is lost: `select!` on it (`recv(w.lost()) -> _`).
    pub fn lost(&self) -> &Receiver<()> {
        &self.lost
    }

    /// Every later change of health (`Suspended`, `Connected`, then `Lost` last, after which
    /// the receiver disconnects). A new subscription per call: call it once per waiter.
    pub fn changes(&self) -> Receiver<Health> {
        let (tx, rx) = unbounded();
        let mut subs = self.inner.subs.lock().unwrap_or_else(PoisonError::into_inner);
        // Under the lock, so no change slips between this read and the subscription.
        if let Health::Lost(why) = self.inner.get() {
            let _ = tx.send(Health::Lost(why)); // and `tx` drops: disconnected after it
        } else {
            subs.push(tx);
        }
        rx
    }

    /// Blocks until connected. `Err(Halt::Zk(SessionLost))` when the session is lost first,
    /// `Stopped` when `stop` delivers or disconnects, `TimedOut` at `deadline`.
    pub fn wait_connected<T>(&self, stop: &Receiver<T>, deadline: Option<Instant>) -> Result<(), Halt> {
        let changes = self.changes();
        let timer = deadline.map_or_else(never, crossbeam_channel::at);
        loop {
            match self.health() {
                Health::Connected => return Ok(()),
                Health::Lost(why) => return Err(Halt::Zk(Error::SessionLost(why))),
                Health::Suspended { .. } => {}
            }
            select! {
                recv(changes) -> _ => {}
                recv(self.lost) -> _ => {}
                recv(stop) -> _ => return Err(Halt::Stopped),
                recv(timer) -> _ => return Err(Halt::TimedOut),
            }
        }
    }

    /// Waits `pause` (less if the health changes), unless the session is lost, `stop`
    /// fires or `deadline` passes first.
    pub fn pause<T>(&self, pause: Duration, stop: &Receiver<T>, deadline: Option<Instant>) -> Result<(), Halt> {
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Halt::TimedOut);
                }
                pause.min(left)
            }
            None => pause,
        };
        select! {
            recv(self.lost) -> _ => Err(Halt::Zk(self.error())),
            recv(stop) -> _ => Err(Halt::Stopped),
            default(wait) => Ok(()),
        }
    }

    /// What [`retry`](Self::retry) does after an outcome-unknown error, for loops that
    /// handle the error themselves: pause [`RETRY_PAUSE`], then wait for the connection.
    pub fn recover<T>(&self, stop: &Receiver<T>, deadline: Option<Instant>) -> Result<(), Halt> {
        self.pause(RETRY_PAUSE, stop, deadline)?;
        self.wait_connected(stop, deadline)
    }

    /// Runs `f` until its outcome is known: after each outcome-unknown error (connection
    /// loss, operation timeout) it pauses, waits for the connection, and runs `f` again;
    /// it gives up when the session is lost (per this watch's grace), `stop` fires or
    /// `deadline` passes. `f` must be safe to repeat; a closure that checks whether an
    /// earlier write landed calls `zk.sync(path)` first.
    pub fn retry<R, T>(
        &self,
        stop: &Receiver<T>,
        deadline: Option<Instant>,
        mut f: impl FnMut() -> Result<R>,
    ) -> Result<R, Halt> {
        loop {
            if let Health::Lost(why) = self.health() {
                return Err(Halt::Zk(Error::SessionLost(why)));
            }
            match f() {
                Err(e) if e.is_outcome_unknown() => self.recover(stop, deadline)?,
                Err(e) if e.is_session_lost() => {
                    return Err(Halt::Zk(match self.lost_why() {
                        Some(why) => Error::SessionLost(why),
                        None => e,
                    }));
                }
                r => return r.map_err(Halt::Zk),
            }
        }
    }
}

/// The watch's thread: turns session events into health, until lost or dropped.
fn follow(inner: &Inner, events: &Receiver<SessionEvent>, alive: &Receiver<()>, grace: Duration, lost_tx: Sender<()>) {
    let mut since = match inner.get() {
        Health::Suspended { since } => Some(since),
        _ => None,
    };
    let why = loop {
        let timer = since.and_then(|t| t.checked_add(grace)).map_or_else(never, crossbeam_channel::at);
        select! {
            recv(events) -> ev => match ev {
                Ok(SessionEvent::Connecting) => {
                    if since.is_none() {
                        let t = Instant::now();
                        since = Some(t);
                        inner.publish(Health::Suspended { since: t });
                    }
                }
                Ok(SessionEvent::Connected | SessionEvent::ConnectedReadOnly) => {
                    if since.take().is_some() {
                        inner.publish(Health::Connected);
                    }
                }
                Ok(SessionEvent::Expired) => break Lost::Expired,
                Ok(SessionEvent::AuthFailed) => break Lost::AuthFailed,
                Err(_) => break Lost::Closed, // the client is gone
            },
            recv(timer) -> _ => break Lost::Silent(grace),
            recv(alive) -> _ => return, // the watch was dropped
        }
    };
    inner.publish(Health::Lost(why));
    inner.subs.lock().unwrap_or_else(PoisonError::into_inner).clear();
    drop(lost_tx); // disconnects `lost()`
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zk::Code;

    fn watch(grace: Duration) -> (Sender<SessionEvent>, SessionWatch) {
        let (tx, rx) = unbounded();
        (tx, SessionWatch::from_events(rx, Some(SessionEvent::Connected), grace))
    }

    fn next(rx: &Receiver<Health>) -> Health {
        rx.recv_timeout(Duration::from_secs(5)).expect("a health change")
    }

    #[test]
    fn suspended_then_connected_then_expired() {
        let (tx, w) = watch(Duration::from_secs(60));
        let ch = w.changes();
        assert_eq!(w.health(), Health::Connected);
        tx.send(SessionEvent::Connecting).unwrap();
        assert!(matches!(next(&ch), Health::Suspended { .. }));
        tx.send(SessionEvent::Connecting).unwrap(); // another attempt: no new change
        tx.send(SessionEvent::Connected).unwrap();
        assert_eq!(next(&ch), Health::Connected);
        assert!(w.may_act());
        tx.send(SessionEvent::Expired).unwrap();
        assert_eq!(next(&ch), Health::Lost(Lost::Expired));
        assert!(ch.recv_timeout(Duration::from_secs(5)).is_err(), "disconnects after Lost");
        assert!(w.lost().recv_timeout(Duration::from_secs(5)).is_err());
        assert!(!w.may_act());
        assert_eq!(w.error(), Error::SessionLost(Lost::Expired));
        // A subscription after the loss hears of it at once.
        assert_eq!(next(&w.changes()), Health::Lost(Lost::Expired));
    }

    #[test]
    fn silent_past_the_grace_is_lost() {
        let (tx, w) = watch(Duration::from_millis(100));
        tx.send(SessionEvent::Connecting).unwrap();
        let t = Instant::now();
        assert!(w.lost().recv_timeout(Duration::from_secs(5)).is_err());
        assert!(t.elapsed() >= Duration::from_millis(90), "{:?}", t.elapsed());
        assert_eq!(w.health(), Health::Lost(Lost::Silent(Duration::from_millis(100))));
        assert!(w.error().to_string().contains("no connection to ZooKeeper for 100ms"), "{}", w.error());
        let _ = tx.send(SessionEvent::Connected); // too late: lost is final
        std::thread::sleep(Duration::from_millis(20));
        assert!(!w.may_act());
    }

    #[test]
    fn a_reconnect_within_the_grace_costs_nothing() {
        let (tx, w) = watch(Duration::from_millis(300));
        tx.send(SessionEvent::Connecting).unwrap();
        tx.send(SessionEvent::Connected).unwrap();
        assert!(w.lost().recv_timeout(Duration::from_millis(600)).is_err_and(|e| e.is_timeout()));
        assert_eq!(w.health(), Health::Connected);
    }

    #[test]
    fn a_closed_client_is_lost() {
        let (tx, w) = watch(Duration::from_secs(60));
        drop(tx);
        assert!(w.lost().recv_timeout(Duration::from_secs(5)).is_err());
        assert_eq!(w.lost_why(), Some(Lost::Closed));
    }

    #[test]
    fn starts_lost_on_a_dead_session() {
        let (_tx, rx) = unbounded();
        let w = SessionWatch::from_events(rx, Some(SessionEvent::Expired), Duration::from_secs(1));
        assert!(w.lost().try_recv().is_err_and(|e| e.is_disconnected()));
        assert_eq!(w.lost_why(), Some(Lost::Expired));
    }

    #[test]
    fn wait_connected_stops_times_out_and_reports_loss() {
        let (tx, w) = watch(Duration::from_secs(60));
        assert_eq!(w.wait_connected(&never::<()>(), None), Ok(()));
        tx.send(SessionEvent::Connecting).unwrap();
        let ch = w.changes();
        while !matches!(w.health(), Health::Suspended { .. }) {
            let _ = ch.recv_timeout(Duration::from_millis(100));
        }
        let soon = Instant::now() + Duration::from_millis(50);
        assert_eq!(w.wait_connected(&never::<()>(), Some(soon)), Err(Halt::TimedOut));
        let (stop_tx, stop) = bounded::<()>(0);
        drop(stop_tx);
        assert_eq!(w.wait_connected(&stop, None), Err(Halt::Stopped));
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            let _ = tx2.send(SessionEvent::Connected);
        });
        assert_eq!(w.wait_connected(&never::<()>(), None), Ok(()));
        tx.send(SessionEvent::Expired).unwrap();
        assert!(w.lost().recv_timeout(Duration::from_secs(5)).is_err());
        assert_eq!(w.wait_connected(&never::<()>(), None), Err(Halt::Zk(Error::SessionLost(Lost::Expired))));
    }

    #[test]
    fn retry_repeats_only_unknown_outcomes_and_gives_up_on_loss() {
        let (tx, w) = watch(Duration::from_millis(200));
        let never = never::<()>();
        let loss = || Error::Zk { code: Code::ConnectionLoss, path: None };
        let mut n = 0;
        let r = w.retry(&never, None, || {
            n += 1;
            if n < 3 { Err(loss()) } else { Ok(n) }
        });
        assert_eq!(r, Ok(3));
        let r: Result<(), Halt> = w.retry(&never, None, || Err(Error::Zk { code: Code::NoNode, path: None }));
        assert_eq!(r, Err(Halt::Zk(Error::Zk { code: Code::NoNode, path: None })));
        let soon = Some(Instant::now() + Duration::from_millis(100));
        assert_eq!(w.retry(&never, soon, || Err::<(), _>(loss())), Err(Halt::TimedOut));
        // Disconnected for good: the retry ends with the loss, not after its deadline.
        tx.send(SessionEvent::Connecting).unwrap();
        let t = Instant::now();
        let r = w.retry(&never, None, || Err::<(), _>(loss()));
        assert_eq!(r, Err(Halt::Zk(Error::SessionLost(Lost::Silent(Duration::from_millis(200))))));
        assert!(t.elapsed() < Duration::from_secs(5));
    }
}
