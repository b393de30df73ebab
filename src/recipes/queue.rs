//! A producer/consumer queue on sequential znodes, in the format of kazoo's `Queue` recipe,
//! so Python services using kazoo can share a queue with zkutil.
//!
//! Layout: the queue node's children are the items, named `entry-<priority:03>-<seq:010>`
//! (PERSISTENT_SEQUENTIAL), data = the item's raw bytes. Order: (priority, sequence); lower
//! priority first. A consumer lists the children once and works through the sorted list
//! before listing again (Curator does this), so a backlog of N items costs about N deletes.
//!
//! Two ways to take items:
//! - [`Queue::consume`], delete-as-claim: an item is ours when our delete of it succeeded
//!   (NONODE: another consumer won it). Gets and deletes are pipelined in pairs: on one
//!   session the server answers in submission order, so each get reads the data its following
//!   delete removes. Exactly once while nothing crashes; at most once if the consumer dies.
//! - [`Claimer`], at least once (kazoo's LockingQueue idea): an ephemeral child
//!   `<item>/taken` claims the item; the item and the claim go in one multi once the work is
//!   done. A crashed consumer's claim vanishes with its session and the item is taken again.
//!   The claim lives under the item (not in a `taken` sibling) so the queue node's children
//!   stay exactly kazoo's items, and no delete-as-claim consumer can take a claimed item
//!   (its delete fails with NOTEMPTY).
//!
//! Delayed items (Curator's DistributedDelayQueue): an item produced with a due time is named
//! `entry-<priority:03>-|<due:08X>|<seq:010>`, the due time in epoch milliseconds as Curator
//! writes it (`%08X` between two `|`, read back from the last two separators). Consumers skip
//! items not yet due and, when only those remain, wait on the children watch and a timer set
//! to the earliest due time. Due items go in (priority, due time, sequence) order: items
//! without a delay count as due at 0, so within a priority they come first, and the order is
//! the one kazoo's sort of the names gives ('|' sorts after the digits). A kazoo consumer
//! knows nothing of due times and takes a delayed item as soon as it reaches the head of the
//! queue; zkutil before the delay queue does not take them at all (they are not its names).
//! Due times compare the producer's clock with the consumer's: skew between hosts moves the
//! moment an item becomes visible by that much (Curator has the same weakness).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, TryRecvError, never};

use crate::zk::{self, Answer, Code, CreateMode, Halt, MAX_PACKET, Op, SessionWatch, ZooKeeper};

/// kazoo's element prefix.
pub const PREFIX: &str = "entry-";
/// The name of the claim node under an item.
pub const CLAIM: &str = "taken";
/// kazoo's default priority.
pub const DEFAULT_PRIORITY: u16 = 100;
/// Requests kept in flight when producing and consuming.
pub const WINDOW: usize = 1000;
/// Room the create request needs besides the data (header, path, ACL, flags).
const REQUEST_OVERHEAD: usize = 256;
/// Consecutive connection losses on one listing before giving up on it.
const LIST_ATTEMPTS: usize = 3;
/// How many claimed items a waiting claimer watches for a released claim.
const WATCHED_CLAIMS: usize = 32;
/// Curator's separator around the due time in a delayed item's name.
pub const DUE_SEPARATOR: char = '|';
/// Room a due time takes in a name: `|` + up to 16 hex digits + `|`.
const DUE_ROOM: usize = 18;

