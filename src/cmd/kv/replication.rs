//! Replication: how servers agree on one history of writes.
//!
//! # The protocol
//!
//! **Roles.** Every server registers an EPHEMERAL_SEQUENTIAL node under
//! `/kv/NAME/election` holding its advertised address; the smallest sequence number leads
//! (recipes::election). The others follow. A leader first *syncs* (below), then takes
//! writes; a follower serves reads from its copy and forwards writes to the leader.
//!
//! **History identity.** Every write has a position `Pos = (term, seq)`: `term` is the
//! sequence number of the election node of the leader that wrote it (it only grows from
//! one leader to the next), `seq` counts writes and is continued by each new leader from
//! its own last one. A leader writes each seq once in its term, so two servers holding a
//! write at the same position hold the same chain up to it (Raft's log matching):
//! [`St::has`] checks the entry at that position, not just the number. Histories are
//! ordered Raft's way: higher last term, then higher seq.
//!
//! Besides its last position, each server says what its history is worth ([`Claim`]):
//! `complete` (the whole history from genesis, and in every ack set since it got it:
//! it holds every acknowledged write up to its last position), `led-T` (complete, but it
//! lost its ZooKeeper session while leading term T: complete only if no leader took
//! writes since), `stale` (the whole chain, but it lost its session as a follower, so
//! the leader may have acknowledged writes without it), `partial` (joined without
//! `--catch-up`: it got `BASE`, a position without the writes before it; this is the
//! seed's stale read, and a fresh join cannot fake completeness because only the leader
//! hands it out), `fresh` (nothing yet). A claim only improves through the leader: a
//! snapshot, or a resumed `stale`/`led` chain once it has replayed to the leader's last
//! position at the time (`FROM ... mark`), makes it `complete`.
//!
//! ZooKeeper keeps one fact besides the election: `/kv/NAME/history` holds the term of
//! the last leader that took writes (absent: the cluster never took a write, genesis).
//!
//! **What a new leader does before taking writes** (ZAB's discovery and sync):
//! 1. It reads the election directory's members (with a watch) and `/kv/NAME/history`
//!    together, then the addresses it does not know yet all at once: two ZooKeeper round
//!    trips at most, re-done each time it retries (every server keeps the members'
//!    addresses up to date while it campaigns; an election node's data never changes, so
//!    a known name's address is its address). `PROBE term` to every live registered server (retried until
//!    each answers or its node vanishes): each answers `STATE claim term seq`, and from
//!    then on refuses streams from older terms (the old leader can get no more acks).
//! 2. A server is complete when its claim says so ([`Claim::complete`]) given the history
//!    read in 1 (no older leader can write it any more: its election node is gone, so its
//!    session or its candidacy ended; a newer one makes step 4's compare-and-set fail).
//!    It picks the most up-to-date complete live server; if that
//!    one is ahead of it, or it is not complete itself, it `FETCH`es that server's state
//!    (the log after its own last position when its chain is a prefix, else a snapshot).
//! 3. If no live server is complete (every server that held the history is gone), it
//!    takes writes anyway, as the start of a new history, says so in the log and in
//!    `ROLE` (`leader (history incomplete: ...)`): for an in-memory store, the keys
//!    acknowledged before it whose last copy died are gone for good.
//! 4. It writes its term into `/kv/NAME/history` (compare-and-set on the version read in
//!    1: a leader that finds a newer term there gives its candidacy up), then takes writes
//!    and opens a stream to every replica it probed; a server that joined or left since
//!    the read in 1 fired its watch, and is added (like any later join) or dropped by the
//!    membership thread. Its lease starts at the history write.
//!
//! **Streams** (leader -> replica, one connection each): `REPL term leader replica`
//! (refused by a server that is not that election node: a restart on a dead one's address); the replica
//! answers `STATE claim term seq` (or `catchup` with `--catch-up` and nothing yet); the
//! leader starts it with one of `BASE term seq` (a fresh replica without `--catch-up`:
//! it becomes `partial` at the position the leader had when it added the replica), `FROM
//! term seq mark` (its chain continues in our log; `mark` > 0: it becomes complete at that
//! seq), or a snapshot `SNAP term seq` + `KV key value`... + `SNAPEND seq` (anything else:
//! `--catch-up`, a different chain, one behind the log budget). A snapshot is copied in
//! chunks under short read locks while writes go on (fuzzy, like ZooKeeper's): the replica
//! replays the log from the snapshot's start position (writes are idempotent: a PUT sets a
//! whole value) and serves reads again, complete, once it reaches the `SNAPEND` seq.
//! Then `OP term seq PUT key value` / `OP term seq DEL key...`, and `PING` when idle for
//! a second; the replica applies in seq order only and answers `ACK seq` (its last, read
//! under the lock it applied under) after each burst and each `PING`. Both sides drop a
//! stream silent for [`SILENCE`]; the leader reconnects.
//!
//! **Acks.** A write is acknowledged to the client when every replica that was in the
//! leader's replica set when it was applied has acknowledged it; a replica added later
//! ([`Replica::added_at`]) starts its stream at or before that point. A replica leaves the
//! set only when its election node vanishes. A follower forwards writes only once a
//! stream from the current leader is attached, so a write made through a follower is
//! streamed back to it (read your writes). The leader's `OK n term seq` names the write's
//! position, and the follower answers its client `OK` only once its copy has reached it
//! (`seq` under that term or a later one): a follower whose session expired (frozen, cut
//! off from ZooKeeper) is dropped from the set and may still forward before it notices.
//! If it does not get there by the deadline, the client gets `ERR outcome unknown`.
//!
//! **Lease.** A leader takes and acknowledges writes only while its lease holds: 2/3 of
//! the session timeout from the start of its last ZooKeeper round trip that succeeded
//! (renewed every quarter of the timeout). ZooKeeper expires a session no sooner than a
//! whole timeout after it last heard from it, so no other leader exists before the lease
//! runs out. A leader frozen past its session's expiry thaws with its lease run out and
//! learns of the expiry before it renews it. With replicas, the probes fence it anyway
//! (they refuse its stream); without any, only the lease does. Left open: a write that was
//! acknowledged, then the process froze before the `OK` left it.
//!
//! **At most once.** A forwarded write carries a deadline; the leader answers `OK ...`,
//! `NOTLEADER` or `EXPIRED` (not applied: the follower may try the next leader) or
//! `UNKNOWN why` (applied, but leadership ended or acks did not come in time: the
//! client gets `ERR outcome unknown: ...`, never a retry). A queued forward that the
//! client gave up on is never sent (see `forward`).

