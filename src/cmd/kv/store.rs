//! The replicated state of one server: the key-value map, the log of recent writes with
//! their positions, the role this server plays, and (on the leader) how far each live
//! replica has acknowledged.
//!
//! Locking: `st` (the small coordination state) is taken before `map` and never held
//! across network I/O; readers take only `map` (a read lock), so GETs never wait for
//! replication. Writers apply under `st`, which orders writes by sequence number.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

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

/// A write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Put(Vec<u8>, Vec<u8>),
    Del(Vec<u8>),
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
            Op::Put(k, _) | Op::Del(k) => k,
        }
    }
}

/// A write with its place in the history.
#[derive(Debug)]
pub struct Entry {
    pub pos: Pos,
    pub op: Op,
}

/// How many recent writes are kept for replicas that reconnect; one further behind gets
/// a snapshot instead.
pub const LOG_CAP: usize = 100_000;

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
}

/// The coordination state under one mutex.
#[derive(Debug)]
pub struct St {
    pub role: Role,
    /// Leader only: accepting writes (leader, and connected to ZooKeeper).
    pub writable: bool,
    /// Bumped on every change of role: threads started for an old role notice and stop.
    pub epoch: u64,
    /// Last applied write.
    pub last: Pos,
    /// Recent writes; `log[i].pos.seq == log_base + i`.
    pub log: VecDeque<Arc<Entry>>,
    /// Leader only: every live replica (registered in the election directory), by node name.
    pub replicas: HashMap<String, Replica>,
    /// Highest leader term heard of; a replication stream from an older term is refused.
    pub known_term: u64,
    /// Generation of the accepted incoming replication stream (older streams stop).
    pub stream_gen: u64,
    /// Started empty and nothing received yet.
    pub fresh: bool,
    /// Serving reads (false while a `--catch-up` server copies the leader's state).
    pub ready: bool,
    /// Leader: writers waiting for acks, in sequence order, each woken alone once every
    /// replica acknowledged its write (no herd of 50 writers woken by every ack).
    pub waiters: VecDeque<(u64, Thread)>,
}

impl St {
    /// The log entry at `seq`, if still kept.
    pub fn entry(&self, seq: u64) -> Option<&Arc<Entry>> {
        let base = self.log.front()?.pos.seq;
        self.log.get(seq.checked_sub(base)? as usize)
    }

    /// True when the history ending at `pos` is a prefix of ours.
    pub fn has(&self, pos: Pos) -> bool {
        pos == self.last || self.entry(pos.seq).is_some_and(|e| e.pos == pos)
    }

    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader { .. })
    }
}

/// One server's store and replication state, shared by every thread.
pub struct Store {
    pub map: RwLock<HashMap<Vec<u8>, Vec<u8>>>,
    st: Mutex<St>,
    /// The log grew, or the role changed: replication senders wake.
    pub grew: Condvar,
    /// The role changed: requests waiting for a leader wake.
    pub role_changed: Condvar,
    last_write_log: AtomicU64,
    started: Instant,
}

/// Why a write was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// This server does not (or no longer) lead.
    NotLeader,
    /// Applied locally, but not every live replica acknowledged it in time.
    Timeout,
}