/// What can go wrong with a queue.
#[derive(Debug)]
#[allow(missing_docs)] // fields are named for what they hold; each variant says what failed
pub enum Error {
    /// The queue node does not exist.
    NoQueue { path: String },
    /// Item `index` (0-based) is larger than ZooKeeper accepts; nothing was queued.
    TooLarge { index: usize, size: usize, limit: usize },
    /// Priorities run from 0 to 999.
    BadPriority(u16),
    /// Producing stopped part way.
    Partial { queued: usize, unknown: usize, total: usize, cause: zk::Error },
    /// The claim on `item` was lost (session expired) before the item was completed; the item
    /// stays in the queue for another consumer.
    ClaimLost { item: String, cause: zk::Error },
    /// The session expired or was closed.
    SessionLost { cause: zk::Error },
    /// The session ended while deletes of these taken items were in flight: their data is
    /// here, and [`Queue::settle`] on a new session decides which were taken.
    InDoubt { cause: zk::Error, items: Vec<Item> },
    /// The item sink (the caller's callback) failed; `lost` taken items could not be handed
    /// over.
    Sink { error: std::io::Error, lost: usize, requeued: usize },
    /// Listing the queue failed with connection loss again and again: the listing is
    /// probably larger than a packet limit.
    ListingFailed { path: String, children: Option<i32>, cause: zk::Error },
    /// Any other ZooKeeper failure.
    Zk(zk::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoQueue { path } => write!(f, "queue {path} does not exist (nothing was ever produced to it)"),
            Error::TooLarge { index, size, limit } => write!(
                f,
                "item {} is {size} bytes, over ZooKeeper's limit of {limit} bytes for one item \
                 (jute.maxbuffer); nothing was queued",
                index + 1
            ),
            Error::BadPriority(p) => write!(f, "priority {p} is out of range (0-999)"),
            Error::Partial { queued, unknown, total, cause } => {
                write!(f, "queued {queued} of {total} items, then: {cause}")?;
                if *unknown > 0 {
                    write!(f, " ({unknown} more may or may not have been queued)")?;
                }
                Ok(())
            }
            Error::ClaimLost { item, cause } => {
                write!(f, "lost the claim on {item} ({cause}); the item stays in the queue")
            }
            Error::SessionLost { cause } => write!(f, "ZooKeeper session lost: {cause}"),
            Error::InDoubt { cause, items } => {
                write!(f, "ZooKeeper session lost ({cause}) with {} taken items in doubt", items.len())
            }
            Error::Sink { error, lost, requeued } => {
                write!(f, "writing items: {error}")?;
                if *requeued > 0 {
                    write!(f, " ({requeued} taken but unwritten items were put back in the queue)")?;
                }
                if *lost > 0 {
                    write!(f, " ({lost} taken items could not be written nor put back)")?;
                }
                Ok(())
            }
            Error::ListingFailed { path, children, cause } => {
                write!(f, "listing the ")?;
                if let Some(n) = children {
                    write!(f, "{n} ")?;
                }
                write!(
                    f,
                    "items of {path} failed {LIST_ATTEMPTS} times ({cause}); a listing larger than the \
                     packet limit (1 MB by default) needs a larger -Djute.maxbuffer on the server \
                     and the client"
                )
            }
            Error::Zk(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Sink { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl From<zk::Error> for Error {
    fn from(e: zk::Error) -> Error {
        if e.is_session_lost() { Error::SessionLost { cause: e } } else { Error::Zk(e) }
    }
}

/// Why a wait of the session-health model gave up, as a queue error (without a stop or a
/// deadline only the session can end it).
fn halted(h: Halt) -> Error {
    match h {
        Halt::Zk(e) => e.into(),
        Halt::Stopped | Halt::TimedOut => Error::Zk(zk::Error::Zk { code: Code::OperationTimeout, path: None }),
    }
}

/// Shorthand for the queue's results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An item's name parsed: `entry-<priority>-<sequence>`, or `entry-<priority>-|<due>|<sequence>`
/// for a delayed item. Ordered as consumers take due items: priority, due time, sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// 0-999, lower first.
    pub priority: u16,
    /// When the item becomes visible, epoch milliseconds; 0 for an item without a delay.
    pub due: u64,
    /// The server's sequence number (FIFO within a priority and due time).
    pub sequence: u32,
}

impl Position {
    /// Parses a child name; None for names that are not queue items.
    pub fn parse(name: &str) -> Option<Position> {
        let rest = name.strip_prefix(PREFIX)?;
        let (prio, rest) = rest.split_once('-')?;
        if prio.len() != 3 || !prio.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (due, seq) = match rest.strip_prefix(DUE_SEPARATOR) {
            None => (0, rest),
            Some(delayed) => {
                let (hex, seq) = delayed.split_once(DUE_SEPARATOR)?;
                if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                (u64::from_str_radix(hex, 16).ok()?, seq)
            }
        };
        if seq.len() != 10 {
            return None;
        }
        Some(Position { priority: prio.parse().ok()?, due, sequence: zk::sequence_of(seq)? })
    }
}

/// The name prefix (before the sequence) of an item of `priority` due at `due` (epoch ms;
/// None: no delay). The due time is written as Curator's `epochToString` does.
pub fn item_prefix(priority: u16, due: Option<u64>) -> String {
    match due {
        None => format!("{PREFIX}{priority:03}-"),
        Some(due) => format!("{PREFIX}{priority:03}-{DUE_SEPARATOR}{due:08X}{DUE_SEPARATOR}"),
    }
}

/// Curator's `DistributedQueue` item prefix (`QUEUE_ITEM_NAME`).
pub const CURATOR_PREFIX: &str = "queue-";
/// Curator's `ItemSerializer`: format version, then per item an opcode and a length.
const CURATOR_VERSION: u32 = 0x0001_0001;
const CURATOR_ITEM: u8 = 0x01;
const CURATOR_EOF: u8 = 0x02;
/// What the framing adds to one item: version, opcode, length, end opcode.
const CURATOR_FRAME: usize = 4 + 1 + 4 + 1;

/// One item as Curator's `ItemSerializer.serialize` writes it (Java's DataOutputStream: big
/// endian): version 0x00010001, opcode 0x01, the item's length and bytes, opcode 0x02.
pub fn curator_frame(item: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(item.len() + CURATOR_FRAME);
    out.extend(CURATOR_VERSION.to_be_bytes());
    out.push(CURATOR_ITEM);
    out.extend((item.len() as u32).to_be_bytes());
    out.extend(item);
    out.push(CURATOR_EOF);
    out
}

/// The items in a node written by Curator's `ItemSerializer` (one, or several from
/// `putMulti`); None when the bytes are not in that format.
pub fn curator_unframe(data: &[u8]) -> Option<Vec<Vec<u8>>> {
    let (version, mut rest) = data.split_first_chunk::<4>()?;
    if u32::from_be_bytes(*version) != CURATOR_VERSION {
        return None;
    }
    let mut items = Vec::new();
    loop {
        let (&op, r) = rest.split_first()?;
        match op {
            CURATOR_EOF => return Some(items),
            CURATOR_ITEM => {
                let (len, r) = r.split_first_chunk::<4>()?;
                let len = i32::from_be_bytes(*len);
                let len = usize::try_from(len).ok().filter(|&l| l <= r.len())?;
                items.push(r[..len].to_vec());
                rest = &r[len..];
            }
            _ => return None,
        }
    }
}

/// Now, in epoch milliseconds (the clock due times are compared with).
pub fn epoch_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The monotonic instant at which the wall clock reaches `due` (epoch ms): never early, since
/// a due item is one whose due time is not after the current whole millisecond.
fn instant_of(due: u64) -> Instant {
    crate::util::deadline_after(Duration::from_millis(due.saturating_sub(epoch_ms())))
}

/// One listing of a queue.
struct Listing {
    /// The due items' names, in the order consumers take them.
    names: Vec<String>,
    /// Items not yet due, earliest first.
    later: Vec<(Position, String)>,
    /// The children watch, when asked for.
    watch: Option<Receiver<zk::WatchEvent>>,
}

impl Listing {
    /// When the earliest item not yet due becomes due.
    fn next_due(&self) -> Option<Instant> {
        self.later.first().map(|(p, _)| instant_of(p.due))
    }
}

/// A taken (or peeked) item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Full path of the item's node (gone once taken).
    pub path: String,
    /// The item's bytes, as produced.
    pub data: Vec<u8>,
}

/// How a consume run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The queue was empty (without `follow`).
    Empty,
    /// `max` items were taken.
    Count,
    /// No item arrived for the idle timeout.
    Idle,
    /// The stop channel disconnected.
    Stopped,
    /// The queue node does not exist (without `follow`, which waits for it).
    NoQueue,
}

/// Consume options.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Stop after this many items.
    pub max: Option<u64>,
    /// Wait for new items when the queue is empty.
    pub follow: bool,
    /// With `follow`: stop when no item arrived for this long.
    pub idle: Option<Duration>,
}