use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use log::{debug, info, warn};

use super::Node;
use super::peer::{Peer, PeerError, refusal};
use super::protocol::{Frame, FrameError, read_frame, write_array};
use super::store::{Claim, Map, Op, Pos, St, Value};

const BATCH: usize = 4096;
/// Keys per snapshot chunk (one short read lock each).
const CHUNK: usize = 1024;
/// A stream with nothing to send pings this often ...
const HEARTBEAT: Duration = Duration::from_secs(1);
/// ... and either side drops a stream silent (or blocked) this long.
pub const SILENCE: Duration = Duration::from_secs(10);

fn num(v: &[u8]) -> Option<u64> {
    std::str::from_utf8(v).ok()?.parse().ok()
}

fn s(n: u64) -> Vec<u8> {
    n.to_string().into_bytes()
}

fn pos(t: &[u8], q: &[u8]) -> Option<Pos> {
    Some(Pos { term: num(t)?, seq: num(q)? })
}

/// What a server says about itself at the start of a stream or fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hello {
    /// Nothing yet, wants a snapshot.
    CatchUp,
    At(Claim, Pos),
}

impl Hello {
    fn parse(a: &[Vec<u8>]) -> Option<Hello> {
        match a {
            [w, c] if w == b"STATE" && c == b"catchup" => Some(Hello::CatchUp),
            [w, c, t, q] if w == b"STATE" => Some(Hello::At(Claim::parse(c)?, pos(t, q)?)),
            _ => None,
        }
    }

