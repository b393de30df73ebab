//! A set of URLs shared by any number of crawlers, and who owes each claimed URL a fetch.
//!
//! # The protocol
//!
//! ```text
//! /crawler/NAME                    "buckets=N"
//! /crawler/NAME/buckets/B/KEY      the seen set: one persistent node per URL ever claimed, data = the URL
//! /crawler/NAME/live/OWNER         ephemeral: one per crawler session, data "pid@host"
//! /crawler/NAME/idle/OWNER         ephemeral: that crawler has nothing left to fetch
//! /crawler/NAME/owned/OWNER/KEY    persistent: claimed by OWNER and not yet written to its
//!                                  output; data "DEPTH HOPS URL"
//! ```
//! OWNER is the session id (16 hex digits); KEY the 32 hex digits of the URL's xxh3-128 hash,
//! B that hash mod the bucket count.
//!
//! - **join**: one multi creates `owned/OWNER` and `live/OWNER`, so an owner directory
//!   without its live node means the session is over.
//! - **claim**: for each URL, its seen node and its owned entry are created in the same
//!   multi (a batch of URLs is one multi, as before: the entry costs a second create in the
//!   same request, not a second request). NODEEXISTS on a seen node: someone claimed it first.
//!   A batch that hit a claimed URL applies nothing: the rest are looked up (pipelined gets)
//!   and the unclaimed ones go again; after a lost connection, the owned entry tells whether
//!   our own earlier multi landed.
//! - **done**: once a URL's line is written to the output and the claims of its links are
//!   decided, its owned entry is deleted (batched in multis). So at every moment every URL
//!   that still needs fetching has an owned entry (written-but-not-yet-deleted ones too: at
//!   the boundary a URL can be fetched twice, never zero times).
//! - **orphans**: `owned/OWNER` with entries and no `live/OWNER`: that session ended
//!   (expired, closed, its process killed) before it wrote them.
//! - **adopt**: a crawler moves an orphan's entries to its own directory, a multi per batch
//!   of [delete theirs, create mine] per entry; the delete is the claim, so of two adopters
//!   one wins each entry (the other's multi fails with NONODE and it lists again). The empty
//!   orphan directory is then deleted.
//! - **idle and the end**: a crawler with nothing to fetch (its dones applied, and nothing
//!   left under its own `owned/OWNER`: what an adoption cut short left there is fetched
//!   first) marks itself `idle/OWNER` and
//!   watches `live/` and `idle/` (children watches, no polling). An orphan appearing (a live
//!   node vanishing) makes it adopt (unmarking itself idle first); it ends once no orphan is
//!   left and every live crawler is idle: then no URL is owed anywhere.
//! - **a lost session**: the owner writes a line only while connected (the crawl asks
//!   [`Claimer::health`]): a dead connection is noticed 2T/3 after the client last heard from
//!   the server, before the server can expire the session at T, so no line is written once
//!   others may adopt the URL. Suspended, it waits: a connection back within the session
//!   timeout keeps the session and every claim. Lost (expired, or silent T past the notice),
//!   it drops what it held and never acts for that session again: its claims are an orphan
//!   for the others (or for itself on a new session) to adopt.
//!
//! [`Claimer`] owns the session on its own thread and batches the claims and dones of every
//! caller (group commit: what waits while a multi is in flight goes in the next). Never
//! prints; the crawl command decides the words.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, never};
use xxhash_rust::xxh3::xxh3_128;

