//! The server's side of the election: campaign, turn each new state into a role, sync a
//! new leader before it takes writes (the protocol is in `replication`), keep the
//! leader's replica set equal to the election directory's members, and start over with a
//! new session when the old one is lost.
//!
//! Session health is the session-health model's (`zk::health`, through the election
//! recipe, holder grace): only the session's expiry, or silence past the grace (a sixth of
//! the session timeout after the client noticed the disconnect), ends a candidacy; a
//! single failed read after a reconnect does not.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::{Receiver, select};
use log::{debug, info, warn};

use super::replication::{self, Hello};
use super::store::{Claim, Replica, Role};
use super::{Node, PREFIX, election_dir, history_path};
use crate::cli::Global;
use crate::recipes::election::{self, Election, State, Wake};
use crate::zk::{Code, CreateMode, ZooKeeper};

/// A ZooKeeper error that a retry on the same session may cure.
fn transient(e: &election::Error, zk: &ZooKeeper) -> bool {
    matches!(e, election::Error::Zk(z) if z.is_outcome_unknown()) && !zk.is_dead()
}

/// Runs elections until `stop` fires. `zk` is the first session (already connected);
/// after a lost session, new ones are made until one works.
pub fn run(node: &Arc<Node>, g: &Global, cluster: &str, zk: ZooKeeper, stop: &Receiver<()>) -> Result<()> {
    let (dir, hist) = (election_dir(cluster), history_path(cluster));
    let mut zk = Some(zk);
    loop {
        let session = match zk.take() {
            Some(z) => z,
            None => match g.connect_owned() {
                Ok(z) => z,
                Err(e) => {
                    warn!("cannot reach ZooKeeper ({e}); retrying");
                    select! {
                        recv(stop) -> _ => break,
                        default(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        match campaign(node, &session, &dir, &hist, stop) {
            Ok(()) => break,
            Err(election::Error::Lost) => {
                warn!("lost the ZooKeeper session: stepping down; registering again with a new session")
            }
            Err(e) => warn!("election: {e}; registering again with a new session"),
        }
        let mut st = node.store.st();
        // Our registration is gone: other leaders may acknowledge writes without us now.
        st.claim = match (st.claim, &st.role) {
            (Claim::Complete, Role::Leader { term }) if st.led == Some(*term) => Claim::Led(*term),
            (Claim::Complete, _) => Claim::Stale,
            (c, _) => c,
        };
        st.complete_at = None;
        node.store.set_role(&mut st, Role::Electing, false);
        drop(st);
        drop(session);
        if crate::util::stop_requested() {
            break;
        }
    }
    // Refuse writes from here on; the session was closed (our node vanished) when the
    // ZooKeeper handle dropped, so the next leader is already taking over.
    let mut st = node.store.st();
    node.store.set_role(&mut st, Role::Stopping, false);
    Ok(())
}

/// One session's candidacy. Ok(()) when stopped.
fn campaign(node: &Arc<Node>, zk: &ZooKeeper, dir: &str, hist: &str, stop: &Receiver<()>) -> election::Result<()> {
    let mut e = Election::campaign(zk, dir, PREFIX, node.addr.as_bytes())?;
    e.follow_leader(true);
    node.set_name(e.name());
    info!("registered as {} (session 0x{:x})", e.name(), zk.session_id());
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let known: Addresses = Mutex::new(HashMap::new());
    let me = e.name().to_string();
    let out = std::thread::scope(|scope| {
        {
            let (known, me, done) = (&known, &me, done_rx.clone());
            scope.spawn(move || track_addresses(zk, dir, me, known, &done));
        }
        let r = (|| -> election::Result<()> {
            let mut state = loop {
                match e.state() {
                    Ok(s) => break s,
                    Err(err) if transient(&err, zk) => std::thread::sleep(Duration::from_millis(100)),
                    Err(err) => return Err(err),
                }
            };
            // Leading with writes allowed since this epoch (None: not leading, or syncing).
            let mut led: Option<u64> = None;
            // A follower also watches the leader's node (the recipe's candidate watches
            // only its predecessor): every follower must learn each new leader at once.
            let mut leader_watch: Option<Receiver<crate::zk::WatchEvent>> = None;
            adopt(node, &state, None);
            loop {
                if state.is_leader() && led.is_none() {
                    match lead(node, zk, dir, hist, &known, &state, scope, done_rx.clone(), stop)? {
                        Some(epoch) => led = Some(epoch),
                        None => {
                            let mut st = node.store.st();
                            node.store.set_role(&mut st, Role::Stopping, false);
                            return Ok(());
                        }
                    }
                }
                if !state.is_leader() && leader_watch.is_none() {
                    match election::leader_w(zk, dir, PREFIX) {
                        Ok((_, w)) => leader_watch = Some(w),
                        Err(err) => debug!("watching the leader: {err}"),
                    }
                }
                // Short waits while following: the leader watch is checked between them.
                let deadline = (!state.is_leader()).then(|| Instant::now() + Duration::from_millis(25));
                let woke = match e.wait(stop, deadline) {
                    // A read failed on connection loss: the client is reconnecting; the
                    // recipe's session health says when that has lasted too long (Lost).
                    Err(err) if transient(&err, zk) => {
                        debug!("election read: {err}");
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    w => w?,
                };
                let now_state = match woke {
                    Wake::Changed(s) => Some(s),
                    Wake::Resumed(s) => {
                        info!("reconnected to ZooKeeper within the session");
                        Some(s)
                    }
                    Wake::Suspended => {
                        let mut st = node.store.st();
                        if st.is_leader() {
                            st.writable = false;
                            drop(st);
                            warn!("lost the connection to ZooKeeper: not accepting writes until it is back");
                        } else {
                            drop(st);
                            warn!("lost the connection to ZooKeeper");
                        }
                        None
                    }
                    Wake::Stopped => {
                        let mut st = node.store.st();
                        node.store.set_role(&mut st, Role::Stopping, false);
                        drop(st);
                        info!("stopping: closing the ZooKeeper session so the next leader takes over");
                        return Ok(());
                    }
                    Wake::TimedOut => {
                        let fired = leader_watch
                            .as_ref()
                            .is_none_or(|w| !matches!(w.try_recv(), Err(crossbeam_channel::TryRecvError::Empty)));
                        if !fired {
                            continue;
                        }
                        leader_watch = None;
                        match e.state() {
                            Ok(s) if s.leader.name != state.leader.name => Some(s),
                            Ok(_) => None,
                            Err(err) if transient(&err, zk) => None,
                            Err(err) => return Err(err),
                        }
                    }
                };
                let Some(s) = now_state else { continue };
                if s.is_leader() && state.is_leader() {
                    if led.is_some() {
                        node.store.st().writable = true;
                        node.store.notify_all();
                    }
                } else {
                    if s.leader.name != state.leader.name || s.is_leader() != state.is_leader() {
                        adopt(node, &s, Some(&state));
                        leader_watch = None;
                    }
                    if !s.is_leader() {
                        led = None;
                    }
                }
                state = s;
            }
        })();
        drop(done_tx); // ends the membership thread
        r
    });
    match out {
        // Nothing to delete on a lost session (a delete would wait for the connection).
        Err(_) => e.abandon(),
        _ => drop(e),
    }
    out
}

/// Turns an election state into our role (followers; `lead` handles leadership).
fn adopt(node: &Node, s: &State, before: Option<&State>) {
    if let Some(b) = before
        && b.leader.name != s.leader.name
    {
        info!("lost leader {}: a new one is elected", b.leader.name);
    }
    if s.is_leader() {
        return; // `lead` takes over
    }
    let addr = String::from_utf8_lossy(&s.leader.data).into_owned();
    let term = s.leader.seq as u64;
    let mut st = node.store.st();
    st.known_term = st.known_term.max(term);
    node.store.set_role(&mut st, Role::Follower { leader: s.leader.name.clone(), addr: addr.clone(), term }, false);
    drop(st);
    node.forward.retain(&addr);
    info!("following {} at {addr}", s.leader.name);
}

/// Retries `f` while it fails with a transient ZooKeeper error (a pause between tries).
fn retry<T>(zk: &ZooKeeper, mut f: impl FnMut() -> election::Result<T>) -> election::Result<T> {
    loop {
        match f() {
            Err(e) if transient(&e, zk) => std::thread::sleep(Duration::from_millis(100)),
            r => return r,
        }
    }
}

/// The term in the history znode and its version (None: genesis, no leader took writes).
fn read_history(zk: &ZooKeeper, hist: &str) -> election::Result<(Option<u64>, Option<i32>)> {
    match zk.get(hist) {
        Ok((d, stat)) => Ok((std::str::from_utf8(&d).ok().and_then(|t| t.trim().parse().ok()), Some(stat.version))),
        Err(e) if e.code() == Some(Code::NoNode) => Ok((None, None)),
        Err(e) => Err(e.into()),
    }
}

/// Records that `term` takes writes, unless a newer term already did (Ok(false)).
fn write_history(zk: &ZooKeeper, hist: &str, term: u64, mut version: Option<i32>) -> election::Result<bool> {
    loop {
        let data = term.to_string();
        let r = match version {
            None => zk.create(hist, data.as_bytes(), CreateMode::Persistent).map(|_| ()),
            Some(v) => zk.set(hist, data.as_bytes(), Some(v)).map(|_| ()),
        };
        match r {
            Ok(()) => return Ok(true),
            Err(e) if matches!(e.code(), Some(Code::NodeExists | Code::BadVersion | Code::NoNode)) => {
                let (t, v) = retry(zk, || read_history(zk, hist))?;
                if t.is_some_and(|t| t > term) {
                    return Ok(false);
                }
                version = v;
            }
            Err(e) => {
                let e: election::Error = e.into();
                if !transient(&e, zk) {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(100));
                // The write may have happened: a re-read tells (ours is there, or retry).
                let (t, v) = retry(zk, || read_history(zk, hist))?;
                if t == Some(term) {
                    return Ok(true);
                }
                version = v;
            }
        }
    }
}

/// The registered address of each member but us (vanished ones are skipped).
fn addresses(zk: &ZooKeeper, dir: &str, names: &[String], me: &str) -> election::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for n in names.iter().filter(|n| *n != me) {
        match zk.get(&crate::zk::join(dir, n)) {
            Ok((d, _)) => out.push((n.clone(), String::from_utf8_lossy(&d).into_owned())),
            Err(e) if e.code() == Some(Code::NoNode) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// Election node name -> the address it registered with. An election node's data is
/// never changed after its creation (a server that registers again gets a new name), so
/// an entry is true as long as its name is among the members.
type Addresses = Mutex<HashMap<String, String>>;

/// What a new leader reads from ZooKeeper before it probes: the members but us with their
/// registered addresses, a watch on the election directory armed by that same read, and the
/// history's term and version.
struct Survey {
    members: Vec<(String, String)>,
    watch: Receiver<crate::zk::WatchEvent>,
    written: Option<u64>,
    version: Option<i32>,
}

fn pipeline_error(code: Code, path: &str) -> election::Error {
    crate::zk::Error::Zk { code, path: Some(path.to_string()) }.into()
}

/// The candidates among the children `names` but `me`, as the election orders them.
fn candidates(names: Vec<String>, me: &str) -> Vec<String> {
    let mut v: Vec<(u32, String)> = names
        .into_iter()
        .filter(|n| n.starts_with(PREFIX) && n.len() == PREFIX.len() + 10 && n != me)
        .filter_map(|n| crate::zk::sequence_of(&n).map(|q| (q, n)))
        .collect();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}

/// The registered address of each of `names` (vanished ones are skipped): from `known`,
/// the others read all at once (one round trip, none when all are known).
fn addresses_of(
    zk: &ZooKeeper,
    dir: &str,
    names: Vec<String>,
    known: &HashMap<String, String>,
) -> election::Result<Vec<(String, String)>> {
    use crate::zk::Answer;
    let mut reqs = zk.requests();
    let mut found: Vec<Option<String>> = names.iter().map(|n| known.get(n).cloned()).collect();
    for (i, n) in names.iter().enumerate().filter(|(i, _)| found[*i].is_none()) {
        reqs.get(i as u64, &crate::zk::join(dir, n))?;
    }
    let mut failed = None;
    while let Some((tag, answer)) = reqs.recv() {
        match answer {
            Ok(Answer::Data(d, _)) => found[tag as usize] = Some(String::from_utf8_lossy(&d).into_owned()),
            Err(Code::NoNode) => {} // vanished meanwhile: skipped (a watch on the list has fired)
            Err(c) => {
                failed.get_or_insert(pipeline_error(c, dir));
            }
            Ok(_) => {}
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(names.into_iter().zip(found).filter_map(|(n, a)| a.map(|a| (n, a))).collect()),
    }
}

/// Reads a [`Survey`]: the directory's children (with the watch) and the history in one
/// round trip, then the addresses not in `known` in one more (none when all are known).
/// Reading the history before the probes is as good as after them: no older leader can
/// write it any more (its node is gone, so its session, or its candidacy, ended), and a
/// newer one fails our compare-and-set.
fn survey(zk: &ZooKeeper, dir: &str, hist: &str, me: &str, known: &Addresses) -> election::Result<Survey> {
    use crate::zk::Answer;
    let (tx, watch) = crossbeam_channel::bounded(1);
    let mut reqs = zk.requests();
    reqs.children_w(0, dir, &tx)?;
    drop(tx); // the registered watch holds the only Sender: the session's end disconnects it
    reqs.get(1, hist)?;
    let (mut names, mut history, mut failed) = (None, None, None);
    while let Some((tag, answer)) = reqs.recv() {
        match (tag, answer) {
            (0, Ok(Answer::Children(n, _))) => names = Some(n),
            (1, Ok(Answer::Data(d, stat))) => {
                history = Some((std::str::from_utf8(&d).ok().and_then(|t| t.trim().parse().ok()), Some(stat.version)))
            }
            (1, Err(Code::NoNode)) => history = Some((None, None)),
            (t, Err(c)) => {
                failed.get_or_insert(pipeline_error(c, if t == 0 { dir } else { hist }));
            }
            (_, Ok(_)) => {} // no other answer to these requests
        }
    }
    drop(reqs);
    let (Some(names), Some((written, version))) = (names, history) else {
        return Err(failed.unwrap_or_else(|| pipeline_error(Code::ConnectionLoss, dir)));
    };
    let known = known.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let members = addresses_of(zk, dir, candidates(names, me), &known)?;
    Ok(Survey { members, watch, written, version })
}

/// Keeps `known` equal to the members' addresses, for the whole candidacy (a thread of the
/// session), so that a new leader's [`survey`] reads only the addresses of servers that
/// joined since the last change: one round trip fewer at a takeover. Ends with `done`.
fn track_addresses(zk: &ZooKeeper, dir: &str, me: &str, known: &Addresses, done: &Receiver<()>) {
    loop {
        if zk.is_dead() {
            return;
        }
        let read = (|| -> election::Result<_> {
            let (names, watch) = election::members_w(zk, dir, PREFIX)?;
            let have = known.lock().unwrap_or_else(|e| e.into_inner()).clone();
            Ok((addresses_of(zk, dir, candidates(names, me), &have)?, watch))
        })();
        match read {
            Ok((members, watch)) => {
                *known.lock().unwrap_or_else(|e| e.into_inner()) = members.into_iter().collect();
                select! {
                    recv(watch) -> _ => {}, // fired, or the session ended (checked above)
                    recv(done) -> _ => return,
                }
            }
            Err(e) => {
                debug!("reading the members' addresses: {e}; retrying");
                select! {
                    recv(done) -> _ => return,
                    default(Duration::from_millis(500)) => {}
                }
            }
        }
    }
}

/// We were elected: sync (the protocol in `replication`), then take writes, start a stream
/// to each live replica, and keep the replica set equal to the election directory's
/// members from a thread of this session. Some(epoch) once writable; None when stopped.
#[allow(clippy::too_many_arguments)]
fn lead<'scope, 'env: 'scope>(
    node: &'env Arc<Node>,
    zk: &'env ZooKeeper,
    dir: &'env str,
    hist: &str,
    known: &Addresses,
    s: &State,
    scope: &'scope std::thread::Scope<'scope, 'env>,
    done: Receiver<()>,
    stop: &Receiver<()>,
) -> election::Result<Option<u64>> {
    let term = s.leader.seq as u64;
    let me = s.me.clone();
    let epoch = {
        let mut st = node.store.st();
        node.store.set_role(&mut st, Role::Leader { term }, false);
        st.known_term = st.known_term.max(term);
        st.stream_gen += 1; // an old leader's stream into us stops applying
        st.epoch
    };
    info!("elected leader (term {term}): syncing with the live servers before taking writes");
    let started = Instant::now();
    let stopped = || !stop.is_empty() || crate::util::stop_requested() || node.store.st().epoch != epoch;
    let pause = || {
        let _ = stop.recv_timeout(Duration::from_millis(100));
    };
    'sync: loop {
        // 1. Every live registered server's state.
        let mut answers: HashMap<String, (String, Hello)> = HashMap::new();
        let mut warned = false;
        let Survey { members, watch, written, version } = loop {
            if stopped() {
                return Ok(None);
            }
            let survey = retry(zk, || survey(zk, dir, hist, &me, known))?;
            let members = &survey.members;
            answers.retain(|n, _| members.iter().any(|(m, _)| m == n));
            for (n, a) in members {
                if answers.contains_key(n) {
                    continue;
                }
                match replication::probe(node, a, term) {
                    Ok(h) => {
                        answers.insert(n.clone(), (a.clone(), h));
                    }
                    Err(e) if !warned || started.elapsed() > Duration::from_secs(5) => {
                        warn!("syncing: no state from {n} at {a} yet ({e}); writes wait until it answers or leaves");
                        warned = true;
                    }
                    Err(e) => debug!("probe {n}: {e}"),
                }
            }
            if members.iter().all(|(n, _)| answers.contains_key(n)) {
                break survey;
            }
            pause();
        };
        // 2. Who holds the complete history (`written`: read with the members above); copy
        // it if it is not (only) us.
        let (mine, my_last) = {
            let st = node.store.st();
            (written.is_none() || st.claim.complete(written), st.last)
        };
        let best = answers
            .iter()
            .filter_map(|(n, (a, h))| match h {
                Hello::At(c, p) if c.complete(written) => Some((*p, n, a)),
                _ => None,
            })
            .max();
        let lost = match best {
            Some((p, n, a)) if !mine || p > my_last => {
                info!("syncing: {n} at {a} holds the complete history up to {p} (we are at {my_last}): copying it");
                match replication::fetch(node, a, term, epoch) {
                    Ok(true) => false,
                    other => {
                        warn!("syncing: copying from {n} failed ({other:?}); starting the sync over");
                        pause();
                        continue 'sync;
                    }
                }
            }
            _ => !mine,
        };
        // 3. Record that this term takes writes (unless a newer one already does).
        let sent = Instant::now(); // the lease runs from before this round trip
        if !write_history(zk, hist, term, version)? {
            warn!("a newer leader already took writes: giving the candidacy up");
            return Err(election::Error::Lost);
        }
        // 4. Take writes, with every member probed above in the ack set from here on; one
        // that joined or left since fired `watch`, and the membership thread, which starts
        // with it, adds or drops it (as any later join or leave).
        let last = {
            let mut st = node.store.st();
            if st.epoch != epoch {
                return Ok(None);
            }
            st.claim = Claim::Complete;
            st.complete_at = None;
            st.lost_history = lost;
            st.led = Some(term);
            st.ready = true;
            st.ready_at = None;
            let at = st.last.seq;
            for (n, a) in &members {
                st.replicas.insert(n.clone(), Replica { addr: a.clone(), acked: 0, added_at: at });
            }
            st.writable = true;
            st.lease = Some(sent + lease_time(zk));
            st.last
        };
        node.store.notify_all();
        if lost {
            warn!(
                "no live server holds the complete history (every server that had it is gone): taking writes \
                 from {last} on; keys acknowledged before that may be missing"
            );
        }
        for (n, a) in &members {
            replication::spawn_stream(node.clone(), n.clone(), a.clone(), epoch, term);
        }
        let list: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        info!(
            "leader (term {term}) at {last}, synced in {:?}; replicas: {}",
            started.elapsed(),
            if list.is_empty() { "none".into() } else { list.join(", ") }
        );
        scope.spawn(move || membership(node, zk, dir, me, epoch, term, watch, done));
        return Ok(Some(epoch));
    }
}

/// How long a successful ZooKeeper round trip lets a leader act (`St::lease`): 2/3 of the
/// session timeout, when the client itself gives up on a silent server.
fn lease_time(zk: &ZooKeeper) -> Duration {
    zk.session_timeout() * 2 / 3
}

/// The leader's membership thread: keeps the replica set equal to the election
/// directory's members, and renews the leader's lease (a read every quarter of the
/// session timeout). It survives every ZooKeeper error (retries with a pause); it ends
/// when the leadership (`epoch`) or the session ends.
#[allow(clippy::too_many_arguments)]
fn membership(
    node: &Arc<Node>,
    zk: &ZooKeeper,
    dir: &str,
    me: String,
    epoch: u64,
    term: u64,
    watch: Receiver<crate::zk::WatchEvent>,
    done: Receiver<()>,
) {
    let mut watch = Some(watch);
    let mut failures = 0u32;
    let renew_every = (zk.session_timeout() / 4).max(Duration::from_millis(50));
    let mut next_renewal = Instant::now() + renew_every;
    loop {
        let renewal = crossbeam_channel::at(next_renewal);
        let renew = || {
            let sent = Instant::now();
            match zk.exists(dir) {
                Ok(_) => node.store.renew_lease(epoch, sent, lease_time(zk)),
                Err(e) => debug!("renewing the leader's lease: {e}"),
            }
        };
        match &watch {
            Some(w) => select! {
                recv(w) -> _ => {}, // fired, or the session ended (checked below)
                recv(done) -> _ => return,
                recv(renewal) -> _ => {
                    renew();
                    next_renewal = Instant::now() + renew_every;
                    continue;
                }
            },
            None => select! {
                recv(done) -> _ => return,
                recv(renewal) -> _ => {
                    renew();
                    next_renewal = Instant::now() + renew_every;
                    continue;
                }
                default(Duration::from_millis(200)) => {}
            },
        }
        if zk.is_dead() || node.store.st().epoch != epoch {
            return;
        }
        let (names, w) = match election::members_w(zk, dir, PREFIX) {
            Ok(v) => v,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(50) {
                    warn!("reading the members: {e}; retrying");
                }
                watch = None;
                continue;
            }
        };
        failures = 0;
        watch = Some(w);
        let wanted: HashSet<String> = names.iter().filter(|n| **n != me).cloned().collect();
        let mut st = node.store.st();
        if st.epoch != epoch {
            return;
        }
        let gone: Vec<String> = st.replicas.keys().filter(|n| !wanted.contains(*n)).cloned().collect();
        for n in &gone {
            st.replicas.remove(n);
        }
        node.store.wake_committed(&mut st);
        let new: Vec<String> = wanted.into_iter().filter(|n| !st.replicas.contains_key(n)).collect();
        drop(st);
        for n in &gone {
            info!("replica {n} left: writes no longer wait for it");
        }
        node.store.notify_all();
        let found = match addresses(zk, dir, &new, &me) {
            Ok(f) => f,
            Err(e) => {
                warn!("reading the new members' addresses: {e}; retrying");
                watch = None;
                continue;
            }
        };
        let mut st = node.store.st();
        if st.epoch != epoch {
            return;
        }
        let at = st.last.seq;
        for (n, a) in &found {
            st.replicas.insert(n.clone(), Replica { addr: a.clone(), acked: 0, added_at: at });
        }
        drop(st);
        for (n, a) in found {
            info!("replica {n} at {a} joined: writes after seq {at} wait for it");
            replication::spawn_stream(node.clone(), n, a, epoch, term);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_ordered_without_us_or_strangers() {
        let n = |q: u32| format!("{PREFIX}{q:010}");
        let names = vec![n(12), "other".into(), n(3), format!("{PREFIX}12"), n(7)];
        assert_eq!(candidates(names, &n(7)), vec![n(3), n(12)]);
    }
}
