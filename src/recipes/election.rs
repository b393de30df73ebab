//! Leader election (the ZooKeeper recipe, kazoo's `Election` / Curator's `LeaderLatch`).
//!
//! Every candidate creates an EPHEMERAL_SEQUENTIAL node `<dir>/<prefix>NNNNNNNNNN` holding
//! its data (an address, a name). The smallest sequence number leads. A candidate watches
//! only its predecessor, with `get_w` (no herd: when any node goes, only its successor wakes;
//! a new leader wakes nobody but itself). So a follower's [`State::leader`] is as of its last
//! read: it learns of a new leader when its own predecessor goes, or when it calls
//! [`Election::state`] again. Who must follow every change of leader without campaigning is
//! an observer: [`leader_w`]; a candidate that must (a follower forwarding writes to the
//! leader) opts in with [`Election::follow_leader`], and pays with a wake-up per change.
//! The leader watches its own node, so it learns when someone deletes it. The directory is
//! a container (the server removes it once empty).
//!
//! Session health is the session-health model's: [`Wake::Suspended`] when the connection
//! drops (a leader must stop acting as one until [`Wake::Resumed`]), and [`Error::Lost`] when
//! the session expired, or when the connection stayed down for the grace of the candidate's
//! role: a leader holds leadership, so it lets go a sixth of the session timeout after the
//! client noticed ([`SessionWatch::holder`]'s grace); a follower holds nothing yet and rides
//! out a whole session timeout ([`SessionWatch::watcher`]). Either must then campaign again
//! with a new session.
//!
//! A sequential create that fails with connection loss may still have created the node.
//! Rather than a GUID in the name (Curator's "protected" mode), the candidate looks for an
//! ephemeral node in `dir` owned by its own session, on a server brought up to date with
//! `sync` first: names keep the plain `<prefix>NNNNNNNNNN` form, and a session campaigns at
//! most once per dir. That search is retried within the session's health and a stop signal
//! ([`Election::campaign_until`]), never forever.
//!
//! ```no_run
//! # use zkutil::recipes::election::{Election, Wake};
//! # let zk = zkutil::zk::ZooKeeper::connect("127.0.0.1:2181", std::time::Duration::from_secs(10)).unwrap();
//! let stop = zkutil::util::shutdown();
//! let mut e = Election::campaign(&zk, "/kv/default/election", "server_", b"127.0.0.1:7001").unwrap();
//! let mut state = e.state().unwrap();
//! loop {
//!     // act on state.is_leader() / state.leader.data ...
//!     match e.wait(&stop, None).unwrap() {
//!         Wake::Changed(s) | Wake::Resumed(s) => state = s,
//!         Wake::Suspended => { /* connection lost: stop leading until Resumed */ }
//!         Wake::Stopped | Wake::TimedOut => break,
//!     }
//! }
//! ```

use std::fmt;
use std::time::Instant;

use crossbeam_channel::{Receiver, never, select};

use super::support::create_containers;
use crate::zk::{self, Code, CreateMode, Halt, Health, SessionWatch, WatchEvent, ZooKeeper, join, sequence_of};

/// Why an election call failed.
#[derive(Debug)]
pub enum Error {
    /// ZooKeeper refused or failed a call.
    Zk(zk::Error),
    /// The candidacy is over: the session expired or was closed, or our node was deleted.
    /// The caller is no longer leader (if it was) and must campaign again.
    Lost,
    /// The stop receiver of [`Election::campaign_until`] fired before the candidacy stood.
    Stopped,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Zk(e) => e.fmt(f),
            Error::Lost => f.write_str("the candidacy was lost (session ended or node deleted)"),
            Error::Stopped => f.write_str("stopped while campaigning"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Zk(e) => Some(e),
            Error::Lost | Error::Stopped => None,
        }
    }
}

impl From<zk::Error> for Error {
    fn from(e: zk::Error) -> Error {
        if e.is_session_lost() { Error::Lost } else { Error::Zk(e) }
    }
}

impl From<Halt> for Error {
    fn from(h: Halt) -> Error {
        match h {
            Halt::Zk(e) => e.into(),
            Halt::Stopped => Error::Stopped,
            Halt::TimedOut => Error::Lost,
        }
    }
}

/// Shorthand for the election's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One registered candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Node name, e.g. `server_0000000003`.
    pub name: String,
    /// Full path of the node.
    pub path: String,
    /// Its sequence number (the smallest leads).
    pub seq: u32,
    /// The data it registered with.
    pub data: Vec<u8>,
}