use crate::zk::{self, Code, CreateMode, Error, Op, SessionWatch, WatchEvent, ZooKeeper};

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
        let mut paths =
            vec![format!("{root}/buckets"), format!("{root}/live"), format!("{root}/idle"), format!("{root}/owned")];
        paths.extend((0..self.buckets).map(|b| format!("{root}/buckets/{b}")));
        // the parents first, then the buckets pipelined
        for chunk in [&paths[..4], &paths[4..]] {
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

    /// `/crawler/<name>/<dir>`.
    fn dir(&self, dir: &str) -> String {
        format!("{}/{dir}", self.root())
    }

    /// The node that records `url` (normalized) as claimed by `owner` and not yet written:
    /// `/crawler/<name>/owned/<owner>/<key>`.
    pub fn owned_path(&self, owner: &str, url: &str) -> String {
        format!("{}/owned/{owner}/{:032x}", self.root(), url_hash(url))
    }

    /// Joins the crawl as the owner named after `zk`'s session (16 hex digits): one multi
    /// creates `owned/OWNER` and the ephemeral `live/OWNER` (data: `info`, e.g. pid@host).
    pub fn join(&self, zk: &ZooKeeper, info: &str) -> zk::Result<String> {
        let owner = format!("{:016x}", zk.session_id() as u64);
        zk.multi(&[
            Op::Create {
                path: format!("{}/{owner}", self.dir("owned")),
                data: Vec::new(),
                mode: CreateMode::Persistent,
            },
            Op::Create {
                path: format!("{}/{owner}", self.dir("live")),
                data: info.as_bytes().to_vec(),
                mode: CreateMode::Ephemeral,
            },
        ])?;
        Ok(owner)
    }

    /// Leaves: deletes `owned/<owner>` if it is empty (what is left in it becomes an orphan
    /// once the session ends, for the other crawlers to adopt).
    pub fn leave(&self, zk: &ZooKeeper, owner: &str) -> zk::Result<()> {
        match zk.delete(&format!("{}/{owner}", self.dir("owned")), None) {
            Err(e) if matches!(e.code(), Some(Code::NotEmpty | Code::NoNode)) => Ok(()),
            r => r,
        }
    }

    /// Marks `owner` idle (nothing to fetch) or busy again; idempotent.
    pub fn set_idle(&self, zk: &ZooKeeper, owner: &str, idle: bool) -> zk::Result<()> {
        let path = format!("{}/{owner}", self.dir("idle"));
        let r = if idle { zk.create(&path, b"", CreateMode::Ephemeral).map(|_| ()) } else { zk.delete(&path, None) };
        match r {
            Err(e) if matches!(e.code(), Some(Code::NodeExists | Code::NoNode)) => Ok(()),
            r => r,
        }
    }

    /// Who is in the crawl now, with watches on `live/` and `idle/`.
    pub fn members_w(&self, zk: &ZooKeeper) -> zk::Result<Members> {
        let (live, live_stat, live_changed) = zk.children_w(&self.dir("live"))?;
        let (idle, idle_stat, idle_changed) = zk.children_w(&self.dir("idle"))?;
        let owned = zk.children(&self.dir("owned"))?;
        // The three reads are one snapshot only if live/ and idle/ did not change meanwhile
        // (their children versions, read again after `owned/`, tell).
        let same = |dir: &str, cv: i32| zk.exists(&self.dir(dir)).map(|s| s.is_some_and(|s| s.cversion == cv));
        let consistent = same("live", live_stat.cversion)? && same("idle", idle_stat.cversion)?;
        let live: HashSet<String> = live.into_iter().collect();
        let orphans = owned.into_iter().filter(|o| !live.contains(o)).collect();
        Ok(Members { live, idle: idle.into_iter().collect(), orphans, consistent, live_changed, idle_changed })
    }

    /// What `owner` owes: the entries of `owned/<owner>`.
    pub fn owed(&self, zk: &ZooKeeper, owner: &str) -> zk::Result<Vec<Entry>> {
        let dir = format!("{}/{owner}", self.dir("owned"));
        let paths: Vec<String> = zk.children(&dir)?.into_iter().map(|k| format!("{dir}/{k}")).collect();
        Ok(get_many(zk, &paths)?.into_iter().flatten().filter_map(|d| Entry::parse(&d)).collect())
    }

    /// Moves the entries of the orphan `from` into `owned/<me>` (a multi of [delete theirs,
    /// create mine] per batch: the delete is the claim) and removes its directory; returns
    /// the entries this call took (another adopter may take some or all). `health` decides
    /// what an outcome-unknown multi means: after a reconnect, the entry under `owned/<me>`
    /// says whether it landed.
    pub fn adopt(&self, zk: &ZooKeeper, health: &SessionWatch, me: &str, from: &str) -> zk::Result<Vec<Entry>> {
        let dir = format!("{}/{from}", self.dir("owned"));
        let keys = match zk.children(&dir) {
            Ok(k) => k,
            Err(e) if e.code() == Some(Code::NoNode) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let paths: Vec<String> = keys.iter().map(|k| format!("{dir}/{k}")).collect();
        let datas = get_many(zk, &paths)?;
        let mut todo: Vec<(String, Vec<u8>)> =
            keys.into_iter().zip(datas).filter_map(|(k, d)| d.map(|d| (k, d))).collect();
        let mine_dir = format!("{}/{me}", self.dir("owned"));
        let mut mine = Vec::new();
        let take = |mine: &mut Vec<Entry>, data: &[u8]| {
            if let Some(e) = Entry::parse(data) {
                mine.push(e);
            }
        };
        while !todo.is_empty() {
            let n = todo.len().min(MULTI_BATCH / 2);
            let chunk: Vec<(String, Vec<u8>)> = todo.drain(..n).collect();
            let ops: Vec<Op> = chunk
                .iter()
                .flat_map(|(k, d)| {
                    [
                        Op::Delete { path: format!("{dir}/{k}"), version: None },
                        Op::Create { path: format!("{mine_dir}/{k}"), data: d.clone(), mode: CreateMode::Persistent },
                    ]
                })
                .collect();
            match zk.multi(&ops) {
                Ok(_) => chunk.iter().for_each(|(_, d)| take(&mut mine, d)),
                // another adopter took that one: the rest go again
                Err(Error::Multi { index, code: Code::NoNode, .. }) if index % 2 == 0 => {
                    todo.extend(chunk.into_iter().enumerate().filter(|(i, _)| *i != index / 2).map(|(_, c)| c));
                }
                Err(e) if e.is_outcome_unknown() && health.may_act() => {
                    health.recover(&never::<()>(), None).map_err(|_| health.error())?;
                    zk.sync(&dir)?;
                    for (k, d) in chunk {
                        if zk.exists(&format!("{mine_dir}/{k}"))?.is_some() {
                            take(&mut mine, &d);
                        } else if zk.exists(&format!("{dir}/{k}"))?.is_some() {
                            todo.push((k, d));
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        match zk.delete(&dir, None) {
            Err(e) if !matches!(e.code(), Some(Code::NotEmpty | Code::NoNode)) => Err(e),
            _ => Ok(mine),
        }
    }
}

/// A URL claimed and owed a fetch: what an owned entry holds ("DEPTH HOPS URL").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The URL, normalized.
    pub url: String,
    /// Links away from a start URL.
    pub depth: u32,
    /// Redirects followed to reach it.
    pub hops: u32,
}

impl Entry {
    fn data(&self) -> Vec<u8> {
        format!("{} {} {}", self.depth, self.hops, self.url).into_bytes()
    }

    fn parse(data: &[u8]) -> Option<Entry> {
        let s = std::str::from_utf8(data).ok()?;
        let mut w = s.splitn(3, ' ');
        let depth = w.next()?.parse().ok()?;
        let hops = w.next()?.parse().ok()?;
        Some(Entry { url: w.next()?.to_string(), depth, hops })
    }
}

/// The crawl's members at one moment (see [`UrlSet::members_w`]).
#[derive(Debug)]
pub struct Members {
    /// Owners with a live session.
    pub live: HashSet<String>,
    /// Owners marked idle.
    pub idle: HashSet<String>,
    /// Owner directories without a live session.
    pub orphans: Vec<String>,
    /// False when `live/` or `idle/` changed during the reads: read again.
    pub consistent: bool,
    /// Fires when `live/` changes (a crawler joins or its session ends).
    pub live_changed: Receiver<WatchEvent>,
    /// Fires when `idle/` changes.
    pub idle_changed: Receiver<WatchEvent>,
}

impl Members {
    /// True when no URL is owed anywhere: no orphan, and every live crawler idle.
    pub fn all_done(&self) -> bool {
        self.consistent && self.orphans.is_empty() && self.live.is_subset(&self.idle)
    }
}

/// The data of each node (None: it does not exist), pipelined.
fn get_many(zk: &ZooKeeper, paths: &[String]) -> zk::Result<Vec<Option<Vec<u8>>>> {
    let mut out = vec![None; paths.len()];
    let mut p = zk.requests();
    let mut first_err = None;
    for (i, path) in paths.iter().enumerate() {
        while p.in_flight() >= 1000 {
            collect(&mut p, &mut out, &mut first_err);
        }
        p.get(i as u64, path)?;
    }
    while p.in_flight() > 0 {
        collect(&mut p, &mut out, &mut first_err);
    }
    fn collect(p: &mut zk::Requests<'_>, out: &mut [Option<Vec<u8>>], err: &mut Option<Error>) {
        if let Some((tag, r)) = p.recv() {
            match r {
                Ok(zk::Answer::Data(d, _)) => out[tag as usize] = Some(d),
                Ok(_) => out[tag as usize] = Some(Vec::new()),
                Err(Code::NoNode) => {}
                Err(code) => {
                    err.get_or_insert(Error::Zk { code, path: None });
                }
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

enum Request {
    Claim {
        entries: Vec<Entry>,
        reply: Reply,
    },
    /// The URL's line is written: delete its owned entry.
    Done(String),
    /// Answer once everything sent before is through.
    Flush(Sender<zk::Result<()>>),
}

/// Where the results of one claim request go.
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

impl Request {
    fn fail(self, e: Error) {
        match self {
            Request::Claim { reply, .. } => reply.send(Err(e)),
            Request::Done(_) => {}
            Request::Flush(tx) => {
                let _ = tx.send(Err(e));
            }
        }
    }
}

/// Counters of a [`Claimer`].
#[derive(Debug, Default)]
struct Counters {
    claims: AtomicU64,
    deletes: AtomicU64,
}

/// A thread that owns one session, claims URLs for it as their owner and records them done,
/// batching the requests of every caller in multis. When the session is lost, every request
/// fails with it from then on: the claims it owned are an orphan for the crawl to adopt, on
/// another session (this one's owner never acts on them again).
pub struct Claimer {
    tx: Option<Sender<Request>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
    set: UrlSet,
    owner: String,
    health: Arc<SessionWatch>,
    zk: Arc<ZooKeeper>,
    /// One per line written and not yet recorded done; the claimer thread takes them back.
    credits: Sender<()>,
}

impl Claimer {
    /// Joins the crawl on `zk` as its session's owner ([`UrlSet::join`], `info` saying who
    /// we are, e.g. pid@host) and starts the claimer thread.
    ///
    /// `write_ahead` bounds the lines written whose done is not yet acknowledged (see
    /// [`Claimer::before_write`]).
    pub fn start(set: UrlSet, zk: ZooKeeper, info: &str, write_ahead: usize) -> zk::Result<Claimer> {
        let owner = set.join(&zk, info)?;
        // A watcher's grace: a connection that comes back within the session timeout keeps
        // the session, and with it every claim (the crawl writes lines only while connected,
        // so nothing is written once the server may have expired the session).
        let health = Arc::new(SessionWatch::watcher(&zk));
        let zk = Arc::new(zk);
        let (tx, rx) = crossbeam_channel::unbounded();
        let counters = Arc::new(Counters::default());
        let (credits, credits_back) = crossbeam_channel::bounded(write_ahead.max(1));
        let lp = ClaimLoop {
            credits_back,
            set: set.clone(),
            owner: owner.clone(),
            rx,
            counters: counters.clone(),
            health: health.clone(),
            zk: zk.clone(),
            jobs: HashMap::new(),
            next_job: 0,
        };
        let thread = std::thread::Builder::new()
            .name("claimer".into())
            .spawn(move || lp.run())
            .map_err(|_| Error::Zk { code: Code::SystemError, path: None })?;
        Ok(Claimer { tx: Some(tx), thread: Some(thread), counters, set, owner, health, zk, credits })
    }

    fn send(&self, req: Request) {
        let closing = || Error::Zk { code: Code::Closing, path: None };
        match self.tx.as_ref() {
            Some(tx) => {
                if let Err(e) = tx.send(req) {
                    e.into_inner().fail(closing());
                }
            }
            None => req.fail(closing()),
        }
    }

    /// Claims every entry (URLs normalized) for this owner, batched with the claims of other
    /// callers; results in input order. An Err means the claims could not be decided (the
    /// session lost, an ACL, a deleted table).
    pub fn claim(&self, entries: Vec<Entry>) -> zk::Result<Vec<Claim>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.send(Request::Claim { entries, reply: Reply::Blocking(reply) });
        rx.recv().map_err(|_| Error::Zk { code: Code::Closing, path: None })?
    }

    /// Claims every entry without waiting: `(tag, results)` arrives on `reply` once all are
    /// decided (results in input order), so one thread can keep many requests in flight.
    pub fn submit(&self, entries: Vec<Entry>, tag: u64, reply: &Sender<(u64, zk::Result<Vec<Claim>>)>) {
        self.send(Request::Claim { entries, reply: Reply::Tagged(tag, reply.clone()) });
    }

    /// Call before writing the line of one of our URLs (then call `done` for it). Waits while
    /// the session is suspended (a line is written only while connected), and while
    /// `write_ahead` lines written are not yet recorded done: so a connection that died
    /// unnoticed (the client notices only 2T/3 after it last heard from the server) leaves at
    /// most that many lines written and still owed, which an adopter fetches again. Err: the
    /// session is lost, or `stop` delivered or disconnected.
    pub fn before_write(&self, stop: &Receiver<()>) -> Result<(), zk::Halt> {
        if self.credits.try_send(()).is_err() {
            crossbeam_channel::select! {
                send(self.credits, ()) -> r => r.map_err(|_| zk::Halt::Stopped)?,
                recv(self.health.lost()) -> _ => return Err(zk::Halt::Zk(self.health.error())),
                recv(stop) -> _ => return Err(zk::Halt::Stopped),
            }
        }
        self.health.wait_connected(stop, None)
    }

    /// Records `url` (one of ours) done: its owned entry is deleted with the next batch.
    pub fn done(&self, url: &str) {
        self.send(Request::Done(self.set.owned_path(&self.owner, url)));
    }

    /// Waits until every request sent before is through (its multis answered).
    pub fn flush(&self) -> zk::Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.send(Request::Flush(tx));
        rx.recv().map_err(|_| Error::Zk { code: Code::Closing, path: None })?
    }

    /// This owner's name: the session id in 16 hex digits.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The session (for the crawl's own reads and marks; the claimer owns it).
    pub fn zk(&self) -> &ZooKeeper {
        &self.zk
    }

    /// The session's health, with a watcher's grace: lost (for good) once expired, or T after
    /// the client noticed a silent connection (by then the server has expired it). A caller
    /// acting for the owner (writing a fetched URL's line) does so only while `Connected`:
    /// the client notices silence 2T/3 after it last heard from the server, before the server
    /// can expire the session at T.
    pub fn health(&self) -> &SessionWatch {
        &self.health
    }

    /// The table.
    pub fn set(&self) -> &UrlSet {
        &self.set
    }

    /// URLs sent to ZooKeeper to claim so far (retries included; each is two creates in one
    /// multi: the seen node and the owned entry).
    pub fn creates(&self) -> u64 {
        self.counters.claims.load(Ordering::Relaxed)
    }

    /// Owned entries deleted so far (URLs done).
    pub fn deletes(&self) -> u64 {
        self.counters.deletes.load(Ordering::Relaxed)
    }

    /// The session's (id, password), e.g. to expire it in a test.
    pub fn client_id(&self) -> (i64, [u8; 16]) {
        self.zk.client_id()
    }
}

impl Drop for Claimer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if self.health.may_act()
            && let Err(e) = self.set.leave(&self.zk, &self.owner)
        {
            log::warn!("leaving crawl {}: {e}", self.set.name());
        }
        // dropping the last handle closes the session: live/ and idle/ nodes vanish at once
    }
}

struct Job {
    entries: Vec<Entry>,
    results: Vec<Option<Claim>>,
    /// Sent before with an unknown outcome: our own multi may have landed.
    tried: Vec<bool>,
    remaining: usize,
    reply: Reply,
}

struct ClaimLoop {
    /// Takes a credit back per done applied.
    credits_back: Receiver<()>,
    set: UrlSet,
    owner: String,
    rx: Receiver<Request>,
    counters: Arc<Counters>,
    health: Arc<SessionWatch>,
    zk: Arc<ZooKeeper>,
    jobs: HashMap<u64, Job>,
    next_job: u64,
}

/// Operations per multi: well under the 1 MB packet limit for URLs of a few hundred bytes
/// (a claim is two creates carrying the URL).
const MULTI_BATCH: usize = 500;

impl ClaimLoop {
    fn run(mut self) {
        let e = match self.serve() {
            Ok(()) => return,
            Err(e) => e,
        };
        for (_, job) in self.jobs.drain() {
            job.reply.send(Err(e.clone()));
        }
        // answer later callers too, until they are gone
        while let Ok(r) = self.rx.recv() {
            r.fail(e.clone());
        }
    }

    /// The error for a lost session (why, per the health model).
    fn lost(&self, e: Error) -> Error {
        match self.health.lost_why() {
            Some(why) => Error::SessionLost(why),
            None => e,
        }
    }

    /// Rounds until every caller is gone: take every request waiting (group commit), apply
    /// the dones, decide the claims, answer the flushes.
    fn serve(&mut self) -> Result<(), Error> {
        loop {
            let first = match self.rx.recv() {
                Ok(r) => r,
                Err(_) => return Ok(()),
            };
            let mut reqs = vec![first];
            while let Ok(r) = self.rx.try_recv() {
                reqs.push(r);
            }
            let (mut claims, mut dones, mut flushes) = (Vec::new(), Vec::new(), Vec::new());
            for r in reqs {
                match r {
                    Request::Claim { entries, reply } => {
                        let id = self.next_job;
                        self.next_job += 1;
                        let n = entries.len();
                        claims.extend((0..n).map(|i| (id, i)));
                        let job = Job { entries, results: vec![None; n], tried: vec![false; n], remaining: n, reply };
                        self.jobs.insert(id, job);
                    }
                    Request::Done(path) => dones.push(path),
                    Request::Flush(tx) => flushes.push(tx),
                }
            }
            if !self.health.may_act() {
                return Err(self.health.error());
            }
            let n = dones.len();
            self.deletes(dones)?;
            for _ in 0..n {
                let _ = self.credits_back.try_recv();
            }
            self.claims(claims)?;
            for tx in flushes {
                let _ = tx.send(Ok(()));
            }
        }
    }

    /// Deletes owned entries, in multis. NONODE: an earlier try landed (or the table is gone).
    fn deletes(&mut self, mut todo: Vec<String>) -> Result<(), Error> {
        while !todo.is_empty() {
            let n = todo.len().min(MULTI_BATCH);
            let chunk: Vec<String> = todo.drain(..n).collect();
            let ops: Vec<Op> = chunk.iter().map(|p| Op::Delete { path: p.clone(), version: None }).collect();
            self.counters.deletes.fetch_add(n as u64, Ordering::Relaxed);
            match self.zk.multi(&ops) {
                Ok(_) => {}
                Err(Error::Multi { index, code: Code::NoNode, .. }) => {
                    self.counters.deletes.fetch_sub(1, Ordering::Relaxed);
                    todo.extend(chunk.into_iter().enumerate().filter(|(i, _)| *i != index).map(|(_, p)| p));
                }
                Err(e) if e.is_session_lost() || !self.health.may_act() => return Err(self.lost(e)),
                Err(e) if e.is_outcome_unknown() => {
                    self.counters.deletes.fetch_sub(n as u64, Ordering::Relaxed);
                    self.health.recover(&never::<()>(), None).map_err(|_| self.health.error())?;
                    todo.extend(chunk);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Records one decided claim; answers its job when it was the last.
    fn decide(&mut self, (id, i): (u64, usize), c: Claim) {
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

    fn entry(&self, (id, i): (u64, usize)) -> Option<&Entry> {
        self.jobs.get(&id).map(|j| &j.entries[i])
    }

    fn tried(&self, (id, i): (u64, usize)) -> bool {
        self.jobs.get(&id).is_some_and(|j| j.tried[i])
    }

    /// Decides claims: multis creating [seen node, owned entry] per URL; what a multi that
    /// hit a claimed URL (or lost its answer) leaves undecided is looked up, and what is
    /// still free goes in the next multis.
    fn claims(&mut self, mut todo: Vec<(u64, usize)>) -> Result<(), Error> {
        while !todo.is_empty() {
            let mut check = Vec::new();
            let chunks: Vec<Vec<(u64, usize)>> = todo.chunks(MULTI_BATCH / 2).map(<[_]>::to_vec).collect();
            for chunk in chunks {
                let chunk: Vec<(u64, usize)> = chunk.into_iter().filter(|k| self.entry(*k).is_some()).collect();
                if chunk.is_empty() {
                    continue;
                }
                let ops: Vec<Op> = chunk
                    .iter()
                    .filter_map(|k| self.entry(*k))
                    .flat_map(|e| {
                        [
                            Op::Create {
                                path: self.set.path_of(&e.url),
                                data: e.url.as_bytes().to_vec(),
                                mode: CreateMode::Persistent,
                            },
                            Op::Create {
                                path: self.set.owned_path(&self.owner, &e.url),
                                data: e.data(),
                                mode: CreateMode::Persistent,
                            },
                        ]
                    })
                    .collect();
                self.counters.claims.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                match self.zk.multi(&ops) {
                    Ok(_) => chunk.iter().for_each(|k| self.decide(*k, Claim::Claimed)),
                    Err(Error::Multi { index, code: Code::NodeExists, .. }) if index / 2 < chunk.len() => {
                        let k = chunk[index / 2];
                        if index % 2 == 0 && !self.tried(k) {
                            self.decide(k, Claim::AlreadyClaimed);
                        } else {
                            check.push(k);
                        }
                        check.extend(chunk.iter().enumerate().filter(|(j, _)| *j != index / 2).map(|(_, k)| *k));
                    }
                    Err(e) if e.is_session_lost() || !self.health.may_act() => return Err(self.lost(e)),
                    Err(e) if e.is_outcome_unknown() => {
                        for (id, i) in &chunk {
                            if let Some(j) = self.jobs.get_mut(id) {
                                j.tried[*i] = true;
                            }
                        }
                        self.health.recover(&never::<()>(), None).map_err(|_| self.health.error())?;
                        check.extend(chunk);
                    }
                    Err(e) => {
                        // an ACL, a deleted table: these jobs fail, the crawl says why
                        for (id, _) in chunk {
                            if let Some(job) = self.jobs.remove(&id) {
                                job.reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
            }
            todo = self.check(check)?;
        }
        Ok(())
    }

    /// Looks the claims up (pipelined gets): our owned entry there (an earlier multi of
    /// ours landed) -> Claimed; the seen node there -> AlreadyClaimed; neither -> returned,
    /// to be claimed again.
    fn check(&mut self, mut items: Vec<(u64, usize)>) -> Result<Vec<(u64, usize)>, Error> {
        loop {
            items.retain(|k| self.entry(*k).is_some());
            if items.is_empty() {
                return Ok(items);
            }
            let mut paths = Vec::with_capacity(items.len() * 2);
            for k in &items {
                let e = self.entry(*k).expect("retained");
                paths.push(self.set.path_of(&e.url));
                // only a URL whose earlier multi may have landed can have our entry
                paths.push(if self.tried(*k) { self.set.owned_path(&self.owner, &e.url) } else { String::new() });
            }
            let lookups: Vec<String> = paths.iter().filter(|p| !p.is_empty()).cloned().collect();
            // after an unknown outcome, the server we read from must have applied our multi
            // if it landed (DESIGN: sync before checking)
            let synced = match items.iter().any(|k| self.tried(*k)) {
                true => self.zk.sync(&self.set.root()),
                false => Ok(()),
            };
            let found = match synced.and_then(|()| get_many(&self.zk, &lookups)) {
                Ok(f) => f,
                Err(e) if e.is_session_lost() || !self.health.may_act() => return Err(self.lost(e)),
                Err(e) if e.is_outcome_unknown() => {
                    self.health.recover(&never::<()>(), None).map_err(|_| self.health.error())?;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut found = found.into_iter();
            let mut free = Vec::new();
            for (n, k) in items.iter().enumerate() {
                let seen = found.next().flatten().is_some();
                let ours = !paths[2 * n + 1].is_empty() && found.next().flatten().is_some();
                if ours {
                    self.decide(*k, Claim::Claimed);
                } else if seen {
                    self.decide(*k, Claim::AlreadyClaimed);
                } else {
                    free.push(*k);
                }
            }
            return Ok(free);
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
    fn entries_round_trip_and_bad_ones_are_refused() {
        let e = Entry { url: "http://h/a b?c=d e".into(), depth: 3, hops: 1 };
        assert_eq!(Entry::parse(&e.data()), Some(e));
        assert_eq!(Entry::parse(b"3 x http://h/"), None);
        assert_eq!(Entry::parse(b"3"), None);
        let s = UrlSet::new("n", 4).unwrap();
        let key = s.path_of("http://h/").rsplit('/').next().unwrap().to_string();
        assert_eq!(s.owned_path("00ab", "http://h/"), format!("/crawler/n/owned/00ab/{key}"));
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
