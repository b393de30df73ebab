//! The replicated state of one server: the key-value map, the log of recent writes with
//! their positions, what this server's history claims (see `replication`'s protocol), the
//! role it plays, and (on the leader) how far each live replica has acknowledged.
//!
//! Locking: `st` (the small coordination state) is taken before `map` and never held
//! across network I/O; readers take only `map` (a read lock), so GETs never wait for
//! replication. Writers apply under `st`, which orders writes by sequence number.
//!
//! Memory: values are `Arc<[u8]>`, shared by the map and the log entry that wrote them;
//! the log keeps at most `--log-bytes` of recent writes (counted as key + value bytes).
//! The map is ordered, so a snapshot is copied in chunks under short read locks (a fuzzy
//! snapshot, made exact by replaying the log from where the copy began).

use std::collections::{BTreeMap, VecDeque};
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// A value, shared by the map, the log and the replication streams.
pub type Value = Arc<[u8]>;

/// The map: ordered, so a snapshot can be copied in chunks (see [`Store::chunk`]).
pub type Map = BTreeMap<Vec<u8>, Value>;

/// Where a write sits in the history: the leader's term (its election node's sequence
/// number, which only grows from one leader to the next) and the write's sequence number
/// (continued by each new leader from its own last one).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pos {
    pub term: u64,
    pub seq: u64,
}

impl std::fmt::Display for Pos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.term, self.seq)
    }
}

/// A write. A DEL of several keys is one write (atomic: all or none of it is applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>, Value),
    Del(Vec<Vec<u8>>),
}

impl Op {
    pub fn verb(&self) -> &'static str {
        match self {
            Op::Put(..) => "PUT",
            Op::Del(_) => "DEL",
        }
    }

    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put(k, _) => k,
            Op::Del(ks) => ks.first().map_or(&[][..], |k| &k[..]),
        }
    }

    /// What it weighs in the log.
    fn bytes(&self) -> usize {
        64 + match self {
            Op::Put(k, v) => k.len() + v.len(),
            Op::Del(ks) => ks.iter().map(|k| k.len() + 24).sum(),
        }
    }
}

/// A write with its place in the history.
#[derive(Debug)]
pub struct Entry {
    pub pos: Pos,
    pub op: Op,
}

/// What a server's history is worth (the protocol in `replication` explains each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Started empty and nothing received yet.
    Fresh,
    /// The whole history from genesis, and this server was in every ack set since it got
    /// it: it holds every acknowledged write up to its last position.
    Complete,
    /// The whole history up to its last position, but it lost its ZooKeeper session
    /// while leading `term` with writes allowed: complete only if no leader took writes
    /// since (the `history` znode still names `term`).
    Led(u64),
    /// The whole history up to its last position, but it was out of the ack set for a
    /// while (lost its session as a follower): acknowledged writes may be missing.
    Stale,
    /// Joined without `--catch-up` (or copied a partial server): older keys are missing.
    Partial,
}

impl Claim {
    pub fn word(self) -> String {
        match self {
            Claim::Fresh => "fresh".into(),
            Claim::Complete => "complete".into(),
            Claim::Led(t) => format!("led-{t}"),
            Claim::Stale => "stale".into(),
            Claim::Partial => "partial".into(),
        }
    }

    pub fn parse(w: &[u8]) -> Option<Claim> {
        Some(match w {
            b"fresh" => Claim::Fresh,
            b"complete" => Claim::Complete,
            b"stale" => Claim::Stale,
            b"partial" => Claim::Partial,
            _ => Claim::Led(std::str::from_utf8(w.strip_prefix(b"led-")?).ok()?.parse().ok()?),
        })
    }

    /// Holds every write of the history up to its last position (maybe not the newest).
    pub fn full(self) -> bool {
        matches!(self, Claim::Complete | Claim::Led(_) | Claim::Stale)
    }

    /// Holds every acknowledged write, given the last term that took writes (`written`,
    /// from ZooKeeper).
    pub fn complete(self, written: Option<u64>) -> bool {
        match self {
            Claim::Complete => true,
            Claim::Led(t) => written == Some(t),
            _ => false,
        }
    }
}

/// What this server is, as the election says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// No leader known (starting, or the session was lost).
    Electing,
    Leader {
        term: u64,
    },
    Follower {
        leader: String,
        addr: String,
        term: u64,
    },
    /// Shutting down.
    Stopping,
}