/// Who leads, as one candidate sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The current leader (possibly us).
    pub leader: Candidate,
    /// Our own node name.
    pub me: String,
}

impl State {
    /// True when we lead.
    pub fn is_leader(&self) -> bool {
        self.leader.name == self.me
    }
}

/// What [`Election::wait`] woke up for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// The leader changed (a new leader, possibly us).
    Changed(State),
    /// The connection to ZooKeeper dropped; the session may still survive. A leader cannot
    /// know whether it still leads: it should act as a follower until `Resumed`.
    Suspended,
    /// Reconnected within the session; the state as it is now.
    Resumed(State),
    /// The `stop` receiver delivered a message or disconnected.
    Stopped,
    /// The deadline passed.
    TimedOut,
}

/// Our candidacy in one election directory, on one session.
pub struct Election<'zk> {
    zk: &'zk ZooKeeper,
    dir: String,
    prefix: String,
    name: String,
    seq: u32,
    /// The session's health for a candidate (watcher grace, T); a leader lets go sooner,
    /// `holder_grace` after the client noticed a dropped connection.
    health: SessionWatch,
    holder_grace: std::time::Duration,
    /// Set when a leader let go for a connection down past `holder_grace`.
    let_go: Option<zk::Lost>,
    /// One subscription to its changes, for `wait`.
    changes: Receiver<Health>,
    /// The one armed watch: (path, receiver), on our predecessor, or on our own node when we
    /// lead. Kept while the watched path stays the same, so a re-check does not pile up
    /// watches on one node.
    watch: Option<(String, Receiver<WatchEvent>)>,
    /// With [`follow_leader`](Election::follow_leader): a follower's watch on the leader.
    leader_watch: Option<(String, Receiver<WatchEvent>)>,
    follow_leader: bool,
    last: Option<State>,
    resigned: bool,
}

impl std::fmt::Debug for Election<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election").field("dir", &self.dir).field("name", &self.name).finish()
    }
}

impl<'zk> Election<'zk> {
    /// Registers as a candidate: creates `dir` (and its parents) as containers when missing,
    /// then the EPHEMERAL_SEQUENTIAL node `<dir>/<prefix>NNNNNNNNNN` holding `data`.
    pub fn campaign(zk: &'zk ZooKeeper, dir: &str, prefix: &str, data: &[u8]) -> Result<Election<'zk>> {
        Election::campaign_until(zk, dir, prefix, data, &never())
    }

    /// As [`campaign`](Self::campaign), giving up with [`Error::Stopped`] when `stop` fires
    /// (a message or a disconnect) while waiting for a lost connection, and with
    /// [`Error::Lost`] when the session is lost meanwhile (holder grace).
    pub fn campaign_until(
        zk: &'zk ZooKeeper,
        dir: &str,
        prefix: &str,
        data: &[u8],
        stop: &Receiver<()>,
    ) -> Result<Election<'zk>> {
        let health = SessionWatch::watcher(zk);
        let changes = health.changes();
        let path = join(dir, prefix);
        let mut tries = 0;
        health.retry(stop, None, || create_containers(zk, dir))?;
        let created = loop {
            match zk.create(&path, data, CreateMode::EphemeralSequential) {
                Ok(p) => break p,
                // the server removed the empty container meanwhile
                Err(e) if e.code() == Some(Code::NoNode) && tries < 10 => {
                    tries += 1;
                    health.retry(stop, None, || create_containers(zk, dir))?;
                }
                Err(e) if e.is_outcome_unknown() => {
                    health.recover(stop, None)?;
                    if let Some(p) = health.retry(stop, None, || find_own(zk, dir, prefix))? {
                        break p;
                    }
                }
                Err(e) => return Err(e.into()),
            }
        };
        let name = created.rsplit('/').next().unwrap_or_default().to_string();
        let seq = sequence_of(&name).ok_or_else(|| {
            Error::Zk(zk::Error::InvalidPath { path: created.clone(), reason: "created node has no sequence number" })
        })?;
        Ok(Election {
            zk,
            dir: dir.to_string(),
            prefix: prefix.to_string(),
            name,
            seq,
            health,
            holder_grace: zk.session_timeout() / 6,
            let_go: None,
            changes,
            watch: None,
            leader_watch: None,
            follow_leader: false,
            last: None,
            resigned: false,
        })
    }