/// Where consumed items go, in queue order.
pub trait Sink {
    /// One taken item; an error stops the consumer.
    fn item(&mut self, item: &Item) -> std::io::Result<()>;
    /// A taken item whose delete's reply a lost connection hid, found deleted afterwards:
    /// taken by us, or by another consumer at the same moment (then it is a duplicate).
    fn recovered(&mut self, item: &Item) -> std::io::Result<()> {
        self.item(item)
    }
    /// Called when the consumer has nothing more at hand (before it waits or lists again).
    fn idle(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A queue at `path`.
#[derive(Debug)]
pub struct Queue<'zk> {
    zk: &'zk ZooKeeper,
    path: String,
    /// The session's health, with a watcher's grace (T after the client noticed silence):
    /// a consumer holds nothing that another could take meanwhile.
    health: SessionWatch,
    /// Items not yet due at the last listing, and the earliest one's due time.
    later: (AtomicU64, AtomicU64),
}

fn stopped(stop: &Receiver<()>) -> bool {
    matches!(stop.try_recv(), Err(TryRecvError::Disconnected))
}

impl<'zk> Queue<'zk> {
    /// A queue at `path` (which need not exist yet).
    pub fn new(zk: &'zk ZooKeeper, path: &str) -> Result<Queue<'zk>> {
        zk::validate_path(path, false)?;
        Ok(Queue {
            zk,
            path: path.to_string(),
            health: SessionWatch::watcher(zk),
            later: (AtomicU64::new(0), AtomicU64::new(0)),
        })
    }

    /// How many items the last listing found not yet due, and when the earliest is due
    /// (epoch ms); None when there were none (or nothing was listed yet).
    pub fn not_due(&self) -> Option<(usize, u64)> {
        let n = self.later.0.load(Ordering::Relaxed);
        (n > 0).then(|| (n as usize, self.later.1.load(Ordering::Relaxed)))
    }

    /// The queue node's path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The largest item this queue accepts (ZooKeeper's packet limit minus the request).
    pub fn item_limit(&self) -> usize {
        MAX_PACKET - self.prefix(DEFAULT_PRIORITY, None).len() - 10 - REQUEST_OVERHEAD
    }

    fn prefix(&self, priority: u16, due: Option<u64>) -> String {
        zk::join(&self.path, &item_prefix(priority, due))
    }

    /// Creates the queue node (and its parents) if missing.
    pub fn ensure(&self) -> Result<()> {
        Ok(self.zk.ensure_path(&self.path, CreateMode::Persistent)?)
    }

    /// Queues every item, in order, pipelined. Sizes are checked first: one oversized item
    /// and nothing is queued. Creates the queue node if missing. Returns the count queued.
    pub fn produce<T: AsRef<[u8]>>(&self, items: &[T], priority: u16) -> Result<usize> {
        self.produce_due(items, priority, None)
    }

    /// [`Queue::produce`], the items visible to consumers only from `due` (epoch ms) on
    /// (None: at once). A due time in the past makes the items due at once, ordered after
    /// undelayed items of their priority.
    pub fn produce_due<T: AsRef<[u8]>>(&self, items: &[T], priority: u16, due: Option<u64>) -> Result<usize> {
        if priority > 999 {
            return Err(Error::BadPriority(priority));
        }
        let limit = self.item_limit() - if due.is_some() { DUE_ROOM } else { 0 };
        if let Some((index, item)) = items.iter().enumerate().find(|(_, i)| i.as_ref().len() > limit) {
            return Err(Error::TooLarge { index, size: item.as_ref().len(), limit });
        }
        self.ensure()?;
        self.create_items(items, &self.prefix(priority, due))
    }

    /// Queues every item in the format of Curator's `DistributedQueue` (no `due`) or
    /// `DistributedDelayQueue` (`due`, epoch ms): children `queue-<seq>` or
    /// `queue-|<due:08X>|<seq>`, each item framed by Curator's `ItemSerializer`
    /// ([`curator_frame`]), for Java consumers with a pass-through `QueueSerializer`. zkutil's
    /// own consumers do not take these items. Sizes are checked first, as by `produce`.
    pub fn produce_curator<T: AsRef<[u8]>>(&self, items: &[T], due: Option<u64>) -> Result<usize> {
        let limit = self.item_limit() - DUE_ROOM - CURATOR_FRAME;
        if let Some((index, item)) = items.iter().enumerate().find(|(_, i)| i.as_ref().len() > limit) {
            return Err(Error::TooLarge { index, size: item.as_ref().len(), limit });
        }
        self.ensure()?;
        let framed: Vec<Vec<u8>> = items.iter().map(|i| curator_frame(i.as_ref())).collect();
        let name = match due {
            None => CURATOR_PREFIX.to_string(),
            Some(due) => format!("{CURATOR_PREFIX}{DUE_SEPARATOR}{due:08X}{DUE_SEPARATOR}"),
        };
        self.create_items(&framed, &zk::join(&self.path, &name))
    }

    /// Creates one sequential node per item under `prefix`, pipelined.
    fn create_items<T: AsRef<[u8]>>(&self, items: &[T], prefix: &str) -> Result<usize> {
        let results =
            self.zk.create_many(items.iter().map(|i| (prefix, i.as_ref(), CreateMode::PersistentSequential)), WINDOW);
        let queued = results.iter().filter(|r| r.is_ok()).count();
        match results.into_iter().find_map(Result::err) {
            None => Ok(queued),
            Some(cause) => {
                let unknown = items.len() - queued;
                let unknown = if cause.is_outcome_unknown() { unknown } else { 0 };
                Err(Error::Partial { queued, unknown, total: items.len(), cause })
            }
        }
    }

    /// The number of items (including claimed ones), from the queue node's Stat: no listing.
    pub fn len(&self) -> Result<usize> {
        match self.zk.exists(&self.path)? {
            Some(stat) => Ok(stat.num_children.max(0) as usize),
            None => Err(Error::NoQueue { path: self.path.clone() }),
        }
    }

    /// `list`, retried after reconnecting, but only a few times: a listing that loses the
    /// connection each time is too big for a packet limit, and looping would hide that.
    fn list_retrying(&self, watch: bool) -> Result<Listing> {
        let mut attempt = 0;
        loop {
            match self.list(watch) {
                Err(Error::Zk(e)) if e.is_outcome_unknown() => {
                    attempt += 1;
                    self.await_connected()?;
                    if attempt >= LIST_ATTEMPTS {
                        let children = self.zk.exists(&self.path).ok().flatten().map(|s| s.num_children);
                        return Err(Error::ListingFailed { path: self.path.clone(), children, cause: e });
                    }
                }
                other => return other,
            }
        }
    }

    /// True when no item waits.
    pub fn is_empty(&self) -> Result<bool> {
        self.len().map(|n| n == 0)
    }

    /// The item names: the due ones in queue order, the others by due time. `watch`: also arm
    /// a children watch.
    fn list(&self, watch: bool) -> Result<Listing> {
        let listed = if watch {
            self.zk.children_w(&self.path).map(|(c, _, w)| (c, Some(w)))
        } else {
            self.zk.children(&self.path).map(|c| (c, None))
        };
        let (names, w) = match listed {
            Ok(x) => x,
            Err(e) if e.code() == Some(Code::NoNode) => return Err(Error::NoQueue { path: self.path.clone() }),
            Err(e) => return Err(e.into()),
        };
        let now = epoch_ms();
        let mut later = Vec::new();
        let mut items: Vec<(Position, String)> = names
            .into_iter()
            .filter_map(|n| match Position::parse(&n) {
                Some(p) if p.due > now => {
                    later.push((p, n));
                    None
                }
                Some(p) => Some((p, n)),
                None => None,
            })
            .collect();
        items.sort_unstable();
        later.sort_unstable_by_key(|(p, _)| (p.due, p.priority, p.sequence));
        self.later.0.store(later.len() as u64, Ordering::Relaxed);
        self.later.1.store(later.first().map_or(0, |(p, _)| p.due), Ordering::Relaxed);
        Ok(Listing { names: items.into_iter().map(|(_, n)| n).collect(), later, watch: w })
    }

    /// The first `n` due items, in queue order, left in the queue.
    pub fn peek(&self, n: usize) -> Result<Vec<Item>> {
        self.peek_with(n, false)
    }

    /// The first `n` items, left in the queue: the due ones in queue order, then (`later`) the
    /// ones not yet due, earliest due first.
    pub fn peek_with(&self, n: usize, later: bool) -> Result<Vec<Item>> {
        let listing = self.list_retrying(false)?;
        let mut names = listing.names;
        if later {
            names.extend(listing.later.into_iter().map(|(_, n)| n));
        }
        let mut out = Vec::new();
        let mut start = 0;
        while out.len() < n && start < names.len() {
            let end = (start + (n - out.len()).min(WINDOW)).min(names.len());
            let mut p = self.zk.requests();
            for (i, name) in names.iter().enumerate().take(end).skip(start) {
                p.get(i as u64, &zk::join(&self.path, name))?;
            }
            let mut got = std::collections::BTreeMap::new();
            while let Some((tag, r)) = p.recv() {
                match r {
                    Ok(Answer::Data(d, _)) => {
                        got.insert(tag as usize, d);
                    }
                    Err(Code::NoNode) => {} // taken meanwhile
                    Err(code) => return Err(zk::Error::Zk { code, path: None }.into()),
                    Ok(_) => {}
                }
            }
            out.extend(got.into_iter().map(|(i, data)| Item { path: zk::join(&self.path, &names[i]), data }));
            start = end;
        }
        Ok(out)
    }

    /// Takes items (delete-as-claim) and hands them to `sink` in queue order, until the queue
    /// is empty (or, with `follow`, until `max` items, the idle timeout, or `stop`). A
    /// missing queue is [`End::NoQueue`]; with `follow` it is waited for. Items claimed by
    /// CMD consumers ([`Claimer`]) are left alone, and a follower watches their claims: a
    /// released claim (CMD failed) wakes it. Items not yet due are skipped; a follower with
    /// nothing but those waits until the earliest is due (or the queue changes).
    pub fn consume(&self, opts: &Options, stop: &Receiver<()>, sink: &mut dyn Sink) -> Result<End> {
        let mut taken: u64 = 0;
        let mut last_item = Instant::now();
        loop {
            if opts.max.is_some_and(|m| taken >= m) {
                return Ok(End::Count);
            }
            if stopped(stop) {
                return Ok(End::Stopped);
            }
            let idle = |last_item: Instant| opts.idle.map(|d| last_item + d);
            let mut listing = match self.list_retrying(false) {
                Err(Error::NoQueue { .. }) if opts.follow => match self.await_queue(idle(last_item), stop)? {
                    Woke::Changed | Woke::Due => continue,
                    Woke::Idle => return Ok(End::Idle),
                    Woke::Stopped => return Ok(End::Stopped),
                },
                Err(Error::NoQueue { .. }) => return Ok(End::NoQueue),
                r => r?,
            };
            if listing.names.is_empty() && opts.follow {
                // list again with a watch: whatever arrives after this listing fires it
                listing = match self.list_retrying(true) {
                    Err(Error::NoQueue { .. }) => continue, // deleted meanwhile: wait for it again
                    r => r?,
                };
            }
            let names = &listing.names;
            if names.is_empty() {
                sink.idle().map_err(|error| Error::Sink { error, lost: 0, requeued: 0 })?;
                let due = listing.next_due();
                let Some(watch) = listing.watch else { return Ok(End::Empty) };
                match self.wait(&[watch], idle(last_item), due, stop)? {
                    Woke::Changed | Woke::Due => continue,
                    Woke::Idle => return Ok(End::Idle),
                    Woke::Stopped => return Ok(End::Stopped),
                }
            }
            let remaining = opts.max.map(|m| m - taken);
            let (n, busy) = self.take_batch(names, remaining, stop, sink)?;
            if n > 0 {
                last_item = Instant::now();
            }
            taken += n;
            sink.idle().map_err(|error| Error::Sink { error, lost: 0, requeued: 0 })?;
            if n == 0 && !busy.is_empty() && busy.len() == names.len() {
                // every item is claimed by a CMD consumer: nothing for us until a new one
                // comes or a claim is released (its CMD failed, or its consumer died)
                if !opts.follow {
                    return Ok(End::Empty);
                }
                let Some((watches, due)) = self.watch_busy(&busy)? else { continue };
                match self.wait(&watches, idle(last_item), due, stop)? {
                    Woke::Changed | Woke::Due => {}
                    Woke::Idle => return Ok(End::Idle),
                    Woke::Stopped => return Ok(End::Stopped),
                }
            }
        }
    }

    /// Watches for a change that could free an item while every listed one is claimed: the
    /// queue's children and the claims (up to [`WATCHED_CLAIMS`]). None when something
    /// changed already (a new item, a released claim): list again. Also when the earliest
    /// item not yet due becomes due.
    #[allow(clippy::type_complexity)]
    fn watch_busy(&self, busy: &[String]) -> Result<Option<(Vec<Receiver<zk::WatchEvent>>, Option<Instant>)>> {
        let listing = match self.list_retrying(true) {
            Err(Error::NoQueue { .. }) => return Ok(None),
            r => r?,
        };
        if listing.names.iter().any(|n| !busy.contains(n)) {
            return Ok(None);
        }
        let due = listing.next_due();
        let mut watches: Vec<_> = listing.watch.into_iter().collect();
        for name in busy.iter().take(WATCHED_CLAIMS) {
            let claim = zk::join(&zk::join(&self.path, name), CLAIM);
            let (stat, w) = self.retry(|| Ok(self.zk.exists_w(&claim)?))?;
            if stat.is_none() {
                return Ok(None); // released since we tried
            }
            watches.push(w);
        }
        Ok(Some((watches, due)))
    }

    /// Waits for the queue node to be created (a consumer may start before any producer).
    fn await_queue(&self, idle: Option<Instant>, stop: &Receiver<()>) -> Result<Woke> {
        let (stat, w) = self.retry(|| Ok(self.zk.exists_w(&self.path)?))?;
        if stat.is_some() {
            return Ok(Woke::Changed);
        }
        self.wait(&[w], idle, None, stop)
    }

    /// Works through one sorted listing, pipelined: gets go out back to back, and an item's
    /// delete goes out only once its get returned, so every delete whose outcome a lost
    /// connection hides has its data at hand (a get and delete lost together could remove an
    /// item nobody read). Returns the items taken and the names claimed by CMD consumers.
    fn take_batch(
        &self,
        names: &[String],
        max: Option<u64>,
        stop: &Receiver<()>,
        sink: &mut dyn Sink,
    ) -> Result<(u64, Vec<String>)> {
        let mut p = self.zk.requests();
        let mut next = 0usize; // next name to read
        let mut outstanding = 0u64; // gets and deletes in flight (each may become an item)
        let mut taken = 0u64;
        let mut data: HashMap<usize, Vec<u8>> = HashMap::new(); // read, delete in flight
        let mut unknown: Vec<Item> = Vec::new(); // read, delete outcome unknown
        let mut failure: Option<Error> = None;
        let mut unwritten: Vec<Item> = Vec::new(); // taken after the sink failed
        let mut halt = false;
        let mut busy = Vec::new();
        let item_at = |idx: usize, data: Vec<u8>| Item { path: zk::join(&self.path, &names[idx]), data };
        loop {
            while !halt
                && failure.is_none()
                && next < names.len()
                && (outstanding as usize) < WINDOW
                && max.is_none_or(|m| taken + outstanding < m)
            {
                if stopped(stop) {
                    halt = true;
                    break;
                }
                if let Err(e) = p.get(next as u64 * 2, &zk::join(&self.path, &names[next])) {
                    halt = true; // not sent: the item is untouched
                    if !e.is_outcome_unknown() {
                        failure = Some(e.into());
                    }
                    break;
                }
                outstanding += 1;
                next += 1;
            }
            let Some((tag, r)) = p.recv() else { break };
            let r = r.map_err(|code| zk::Error::Zk { code, path: None });
            let idx = (tag / 2) as usize;
            if tag % 2 == 0 {
                match r {
                    Ok(Answer::Data(d, _)) if !halt && failure.is_none() => {
                        if let Err(e) = p.delete(tag + 1, &zk::join(&self.path, &names[idx]), None) {
                            outstanding -= 1; // not sent: the item is untouched
                            halt = true;
                            if !e.is_outcome_unknown() {
                                failure = Some(e.into());
                            }
                        } else {
                            data.insert(idx, d);
                        }
                    }
                    Ok(_) => outstanding -= 1, // halting: the item stays
                    Err(e) => {
                        outstanding -= 1;
                        match e.code() {
                            Some(Code::NoNode) => {}                    // another consumer won it
                            _ if e.is_outcome_unknown() => halt = true, // a get changes nothing
                            _ => {
                                halt = true;
                                failure.get_or_insert(e.into());
                            }
                        }
                    }
                }
                continue;
            }
            outstanding -= 1;
            let got = data.remove(&idx).unwrap_or_default();
            match r {
                Ok(_) => {
                    let item = item_at(idx, got);
                    taken += 1;
                    if failure.is_none() {
                        if let Err(error) = sink.item(&item) {
                            failure = Some(Error::Sink { error, lost: 0, requeued: 0 });
                            unwritten.push(item);
                        }
                    } else {
                        if !matches!(failure, Some(Error::Sink { .. })) {
                            log::warn!("{}: taken after a failure; putting it back", item.path);
                        }
                        unwritten.push(item);
                    }
                }
                // another consumer won it
                Err(e) if e.code() == Some(Code::NoNode) => {}
                // a CMD consumer holds it (its claim is a child of the item)
                Err(e) if e.code() == Some(Code::NotEmpty) => busy.push(names[idx].clone()),
                Err(e) if e.is_outcome_unknown() => {
                    unknown.push(item_at(idx, got));
                    halt = true; // every later request fails the same way; re-list after reconnecting
                }
                Err(e) => {
                    halt = true;
                    if e.code().is_some_and(Code::is_session_lost) {
                        unknown.push(item_at(idx, got)); // sent, then the session ended: in doubt
                    }
                    failure.get_or_insert(e.into());
                }
            }
        }
        drop(p);
        if let Some(f) = failure {
            // Items we own but could not hand over go back rather than vanish (at the tail of
            // their priority: the sequence numbers are new).
            let n = unwritten.len();
            let requeued = if n > 0 { self.requeue(&unwritten) } else { 0 };
            return Err(match f {
                Error::Sink { error, .. } => Error::Sink { error, lost: n - requeued, requeued },
                Error::SessionLost { cause } if !unknown.is_empty() => Error::InDoubt { cause, items: unknown },
                f => f,
            });
        }
        if !unknown.is_empty() || (halt && !stopped(stop)) {
            if let Err(e) = self.await_connected() {
                return Err(match e {
                    Error::SessionLost { cause } if !unknown.is_empty() => Error::InDoubt { cause, items: unknown },
                    e => e,
                });
            }
            taken += self.settle(unknown, sink)?;
        }
        Ok((taken, busy))
    }

    /// Decides items whose delete was sent but whose outcome a lost connection (or session)
    /// hid: after a `sync` (so the server we read has applied whatever reached the leader), an
    /// item still there was not deleted (it is listed again); a gone one was taken, by us or
    /// by another consumer at the same moment, and is handed to [`Sink::recovered`]: at
    /// least once rather than lost. Returns how many were handed over. Call it on the session
    /// that lost them or on a new one (after [`Error::InDoubt`]).
    pub fn settle(&self, items: Vec<Item>, sink: &mut dyn Sink) -> Result<u64> {
        if items.is_empty() {
            return Ok(0);
        }
        self.retry(|| Ok(self.zk.sync(&self.path)?))?;
        let mut handed = 0;
        for item in items {
            if self.retry(|| Ok(self.zk.exists(&item.path)?))?.is_none() {
                handed += 1;
                if let Err(error) = sink.recovered(&item) {
                    let requeued = self.requeue(std::slice::from_ref(&item));
                    return Err(Error::Sink { error, lost: 1 - requeued, requeued });
                }
            }
        }
        Ok(handed)
    }

    /// Produces taken items again, each with its old priority and due time; returns how many
    /// went back.
    fn requeue(&self, items: &[Item]) -> usize {
        let mut back = 0;
        for item in items {
            let name = item.path.rsplit('/').next().unwrap_or_default();
            let (priority, due) = Position::parse(name).map_or((DEFAULT_PRIORITY, 0), |p| (p.priority, p.due));
            let due = (due > 0).then_some(due); // its place among the due items of its priority
            match self.produce_due(std::slice::from_ref(&item.data), priority, due) {
                Ok(n) => back += n,
                Err(e) => log::warn!("{}: could not put it back: {e}", item.path),
            }
        }
        back
    }

    /// Runs `f`, retrying after the connection comes back when its outcome is unknown
    /// (the session-health model's pause and wait). Only for idempotent calls.
    fn retry<T>(&self, mut f: impl FnMut() -> Result<T>) -> Result<T> {
        loop {
            if let Some(why) = self.health.lost_why() {
                return Err(zk::Error::SessionLost(why).into());
            }
            match f() {
                Err(Error::Zk(e)) if e.is_outcome_unknown() => {
                    self.health.recover(&never::<()>(), None).map_err(halted)?
                }
                other => return other,
            }
        }
    }

    /// After an outcome-unknown error: waits until the client has a connection again (the C
    /// client reconnects by itself while the session lives), or fails once the session-health
    /// model calls it lost. It pauses first, as the health model may not have heard of the
    /// disconnect yet, so that a dead server does not burn retries in a few milliseconds.
    fn await_connected(&self) -> Result<()> {
        self.health.recover(&never::<()>(), None).map_err(halted)
    }

    /// Waits for any of `watches`, the idle deadline, the `due` time (of the earliest item
    /// not yet due), or `stop`.
    fn wait(
        &self,
        watches: &[Receiver<zk::WatchEvent>],
        idle: Option<Instant>,
        due: Option<Instant>,
        stop: &Receiver<()>,
    ) -> Result<Woke> {
        let deadline = idle.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
        let timer = due.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
        let mut sel = Select::new();
        for w in watches {
            sel.recv(w);
        }
        let stop_i = sel.recv(stop);
        let idle_i = sel.recv(&deadline);
        let due_i = sel.recv(&timer);
        let op = sel.select();
        let i = op.index();
        if i == stop_i {
            let _ = op.recv(stop);
            return Ok(Woke::Stopped);
        }
        if i == idle_i {
            let _ = op.recv(&deadline);
            return Ok(Woke::Idle);
        }
        if i == due_i {
            let _ = op.recv(&timer);
            return Ok(Woke::Due);
        }
        match op.recv(&watches[i]) {
            Ok(_) => Ok(Woke::Changed),
            // the watch's sender went away: the session expired or closed
            Err(_) if self.zk.is_dead() => {
                Err(Error::SessionLost { cause: zk::Error::Zk { code: Code::SessionExpired, path: None } })
            }
            Err(_) => Ok(Woke::Changed),
        }
    }
}

enum Woke {
    Changed,
    /// The earliest item not yet due became due.
    Due,
    Idle,
    Stopped,
}

/// How a claim attempt ended.
#[derive(Debug)]
pub enum Claimed<'q, 'zk> {
    /// An item, claimed: complete or release it.
    Item(Claim<'q, 'zk>),
    /// Nothing to take (without `follow`).
    Empty,
    /// Nothing arrived for the idle timeout.
    Idle,
    /// The stop channel disconnected.
    Stopped,
}

/// Takes items one at a time, at least once: claim, work, then complete (or release).
#[derive(Debug)]
pub struct Claimer<'q, 'zk> {
    queue: &'q Queue<'zk>,
    cache: VecDeque<String>,
    last_item: Instant,
}

impl<'q, 'zk> Claimer<'q, 'zk> {
    /// A claimer taking items of `queue` for CMD runs.
    pub fn new(queue: &'q Queue<'zk>) -> Claimer<'q, 'zk> {
        Claimer { queue, cache: VecDeque::new(), last_item: Instant::now() }
    }

