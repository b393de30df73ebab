//! Replication: one stream per live replica, opened by the leader.
//!
//! Leader side, per replica: a sender thread that ships the log in order (batching
//! whatever accumulated while the previous batch was on the wire) and an ack reader that
//! records how far the replica got. The stream starts where the replica's history joins
//! ours: a fresh replica (just started, no `--catch-up`) is placed at our head (it misses
//! older keys: the stale-read scenario); a replica whose last position is in our log gets
//! the rest of it; anything else (`--catch-up`, a replica ahead of or diverged from us
//! after a failover, one too far behind) gets a full snapshot, then the log.
//!
//! Messages (RESP arrays): leader `REPL term name`; replica `FRESH` | `CATCHUP` |
//! `AT term seq` | `ERR why`; then leader `BASE term seq` | `SNAP term seq n` + n x
//! `KV key value` | `OP term seq PUT key value` | `OP term seq DEL key`; replica
//! `ACK seq` after each burst it applied.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use log::{debug, info, warn};

use super::Node;
use super::peer::{Peer, PeerError, refusal};
use super::protocol::{Frame, read_frame, write_array};
use super::store::{Op, Pos, Role};

const BATCH: usize = 4096;

fn num(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn s(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

/// Leader: starts the stream to replica `name` for this leadership (`epoch`).
pub fn spawn_stream(node: Arc<Node>, name: String, addr: String, epoch: u64, term: u64) {
    let spawned = std::thread::Builder::new().name(format!("repl-{name}")).spawn(move || {
        let mut failures = 0u32;
        while alive(&node, &name, epoch) {
            match stream_once(&node, &name, &addr, epoch, term) {
                Ok(()) => return,
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(50) {
                        warn!("replica {name} at {addr}: {e}; retrying");
                    }
                    // Until it is back, writes wait for it (or for its node to vanish).
                    let st = node.store.st();
                    let _ = node.store.grew.wait_timeout(st, Duration::from_millis(100));
                }
            }
        }
    });
    if let Err(e) = spawned {
        warn!("cannot start a replication thread: {e}");
    }
}

fn alive(node: &Node, name: &str, epoch: u64) -> bool {
    let st = node.store.st();
    st.epoch == epoch && st.replicas.contains_key(name)
}

enum Start {
    Base(Pos),
    Resume(Pos),
    Snapshot(Pos, HashMap<Vec<u8>, Vec<u8>>),
}

fn stream_once(node: &Arc<Node>, name: &str, addr: &str, epoch: u64, term: u64) -> Result<(), PeerError> {
    let mut p = Peer::connect(addr, &node.secret, Duration::from_secs(2))?;
    let me = node.name();
    let hello = p.call(&[b"REPL", &s(term), me.as_bytes()])?;
    let (start, mut next) = {
        let st = node.store.st();
        if st.epoch != epoch || !st.replicas.contains_key(name) {
            return Ok(());
        }
        let start = match &hello[..] {
            [f] if f == b"FRESH" => Start::Base(st.last),
            [a, t, q] if a == b"AT" => {
                let pos = Pos { term: num(t).unwrap_or(0), seq: num(q).unwrap_or(0) };
                if st.has(pos) && pos.seq <= st.last.seq {
                    Start::Resume(pos)
                } else {
                    Start::Snapshot(st.last, node.store.map.read().unwrap_or_else(|e| e.into_inner()).clone())
                }
            }
            [c] if c == b"CATCHUP" => {
                Start::Snapshot(st.last, node.store.map.read().unwrap_or_else(|e| e.into_inner()).clone())
            }
            other => return Err(refusal(other)),
        };
        let next = match &start {
            Start::Base(p) | Start::Resume(p) | Start::Snapshot(p, _) => p.seq + 1,
        };
        (start, next)
    };
    match &start {
        Start::Base(pos) => {
            write_array(&mut p.w, &[b"BASE", &s(pos.term), &s(pos.seq)])?;
            info!("replica {name} at {addr} joined empty: it gets writes from seq {} on", pos.seq + 1);
        }
        Start::Resume(pos) => {
            info!("replica {name} at {addr} is at {pos}: sending it the writes after that");
        }
        Start::Snapshot(pos, map) => {
            write_array(&mut p.w, &[b"SNAP", &s(pos.term), &s(pos.seq), &s(map.len() as u64)])?;
            for (k, v) in map {
                write_array(&mut p.w, &[b"KV", k, v])?;
            }
            info!("replica {name} at {addr}: sent a snapshot of {} keys at {pos}", map.len());
        }
    }
    drop(start);
    p.w.flush()?;

    // Ack reader: records progress, wakes writers; on failure marks the stream broken and
    // wakes the sender, so a write waiting for this replica is not stranded.
    let broken = Arc::new(AtomicBool::new(false));
    let reader = {
        let node = node.clone();
        let name = name.to_string();
        let broken = broken.clone();
        let mut r: BufReader<TcpStream> = p.r;
        std::thread::Builder::new().name(format!("ack-{name}")).spawn(move || {
            while let Ok(Frame::Resp(a)) = read_frame(&mut r) {
                let Some(seq) = (a.len() == 2 && a[0] == b"ACK").then(|| num(&a[1])).flatten() else { break };
                let mut st = node.store.st();
                if st.epoch != epoch {
                    break;
                }
                if let Some(rep) = st.replicas.get_mut(&name) {
                    rep.acked = rep.acked.max(seq);
                }
                node.store.wake_committed(&mut st);
                drop(st);
            }
            broken.store(true, Ordering::SeqCst);
            let _ = r.get_ref().shutdown(std::net::Shutdown::Both);
            node.store.grew.notify_all();
        })
    };
    if let Err(e) = reader {
        return Err(PeerError::Io(e));
    }
    let mut w: BufWriter<TcpStream> = p.w;
    let result = (|| -> Result<(), PeerError> {
        let mut yielded = false;
        loop {
            let batch: Vec<_> = {
                let mut st = node.store.st();
                loop {
                    if st.epoch != epoch || !st.replicas.contains_key(name) {
                        return Ok(());
                    }
                    if broken.load(Ordering::SeqCst) {
                        return Err(PeerError::Refused("the replica closed the stream".into()));
                    }
                    if st.last.seq >= next {
                        if st.last.seq - next < 8 && !yielded {
                            // Only a few writes so far: let the writers that are running
                            // add theirs, so one send (and one ack) carries more of them.
                            yielded = true;
                            drop(st);
                            std::thread::yield_now();
                            st = node.store.st();
                            continue;
                        }
                        break;
                    }
                    st = node.store.grew.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                yielded = false;
                if st.entry(next).is_none() {
                    return Err(PeerError::Refused(format!(
                        "seq {next} is no longer in the log; resending a snapshot"
                    )));
                }
                (next..=st.last.seq).take(BATCH).filter_map(|q| st.entry(q).cloned()).collect()
            };
            for e in &batch {
                let (t, q) = (s(e.pos.term), s(e.pos.seq));
                match &e.op {
                    Op::Put(k, v) => write_array(&mut w, &[b"OP", &t, &q, b"PUT", k, v])?,
                    Op::Del(k) => write_array(&mut w, &[b"OP", &t, &q, b"DEL", k])?,
                }
            }
            w.flush()?;
            next = batch.last().map_or(next, |e| e.pos.seq + 1);
        }
    })();
    let _ = w.get_ref().shutdown(std::net::Shutdown::Both);
    result
}

/// Replica: serves a replication stream from leader `leader` of `term` on an
/// authenticated peer connection, until it ends or a newer stream replaces it.
pub fn serve_stream(
    node: &Node,
    r: &mut BufReader<impl Read>,
    w: &mut BufWriter<TcpStream>,
    term: u64,
    leader: &str,
) -> std::io::Result<()> {
    let (gen_, hello) = {
        let mut st = node.store.st();
        if term < st.known_term || st.is_leader() || st.role == Role::Stopping {
            drop(st);
            write_array(w, &[b"ERR", b"not accepting a stream from that leader (stale term, or I lead)"])?;
            return w.flush();
        }
        st.known_term = term;
        st.stream_gen += 1;
        let hello: Vec<Vec<u8>> = if st.fresh && node.catch_up {
            vec![b"CATCHUP".to_vec()]
        } else if st.fresh {
            vec![b"FRESH".to_vec()]
        } else {
            vec![b"AT".to_vec(), s(st.last.term), s(st.last.seq)]
        };
        (st.stream_gen, hello)
    };
    let refs: Vec<&[u8]> = hello.iter().map(|v| &v[..]).collect();
    write_array(w, &refs)?;
    w.flush()?;
    debug!("replication stream from {leader} (term {term})");
    let parse_op = |a: &[Vec<u8>]| -> Option<(Pos, Op)> {
        match a {
            [op, t, q, verb, rest @ ..] if op == b"OP" => {
                let p = Pos { term: num(t)?, seq: num(q)? };
                match (&verb[..], rest) {
                    (b"PUT", [k, v]) => Some((p, Op::Put(k.clone(), v.clone()))),
                    (b"DEL", [k]) => Some((p, Op::Del(k.clone()))),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let mut pending: Option<Vec<Vec<u8>>> = None;
    loop {
        let a = match pending.take() {
            Some(a) => a,
            None => match read_frame(r) {
                Ok(Frame::Resp(a)) => a,
                _ => return Ok(()),
            },
        };
        let pos = |t: &[u8], q: &[u8]| Some(Pos { term: num(t)?, seq: num(q)? });
        match &a[..] {
            [op, ..] if op == b"OP" => {
                // Everything already received is applied under one lock.
                let Some(first) = parse_op(&a) else { return Ok(()) };
                let mut ops = vec![first];
                while !r.buffer().is_empty() && ops.len() < 4096 {
                    let Ok(Frame::Resp(b)) = read_frame(r) else { return Ok(()) };
                    match parse_op(&b) {
                        Some(o) => ops.push(o),
                        None => {
                            pending = Some(b);
                            break;
                        }
                    }
                }
                let mut st = node.store.st();
                if st.stream_gen != gen_ || st.known_term > term {
                    // Replaced by a newer leader's stream, or the election already named a
                    // newer leader: an old leader must not get our ack (split brain).
                    return Ok(());
                }
                for (p, op) in ops {
                    if p.seq != st.last.seq + 1 {
                        warn!(
                            "replication from {leader}: got seq {} after {}; dropping the stream",
                            p.seq, st.last.seq
                        );
                        return Ok(());
                    }
                    node.store.apply(&mut st, p, op);
                }
                drop(st);
            }
            [b, t, q] if b == b"BASE" => {
                let Some(p) = pos(t, q) else { return Ok(()) };
                let mut st = node.store.st();
                if st.stream_gen != gen_ {
                    return Ok(());
                }
                st.last = p;
                st.log.clear();
                st.fresh = false;
                drop(st);
                info!("joined at seq {}: older keys are not here until written again (no --catch-up)", p.seq);
            }
            [sn, t, q, n] if sn == b"SNAP" => {
                let (Some(p), Some(n)) = (pos(t, q), num(n)) else { return Ok(()) };
                let mut map = HashMap::with_capacity(n.min(1 << 20) as usize);
                for _ in 0..n {
                    match read_frame(r) {
                        Ok(Frame::Resp(kv)) if kv.len() == 3 && kv[0] == b"KV" => {
                            let mut it = kv.into_iter().skip(1);
                            if let (Some(k), Some(v)) = (it.next(), it.next()) {
                                map.insert(k, v);
                            }
                        }
                        _ => return Ok(()),
                    }
                }
                let mut st = node.store.st();
                if st.stream_gen != gen_ {
                    return Ok(());
                }
                node.store.replace(&mut st, p, map);
                drop(st);
                info!("copied the leader's state: {n} keys at {p}");
            }
            _ => return Ok(()),
        }
        if pending.is_none() && r.buffer().is_empty() {
            let last = node.store.st().last.seq;
            write_array(w, &[b"ACK", &s(last)])?;
            w.flush()?;
        }
    }
}
