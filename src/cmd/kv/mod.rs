//! `zkutil kv serve`: a replicated in-memory key-value server whose leader is elected
//! through ZooKeeper (recipes::election), spoken to with netcat (line protocol) or
//! redis-cli (RESP).
//!
//! Modules: `protocol` (framing and parsing), `store` (map, log, roles, the leader's write
//! path), `replication` (leader -> replica streams), `forward` (follower -> leader writes),
//! `peer` (authenticated server-to-server connections), `server` (acceptor, connections),
//! `cluster` (election, membership, session loss).
//!
//! Threads: an acceptor; one thread per connection (at most `--max-clients`); on the
//! leader, a sender and an ack reader per replica; the main thread runs the election.
//!
//! No lock is ever held across network I/O: a guard taken in a `match` scrutinee would
//! live until the end of the match (and its socket writes), hence these lints.

#![warn(clippy::significant_drop_in_scrutinee, clippy::significant_drop_tightening)]

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use log::info;

use super::Run;
use super::exit::after_stop;
use crate::cli::{Global, KvCmd, KvServeArgs};

mod cluster;
mod forward;
mod peer;
pub mod protocol;
mod replication;
mod server;
mod store;

use store::{Op, Role, Store, WriteError};

/// The prefix of every election node.
pub const PREFIX: &str = "server_";

/// The reply to a write that was applied but whose acks did not all come in time.
pub const TIMEOUT_TEXT: &str =
    "outcome unknown: timed out waiting for every live replica to acknowledge (the write may or may not persist)";
/// The reply to a write that was applied by a leader that lost its leadership before
/// every ack came.
pub const LOST_TEXT: &str = "outcome unknown: the leader lost its leadership before every replica acknowledged (the write may or may not persist)";

/// The reply to a forwarded write the leader acknowledged but this server did not receive
/// within the write timeout (it cannot say OK: a read here would not see the write).
pub const NOT_HERE_TEXT: &str = "outcome unknown: the leader acknowledged the write, but this server did not receive it within the write timeout (it is cut off from the leader's stream)";

/// The ZooKeeper directory of a cluster's election.
pub fn election_dir(cluster: &str) -> String {
    format!("/kv/{cluster}/election")
}

/// The znode holding the term of the last leader that took writes.
pub fn history_path(cluster: &str) -> String {
    format!("/kv/{cluster}/history")
}

/// One server: what every thread shares.
pub struct Node {
    pub store: Store,
    /// Our client (and peer) address as others reach it: registered in the election node.
    pub addr: String,
    pub secret: peer::Secret,
    pub catch_up: bool,
    pub write_timeout: Duration,
    pub forward: forward::Pool,
    name: Mutex<String>,
}

