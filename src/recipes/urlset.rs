//! A set of URLs shared by any number of processes: a hash table of znode buckets under
//! `/crawler/<name>/buckets/<bucket>/<key>`. Claiming a URL is creating its node; NODEEXISTS
//! means this or another process claimed it first. The node's data is the URL itself.
//!
//! [`Claimer`] owns a session on its own thread and pipelines the creates of every caller,
//! so claiming the links of many pages costs about one round trip in total, not one per
//! link. When its session expires it builds a new one and resubmits what was unresolved.
//! Never prints; the crawl command decides the words.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TryRecvError, never};
use xxhash_rust::xxh3::xxh3_128;

use crate::zk::{self, Code, CreateMode, Error, Op, SessionWatch, ZooKeeper};

/// Where every crawl lives.
pub const CRAWLER_ROOT: &str = "/crawler";

/// The shape of one crawl's table: its name and how many buckets it hashes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlSet {
    name: String,
    buckets: u32,
}

/// What a claim found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// We created the node: the URL is ours to fetch.
    Claimed,
    /// The node was there: this or another process claimed it before.
    AlreadyClaimed,
}

/// Why a table cannot be used.
#[derive(Debug)]
#[allow(missing_docs)] // fields are named for what they hold; each variant says what failed
pub enum SetupError {
    /// The crawl exists with another bucket count; mixing them would break the dedupe.
    BucketMismatch { name: String, existing: u32, wanted: u32 },
    /// ZooKeeper said no.
    Zk(Error),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::BucketMismatch { name, existing, wanted } => write!(
                f,
                "crawl {name:?} uses {existing} buckets, not {wanted} (pass --buckets {existing}, or --reset it)"
            ),
            SetupError::Zk(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for SetupError {}

impl From<Error> for SetupError {
    fn from(e: Error) -> Self {
        SetupError::Zk(e)
    }
}

/// A URL's 128-bit hash: its bucket and its key both come from it (xxh3 is a frozen spec,
/// so crawlers of different builds agree).
pub fn url_hash(url: &str) -> u128 {
    xxh3_128(url.as_bytes())
}

impl UrlSet {
    /// The table of crawl `name` (one znode name: no `/`, not `.` or `..`) with `buckets` buckets.
    pub fn new(name: &str, buckets: u32) -> Result<UrlSet, String> {
        if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
            return Err(format!("{name:?} is not a valid crawl name (one znode name: no '/', not '.' or '..')"));
        }
        if buckets == 0 {
            return Err("the bucket count must be at least 1".into());
        }
        Ok(UrlSet { name: name.to_string(), buckets })
    }

    /// The crawl's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of buckets.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// `/crawler/<name>`: everything of this crawl is under it.
    pub fn root(&self) -> String {
        format!("{CRAWLER_ROOT}/{}", self.name)
    }

    /// The bucket a hash falls into.
    pub fn bucket_of(&self, hash: u128) -> u32 {
        ((hash >> 64) as u64 % self.buckets as u64) as u32
    }

    /// The node that claims `url` (already normalized): `/crawler/<name>/buckets/<b>/<key>`,
    /// key = the 32 hex digits of its hash.
    pub fn path_of(&self, url: &str) -> String {
        let h = url_hash(url);
        format!("{}/buckets/{}/{h:032x}", self.root(), self.bucket_of(h))
    }

    /// Creates the crawl's nodes and every bucket up front (idempotent, pipelined). The crawl
    /// node records the bucket count; a crawl made with another count is refused.
    pub fn prepare(&self, zk: &ZooKeeper) -> Result<(), SetupError> {
        match zk.create(CRAWLER_ROOT, b"", CreateMode::Persistent) {
            Ok(_) => {}
            Err(e) if e.code() == Some(Code::NodeExists) => {}
            Err(e) => return Err(e.into()),
        }
        let root = self.root();
        let meta = format!("buckets={}", self.buckets);
        match zk.create(&root, meta.as_bytes(), CreateMode::Persistent) {
            Ok(_) => {}
            Err(e) if e.code() == Some(Code::NodeExists) => {
                let (data, _) = zk.get(&root)?;
                let existing =
                    String::from_utf8_lossy(&data).strip_prefix("buckets=").and_then(|n| n.trim().parse::<u32>().ok());
                match existing {
                    Some(n) if n != self.buckets => {
                        return Err(SetupError::BucketMismatch {
                            name: self.name.clone(),
                            existing: n,
                            wanted: self.buckets,
                        });
                    }
                    Some(_) => {}
                    // made by hand or by an older layout: claim it for this count
                    None => {
                        zk.set(&root, meta.as_bytes(), None)?;
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        let mut paths = vec![format!("{root}/buckets")];
        paths.extend((0..self.buckets).map(|b| format!("{root}/buckets/{b}")));
        // the parent first, then the buckets pipelined
        for chunk in [&paths[..1], &paths[1..]] {
            for r in zk.create_many(chunk.iter().map(|p| (p.as_str(), &b""[..], CreateMode::Persistent)), 1000) {
                match r {
                    Ok(_) => {}
                    Err(e) if e.code() == Some(Code::NodeExists) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    /// Deletes the crawl's nodes (whatever their bucket count). Missing is fine.
    pub fn reset(zk: &ZooKeeper, name: &str) -> zk::Result<()> {
        let root = format!("{CRAWLER_ROOT}/{name}");
        // A crawler still claiming meanwhile is fine: delete_tree lists again what turned
        // out not to be empty.
        zk.delete_tree(&root)
    }

    /// Claims one URL with one blocking round trip (the [`Claimer`] pipelines many).
    pub fn claim(&self, zk: &ZooKeeper, url: &str) -> zk::Result<Claim> {
        match zk.create(&self.path_of(url), url.as_bytes(), CreateMode::Persistent) {
            Ok(_) => Ok(Claim::Claimed),
            Err(e) if e.code() == Some(Code::NodeExists) => Ok(Claim::AlreadyClaimed),
            Err(e) => Err(e),
        }
    }
}

struct Request {
    urls: Vec<String>,
    reply: Reply,
}

/// Where the results of one request go.
enum Reply {
    Blocking(Sender<zk::Result<Vec<Claim>>>),
    Tagged(u64, Sender<(u64, zk::Result<Vec<Claim>>)>),
}

impl Reply {
    fn send(self, r: zk::Result<Vec<Claim>>) {
        // a caller that went away no longer wants the answer
        let _ = match self {
            Reply::Blocking(tx) => tx.send(r).is_ok(),
            Reply::Tagged(tag, tx) => tx.send((tag, r)).is_ok(),
        };
    }
}

/// Counters of a [`Claimer`].
#[derive(Debug, Default)]
struct Counters {
    creates: AtomicU64,
    sessions: AtomicU32,
    session: Mutex<(i64, [u8; 16])>,
}

/// A thread that owns a session and pipelines the claims of every caller.
pub struct Claimer {
    tx: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Claimer {
    /// Starts the claimer thread on `zk` (the claimer owns the session from now on).
    pub fn start(set: UrlSet, zk: ZooKeeper) -> Claimer {
        let (tx, rx) = crossbeam_channel::unbounded();
        let counters = Arc::new(Counters::default());
        counters.sessions.store(1, Ordering::Relaxed);
        *counters.session.lock().unwrap_or_else(|e| e.into_inner()) = zk.client_id();
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("claimer".into())
            .spawn(move || ClaimLoop { set, rx, counters: c, jobs: HashMap::new(), next_job: 0 }.run(zk))
            .expect("spawn claimer thread");
        Claimer { tx: Some(tx), thread: Some(thread), counters }
    }

    /// Claims every URL (normalized), pipelined with the claims of other callers; results in
    /// input order. An Err means the claims could not be decided (ZooKeeper gone for longer
    /// than the connect timeout, an ACL, a deleted table).
    pub fn claim(&self, urls: Vec<String>) -> zk::Result<Vec<Claim>> {
        if urls.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = crossbeam_channel::bounded(1);
        let stopped = || Error::Zk { code: Code::Closing, path: None };
        let req = Request { urls, reply: Reply::Blocking(reply) };
        self.tx.as_ref().ok_or_else(stopped)?.send(req).map_err(|_| stopped())?;
        rx.recv().map_err(|_| stopped())?
    }

    /// Claims every URL without waiting: `(tag, results)` arrives on `reply` once all are
    /// decided (results in input order), so one thread can keep many requests in flight.
    pub fn submit(&self, urls: Vec<String>, tag: u64, reply: &Sender<(u64, zk::Result<Vec<Claim>>)>) {
        let req = Request { urls, reply: Reply::Tagged(tag, reply.clone()) };
        match self.tx.as_ref() {
            Some(tx) => {
                if let Err(e) = tx.send(req) {
                    e.into_inner().reply.send(Err(Error::Zk { code: Code::Closing, path: None }));
                }
            }
            None => req.reply.send(Err(Error::Zk { code: Code::Closing, path: None })),
        }
    }

    /// Creates sent to ZooKeeper so far (retries included).
    pub fn creates(&self) -> u64 {
        self.counters.creates.load(Ordering::Relaxed)
    }

    /// Sessions used so far: 1, plus one per expiry survived.
    pub fn sessions(&self) -> u32 {
        self.counters.sessions.load(Ordering::Relaxed)
    }

    /// The current session's (id, password), e.g. to expire it in a test.
    pub fn client_id(&self) -> (i64, [u8; 16]) {
        *self.counters.session.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Claimer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Job {
    urls: Vec<String>,
    results: Vec<Option<Claim>>,
    /// Sent more than once (outcome of an earlier try unknown): NODEEXISTS may be our own.
    retried: Vec<u32>,
    remaining: usize,
    reply: Reply,
}

struct ClaimLoop {
    set: UrlSet,
    rx: Receiver<Request>,
    counters: Arc<Counters>,
    jobs: HashMap<u64, Job>,
    next_job: u64,
}

/// Creates per multi: well under the 1 MB packet limit for URLs of a few hundred bytes.
const MULTI_BATCH: usize = 500;

/// How a multi went.
enum Batch {
    Done,
    /// These still need deciding (their multi applied nothing).
    Rest(Vec<(u64, usize)>),
    /// Outcome unknown for these: resend them.
    Lost(Vec<(u64, usize)>),
    SessionLost,
}

enum Ended {
    /// Every caller is gone.
    Closed,
    /// The session expired: build a new one and resubmit.
    SessionLost,
}

impl ClaimLoop {
    fn run(mut self, mut zk: ZooKeeper) {
        loop {
            match self.serve(&zk) {
                Ended::Closed => return,
                Ended::SessionLost => {
                    let opts = crate::zk::ConnectOptions { session: None, ..zk.options().clone() };
                    drop(zk);
                    match opts.connect() {
                        Ok(z) => {
                            log::warn!("claimer: ZooKeeper session expired; continuing on a new session");
                            zk = z;
                            self.counters.sessions.fetch_add(1, Ordering::Relaxed);
                            *self.counters.session.lock().unwrap_or_else(|e| e.into_inner()) = zk.client_id();
                        }
                        Err(e) => {
                            self.fail_all(&e);
                            // answer later callers too, then stop
                            while let Ok(r) = self.rx.recv() {
                                r.reply.send(Err(e.clone()));
                            }
                            return;
                        }
                    }
                }
            }
        }
    }

    /// One multi creating the claims of `chunk`.
    fn multi(&mut self, zk: &ZooKeeper, health: &SessionWatch, chunk: &[(u64, usize)]) -> Batch {
        let ops: Vec<Op> = chunk
            .iter()
            .filter_map(|(id, i)| self.jobs.get(id).map(|j| &j.urls[*i]))
            .map(|url| Op::Create {
                path: self.set.path_of(url),
                data: url.as_bytes().to_vec(),
                mode: CreateMode::Persistent,
            })
            .collect();
        if ops.len() != chunk.len() {
            return Batch::Rest(chunk.to_vec()); // a job failed meanwhile: keep it simple
        }
        self.counters.creates.fetch_add(ops.len() as u64, Ordering::Relaxed);
        match zk.multi(&ops) {
            Ok(_) => {
                for &(id, i) in chunk {
                    self.decide(id, i, Claim::Claimed);
                }
                Batch::Done
            }
            Err(Error::Multi { index, code: Code::NodeExists, .. }) if index < chunk.len() => {
                let (id, i) = chunk[index];
                self.decide(id, i, Claim::AlreadyClaimed);
                Batch::Rest(chunk.iter().enumerate().filter(|(k, _)| *k != index).map(|(_, c)| *c).collect())
            }
            Err(e) if e.is_session_lost() || !health.may_act() => Batch::SessionLost,
            Err(e) if e.is_outcome_unknown() => {
                for &(id, i) in chunk {
                    if let Some(j) = self.jobs.get_mut(&id) {
                        j.retried[i] += 1;
                    }
                }
                Batch::Lost(chunk.to_vec())
            }
            // anything else (an ACL, a deleted table): the single creates will tell each job
            Err(_) => Batch::Rest(chunk.to_vec()),
        }
    }

    /// Records one decided claim; answers its job when it was the last.
    fn decide(&mut self, id: u64, i: usize, c: Claim) {
        let Some(job) = self.jobs.get_mut(&id) else { return };
        if job.results[i].is_some() {
            return;
        }
        job.results[i] = Some(c);
        job.remaining -= 1;
        if job.remaining == 0
            && let Some(job) = self.jobs.remove(&id)
        {
            job.reply.send(Ok(job.results.into_iter().map(|c| c.expect("resolved")).collect()));
        }
    }

    fn fail_all(&mut self, e: &Error) {
        for (_, job) in self.jobs.drain() {
            job.reply.send(Err(e.clone()));
        }
    }

    /// Pipelines claims on one session until the callers are gone or the session is lost.
    fn serve(&mut self, zk: &ZooKeeper) -> Ended {
        let mut p = zk.pipeline();
        let mut tags: HashMap<u64, (u64, usize)> = HashMap::new();
        let mut next_tag = 0u64;
        // what an earlier session left unresolved
        let mut todo: Vec<(u64, usize)> = Vec::new();
        for (id, job) in &mut self.jobs {
            for (i, r) in job.results.iter().enumerate() {
                if r.is_none() {
                    job.retried[i] += 1;
                    todo.push((*id, i));
                }
            }
        }
        let mut closed = false;
        // While creates fail with ZCONNECTIONLOSS the C client is reconnecting by itself; we
        // resend once the session-health model says connected again (after a short pause).
        // Lost (expired, or disconnected for longer than the session timeout: a server that
        // is down never says "expired") means a new session, whose connect fails after the
        // connect timeout. Never a hang.
        let health = SessionWatch::watcher(zk);
        let mut unknown = false;
        loop {
            // take new requests: block only when nothing is in flight or waiting
            loop {
                let req = if p.in_flight() == 0 && todo.is_empty() {
                    if closed {
                        return Ended::Closed;
                    }
                    match self.rx.recv() {
                        Ok(r) => r,
                        Err(_) => return Ended::Closed,
                    }
                } else {
                    match self.rx.try_recv() {
                        Ok(r) => r,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                };
                let id = self.next_job;
                self.next_job += 1;
                let n = req.urls.len();
                todo.extend((0..n).map(|i| (id, i)));
                self.jobs.insert(
                    id,
                    Job { urls: req.urls, results: vec![None; n], retried: vec![0; n], remaining: n, reply: req.reply },
                );
            }
            // Optimistic batches: while connected and nothing is in flight, everything waiting
            // goes in multis (one transaction for many creates costs the server far less than
            // as many requests; waiting requests pile up meanwhile: group commit). A multi
            // that hits a claimed URL applies nothing; that URL is decided, the rest of its
            // batch goes the pipelined way below.
            if !unknown && p.in_flight() == 0 && todo.len() > 1 {
                let (fresh, mut rest): (Vec<_>, Vec<_>) =
                    todo.drain(..).partition(|(id, i)| self.jobs.get(id).is_some_and(|j| j.retried[*i] == 0));
                for chunk in fresh.chunks(MULTI_BATCH) {
                    match self.multi(zk, &health, chunk) {
                        Batch::Done => {}
                        Batch::Rest(r) => rest.extend(r),
                        Batch::Lost(r) => {
                            unknown = true;
                            rest.extend(r);
                        }
                        Batch::SessionLost => return Ended::SessionLost,
                    }
                }
                todo = rest;
            }
            if unknown && !todo.is_empty() && health.recover(&never::<()>(), None).is_err() {
                return Ended::SessionLost;
            }
            for (id, i) in todo.drain(..) {
                let Some(job) = self.jobs.get(&id) else { continue };
                let url = &job.urls[i];
                let tag = next_tag;
                next_tag += 1;
                self.counters.creates.fetch_add(1, Ordering::Relaxed);
                match p.create(tag, &self.set.path_of(url), url.as_bytes(), CreateMode::Persistent) {
                    Ok(()) => {
                        tags.insert(tag, (id, i));
                    }
                    Err(e) if e.is_session_lost() || !health.may_act() => {
                        return Ended::SessionLost;
                    }
                    Err(e) => {
                        // nothing was sent (bad path, too large): this job fails
                        if let Some(job) = self.jobs.remove(&id) {
                            job.reply.send(Err(e));
                        }
                    }
                }
            }
            let Some((tag, r)) = p.recv() else { continue };
            let mut next = vec![(tag, r)];
            while let Some(c) = p.try_recv() {
                next.push(c);
            }
            for (tag, r) in next {
                let Some((id, i)) = tags.remove(&tag) else { continue };
                let Some(job) = self.jobs.get_mut(&id) else { continue };
                if job.results[i].is_some() {
                    continue;
                }
                if r.is_ok() || r.as_ref().is_err_and(|e| e.code() == Some(Code::NodeExists)) {
                    unknown = false;
                }
                let outcome = match r {
                    Ok(_) => Some(Claim::Claimed),
                    // After an unknown outcome, NODEEXISTS is most likely our own earlier create
                    // (its reply was lost): take it as ours, at worst one extra fetch.
                    Err(e) if e.code() == Some(Code::NodeExists) => {
                        Some(if job.retried[i] > 0 { Claim::Claimed } else { Claim::AlreadyClaimed })
                    }
                    Err(e) if e.is_session_lost() || !health.may_act() => {
                        return Ended::SessionLost;
                    }
                    Err(e) if e.is_outcome_unknown() => {
                        job.retried[i] += 1;
                        unknown = true;
                        todo.push((id, i));
                        None
                    }
                    Err(e) => {
                        if let Some(job) = self.jobs.remove(&id) {
                            job.reply.send(Err(e));
                        }
                        continue;
                    }
                };
                if let Some(c) = outcome {
                    job.results[i] = Some(c);
                    job.remaining -= 1;
                    if job.remaining == 0
                        && let Some(job) = self.jobs.remove(&id)
                    {
                        job.reply.send(Ok(job.results.into_iter().map(|c| c.expect("resolved")).collect()));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_fixed_length_and_stable() {
        let s = UrlSet::new("example.com", 64).unwrap();
        let p = s.path_of("http://example.com/");
        let key = p.rsplit('/').next().unwrap();
        assert_eq!(key.len(), 32);
        assert!(p.starts_with("/crawler/example.com/buckets/"));
        assert_eq!(p, s.path_of("http://example.com/"));
        assert_ne!(p, s.path_of("http://example.com/a"));
        let b: u32 = p.split('/').nth(4).unwrap().parse().unwrap();
        assert!(b < 64);
    }

    #[test]
    fn names_are_checked() {
        assert!(UrlSet::new("a/b", 64).is_err());
        assert!(UrlSet::new("..", 64).is_err());
        assert!(UrlSet::new("", 64).is_err());
        assert!(UrlSet::new("x", 0).is_err());
        assert!(UrlSet::new("127.0.0.1-8080", 1).is_ok());
    }
}