impl Store {
    pub fn new(ready: bool) -> Store {
        Store {
            map: RwLock::new(HashMap::new()),
            st: Mutex::new(St {
                role: Role::Electing,
                writable: false,
                epoch: 0,
                last: Pos::default(),
                log: VecDeque::new(),
                replicas: HashMap::new(),
                known_term: 0,
                stream_gen: 0,
                fresh: true,
                ready,
                waiters: VecDeque::new(),
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

    pub fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.read().unwrap_or_else(|e| e.into_inner()).get(key).cloned()
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Applies `op` at `pos` (the caller holds `st`): map, log, last position. Returns
    /// whether the key existed before.
    pub fn apply(&self, st: &mut St, pos: Pos, op: Op) -> bool {
        let existed = {
            let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
            match &op {
                Op::Put(k, v) => map.insert(k.clone(), v.clone()).is_some(),
                Op::Del(k) => map.remove(k).is_some(),
            }
        };
        if st.log.back().is_some_and(|e| e.pos.seq + 1 != pos.seq) {
            st.log.clear(); // a jump (a fresh replica's base): keep the log contiguous
        }
        st.log.push_back(Arc::new(Entry { pos, op }));
        if st.log.len() > LOG_CAP {
            st.log.pop_front();
        }
        st.last = pos;
        st.fresh = false;
        existed
    }

    /// Replaces everything (a snapshot from the leader).
    pub fn replace(&self, st: &mut St, pos: Pos, map: HashMap<Vec<u8>, Vec<u8>>) {
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = map;
        st.log.clear();
        st.last = pos;
        st.fresh = false;
        st.ready = true;
    }

    /// Leader: applies `op` with the next sequence number and waits until every live
    /// replica acknowledged it. Returns whether the key existed before.
    ///
    /// Why "every live replica": a client is told OK only when all registered replicas
    /// have the write, so whichever survivor is elected next has it too. A replica that is
    /// registered but whose stream is not up yet (mid-join) counts as not acknowledged:
    /// the write waits for it (or for its node to vanish), never skips it.
    pub fn write(&self, op: Op, timeout: Duration) -> Result<(bool, usize), WriteError> {
        let deadline = Instant::now() + timeout;
        let (seq, epoch, existed) = self.append(op)?;
        let n = self.wait_acked(seq, epoch, deadline)?;
        Ok((existed, n))
    }

    /// Leader: applies `op` with the next sequence number and hands it to the replication
    /// senders. Returns (seq, epoch, whether the key existed).
    pub fn append(&self, op: Op) -> Result<(u64, u64, bool), WriteError> {
        let mut st = self.st();
        let Role::Leader { term } = st.role else { return Err(WriteError::NotLeader) };
        if !st.writable {
            return Err(WriteError::NotLeader);
        }
        let pos = Pos { term, seq: st.last.seq + 1 };
        let existed = self.apply(&mut st, pos, op);
        self.grew.notify_all();
        Ok((pos.seq, st.epoch, existed))
    }

    /// Leader: waits until every live replica acknowledged `seq` (acks are cumulative, so
    /// every earlier write too). Returns how many replicas that was.
    pub fn wait_acked(&self, seq: u64, epoch: u64, deadline: Instant) -> Result<usize, WriteError> {
        let mut st = self.st();
        let at = st.waiters.partition_point(|(q, _)| *q < seq);
        st.waiters.insert(at, (seq, std::thread::current()));
        let out = loop {
            if st.epoch != epoch {
                break Err(WriteError::NotLeader);
            }
            if st.replicas.values().all(|r| r.acked >= seq) {
                break Ok(st.replicas.len());
            }
            let now = Instant::now();
            if now >= deadline {
                break Err(WriteError::Timeout);
            }
            drop(st);
            std::thread::park_timeout(deadline - now); // spurious wake-ups are fine: re-checked
            st = self.st();
        };
        let me = std::thread::current().id();
        st.waiters.retain(|(q, t)| *q != seq || t.id() != me);
        out
    }

    /// After acks advanced: wakes the writers whose write every replica now has.
    pub fn wake_committed(&self, st: &mut St) {
        let committed = st.replicas.values().map(|r| r.acked).min().unwrap_or(u64::MAX);
        while st.waiters.front().is_some_and(|(q, _)| *q <= committed) {
            if let Some((_, t)) = st.waiters.pop_front() {
                t.unpark();
            }
        }
    }

    /// Changes the role: bumps the epoch and wakes everyone who depends on it.
    pub fn set_role(&self, st: &mut St, role: Role, writable: bool) {
        st.role = role;
        st.writable = writable;
        st.epoch += 1;
        st.replicas.clear();
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
        for (_, t) in &st.waiters {
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

    #[test]
    fn history_prefix() {
        let s = Store::new(true);
        let mut st = s.st();
        for seq in 1..=3 {
            s.apply(&mut st, Pos { term: 5, seq }, Op::Put(b"k".to_vec(), vec![seq as u8]));
        }
        assert!(st.has(Pos { term: 5, seq: 2 }));
        assert!(st.has(Pos { term: 5, seq: 3 }));
        assert!(!st.has(Pos { term: 4, seq: 2 }));
        assert!(!st.has(Pos { term: 5, seq: 4 }));
        s.apply(&mut st, Pos { term: 6, seq: 10 }, Op::Del(b"k".to_vec()));
        assert_eq!(st.log.len(), 1);
        drop(st);
        assert_eq!(s.get(b"k"), None);
    }

    #[test]
    fn leader_write_waits_for_replicas() {
        let s = Arc::new(Store::new(true));
        {
            let mut st = s.st();
            s.set_role(&mut st, Role::Leader { term: 1 }, true);
            st.replicas.insert("r".into(), Replica { addr: "x".into(), acked: 0 });
        }
        let s2 = s.clone();
        let t = std::thread::spawn(move || s2.write(Op::Put(b"a".to_vec(), b"1".to_vec()), Duration::from_secs(10)));
        while s.st().last.seq == 0 {
            std::thread::yield_now();
        }
        let mut st = s.st();
        st.replicas.get_mut("r").unwrap().acked = 1;
        s.wake_committed(&mut st);
        drop(st);
        assert_eq!(t.join().unwrap(), Ok((false, 1)));
        assert_eq!(s.write(Op::Del(b"zz".to_vec()), Duration::from_millis(10)), Err(WriteError::Timeout));
    }
}