    /// Claims the next free due item in queue order. With `follow` it waits for one (new
    /// items, a claim released by a consumer that failed or died, or the earliest item not
    /// yet due becoming due).
    pub fn next(&mut self, follow: bool, idle: Option<Duration>, stop: &Receiver<()>) -> Result<Claimed<'q, 'zk>> {
        let q = self.queue;
        loop {
            if stopped(stop) {
                return Ok(Claimed::Stopped);
            }
            while let Some(name) = self.cache.pop_front() {
                if let Attempt::Claimed(c) = self.try_claim(&name)? {
                    return Ok(Claimed::Item(c));
                }
            }
            let listing = match q.list_retrying(follow) {
                Err(Error::NoQueue { .. }) if follow => match q.await_queue(idle.map(|d| self.last_item + d), stop)? {
                    Woke::Changed | Woke::Due => continue,
                    Woke::Idle => return Ok(Claimed::Idle),
                    Woke::Stopped => return Ok(Claimed::Stopped),
                },
                Err(Error::NoQueue { .. }) => return Ok(Claimed::Empty),
                r => r?,
            };
            let due = listing.next_due();
            let watch = listing.watch;
            let mut busy = Vec::new();
            let mut names = listing.names.into_iter();
            while let Some(name) = names.next() {
                match self.try_claim(&name)? {
                    Attempt::Claimed(c) => {
                        self.cache.extend(names);
                        return Ok(Claimed::Item(c));
                    }
                    Attempt::Busy(claim) => busy.push(claim),
                    Attempt::Gone => {}
                }
            }
            let Some(watch) = watch else { return Ok(Claimed::Empty) };
            let mut watches = vec![watch];
            let mut released = false;
            for claim in busy.into_iter().take(WATCHED_CLAIMS) {
                let (stat, w) = q.retry(|| Ok(q.zk.exists_w(&claim)?))?;
                if stat.is_none() {
                    released = true; // released since we tried: list again
                    break;
                }
                watches.push(w);
            }
            if released {
                continue;
            }
            match q.wait(&watches, idle.map(|d| self.last_item + d), due, stop)? {
                Woke::Changed | Woke::Due => continue,
                Woke::Idle => return Ok(Claimed::Idle),
                Woke::Stopped => return Ok(Claimed::Stopped),
            }
        }
    }

