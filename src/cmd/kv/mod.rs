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

const TIMEOUT_TEXT: &str = "timed out waiting for every live replica to acknowledge (the write may or may not persist)";

/// The ZooKeeper directory of a cluster's election.
pub fn election_dir(cluster: &str) -> String {
    format!("/kv/{cluster}/election")
}

/// One server: what every thread shares.
pub struct Node {
    pub store: Store,
    /// Our client (and peer) address, as registered in the election node.
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
    /// Waits (up to the write timeout) for a leader while there is none, and retries on
    /// the new leader when the old one goes away mid-request. Ok(existed) once acknowledged.
    pub fn submit(&self, op: Op) -> Result<bool, String> {
        let deadline = Instant::now() + self.write_timeout;
        loop {
            let (role, writable, epoch) = {
                let st = self.store.st();
                (st.role.clone(), st.writable, st.epoch)
            };
            let left = deadline.saturating_duration_since(Instant::now());
            let cut_off = matches!(role, Role::Leader { .. }) && !writable;
            match role {
                Role::Leader { .. } if writable => match self.store.write(op.clone(), left) {
                    Ok((existed, n)) => {
                        if self.store.write_log_due() {
                            let key = String::from_utf8_lossy(op.key());
                            info!("{} {key}: replicated to {n} replica{}", op.verb(), if n == 1 { "" } else { "s" });
                        }
                        return Ok(existed);
                    }
                    Err(WriteError::Timeout) => return Err(TIMEOUT_TEXT.into()),
                    Err(WriteError::NotLeader) => {}
                },
                Role::Follower { addr, leader, .. } => {
                    if self.store.write_log_due() {
                        info!(
                            "forwarding {} {} to leader {leader} at {addr}",
                            op.verb(),
                            String::from_utf8_lossy(op.key())
                        );
                    }
                    match self.forward.call(self, &addr, &op) {
                        Ok(forward::Reply::Ok(existed)) => return Ok(existed),
                        Ok(forward::Reply::Err(why)) => return Err(why),
                        Ok(forward::Reply::NotLeader) | Err(_) => {} // wait for the election to tell us more
                    }
                }
                Role::Stopping => return Err("the server is shutting down".into()),
                Role::Leader { .. } | Role::Electing => {}
            }
            if Instant::now() >= deadline {
                if cut_off {
                    return Err("this leader lost its connection to ZooKeeper: no writes until it is back".into());
                }
                return Err("no leader could take the write (election in progress?)".into());
            }
            // Wait for a change of role (a new leader), but retry a forward at least every
            // 50 ms: the follower may learn of a new leader later than the leader itself.
            let st = self.store.st();
            if st.epoch == epoch {
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
    let stop = crate::util::shutdown(); // handle Ctrl-C / SIGTERM from here on
    let listener = std::net::TcpListener::bind(a.listen).with_context(|| format!("listening on {}", a.listen))?;
    let addr = listener.local_addr().context("reading the listening address")?.to_string();
    let zk = g.connect_owned().context("connecting to ZooKeeper")?;
    let node = Arc::new(Node {
        store: Store::new(!a.catch_up),
        addr: addr.clone(),
        secret: peer::Secret::new(secret),
        catch_up: a.catch_up,
        write_timeout: a.write_timeout,
        forward: forward::Pool::default(),
        name: Mutex::new(String::new()),
    });
    server::spawn_acceptor(node.clone(), listener, a.max_clients, a.request_timeout)
        .context("starting the acceptor")?;
    info!("listening on {addr} (cluster {})", a.cluster);
    cluster::run(&node, g, &election_dir(&a.cluster), zk, &stop)?;
    Ok(after_stop())
}