/// A live replica, seen by the leader.
#[derive(Debug)]
pub struct Replica {
    pub addr: String,
    /// Highest sequence number it has acknowledged (0: nothing yet).
    pub acked: u64,
    /// Our last sequence number when it was added: writes up to it were acknowledged
    /// without it; every later one waits for it. Its stream starts at or before it.
    pub added_at: u64,
}

/// The coordination state under one mutex.
#[derive(Debug)]
pub struct St {
    pub role: Role,
    /// Leader only: accepting writes (synced, and connected to ZooKeeper).
    pub writable: bool,
    /// Leader only: writes are taken and acknowledged only before this instant, 2/3 of
    /// the session timeout after the start of the last ZooKeeper round trip that
    /// succeeded. ZooKeeper expires a session no sooner than a whole timeout after it last
    /// heard from it, so until then no other leader can exist; a leader frozen past its
    /// session's expiry (SIGSTOP, a long GC pause) finds its lease run out when it thaws,
    /// before it could learn from ZooKeeper that it lost the session.
    pub lease: Option<Instant>,
    /// Leader only: no live server held the complete history when it took over.
    pub lost_history: bool,
    /// Bumped on every change of role: threads started for an old role notice and stop.
    pub epoch: u64,
    /// Last applied write.
    pub last: Pos,
    /// The position the log continues from (`log[0]` follows it).
    pub base: Pos,
    /// Recent writes; `log[i].pos.seq == base.seq + 1 + i`.
    pub log: VecDeque<Arc<Entry>>,
    log_bytes: usize,
    /// What our history is worth.
    pub claim: Claim,
    /// The last term in which we led with writes allowed.
    pub led: Option<u64>,
    /// Leader only: every live replica (registered in the election directory), by node name.
    pub replicas: std::collections::HashMap<String, Replica>,
    /// Highest leader term heard of; a replication stream from an older term is refused.
    pub known_term: u64,
    /// Generation of the accepted incoming replication stream (older streams stop).
    pub stream_gen: u64,
    /// Follower: the term of the leader whose stream we are attached to (writes are
    /// forwarded only then, so the leader streams us every write made through us).
    pub attached: Option<u64>,
    /// Serving reads (false while a snapshot is being copied and replayed).
    pub ready: bool,
    /// After a snapshot: ready again once `last.seq` reaches this.
    pub ready_at: Option<u64>,
    /// Complete once `last.seq` reaches this (a snapshot's replay, a resumed chain).
    pub complete_at: Option<u64>,
    /// Leader: writers waiting for acks, in sequence order (seq, token, thread), each woken
    /// alone once every replica acknowledged its write (no herd).
    pub waiters: VecDeque<(u64, u64, Thread)>,
    next_token: u64,
    /// Most bytes of log kept.
    pub log_cap: usize,
}

impl St {
    /// The log entry at `seq`, if still kept.
    pub fn entry(&self, seq: u64) -> Option<&Arc<Entry>> {
        self.log.get(seq.checked_sub(self.base.seq + 1)? as usize)
    }

    /// True when the history ending at `pos` is a prefix of ours and we can continue it
    /// from our log: `pos` is our last or our base position, or the entry we hold at its
    /// sequence number has the same term (entries are unique by (term, seq): a leader
    /// writes each sequence number once per term, so equal positions mean equal chains).
    pub fn has(&self, pos: Pos) -> bool {
        pos == self.last || pos == self.base || self.entry(pos.seq).is_some_and(|e| e.pos == pos)
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }

    /// Leader: the lease (see [`St::lease`]) has not run out.
    pub fn leased(&self) -> bool {
        self.lease.is_some_and(|l| Instant::now() < l)
    }

    /// Leader: the sequence numbers every replica that must acknowledge has.
    fn committed(&self) -> u64 {
        self.replicas.values().map(|r| r.acked.max(r.added_at)).min().unwrap_or(u64::MAX)
    }

    fn push(&mut self, e: Arc<Entry>) {
        self.log_bytes += e.op.bytes();
        self.log.push_back(e);
        while self.log_bytes > self.log_cap && self.log.len() > 1 {
            if let Some(old) = self.log.pop_front() {
                self.log_bytes -= old.op.bytes();
                self.base = old.pos;
            }
        }
    }

    /// Forgets the log: the history continues from `pos`.
    pub fn reset_log(&mut self, pos: Pos) {
        self.complete_at = None;
        self.ready_at = None;
        self.log.clear();
        self.log_bytes = 0;
        self.base = pos;
        self.last = pos;
    }
}