    fn try_claim(&mut self, name: &str) -> Result<Attempt<'q, 'zk>> {
        let q = self.queue;
        let item = zk::join(&q.path, name);
        let claim = zk::join(&item, CLAIM);
        let me = q.zk.session_id();
        let id = format!("{me:x} pid {}", std::process::id());
        let created = q.retry(|| match q.zk.create(&claim, id.as_bytes(), CreateMode::Ephemeral) {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some(Code::NoNode) => Ok(false),
            // ours if a retried create had already gone through
            Err(e) if e.code() == Some(Code::NodeExists) => {
                Ok(q.zk.exists(&claim)?.is_some_and(|s| s.ephemeral_owner == me))
            }
            Err(e) => Err(e.into()),
        });
        match created? {
            true => {}
            false if q.zk.exists(&item)?.is_some() => return Ok(Attempt::Busy(claim)),
            false => return Ok(Attempt::Gone),
        }
        match q.retry(|| Ok(q.zk.get(&item)?)) {
            Ok((data, _)) => {
                self.last_item = Instant::now();
                Ok(Attempt::Claimed(Claim { queue: q, item: Item { path: item, data }, claim, done: false }))
            }
            Err(Error::Zk(e)) if e.code() == Some(Code::NoNode) => {
                let _ = q.zk.delete(&claim, None); // cannot be: the claim keeps the item
                Ok(Attempt::Gone)
            }
            Err(e) => {
                let _ = q.zk.delete(&claim, None);
                Err(e)
            }
        }
    }
}

enum Attempt<'q, 'zk> {
    Claimed(Claim<'q, 'zk>),
    /// Claimed by another consumer: the path of its claim.
    Busy(String),
    Gone,
}

/// A claimed item. `complete` removes it from the queue; `release` (or dropping the claim)
/// puts it back for another consumer.
#[derive(Debug)]
#[must_use = "a claim is released when dropped; call complete() once the item is handled"]
pub struct Claim<'q, 'zk> {
    queue: &'q Queue<'zk>,
    item: Item,
    claim: String,
    done: bool,
}

impl Claim<'_, '_> {
    /// The claimed item.
    pub fn item(&self) -> &Item {
        &self.item
    }

