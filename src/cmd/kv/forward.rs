//! Followers forward PUT and DEL to the leader and relay its reply.
//!
//! Per leader address, a "lane": a queue that client threads put requests on, and two
//! worker threads, each owning one authenticated connection. A worker takes whatever has
//! queued up (up to 512 requests), sends it as one burst, reads the replies in order and
//! hands each to its client thread. The leader applies a burst, waits once for the
//! replicas' acks of its last write, and answers the whole burst: under load, one
//! round trip and one ack wait carry many writes (group commit).
//!
//! At most once: each job is Queued, then Sent (by a worker) or Abandoned (by its client
//! thread when its deadline passed), by compare-and-swap, so a job given up on is never
//! sent later. Each request carries its deadline (milliseconds since the epoch: servers'
//! clocks are assumed roughly in step, as for any lease); the leader does not apply one
//! that arrives after it. A request that was sent and got no clear answer is "outcome
//! unknown" and never retried: only `NOTLEADER`/`EXPIRED` (not applied) and a failure
//! before sending let the follower try again (on the next leader).

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};
use log::debug;

use super::Node;
use super::peer::{Peer, PeerError, Secret};
use super::protocol::{Frame, read_frame, write_array};
use super::store::{Appended, Op, Pos, Value, WriteError};

const WORKERS: usize = 2;
const BURST: usize = 512;

const QUEUED: u8 = 0;
const SENT: u8 = 1;
const ABANDONED: u8 = 2;

/// What became of a forwarded write.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Applied and acknowledged by every replica that must; PUT: existed, DEL: removed;
    /// and where the leader wrote it.
    Ok(u64, Pos),
    /// Not applied (no leader there, expired, never sent): safe to try again.
    NotApplied(String),
    /// Sent, maybe applied; no clear answer. Never retried.
    Unknown(String),
}

struct Job {
    op: Op,
    deadline_ms: u64,
    state: Arc<AtomicU8>,
    tx: Sender<Reply>,
}