    fn words(self) -> Vec<Vec<u8>> {
        match self {
            Hello::CatchUp => vec![b"STATE".to_vec(), b"catchup".to_vec()],
            Hello::At(c, p) => vec![b"STATE".to_vec(), c.word().into_bytes(), s(p.term), s(p.seq)],
        }
    }
}

/// Our own hello, from our state.
pub fn hello(st: &St, catch_up: bool) -> Hello {
    if st.claim == Claim::Fresh && catch_up { Hello::CatchUp } else { Hello::At(st.claim, st.last) }
}

/// Where a stream (or fetch) starts.
#[derive(Debug, Clone, Copy)]
enum Start {
    Base(Pos),
    From(Pos, u64),
    Snap,
}

/// Where to start a server that says `hello`, given our state (we are complete: the
/// leader, or a complete server fetched from). `added_at`: the seq from which writes wait
/// for it (streams only).
fn start_for(st: &St, hello: Hello, added_at: Option<u64>) -> Start {
    match hello {
        Hello::CatchUp => Start::Snap,
        Hello::At(Claim::Fresh, _) => match added_at {
            // Fresh without --catch-up: at the position from which writes wait for it.
            Some(at) if at == st.last.seq => Start::Base(st.last),
            Some(at) if at == st.base.seq => Start::Base(st.base),
            Some(at) => st.entry(at).map_or(Start::Base(st.last), |e| Start::Base(e.pos)),
            None => Start::Snap,
        },
        Hello::At(claim, p) if p.seq <= st.last.seq && st.has(p) => {
            let mark = if matches!(claim, Claim::Stale | Claim::Led(_)) { st.last.seq.max(1) } else { 0 };
            Start::From(p, mark)
        }
        Hello::At(..) => Start::Snap,
    }
}

/// Sends the start; returns the next seq to send.
fn send_start(node: &Node, w: &mut BufWriter<TcpStream>, start: Start) -> Result<u64, PeerError> {
    match start {
        Start::Base(p) => {
            write_array(w, &[b"BASE", &s(p.term), &s(p.seq)])?;
            Ok(p.seq + 1)
        }
        Start::From(p, mark) => {
            write_array(w, &[b"FROM", &s(p.term), &s(p.seq), &s(mark)])?;
            Ok(p.seq + 1)
        }
        Start::Snap => {
            let p0 = node.store.st().last;
            write_array(w, &[b"SNAP", &s(p0.term), &s(p0.seq)])?;
            let mut after: Option<Vec<u8>> = None;
            let mut n = 0u64;
            loop {
                let chunk = node.store.chunk(after.as_deref(), CHUNK);
                for (k, v) in &chunk {
                    write_array(w, &[b"KV", k, v])?;
                }
                n += chunk.len() as u64;
                match chunk.into_iter().last() {
                    Some((k, _)) => after = Some(k),
                    None => break,
                }
            }
            let end = node.store.st().last.seq;
            write_array(w, &[b"SNAPEND", &s(end)])?;
            debug!("sent a snapshot of {n} keys from {p0} (replayed up to seq {end})");
            Ok(p0.seq + 1)
        }
    }
}

/// The log entries from `next` on (at most a batch); Err when `next` left the log.
fn batch(st: &St, next: u64) -> Result<Vec<Arc<super::store::Entry>>, PeerError> {
    if next <= st.last.seq && st.entry(next).is_none() {
        return Err(PeerError::Refused(format!("seq {next} is no longer in the log; resending a snapshot")));
    }
    Ok((next..=st.last.seq).take(BATCH).filter_map(|q| st.entry(q).cloned()).collect())
}