    /// Removes the item and the claim in one multi.
    pub fn complete(mut self) -> Result<()> {
        self.done = true;
        let q = self.queue;
        let ops = [
            Op::Delete { path: self.claim.clone(), version: None },
            Op::Delete { path: self.item.path.clone(), version: None },
        ];
        loop {
            match q.zk.multi(&ops) {
                Ok(_) => return Ok(()),
                Err(e) if e.is_outcome_unknown() => {
                    q.await_connected().map_err(|e| self.lost(e))?;
                    // a retry finding the item gone: our multi went through (after a sync,
                    // so the server we read has applied it if the leader did)
                    let gone = q.retry(|| {
                        q.zk.sync(&q.path)?;
                        Ok(q.zk.exists(&self.item.path)?.is_none())
                    });
                    if gone.map_err(|e| self.lost(e))? {
                        return Ok(());
                    }
                }
                Err(e) => return Err(Error::ClaimLost { item: self.item.path.clone(), cause: e }),
            }
        }
    }

    fn lost(&self, e: Error) -> Error {
        let cause = match e {
            Error::Zk(z) | Error::SessionLost { cause: z } => z,
            other => zk::Error::Zk { code: Code::SessionExpired, path: Some(other.to_string()) },
        };
        Error::ClaimLost { item: self.item.path.clone(), cause }
    }