/// One server's store and replication state, shared by every thread.
pub struct Store {
    pub map: RwLock<Map>,
    st: Mutex<St>,
    /// The log grew, or the role changed: replication senders wake.
    pub grew: Condvar,
    /// The role changed (or a follower attached): requests waiting for a leader wake.
    pub role_changed: Condvar,
    last_write_log: AtomicU64,
    started: Instant,
}

/// Why a write was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// This server does not (or no longer) lead: not applied, safe to try elsewhere.
    NotLeader,
    /// Applied here, but leadership ended before every replica acknowledged it: it may or
    /// may not survive. Never retried.
    Lost,
    /// Applied here, but not every live replica acknowledged it in time. Never retried.
    Timeout,
}

/// A write appended by the leader, waiting for its acks.
#[derive(Debug, Clone, Copy)]
pub struct Appended {
    pub term: u64,
    pub seq: u64,
    pub epoch: u64,
    /// PUT: 1 if the key existed; DEL: how many keys it removed.
    pub count: u64,
}

impl Store {
    pub fn new(catch_up: bool, log_cap: usize) -> Store {
        Store {
            map: RwLock::new(Map::new()),
            st: Mutex::new(St {
                role: Role::Electing,
                writable: false,
                lease: None,
                lost_history: false,
                epoch: 0,
                last: Pos::default(),
                base: Pos::default(),
                log: VecDeque::new(),
                log_bytes: 0,
                claim: Claim::Fresh,
                led: None,
                replicas: std::collections::HashMap::new(),
                known_term: 0,
                stream_gen: 0,
                attached: None,
                ready: !catch_up,
                ready_at: None,
                complete_at: None,
                waiters: VecDeque::new(),
                next_token: 0,
                log_cap: log_cap.max(1),
            }),
            grew: Condvar::new(),
            role_changed: Condvar::new(),
            last_write_log: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Locks the coordination state (a poisoned lock is still used: every update leaves it
    /// consistent before anything can panic).
    pub fn st(&self) -> MutexGuard<'_, St> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &[u8]) -> Option<Value> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Up to `n` entries after `after` (from the start when None), copied under one short
    /// read lock: a snapshot is a sequence of these (fuzzy; see the module doc).
    pub fn chunk(&self, after: Option<&[u8]>, n: usize) -> Vec<(Vec<u8>, Value)> {
        let map = self.map.read().unwrap_or_else(|e| e.into_inner());
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        map.range::<[u8], _>((lower, Bound::Unbounded)).take(n).map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Applies `op` at `pos` (the caller holds `st`): map, log, last position. Returns
    /// PUT: 1 if the key existed; DEL: how many keys it removed.
    pub fn apply(&self, st: &mut St, pos: Pos, op: Op) -> u64 {
        let count = {
            let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
            match &op {
                Op::Put(k, v) => u64::from(map.insert(k.clone(), v.clone()).is_some()),
                Op::Del(ks) => ks.iter().filter(|k| map.remove(&k[..]).is_some()).count() as u64,
            }
        };
        if st.last.seq + 1 != pos.seq {
            st.reset_log(Pos { term: pos.term, seq: pos.seq - 1 }); // never happens: callers check
        }
        st.push(Arc::new(Entry { pos, op }));
        st.last = pos;
        if st.ready_at.is_some_and(|at| pos.seq >= at) {
            st.ready_at = None;
            st.ready = true;
        }
        if st.complete_at.is_some_and(|at| pos.seq >= at) {
            st.complete_at = None;
            st.claim = Claim::Complete;
        }
        count
    }

    /// Replaces everything (a snapshot copied from another server).
    pub fn replace(&self, st: &mut St, pos: Pos, map: Map) {
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = map;
        st.reset_log(pos);
    }

    /// Leader: applies `op` with the next sequence number and waits until every replica
    /// that must acknowledge it did. Returns PUT: existed (0/1), DEL: keys removed.
    pub fn write(&self, op: Op, timeout: Duration) -> Result<(u64, usize), WriteError> {
        let deadline = Instant::now() + timeout;
        let a = self.append(op)?;
        let n = self.wait_acked(a.seq, a.epoch, deadline)?;
        Ok((a.count, n))
    }

    /// Leader: applies `op` with the next sequence number and hands it to the replication
    /// senders. Err(NotLeader): not applied.
    pub fn append(&self, op: Op) -> Result<Appended, WriteError> {
        let mut st = self.st();
        let Role::Leader { term } = st.role else { return Err(WriteError::NotLeader) };
        if !st.writable || !st.leased() {
            return Err(WriteError::NotLeader);
        }
        let pos = Pos { term, seq: st.last.seq + 1 };
        let count = self.apply(&mut st, pos, op);
        let epoch = st.epoch;
        drop(st);
        self.grew.notify_all();
        Ok(Appended { term, seq: pos.seq, epoch, count })
    }

    /// Leader: waits until every replica that must acknowledge `seq` did (acks are
    /// cumulative, so every earlier write too). Returns how many replicas that was.
    pub fn wait_acked(&self, seq: u64, epoch: u64, deadline: Instant) -> Result<usize, WriteError> {
        let mut st = self.st();
        let token = st.next_token;
        st.next_token += 1;
        let me = std::thread::current();
        let out = loop {
            if st.epoch != epoch {
                break Err(WriteError::Lost);
            }
            // Committed, and still surely the leader: the lease has not run out (a leader
            // without replicas has nobody else to refuse its writes).
            if st.committed() >= seq && st.leased() {
                break Ok(st.replicas.len());
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(WriteError::Timeout);
            }
            // (Re)queue: a waiter woken (and dequeued) for an ack that a replica set change
            // made insufficient must not sleep outside the queue until its deadline.
            if !st.waiters.iter().any(|(_, t, _)| *t == token) {
                let at = st.waiters.partition_point(|(q, _, _)| *q < seq);
                st.waiters.insert(at, (seq, token, me.clone()));
            }
            drop(st);
            std::thread::park_timeout(deadline - now); // spurious wake-ups are fine: re-checked
            st = self.st();
        };
        st.waiters.retain(|(_, t, _)| *t != token);
        drop(st);
        out
    }

    /// Follower: waits until our copy serves a history holding the acknowledged write at
    /// `pos` (true), or until `deadline` (false). A history that reached `pos.seq` under
    /// `pos.term` or a later leader holds it: a later leader holds every acknowledged
    /// write. Woken by `grew` (notified when a stream applies writes).
    pub fn wait_holds(&self, pos: Pos, deadline: Instant) -> bool {
        let mut st = self.st();
        loop {
            if st.ready && st.last.term >= pos.term && st.last.seq >= pos.seq {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self.grew.wait_timeout(st, left.min(Duration::from_millis(50))).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// After acks advanced (or a replica left): wakes the writers whose write every
    /// replica that must acknowledge it now has.
    pub fn wake_committed(&self, st: &mut St) {
        let committed = st.committed();
        while st.waiters.front().is_some_and(|(q, _, _)| *q <= committed) {
            if let Some((_, _, t)) = st.waiters.pop_front() {
                t.unpark();
            }
        }
    }

    /// Leader of `epoch`: ZooKeeper answered a request sent at `sent`; the lease runs
    /// until `sent + valid` (see [`St::lease`]). Wakes writers waiting for it.
    pub fn renew_lease(&self, epoch: u64, sent: Instant, valid: Duration) {
        let mut st = self.st();
        if st.epoch != epoch || !st.is_leader() {
            return;
        }
        st.lease = st.lease.max(Some(sent + valid));
        self.wake(&st);
        drop(st);
    }

    /// Changes the role: bumps the epoch and wakes everyone who depends on it.
    pub fn set_role(&self, st: &mut St, role: Role, writable: bool) {
        st.role = role;
        st.writable = writable;
        st.lease = None;
        st.epoch += 1;
        st.replicas.clear();
        st.lost_history = false;
        self.wake(st);
    }

    /// Wakes every waiting thread: replication senders, writers, requests waiting for a
    /// leader (the writers drop out of the queue themselves if they must keep waiting).
    pub fn notify_all(&self) {
        let st = self.st();
        self.wake(&st);
    }

    fn wake(&self, st: &St) {
        self.grew.notify_all();
        self.role_changed.notify_all();
        for (_, _, t) in &st.waiters {
            t.unpark();
        }
    }

    /// True at most once per second: lets per-write info lines through without flooding
    /// the log under load.
    pub fn write_log_due(&self) -> bool {
        let now = self.started.elapsed().as_millis() as u64 + 1000;
        let last = self.last_write_log.load(Ordering::Relaxed);
        now >= last + 1000
            && self.last_write_log.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &[u8], v: &[u8]) -> Op {
        Op::Put(k.to_vec(), v.into())
    }

    #[test]
    fn history_prefix() {
        let s = Store::new(false, 1 << 20);
        let mut st = s.st();
        for seq in 1..=3 {
            s.apply(&mut st, Pos { term: 5, seq }, put(b"k", &[seq as u8]));
        }
        assert!(st.has(Pos { term: 5, seq: 2 }));
        assert!(st.has(Pos { term: 5, seq: 3 }));
        assert!(st.has(Pos { term: 0, seq: 0 }), "the base");
        assert!(!st.has(Pos { term: 4, seq: 2 }), "same seq, other term: another chain");
        assert!(!st.has(Pos { term: 5, seq: 4 }));
        st.reset_log(Pos { term: 6, seq: 9 });
        s.apply(&mut st, Pos { term: 6, seq: 10 }, Op::Del(vec![b"k".to_vec()]));
        assert_eq!(st.log.len(), 1);
        assert!(!st.has(Pos { term: 5, seq: 3 }), "before the base: not continuable");
        drop(st);
        assert_eq!(s.get(b"k"), None);
    }

    #[test]
    fn log_is_capped_in_bytes() {
        let s = Store::new(false, 10_000);
        let mut st = s.st();
        for seq in 1..=100 {
            s.apply(&mut st, Pos { term: 1, seq }, put(b"k", &[0u8; 1000]));
        }
        assert!(st.log.len() <= 10, "{}", st.log.len());
        assert_eq!(st.base.seq + st.log.len() as u64, 100);
        assert!(st.has(st.base) && !st.has(Pos { term: 1, seq: st.base.seq - 1 }));
        drop(st);
    }

    #[test]
    fn claims_round_trip() {
        for c in [Claim::Fresh, Claim::Complete, Claim::Led(42), Claim::Stale, Claim::Partial] {
            assert_eq!(Claim::parse(c.word().as_bytes()), Some(c));
        }
        assert!(Claim::Led(3).complete(Some(3)) && !Claim::Led(3).complete(Some(4)));
        assert!(!Claim::Partial.complete(Some(1)) && !Claim::Stale.complete(None));
    }

    #[test]
    fn leader_write_waits_for_replicas_registered_when_applied() {
        let s = Arc::new(Store::new(false, 1 << 20));
        {
            let mut st = s.st();
            s.set_role(&mut st, Role::Leader { term: 1 }, true);
            st.lease = Some(Instant::now() + Duration::from_secs(3600));
            st.replicas.insert("r".into(), Replica { addr: "x".into(), acked: 0, added_at: 0 });
        }
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.write(put(b"a", b"1"), Duration::from_secs(10)));
        while s.st().last.seq == 0 {
            std::thread::yield_now();
        }
        let mut st = s.st();
        // A replica added after the write was applied does not hold it up.
        st.replicas.insert("late".into(), Replica { addr: "y".into(), acked: 0, added_at: 1 });
        st.replicas.get_mut("r").unwrap().acked = 1;
        s.wake_committed(&mut st);
        drop(st);
        assert_eq!(t.join().unwrap(), Ok((0, 2)));
        assert_eq!(s.write(Op::Del(vec![b"zz".to_vec()]), Duration::from_millis(10)), Err(WriteError::Timeout));
    }

    #[test]
    fn a_leader_without_its_lease_takes_and_acknowledges_nothing() {
        let s = Arc::new(Store::new(false, 1 << 20));
        let epoch = {
            let mut st = s.st();
            s.set_role(&mut st, Role::Leader { term: 1 }, true);
            st.epoch
        };
        // No replica: a write commits at once, but only under the lease.
        assert_eq!(s.write(put(b"a", b"1"), Duration::from_secs(1)), Err(WriteError::NotLeader), "no lease yet");
        s.renew_lease(epoch, Instant::now(), Duration::from_secs(3600));
        let a = s.append(put(b"a", b"2")).unwrap();
        s.st().lease = Some(Instant::now()); // ran out (a freeze)
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.wait_acked(a.seq, a.epoch, Instant::now() + Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(100));
        assert!(!t.is_finished(), "acknowledged without a lease");
        s.renew_lease(epoch, Instant::now(), Duration::from_secs(3600));
        assert_eq!(t.join().unwrap(), Ok(0), "acknowledged once renewed");
        let b = s.append(put(b"a", b"3")).unwrap();
        s.st().lease = Some(Instant::now());
        let mut st = s.st();
        s.set_role(&mut st, Role::Electing, false); // the session is gone
        drop(st);
        assert_eq!(s.wait_acked(b.seq, b.epoch, Instant::now() + Duration::from_secs(1)), Err(WriteError::Lost));
    }
}