fn send_ops(w: &mut impl Write, batch: &[Arc<super::store::Entry>]) -> std::io::Result<()> {
    for e in batch {
        let (t, q) = (s(e.pos.term), s(e.pos.seq));
        match &e.op {
            Op::Put(k, v) => write_array(w, &[b"OP", &t, &q, b"PUT", k, v])?,
            Op::Del(ks) => {
                let mut a: Vec<&[u8]> = vec![b"OP", &t, &q, b"DEL"];
                a.extend(ks.iter().map(|k| &k[..]));
                write_array(w, &a)?
            }
        }
    }
    Ok(())
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

fn stream_once(node: &Arc<Node>, name: &str, addr: &str, epoch: u64, term: u64) -> Result<(), PeerError> {
    let mut p = Peer::connect(addr, &node.secret, Duration::from_secs(2))?;
    let me = node.name();
    // The replica's node name too: a process restarted on the address of a registered but
    // dead one must not acknowledge in its name.
    let answer = p.call(&[b"REPL", &s(term), me.as_bytes(), name.as_bytes()])?;
    let Some(hello) = Hello::parse(&answer) else { return Err(refusal(&answer)) };
    p.set_timeouts(SILENCE)?;
    let start = {
        let st = node.store.st();
        let Some(r) = st.replicas.get(name).filter(|_| st.epoch == epoch) else { return Ok(()) };
        let start = start_for(&st, hello, Some(r.added_at));
        drop(st);
        start
    };
    let mut next = send_start(node, &mut p.w, start)?;
    p.w.flush()?;
    match start {
        Start::Base(pos) => info!("replica {name} at {addr} joined empty: it gets writes after {pos} (partial)"),
        Start::From(pos, _) => info!("replica {name} at {addr} is at {pos}: sending it the writes after that"),
        Start::Snap => info!("replica {name} at {addr}: sent a snapshot (it said {hello:?})"),
    }

    // Ack reader: records progress, wakes writers; on failure marks the stream broken and
    // wakes the sender, so a write waiting for this replica is not stranded.
    let broken = Arc::new(AtomicBool::new(false));
    let reader = {
        let node = node.clone();
        let name = name.to_string();
        let broken = broken.clone();
        let mut r: BufReader<TcpStream> = p.r;
        std::thread::Builder::new().name(format!("ack-{name}")).spawn(move || {
            loop {
                let a = match read_frame(&mut r) {
                    Ok(Frame::Resp(a)) => a,
                    Err(FrameError::Io(e)) if matches!(e.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
                        warn!("replica {name}: no ack for {SILENCE:?} (frozen or cut off?): dropping its stream");
                        break;
                    }
                    _ => break,
                };
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
                    let (g, t) = node.store.grew.wait_timeout(st, HEARTBEAT).unwrap_or_else(|e| e.into_inner());
                    st = g;
                    if t.timed_out() && st.last.seq < next {
                        drop(st);
                        write_array(&mut w, &[b"PING"])?;
                        w.flush()?;
                        st = node.store.st();
                    }
                }
                yielded = false;
                let b = batch(&st, next);
                drop(st);
                b?
            };
            send_ops(&mut w, &batch)?;
            w.flush()?;
            next = batch.last().map_or(next, |e| e.pos.seq + 1);
        }
    })();
    let _ = w.get_ref().shutdown(std::net::Shutdown::Both);
    result
}

/// How a received history ended.
enum Ended {
    /// The other side closed, or sent something we do not take.
    Closed,
    /// A newer stream or leader replaced this one.
    Replaced,
    /// `END seq` of a fetch.
    Done,
}