    /// Deletes the claim, leaving the item in the queue.
    pub fn release(mut self) -> Result<()> {
        self.done = true;
        match self.queue.retry(|| Ok(self.queue.zk.delete(&self.claim, None)?)) {
            Err(Error::Zk(e)) if e.code() == Some(Code::NoNode) => Ok(()),
            other => other,
        }
    }
}

impl Drop for Claim<'_, '_> {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = self.queue.zk.delete(&self.claim, None)
        {
            log::warn!("releasing {}: {e}", self.claim);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_parse_and_order() {
        let a = Position::parse("entry-100-0000000007").unwrap();
        assert_eq!(a, Position { priority: 100, due: 0, sequence: 7 });
        let b = Position::parse("entry-005-0000000009").unwrap();
        assert!(b < a);
        assert!(Position::parse("entry-100-").is_none());
        assert!(Position::parse("entry-1-0000000001").is_none());
        assert!(Position::parse("taken").is_none());
        assert!(Position::parse("entry-abc-0000000001").is_none());
    }

    #[test]
    fn curator_item_serializer_format() {
        // bytes as Curator 5's ItemSerializer.serialize writes a single "hi"
        let framed = curator_frame(b"hi");
        assert_eq!(framed, [0, 1, 0, 1, 1, 0, 0, 0, 2, b'h', b'i', 2]);
        assert_eq!(curator_unframe(&framed), Some(vec![b"hi".to_vec()]));
        assert_eq!(curator_unframe(&curator_frame(b"")), Some(vec![vec![]]));
        // putMulti: several items in one node
        let multi = [&[0u8, 1, 0, 1, 1, 0, 0, 0, 1, b'a', 1, 0, 0, 0, 1, b'b', 2][..]];
        assert_eq!(curator_unframe(multi[0]), Some(vec![b"a".to_vec(), b"b".to_vec()]));
        for bad in
            [&b"hi"[..], &[0, 1, 0, 2, 2], &[0, 1, 0, 1, 1, 0, 0, 0, 9, b'x', 2], &[0, 1, 0, 1, 1, 0, 0, 0, 1, b'x']]
        {
            assert_eq!(curator_unframe(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn delayed_names_parse_and_order() {
        // Curator's epochToString: %08X between two '|'
        assert_eq!(item_prefix(7, Some(0x18C_0000_0000)), "entry-007-|18C00000000|");
        assert_eq!(item_prefix(7, Some(0xAB)), "entry-007-|000000AB|");
        assert_eq!(item_prefix(100, None), "entry-100-");
        let d = Position::parse("entry-100-|18C00000000|0000000003").unwrap();
        assert_eq!(d, Position { priority: 100, due: 0x18C_0000_0000, sequence: 3 });
        let plain = Position::parse("entry-100-0000000009").unwrap();
        let sooner = Position::parse("entry-100-|18BFFFFFFFF|0000000004").unwrap();
        let urgent = Position::parse("entry-005-|18C00000001|0000000005").unwrap();
        // within a priority: undelayed first, then by due time; priority first of all
        let mut v = vec![d, plain, sooner, urgent];
        v.sort();
        assert_eq!(v, [urgent, plain, sooner, d]);
        // kazoo's sort of the names gives the same order (same-width due times)
        let mut names =
            ["entry-100-|18C00000000|0000000003", "entry-100-0000000009", "entry-100-|18BFFFFFFFF|0000000004"];
        names.sort();
        assert_eq!(names.map(|n| Position::parse(n).unwrap()), [plain, sooner, d]);
        for bad in [
            "entry-100-||0000000001",
            "entry-100-|XYZ|0000000001",
            "entry-100-|18C00000000|000000001",
            "entry-100-|18C00000000",
            "entry-100-|11111111111111111|0000000001",
        ] {
            assert!(Position::parse(bad).is_none(), "{bad}");
        }
    }
}