#[derive(Default)]
pub struct Pool {
    lanes: Mutex<HashMap<String, Sender<Job>>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Pool {
    /// Sends `op` to the leader at `addr` and waits for its answer until `deadline`.
    pub fn call(&self, node: &Node, addr: &str, op: &Op, deadline: Instant) -> Reply {
        let tx = {
            let mut lanes = self.lanes.lock().unwrap_or_else(|e| e.into_inner());
            lanes
                .entry(addr.to_string())
                .or_insert_with(|| {
                    let (tx, rx) = unbounded::<Job>();
                    // The leader answers by each request's deadline; one that does not
                    // (frozen, partitioned) must not hold a worker forever.
                    let patience = node.write_timeout + Duration::from_secs(2);
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
        let left = deadline.saturating_duration_since(Instant::now());
        let (rtx, rrx) = bounded(1);
        let state = Arc::new(AtomicU8::new(QUEUED));
        let job =
            Job { op: op.clone(), deadline_ms: now_ms() + left.as_millis() as u64, state: state.clone(), tx: rtx };
        if tx.send(job).is_err() {
            return Reply::NotApplied("forwarding lane closed".into());
        }
        match rrx.recv_deadline(deadline) {
            Ok(r) => r,
            Err(_) => match state.compare_exchange(QUEUED, ABANDONED, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => Reply::NotApplied("the leader did not take the write in time".into()),
                Err(_) => Reply::Unknown("no answer from the leader within the write timeout".into()),
            },
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
        if conn.is_none() {
            match Peer::connect(addr, secret, Duration::from_secs(2)).and_then(|p| {
                p.set_timeouts(patience)?;
                Ok(p)
            }) {
                Ok(p) => conn = Some(p),
                Err(e) => {
                    debug!("forwarding to {addr}: {e}");
                    for j in burst {
                        let _ = j.tx.send(Reply::NotApplied(format!("cannot reach the leader: {e}")));
                    }
                    continue;
                }
            }
        }
        // Claim the jobs whose clients still wait; the others are never sent.
        burst.retain(|j| j.state.compare_exchange(QUEUED, SENT, Ordering::SeqCst, Ordering::SeqCst).is_ok());
        if burst.is_empty() {
            continue;
        }
        let p = conn.as_mut().expect("connected above");
        let replies = (|| -> Result<Vec<Reply>, PeerError> {
            for j in &burst {
                let dl = j.deadline_ms.to_string().into_bytes();
                match &j.op {
                    Op::Put(k, v) => write_array(&mut p.w, &[b"PUT", &dl, k, v])?,
                    Op::Del(ks) => {
                        let mut a: Vec<&[u8]> = vec![b"DEL", &dl];
                        a.extend(ks.iter().map(|k| &k[..]));
                        write_array(&mut p.w, &a)?
                    }
                }
            }
            p.w.flush()?;
            let mut out = Vec::with_capacity(burst.len());
            for _ in 0..burst.len() {
                let reply = p.recv()?;
                out.push(match &reply[..] {
                    [ok, n, t, q] if ok == b"OK" => {
                        let num = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|n| n.parse().ok());
                        match (num(n), num(t), num(q)) {
                            (Some(n), Some(term), Some(seq)) => Reply::Ok(n, Pos { term, seq }),
                            _ => Reply::Unknown("the leader answered a malformed OK".into()),
                        }
                    }
                    // A leader of an older version: no position, nothing to wait for.
                    [ok, n] if ok == b"OK" => {
                        Reply::Ok(std::str::from_utf8(n).ok().and_then(|n| n.parse().ok()).unwrap_or(0), Pos::default())
                    }
                    [n] if n == b"NOTLEADER" => Reply::NotApplied("the server does not lead".into()),
                    [n] if n == b"EXPIRED" => Reply::NotApplied("the request expired before the leader got it".into()),
                    [e, why] if e == b"UNKNOWN" => Reply::Unknown(String::from_utf8_lossy(why).into_owned()),
                    other => Reply::Unknown(format!(
                        "the leader answered {:?}",
                        other.first().map(|v| String::from_utf8_lossy(v))
                    )),
                });
            }
            Ok(out)
        })();
        match replies {
            Ok(rs) => {
                for (j, r) in burst.into_iter().zip(rs) {
                    let _ = j.tx.send(r);
                }
            }
            Err(e) => {
                debug!("forwarding to {addr}: {e}");
                if let Some(p) = conn.take() {
                    p.shutdown();
                }
                for j in burst {
                    let _ = j.tx.send(Reply::Unknown(format!("the connection to the leader failed: {e}")));
                }
            }
        }
    }
    if let Some(p) = conn {
        p.shutdown();
    }
}

/// Per forwarded request: appended, or the reply to give at once.
type Taken = Result<Appended, &'static [u8]>;

fn parse(msg: &[Vec<u8>]) -> Option<(u64, Op)> {
    let dl = std::str::from_utf8(msg.get(1)?).ok()?.parse().ok()?;
    match msg {
        [c, _, k, v] if c == b"PUT" => Some((dl, Op::Put(k.clone(), Value::from(&v[..])))),
        [c, _, ks @ ..] if c == b"DEL" && !ks.is_empty() => Some((dl, Op::Del(ks.to_vec()))),
        _ => None,
    }
}

/// Leader side of a forwarding connection: applies each burst of PUT/DEL frames as this
/// server's own writes (only while it leads, only before each one's deadline), waits once
/// for the replicas' acks of the last one, answers them all in order.
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
        let now = now_ms();
        let mut latest = now;
        let mut results: Vec<Taken> = Vec::with_capacity(burst.len());
        for msg in burst.drain(..) {
            let Some((dl, op)) = parse(&msg) else {
                results.push(Err(b"unknown peer request"));
                continue;
            };
            if dl <= now_ms() {
                results.push(Err(b"EXPIRED"));
                continue;
            }
            latest = latest.max(dl);
            results.push(node.store.append(op).map_err(|_| &b"NOTLEADER"[..]));
        }
        let deadline = Instant::now() + Duration::from_millis(latest - now);
        let last = results.iter().filter_map(|r| r.as_ref().ok()).map(|a| (a.seq, a.epoch)).max();
        let acked = match last {
            Some((seq, epoch)) => node.store.wait_acked(seq, epoch, deadline).map(|_| ()),
            None => Ok(()),
        };
        for res in results {
            match (res, &acked) {
                (Ok(a), Ok(())) => write_array(
                    w,
                    &[
                        b"OK",
                        a.count.to_string().as_bytes(),
                        a.term.to_string().as_bytes(),
                        a.seq.to_string().as_bytes(),
                    ],
                )?,
                (Ok(_), Err(WriteError::Timeout)) => write_array(w, &[b"UNKNOWN", super::TIMEOUT_TEXT.as_bytes()])?,
                (Ok(_), Err(_)) => write_array(w, &[b"UNKNOWN", super::LOST_TEXT.as_bytes()])?,
                (Err(b"EXPIRED"), _) => write_array(w, &[b"EXPIRED"])?,
                (Err(b"NOTLEADER"), _) => write_array(w, &[b"NOTLEADER"])?,
                (Err(why), _) => write_array(w, &[b"UNKNOWN", why])?,
            }
        }
        w.flush()?;
        match read_frame(r) {
            Ok(Frame::Resp(a)) => burst.push(a),
            _ => return Ok(()),
        }
    }
}