impl Node {
    /// Our election node's name (it changes when we register again after a lost session).
    pub fn name(&self) -> String {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set_name(&self, n: &str) {
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = n.to_string();
    }

    /// A client's PUT or DEL: applied here when we lead, forwarded to the leader otherwise.
    /// Waits (up to the write timeout) for a leader while there is none, and tries the new
    /// leader when the old one did not apply it. Never retries a write that may have been
    /// applied: that is `ERR outcome unknown: ...`. Ok(PUT: existed 0/1, DEL: removed).
    pub fn submit(&self, op: Op) -> Result<u64, String> {
        let deadline = Instant::now() + self.write_timeout;
        loop {
            let (role, writable, attached, epoch) = {
                let st = self.store.st();
                (st.role.clone(), st.writable && st.leased(), st.attached, st.epoch)
            };
            let cut_off = matches!(role, Role::Leader { .. }) && !writable;
            match role {
                Role::Leader { .. } if writable => {
                    // Err: not applied; wait for the next role.
                    if let Ok(a) = self.store.append(op.clone()) {
                        return match self.store.wait_acked(a.seq, a.epoch, deadline) {
                            Ok(n) => {
                                if self.store.write_log_due() {
                                    let key = String::from_utf8_lossy(op.key());
                                    info!(
                                        "{} {key}: replicated to {n} replica{}",
                                        op.verb(),
                                        if n == 1 { "" } else { "s" }
                                    );
                                }
                                Ok(a.count)
                            }
                            Err(WriteError::Timeout) => Err(TIMEOUT_TEXT.into()),
                            Err(_) => Err(LOST_TEXT.into()),
                        };
                    }
                }
                Role::Follower { addr, leader, term } if attached == Some(term) => {
                    if self.store.write_log_due() {
                        info!(
                            "forwarding {} {} to leader {leader} at {addr}",
                            op.verb(),
                            String::from_utf8_lossy(op.key())
                        );
                    }
                    match self.forward.call(self, &addr, &op, deadline) {
                        // Read your writes: the leader's stream to us normally brought the
                        // write before its OK (we are in its ack set), but a follower whose
                        // session expired may forward before it notices that the leader
                        // dropped it; then we answer once our copy holds the write.
                        forward::Reply::Ok(n, pos) if self.store.wait_holds(pos, deadline) => return Ok(n),
                        forward::Reply::Ok(..) => return Err(NOT_HERE_TEXT.into()),
                        forward::Reply::Unknown(why) => {
                            return Err(if why.starts_with("outcome unknown") {
                                why
                            } else {
                                format!("outcome unknown: {why} (the write may or may not persist)")
                            });
                        }
                        forward::Reply::NotApplied(_) => {} // wait for the election to tell us more
                    }
                }
                Role::Stopping => return Err("the server is shutting down".into()),
                Role::Leader { .. } | Role::Follower { .. } | Role::Electing => {}
            }
            if Instant::now() >= deadline {
                if cut_off {
                    return Err("this leader is not taking writes (syncing, or no connection to ZooKeeper)".into());
                }
                return Err("no leader could take the write (election in progress?)".into());
            }
            // Wait for a change of role (a new leader, an attached stream), but retry a
            // forward at least every 50 ms: we may learn of a new leader after it does.
            let st = self.store.st();
            if st.epoch == epoch && st.attached == attached {
                let wait = deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(50));
                let _ = self.store.role_changed.wait_timeout(st, wait);
            }
        }
    }
}

impl Run for KvCmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            KvCmd::Serve(a) => serve(g, a),
        }
    }
}

fn serve(g: &Global, a: &KvServeArgs) -> Result<ExitCode> {
    if a.cluster.is_empty() || a.cluster.contains('/') || a.cluster.chars().any(|c| c.is_control()) {
        bail!("--cluster: {:?} is not a valid name (no '/', not empty)", a.cluster);
    }
    let secret = match &a.secret_file {
        None => None,
        Some(f) => {
            let s = std::fs::read(f).with_context(|| format!("reading the secret file {}", f.display()))?;
            let s = s.trim_ascii().to_vec();
            if s.is_empty() {
                bail!("the secret file {} is empty", f.display());
            }
            Some(s)
        }
    };
    let advertise = match &a.advertise {
        Some(ad) => ad.clone(),
        None if a.listen.ip().is_unspecified() => {
            // A usage error, found before anything is opened: exit 2 like clap's.
            eprintln!(
                "zkutil: --listen {}: other servers cannot reach an unspecified address; give --advertise HOST:PORT",
                a.listen
            );
            std::process::exit(2);
        }
        None => String::new(),
    };
    let stop = crate::util::shutdown(); // handle Ctrl-C / SIGTERM from here on
    let listener = std::net::TcpListener::bind(a.listen).with_context(|| format!("listening on {}", a.listen))?;
    let local = listener.local_addr().context("reading the listening address")?.to_string();
    let addr = if advertise.is_empty() { local } else { advertise };
    let zk = g.connect_owned().context("connecting to ZooKeeper")?;
    let node = Arc::new(Node {
        store: Store::new(a.catch_up, usize::try_from(a.log_bytes).unwrap_or(usize::MAX)),
        addr: addr.clone(),
        secret: peer::Secret::new(secret),
        catch_up: a.catch_up,
        write_timeout: a.write_timeout,
        forward: forward::Pool::default(),
        name: Mutex::new(String::new()),
    });
    server::spawn_acceptor(node.clone(), listener, a.max_clients, a.request_timeout)
        .context("starting the acceptor")?;
    info!("listening on {} as {addr} (cluster {})", a.listen, a.cluster);
    cluster::run(&node, g, &a.cluster, zk, &stop)?;
    Ok(after_stop())
}