/// Receives a start and then writes (a stream, or a fetch when `acks` is None), applying
/// them while `valid(st)` holds. Answers `ACK last` after each burst and each `PING` on a
/// stream. `on_start` runs under the lock once the start is applied.
fn receive(
    node: &Node,
    r: &mut BufReader<impl Read>,
    mut acks: Option<&mut BufWriter<TcpStream>>,
    from: &str,
    valid: &dyn Fn(&St) -> bool,
    on_start: &dyn Fn(&mut St),
) -> std::io::Result<Ended> {
    let parse_op = |a: &[Vec<u8>]| -> Option<(Pos, Op)> {
        match a {
            [op, t, q, verb, rest @ ..] if op == b"OP" => {
                let p = pos(t, q)?;
                match (&verb[..], rest) {
                    (b"PUT", [k, v]) => Some((p, Op::Put(k.clone(), Value::from(&v[..])))),
                    (b"DEL", ks) if !ks.is_empty() => Some((p, Op::Del(ks.to_vec()))),
                    _ => None,
                }
            }
            _ => None,
        }
    };
    let mut started = false;
    let mut pending: Option<Vec<Vec<u8>>> = None;
    loop {
        let a = match pending.take() {
            Some(a) => a,
            None => match read_frame(r) {
                Ok(Frame::Resp(a)) => a,
                _ => return Ok(Ended::Closed),
            },
        };
        let ack: Option<u64>;
        match &a[..] {
            [op, ..] if op == b"OP" && started => {
                // Everything already received is applied under one lock.
                let Some(first) = parse_op(&a) else { return Ok(Ended::Closed) };
                let mut ops = vec![first];
                while !r.buffer().is_empty() && ops.len() < BATCH {
                    let Ok(Frame::Resp(b)) = read_frame(r) else { return Ok(Ended::Closed) };
                    match parse_op(&b) {
                        Some(o) => ops.push(o),
                        None => {
                            pending = Some(b);
                            break;
                        }
                    }
                }
                let mut st = node.store.st();
                if !valid(&st) {
                    // Replaced by a newer leader's stream, or the election already named a
                    // newer leader: an old leader must not get our ack (split brain).
                    return Ok(Ended::Replaced);
                }
                for (p, op) in ops {
                    if p.seq != st.last.seq + 1 {
                        drop(st);
                        warn!("replication from {from}: got seq {} out of order; dropping the stream", p.seq);
                        return Ok(Ended::Closed);
                    }
                    node.store.apply(&mut st, p, op);
                }
                ack = Some(st.last.seq);
                drop(st);
                node.store.grew.notify_all(); // a forwarded write's client may wait for it
            }
            [b] if b == b"PING" && started => ack = Some(node.store.st().last.seq),
            [b, t, q] if b == b"BASE" && !started => {
                let Some(p) = pos(t, q) else { return Ok(Ended::Closed) };
                let mut st = node.store.st();
                if !valid(&st) {
                    return Ok(Ended::Replaced);
                }
                st.reset_log(p);
                // Nothing before seq 0: a join at the cluster's start misses nothing.
                st.claim = if p.seq == 0 { Claim::Complete } else { Claim::Partial };
                st.ready = true;
                on_start(&mut st);
                ack = Some(p.seq);
                drop(st);
                started = true;
                if p.seq > 0 {
                    info!("joined at {p} (partial): older keys are not here until written again (no --catch-up)");
                }
            }
            [b, t, q, m] if b == b"FROM" && !started => {
                let (Some(p), Some(mark)) = (pos(t, q), num(m)) else { return Ok(Ended::Closed) };
                let mut st = node.store.st();
                if !valid(&st) {
                    return Ok(Ended::Replaced);
                }
                if st.last != p {
                    return Ok(Ended::Closed); // we moved meanwhile: start over
                }
                if mark > 0 {
                    if st.last.seq >= mark {
                        st.claim = Claim::Complete;
                    } else {
                        st.complete_at = Some(mark);
                    }
                }
                on_start(&mut st);
                ack = Some(st.last.seq);
                drop(st);
                started = true;
                debug!("resuming from {p} (from {from})");
            }
            [b, t, q] if b == b"SNAP" && !started => {
                let Some(p) = pos(t, q) else { return Ok(Ended::Closed) };
                let mut map = Map::new();
                let end = loop {
                    match read_frame(r) {
                        Ok(Frame::Resp(kv)) if kv.len() == 3 && kv[0] == b"KV" => {
                            let mut it = kv.into_iter().skip(1);
                            if let (Some(k), Some(v)) = (it.next(), it.next()) {
                                map.insert(k, Value::from(v));
                            }
                        }
                        Ok(Frame::Resp(e)) if e.len() == 2 && e[0] == b"SNAPEND" => match num(&e[1]) {
                            Some(n) => break n,
                            None => return Ok(Ended::Closed),
                        },
                        _ => return Ok(Ended::Closed),
                    }
                };
                let n = map.len();
                let mut st = node.store.st();
                if !valid(&st) {
                    return Ok(Ended::Replaced);
                }
                node.store.replace(&mut st, p, map);
                // Fuzzy until the replay reaches `end`: no reads, not complete, till then.
                st.claim = Claim::Partial;
                if p.seq >= end {
                    st.ready = true;
                    st.claim = Claim::Complete;
                } else {
                    st.ready = false;
                    st.ready_at = Some(end);
                    st.complete_at = Some(end);
                }
                on_start(&mut st);
                ack = Some(p.seq);
                drop(st);
                started = true;
                info!("copied the state of {from}: {n} keys at {p}, replaying to seq {end}");
            }
            [e, q] if e == b"END" && started && acks.is_none() => {
                let want = num(q).unwrap_or(u64::MAX);
                let st = node.store.st();
                let done = st.last.seq == want;
                drop(st);
                return Ok(if done { Ended::Done } else { Ended::Closed });
            }
            _ => return Ok(Ended::Closed),
        }
        if let (Some(w), Some(seq)) = (acks.as_mut(), ack)
            && pending.is_none()
            && r.buffer().is_empty()
        {
            write_array(&mut **w, &[b"ACK", &s(seq)])?;
            w.flush()?;
        }
    }
}

