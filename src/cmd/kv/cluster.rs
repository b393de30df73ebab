//! The server's side of the election: campaign, turn each new state into a role, keep the
//! leader's replica set equal to the election directory's members, and start over with a
//! new session when the old one is lost.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use crossbeam_channel::{Receiver, select};
use log::{info, warn};

use super::store::Role;
use super::{Node, PREFIX, replication};
use crate::cli::Global;
use crate::recipes::election::{self, Election, State, Wake};
use crate::zk::{Code, ZooKeeper};

/// Runs elections until `stop` fires. `zk` is the first session (already connected);
/// after a lost session, new ones are made until one works.
pub fn run(node: &Arc<Node>, g: &Global, dir: &str, zk: ZooKeeper, stop: &Receiver<()>) -> Result<()> {
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
        match campaign(node, &session, dir, stop) {
            Ok(()) => break,
            Err(election::Error::Lost) => {
                warn!("lost the ZooKeeper session: stepping down; registering again with a new session")
            }
            Err(e) => warn!("election: {e}; registering again with a new session"),
        }
        let mut st = node.store.st();
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
fn campaign(node: &Arc<Node>, zk: &ZooKeeper, dir: &str, stop: &Receiver<()>) -> election::Result<()> {
    let mut e = Election::campaign(zk, dir, PREFIX, node.addr.as_bytes())?;
    e.follow_leader(true);
    node.set_name(e.name());
    info!("registered as {} (session 0x{:x})", e.name(), zk.session_id());
    let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
    let out = std::thread::scope(|scope| {
        let r = (|| -> election::Result<()> {
            let mut state = e.state()?;
            let mut membership = false;
            adopt(node, &state, None);
            loop {
                if state.is_leader() && !membership {
                    membership = true;
                    lead(node, zk, dir, &state, scope, done_rx.clone())?;
                }
                match e.wait(stop, None)? {
                    Wake::Changed(s) => {
                        adopt(node, &s, Some(&state));
                        state = s;
                    }
                    Wake::Suspended => {
                        let mut st = node.store.st();
                        if st.is_leader() {
                            st.writable = false;
                            warn!("lost the connection to ZooKeeper: not accepting writes until it is back");
                        } else {
                            warn!("lost the connection to ZooKeeper");
                        }
                    }
                    Wake::Resumed(s) => {
                        info!("reconnected to ZooKeeper within the session");
                        if s.is_leader() && state.is_leader() {
                            node.store.st().writable = true;
                            node.store.notify_all();
                        } else {
                            adopt(node, &s, Some(&state));
                        }
                        state = s;
                    }
                    Wake::Stopped => {
                        let mut st = node.store.st();
                        node.store.set_role(&mut st, Role::Stopping, false);
                        info!("stopping: closing the ZooKeeper session so the next leader takes over");
                        return Ok(());
                    }
                    Wake::TimedOut => {}
                }
            }
        })();
        drop(done_tx); // ends the membership thread
        r
    });
    match out {
        // Nothing to delete on a lost session (a delete would wait for the connection).
        Err(election::Error::Lost) => e.abandon(),
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

/// We lead: learn the live replicas, start a stream to each, accept writes, and keep the
/// replica set equal to the election directory's members from a thread of this session.
fn lead<'scope, 'env: 'scope>(
    node: &'env Arc<Node>,
    zk: &'env ZooKeeper,
    dir: &'env str,
    s: &State,
    scope: &'scope std::thread::Scope<'scope, 'env>,
    done: Receiver<()>,
) -> election::Result<()> {
    let term = s.leader.seq as u64;
    let me = s.me.clone();
    let (names, watch) = election::members_w(zk, dir, PREFIX)?;
    let members = addresses(zk, dir, &names, &me)?;
    let epoch = {
        let mut st = node.store.st();
        node.store.set_role(&mut st, Role::Leader { term }, true);
        st.known_term = st.known_term.max(term);
        st.stream_gen += 1; // an old leader's stream into us stops applying
        st.ready = true;
        st.fresh = false;
        for (n, a) in &members {
            st.replicas.insert(n.clone(), super::store::Replica { addr: a.clone(), acked: 0 });
        }
        st.epoch
    };
    for (n, a) in &members {
        replication::spawn_stream(node.clone(), n.clone(), a.clone(), epoch, term);
    }
    let list: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    info!("elected leader (term {term}); replicas: {}", if list.is_empty() { "none".into() } else { list.join(", ") });
    scope.spawn(move || {
        let mut watch = watch;
        loop {
            select! {
                recv(watch) -> ev => if ev.is_err() && zk.is_dead() { return },
                recv(done) -> _ => return,
            }
            let (names, w) = match election::members_w(zk, dir, PREFIX) {
                Ok(v) => v,
                Err(e) => {
                    warn!("reading the members: {e}");
                    return;
                }
            };
            watch = w;
            let wanted: HashSet<String> = names.iter().filter(|n| **n != me).cloned().collect();
            let mut st = node.store.st();
            if st.epoch != epoch {
                return;
            }
            let gone: Vec<String> = st.replicas.keys().filter(|n| !wanted.contains(*n)).cloned().collect();
            for n in &gone {
                st.replicas.remove(n);
                info!("replica {n} left: writes no longer wait for it");
            }
            let new: Vec<String> = wanted.into_iter().filter(|n| !st.replicas.contains_key(n)).collect();
            drop(st);
            node.store.notify_all();
            let Ok(found) = addresses(zk, dir, &new, &me) else { continue };
            let mut st = node.store.st();
            if st.epoch != epoch {
                return;
            }
            for (n, a) in &found {
                st.replicas.insert(n.clone(), super::store::Replica { addr: a.clone(), acked: 0 });
            }
            drop(st);
            for (n, a) in found {
                info!("replica {n} at {a} joined");
                replication::spawn_stream(node.clone(), n, a, epoch, term);
            }
        }
    });
    Ok(())
}

/// The registered address of each named member but us (vanished ones are skipped).
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