    /// Off by default (no herd: a follower learns of a new leader when its predecessor goes
    /// or when it calls [`state`](Self::state)). On: a follower also watches the leader's
    /// node, so `wait` reports every change of leader, at the price of waking every such
    /// follower at each change. For followers that must act on the leader at once (e.g.
    /// forward writes to it) and cannot learn it lazily (when a forward fails).
    pub fn follow_leader(&mut self, on: bool) {
        self.follow_leader = on;
        if !on {
            self.leader_watch = None;
        }
    }

    /// The session's health as this candidacy sees it (watcher grace, T; a leader lets go
    /// after T/6, see [`lost_why`](Self::lost_why)).
    pub fn health(&self) -> &SessionWatch {
        &self.health
    }

    /// Why the candidacy is lost, once `wait` said so for the session's sake: expired, or
    /// the connection down past the role's grace (None: our node was deleted).
    pub fn lost_why(&self) -> Option<zk::Lost> {
        self.let_go.or(self.health.lost_why())
    }

    /// Our node's name (`<prefix>NNNNNNNNNN`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Our node's full path.
    pub fn path(&self) -> String {
        join(&self.dir, &self.name)
    }

    /// Our sequence number.
    pub fn seq(&self) -> u32 {
        self.seq
    }

    /// The election directory.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The session this candidacy lives on.
    pub fn zk(&self) -> &'zk ZooKeeper {
        self.zk
    }

    /// Reads who leads now and (re)arms the one watch that [`wait`](Self::wait) waits on:
    /// on our predecessor (a follower), or on our own node (the leader).
    pub fn state(&mut self) -> Result<State> {
        if !self.health.may_act() || self.let_go.is_some() {
            return Err(Error::Lost);
        }
        loop {
            let all = list(self.zk, &self.dir, &self.prefix)?;
            let Some(pos) = all.iter().position(|(n, _)| *n == self.name) else {
                return Err(Error::Lost); // our node is gone
            };
            let (leader_name, leader_seq) = all[0].clone();
            let leader_path = join(&self.dir, &leader_name);
            let target = join(&self.dir, &all[pos.saturating_sub(1)].0);
            let mut data = None;
            if !keep(&self.watch, Some(&target)) {
                self.watch = None;
                match self.zk.get_w(&target) {
                    Ok((d, _, rx)) => {
                        self.watch = Some((target.clone(), rx));
                        if pos <= 1 {
                            data = Some(d); // the leader's node (ours or our predecessor's)
                        }
                    }
                    Err(e) if e.code() == Some(Code::NoNode) => {
                        if pos == 0 {
                            return Err(Error::Lost);
                        }
                        continue; // gone meanwhile: re-read
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            if self.follow_leader && pos >= 2 && !keep(&self.leader_watch, Some(&leader_path)) {
                self.leader_watch = None;
                match self.zk.get_w(&leader_path) {
                    Ok((d, _, rx)) => {
                        self.leader_watch = Some((leader_path.clone(), rx));
                        data = Some(d);
                    }
                    Err(e) if e.code() == Some(Code::NoNode) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let data = match data {
                Some(d) => d,
                None => match self.zk.get(&leader_path) {
                    Ok((d, _)) => d,
                    Err(e) if e.code() == Some(Code::NoNode) => {
                        if pos == 0 {
                            return Err(Error::Lost);
                        }
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            let leader = Candidate { name: leader_name, path: leader_path, seq: leader_seq, data };
            let s = State { leader, me: self.name.clone() };
            self.last = Some(s.clone());
            return Ok(s);
        }
    }

    /// Blocks until the leader changes as this candidate sees it (for a follower: its
    /// predecessor went), the connection is suspended or resumed, `stop` delivers (or
    /// disconnects), or `deadline` passes. `Err(Lost)` when the session ended, the
    /// connection stayed down for the holder grace (T/6), or our node was deleted.
    pub fn wait<T>(&mut self, stop: &Receiver<T>, deadline: Option<Instant>) -> Result<Wake> {
        if self.last.is_none() {
            let s = self.state()?;
            return Ok(Wake::Changed(s));
        }
        let timeout = deadline.map(crossbeam_channel::at).unwrap_or_else(never);
        // Set after a read failed on connection loss: read again soon (the watch may be lost).
        let mut stale = false;
        loop {
            let w = self.watch.as_ref().map(|(_, r)| r.clone()).unwrap_or_else(never);
            let lw = self.leader_watch.as_ref().map(|(_, r)| r.clone()).unwrap_or_else(never);
            // A leader cut off lets go at the holder grace (a follower rides on for T).
            let leading = self.last.as_ref().is_some_and(State::is_leader);
            let let_go = match self.health.health() {
                Health::Suspended { since } if leading => {
                    since.checked_add(self.holder_grace).map_or_else(never, crossbeam_channel::at)
                }
                _ => never(),
            };
            let again = if stale { crossbeam_channel::after(zk::health::RETRY_PAUSE * 2) } else { never() };
            let fired = select! {
                recv(w) -> ev => { self.watch = None; ev.is_ok() }
                recv(lw) -> ev => { self.leader_watch = None; ev.is_ok() }
                recv(again) -> _ => true,
                recv(self.changes) -> h => match h {
                    Ok(Health::Suspended { .. }) => return Ok(Wake::Suspended),
                    Ok(Health::Connected) => match self.state() {
                        Ok(s) => return Ok(Wake::Resumed(s)),
                        Err(Error::Zk(e)) if e.is_outcome_unknown() => { stale = true; continue }
                        Err(e) => return Err(e),
                    },
                    Ok(Health::Lost(_)) | Err(_) => return Err(Error::Lost),
                },
                recv(let_go) -> _ => {
                    self.let_go = Some(zk::Lost::Silent(self.holder_grace));
                    return Err(Error::Lost);
                }
                recv(stop) -> _ => return Ok(Wake::Stopped),
                recv(timeout) -> _ => return Ok(Wake::TimedOut),
            };
            // A watch receiver that disconnects without an event: the session closed.
            if !fired && (self.zk.is_dead() || !self.health.may_act()) {
                return Err(Error::Lost);
            }
            let before = self.last.as_ref().map(|s| s.leader.clone());
            let s = match self.state() {
                Ok(s) => s,
                Err(Error::Zk(e)) if e.is_outcome_unknown() => {
                    stale = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            stale = false;
            if before.as_ref() != Some(&s.leader) {
                return Ok(Wake::Changed(s));
            }
        }
    }

    /// Withdraws: deletes our node (the next candidate takes over at once).
    pub fn resign(mut self) -> Result<()> {
        self.resigned = true;
        match self.zk.delete(&self.path(), None) {
            Ok(()) => Ok(()),
            Err(e) if e.code() == Some(Code::NoNode) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

impl Election<'_> {
    /// Gives our node up to the session's end without deleting it: for a session that is
    /// lost or unreachable (a delete would only wait for the connection), and about to be
    /// closed or replaced.
    pub fn abandon(mut self) {
        self.resigned = true;
    }
}

impl Drop for Election<'_> {
    fn drop(&mut self) {
        if !self.resigned && self.health.may_act() && self.let_go.is_none() {
            let _ = self.zk.delete(&self.path(), None); // best effort; the session's end removes it anyway
        }
    }
}

fn keep(armed: &Option<(String, Receiver<WatchEvent>)>, want: Option<&str>) -> bool {
    match (armed, want) {
        (Some((p, _)), Some(w)) => p == w,
        _ => false,
    }
}

/// The candidates' names and sequence numbers in `dir`, smallest first.
fn list(zk: &ZooKeeper, dir: &str, prefix: &str) -> Result<Vec<(String, u32)>> {
    Ok(ordered(zk.children(dir)?, prefix))
}

/// The candidates among `names` (`<prefix>` and ten digits) with their sequence numbers,
/// smallest first.
fn ordered(names: Vec<String>, prefix: &str) -> Vec<(String, u32)> {
    let mut v: Vec<(String, u32)> = names
        .into_iter()
        .filter(|n| n.starts_with(prefix) && n.len() == prefix.len() + 10)
        .filter_map(|n| sequence_of(&n).map(|s| (n, s)))
        .collect();
    v.sort_by_key(|(_, s)| *s);
    v
}

/// Every candidate in `dir` with its data, smallest sequence (the leader) first. Nodes that
/// vanish while being read are left out.
pub fn candidates(zk: &ZooKeeper, dir: &str, prefix: &str) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for (name, seq) in list(zk, dir, prefix)? {
        let path = join(dir, &name);
        match zk.get(&path) {
            Ok((data, _)) => out.push(Candidate { name, path, seq, data }),
            Err(e) if e.code() == Some(Code::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// The candidates' names (smallest first) and a watch that fires when one joins or leaves:
/// what a leader that must know its followers (a replicating server) watches.
pub fn members_w(zk: &ZooKeeper, dir: &str, prefix: &str) -> Result<(Vec<String>, Receiver<WatchEvent>)> {
    let (names, _, rx) = zk.children_w(dir)?;
    Ok((ordered(names, prefix).into_iter().map(|(n, _)| n).collect(), rx))
}

/// The current leader, or None when nobody campaigns (or `dir` does not exist).
pub fn leader(zk: &ZooKeeper, dir: &str, prefix: &str) -> Result<Option<Candidate>> {
    first_of(zk, dir, |names| ordered(names, prefix))
}

/// The leader of a Curator LeaderLatch at `dir` (None when nobody campaigns): its
/// participants are `_c_<uuid>-latch-<seq>` nodes holding the participant id, the smallest
/// sequence leading. LeaderLatch ignores other nodes' order, and zkutil's candidates ignore
/// its nodes: the two do not campaign together.
pub fn latch_leader(zk: &ZooKeeper, dir: &str) -> Result<Option<Candidate>> {
    first_of(zk, dir, |names| {
        let mut v: Vec<(String, u32)> = names
            .into_iter()
            .filter(|n| n.starts_with("_c_") && n[..n.len().saturating_sub(10)].ends_with("-latch-"))
            .filter_map(|n| sequence_of(&n).map(|s| (n, s)))
            .collect();
        v.sort_by_key(|(_, s)| *s);
        v
    })
}

/// The first of the candidates `order` picks from `dir`'s children, with its data.
fn first_of(zk: &ZooKeeper, dir: &str, order: impl Fn(Vec<String>) -> Vec<(String, u32)>) -> Result<Option<Candidate>> {
    loop {
        let all = match zk.children(dir) {
            Ok(v) => order(v),
            Err(e) if e.code() == Some(Code::NoNode) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some((name, seq)) = all.into_iter().next() else { return Ok(None) };
        let path = join(dir, &name);
        match zk.get(&path) {
            Ok((data, _)) => return Ok(Some(Candidate { name, path, seq, data })),
            Err(e) if e.code() == Some(Code::NoNode) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// For observers that do not campaign: the current leader (None when nobody campaigns)
/// and a receiver that fires when it may have changed (the leader's node changed or went,
/// or, with no leader, a candidate arrived). Call again after it fires.
pub fn leader_w(zk: &ZooKeeper, dir: &str, prefix: &str) -> Result<(Option<Candidate>, Receiver<WatchEvent>)> {
    loop {
        let (names, _, rx) = match zk.children_w(dir) {
            Ok(v) => v,
            Err(e) if e.code() == Some(Code::NoNode) => {
                let (_, rx) = zk.exists_w(dir)?;
                if zk.exists(dir)?.is_some() {
                    continue;
                }
                return Ok((None, rx));
            }
            Err(e) => return Err(e.into()),
        };
        let Some((name, seq)) = ordered(names, prefix).into_iter().next() else { return Ok((None, rx)) };
        let path = join(dir, &name);
        match zk.get_w(&path) {
            // The leader's own watch is what matters; the children watch (which fires on
            // every join) is dropped, so an observer only wakes when the leader changes.
            Ok((data, _, lrx)) => return Ok((Some(Candidate { name, path, seq, data }), lrx)),
            Err(e) if e.code() == Some(Code::NoNode) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Finds an ephemeral node in `dir` owned by our session (a create whose reply was lost),
/// on a server brought up to date first (`sync`): one that has not applied our create yet
/// would say "none", and we would create a second node. One pass; the caller retries.
fn find_own(zk: &ZooKeeper, dir: &str, prefix: &str) -> zk::Result<Option<String>> {
    let me = zk.session_id();
    zk.sync(dir)?;
    for (name, _) in list_raw(zk, dir, prefix)? {
        let p = join(dir, &name);
        if let Some(st) = zk.exists(&p)?
            && st.ephemeral_owner == me
        {
            return Ok(Some(p));
        }
    }
    Ok(None)
}

fn list_raw(zk: &ZooKeeper, dir: &str, prefix: &str) -> zk::Result<Vec<(String, u32)>> {
    Ok(zk
        .children(dir)?
        .into_iter()
        .filter(|n| n.starts_with(prefix))
        .filter_map(|n| sequence_of(&n).map(|s| (n, s)))
        .collect())
}