/// Replica: serves a replication stream from leader `leader` of `term` on an
/// authenticated peer connection, until it ends or a newer stream replaces it.
pub fn serve_stream(
    node: &Node,
    r: &mut BufReader<impl Read>,
    w: &mut BufWriter<TcpStream>,
    term: u64,
    leader: &str,
    to: &str,
) -> std::io::Result<()> {
    if to != node.name() {
        write_array(w, &[b"ERR", format!("I am not {to} (it is gone; I registered anew)").as_bytes()])?;
        return w.flush();
    }
    let (gen_, hello) = {
        let mut st = node.store.st();
        if term < st.known_term || st.is_leader() || st.role == super::store::Role::Stopping {
            drop(st);
            write_array(w, &[b"ERR", b"not accepting a stream from that leader (stale term, or I lead)"])?;
            return w.flush();
        }
        st.known_term = term;
        st.stream_gen += 1;
        st.attached = None;
        (st.stream_gen, hello(&st, node.catch_up))
    };
    let words = hello.words();
    let refs: Vec<&[u8]> = words.iter().map(|v| &v[..]).collect();
    write_array(w, &refs)?;
    w.flush()?;
    debug!("replication stream from {leader} (term {term})");
    let valid = |st: &St| st.stream_gen == gen_ && st.known_term <= term;
    let attach = |st: &mut St| {
        st.attached = Some(term);
        node.store.role_changed.notify_all();
    };
    let out = receive(node, r, Some(w), leader, &valid, &attach);
    let mut st = node.store.st();
    if st.stream_gen == gen_ {
        st.attached = None;
    }
    drop(st);
    out.map(|_| ())
}

/// Any server: answers a new leader's `PROBE term` with its state, and from then on
/// refuses streams from older leaders.
pub fn serve_probe(node: &Node, w: &mut BufWriter<TcpStream>, term: u64) -> std::io::Result<()> {
    let mut st = node.store.st();
    if term < st.known_term {
        drop(st);
        write_array(w, &[b"ERR", b"stale term"])?;
        return w.flush();
    }
    if term > st.known_term {
        st.known_term = term;
        st.stream_gen += 1; // an older leader's stream stops applying
        st.attached = None;
    }
    let words = hello(&st, node.catch_up).words();
    drop(st);
    let refs: Vec<&[u8]> = words.iter().map(|v| &v[..]).collect();
    write_array(w, &refs)?;
    w.flush()
}

