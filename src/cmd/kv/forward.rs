//! Followers forward PUT and DEL to the leader and relay its reply.
//!
//! Per leader address, a "lane": a queue that client threads put requests on, and two
//! worker threads, each owning one authenticated connection. A worker takes whatever has
//! queued up (up to 512 requests), sends it as one burst, reads the replies in order and
//! hands each to its client thread. The leader applies a burst, waits once for the
//! replicas' acks of its last write, and answers the whole burst: under load, one
//! round trip and one ack wait carry many writes (group commit), instead of one thread
//! hop and one wake-up per write.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use log::debug;

use super::Node;
use super::peer::{Peer, PeerError, Secret, refusal};
use super::protocol::{Frame, read_frame, write_array};
use super::store::{Op, WriteError};

const WORKERS: usize = 2;
const BURST: usize = 512;

/// What the leader answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Applied and acknowledged by every live replica; whether the key existed.
    Ok(bool),
    /// The server we reached does not lead (any more).
    NotLeader,
    /// The leader applied it but could not get every ack, or refused it.
    Err(String),
}

/// Per forwarded request: Ok((seq, epoch, existed)), or the reply to give at once.
type Appended = Result<(u64, u64, bool), &'static [u8]>;

type Job = (Op, Sender<Result<Reply, String>>);

#[derive(Default)]
pub struct Pool {
    lanes: Mutex<HashMap<String, Sender<Job>>>,
}

impl Pool {
    /// Sends `op` to the leader at `addr` and waits for its answer.
    pub fn call(&self, node: &Node, addr: &str, op: &Op) -> Result<Reply, PeerError> {
        let tx = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes
                .entry(addr.to_string())
                .or_insert_with(|| {
                    let (tx, rx) = unbounded::<Job>();
                    // The leader answers within its write timeout (ours, as a rule); a
                    // leader that does not (frozen, partitioned) must not hold a worker forever.
                    let patience = node.write_timeout + Duration::from_secs(5);
                    for i in 0..WORKERS {
                        let (addr, secret, rx) = (addr.to_string(), node.secret.clone(), rx.clone());
                        let _ = std::thread::Builder::new()
                            .name(format!("forward-{i}"))
                            .spawn(move || worker(&addr, &secret, patience, rx));
                    }
                    tx
                })
                .clone()
        };
        let (rtx, rrx) = bounded(1);
        tx.send((op.clone(), rtx)).map_err(|_| PeerError::Refused("forwarding lane closed".into()))?;
        match rrx.recv_timeout(node.write_timeout + Duration::from_secs(5)) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(PeerError::Refused(e)),
            Err(_) => Err(PeerError::Refused("no answer from the leader".into())),
        }
    }

    /// Closes the lanes to servers other than `addr` (after a leader change).
    pub fn retain(&self, addr: &str) {
        self.lanes.lock().unwrap_or_else(|e| e.into_inner()).retain(|a, _| a == addr);
    }
}

fn worker(addr: &str, secret: &Secret, patience: Duration, rx: Receiver<Job>) {
    let mut conn: Option<Peer> = None;
    while let Ok(first) = rx.recv() {
        let mut burst = vec![first];
        while burst.len() < BURST {
            match rx.try_recv() {
                Ok(j) => burst.push(j),
                Err(_) => break,
            }
        }
        let replies = (|| -> Result<Vec<Reply>, PeerError> {
            if conn.is_none() {
                let p = Peer::connect(addr, secret, Duration::from_secs(2))?;
                p.r.get_ref().set_read_timeout(Some(patience))?;
                conn = Some(p);
            }
            let p = conn.as_mut().expect("connected above");
            for (op, _) in &burst {
                match op {
                    Op::Put(k, v) => write_array(&mut p.w, &[b"PUT", k, v])?,
                    Op::Del(k) => write_array(&mut p.w, &[b"DEL", k])?,
                }
            }
            p.w.flush()?;
            let mut out = Vec::with_capacity(burst.len());
            for _ in 0..burst.len() {
                let reply = p.recv()?;
                out.push(match &reply[..] {
                    [ok, e] if ok == b"OK" => Reply::Ok(e == b"1"),
                    [n] if n == b"NOTLEADER" => Reply::NotLeader,
                    [e, why] if e == b"ERR" => Reply::Err(String::from_utf8_lossy(why).into_owned()),
                    other => return Err(refusal(other)),
                });
            }
            Ok(out)
        })();
        match replies {
            Ok(rs) => {
                for ((_, tx), r) in burst.into_iter().zip(rs) {
                    let _ = tx.send(Ok(r));
                }
            }
            Err(e) => {
                debug!("forwarding to {addr}: {e}");
                if let Some(p) = conn.take() {
                    p.shutdown();
                }
                for (_, tx) in burst {
                    let _ = tx.send(Err(e.to_string()));
                }
            }
        }
    }
    if let Some(p) = conn {
        p.shutdown();
    }
}

/// Leader side of a forwarding connection: applies each burst of PUT/DEL frames as this
/// server's own writes (only while it leads), waits once for the replicas' acks of the
/// last one, answers them all in order.
pub fn serve(
    node: &Node,
    r: &mut BufReader<impl std::io::Read>,
    w: &mut BufWriter<TcpStream>,
    first: Vec<Vec<u8>>,
    _from: &SocketAddr,
) -> std::io::Result<()> {
    let mut burst = vec![first];
    loop {
        while !r.buffer().is_empty() && burst.len() < BURST {
            match read_frame(r) {
                Ok(Frame::Resp(a)) => burst.push(a),
                _ => return Ok(()),
            }
        }
        let deadline = Instant::now() + node.write_timeout;
        let mut results: Vec<Appended> = Vec::with_capacity(burst.len());
        for msg in burst.drain(..) {
            let op = match &msg[..] {
                [c, k, v] if c == b"PUT" => Op::Put(k.clone(), v.clone()),
                [c, k] if c == b"DEL" => Op::Del(k.clone()),
                _ => {
                    results.push(Err(b"unknown peer request"));
                    continue;
                }
            };
            results.push(node.store.append(op).map_err(|_| &b"NOTLEADER"[..]));
        }
        let last = results.iter().filter_map(|r| r.as_ref().ok()).map(|(q, e, _)| (*q, *e)).max();
        let acked = match last {
            Some((seq, epoch)) => node.store.wait_acked(seq, epoch, deadline).map(|_| ()),
            None => Ok(()),
        };
        for res in results {
            match (res, &acked) {
                (Ok((_, _, existed)), Ok(())) => write_array(w, &[b"OK", if existed { b"1" } else { b"0" }])?,
                (Ok(_), Err(WriteError::NotLeader)) | (Err(b"NOTLEADER"), _) => write_array(w, &[b"NOTLEADER"])?,
                (Ok(_), Err(WriteError::Timeout)) => write_array(w, &[b"ERR", super::TIMEOUT_TEXT.as_bytes()])?,
                (Err(why), _) => write_array(w, &[b"ERR", why])?,
            }
        }
        w.flush()?;
        match read_frame(r) {
            Ok(Frame::Resp(a)) => burst.push(a),
            _ => return Ok(()),
        }
    }
}