/// A complete server: sends its state to a new leader of `term` that says `hello`, then
/// `END last`.
pub fn serve_fetch(node: &Node, w: &mut BufWriter<TcpStream>, term: u64, hello: Hello) -> std::io::Result<()> {
    let (start, last) = {
        let mut st = node.store.st();
        if term < st.known_term || st.is_leader() {
            drop(st);
            write_array(w, &[b"ERR", b"stale term, or I lead"])?;
            return w.flush();
        }
        st.known_term = term;
        st.stream_gen += 1;
        (start_for(&st, hello, None), st.last.seq)
    };
    let io = |e: PeerError| match e {
        PeerError::Io(e) => e,
        PeerError::Refused(m) => std::io::Error::other(m),
    };
    let mut next = send_start(node, w, start).map_err(io)?;
    // Nothing is written here while a new leader syncs (older streams are refused), so
    // `last` stays our last.
    while next <= last {
        let b = batch(&node.store.st(), next).map_err(io)?;
        if b.is_empty() {
            break;
        }
        send_ops(w, &b)?;
        next = b.last().map_or(next, |e| e.pos.seq + 1);
    }
    write_array(w, &[b"END", &s(last)])?;
    w.flush()?;
    info!("sent our state to the new leader (term {term}), up to seq {last}");
    Ok(())
}

/// New leader: asks the server at `addr` for its state.
pub fn probe(node: &Node, addr: &str, term: u64) -> Result<Hello, PeerError> {
    let mut p = Peer::connect(addr, &node.secret, Duration::from_secs(2))?;
    let a = p.call(&[b"PROBE", &s(term)])?;
    p.shutdown();
    Hello::parse(&a).ok_or_else(|| refusal(&a))
}

/// New leader: copies the state of the complete server at `addr` (the log after our last
/// position when our chain is a prefix of its own, else a snapshot). Ok(true) once we hold
/// it and are complete.
pub fn fetch(node: &Node, addr: &str, term: u64, epoch: u64) -> Result<bool, PeerError> {
    let mut p = Peer::connect(addr, &node.secret, Duration::from_secs(2))?;
    p.set_timeouts(SILENCE)?;
    let h = {
        let st = node.store.st();
        // Ask for a snapshot unless our chain may continue in theirs.
        if st.claim.full() { Hello::At(st.claim, st.last) } else { Hello::CatchUp }
    };
    let mut msg = vec![b"FETCH".to_vec(), s(term)];
    msg.extend(h.words().into_iter().skip(1));
    let refs: Vec<&[u8]> = msg.iter().map(|v| &v[..]).collect();
    write_array(&mut p.w, &refs)?;
    p.w.flush()?;
    let valid = |st: &St| st.epoch == epoch;
    let ended = receive(node, &mut p.r, None, addr, &valid, &|_| {})?;
    p.shutdown();
    let st = node.store.st();
    Ok(matches!(ended, Ended::Done) && st.claim == Claim::Complete)
}

/// Parses `FETCH term <hello words>`.
pub fn parse_fetch(a: &[Vec<u8>]) -> Option<(u64, Hello)> {
    let term = num(a.get(1)?)?;
    let mut h = vec![b"STATE".to_vec()];
    h.extend_from_slice(&a[2..]);
    Some((term, Hello::parse(&h)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::kv::store::Store;

    #[test]
    fn where_a_replica_starts() {
        let s = Store::new(false, 1 << 20);
        let mut st = s.st();
        for seq in 1..=5 {
            s.apply(&mut st, Pos { term: 7, seq }, Op::Put(b"k".to_vec(), Value::from(&b"v"[..])));
        }
        let at = |c, t, q| Hello::At(c, Pos { term: t, seq: q });
        assert!(matches!(start_for(&st, at(Claim::Fresh, 0, 0), Some(3)), Start::Base(p) if p.seq == 3));
        assert!(matches!(start_for(&st, Hello::CatchUp, Some(3)), Start::Snap));
        assert!(matches!(start_for(&st, at(Claim::Complete, 7, 4), Some(0)), Start::From(p, 0) if p.seq == 4));
        assert!(matches!(start_for(&st, at(Claim::Stale, 7, 2), Some(0)), Start::From(_, 5)));
        assert!(matches!(start_for(&st, at(Claim::Partial, 7, 2), Some(0)), Start::From(_, 0)));
        // Same seq, another term: a different chain (an old leader's unacknowledged write).
        assert!(matches!(start_for(&st, at(Claim::Led(6), 6, 4), Some(0)), Start::Snap));
        // Ahead of us: a snapshot brings it back to our history.
        assert!(matches!(start_for(&st, at(Claim::Complete, 7, 9), Some(0)), Start::Snap));
        drop(st);
    }
}
