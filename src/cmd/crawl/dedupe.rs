//! Which URLs are new. Both modes keep a local set of the hashes this process has already
//! decided (claimed, or found claimed), so a URL is sent to ZooKeeper at most once per
//! process; `--dedupe zookeeper` then asks the shared table through a pipelining
//! [`Claimer`] (which records this process as the URLs' owner until `done`), `--dedupe
//! memory` stops at the local set (single process only).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use url::Url;

use crate::recipes::urlset::{Claim, Claimer, Entry, url_hash};
use crate::zk;

pub enum Dedupe {
    Memory(Local),
    ZooKeeper(Local, Claimer),
}

#[derive(Default)]
pub struct Local {
    seen: Mutex<HashSet<u128>>,
    /// URLs checked (every link occurrence that reached the dedupe).
    checks: AtomicU64,
}

impl Local {
    /// Keeps the URLs not seen before by this process, marking them seen.
    fn first_time(&self, urls: Vec<Url>) -> Vec<Url> {
        self.checks.fetch_add(urls.len() as u64, Ordering::Relaxed);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        urls.into_iter().filter(|u| seen.insert(url_hash(u.as_str()))).collect()
    }
}

fn entries(urls: &[Url], depth: u32, hops: u32) -> Vec<Entry> {
    urls.iter().map(|u| Entry { url: u.as_str().to_string(), depth, hops }).collect()
}

/// What `offer` did with some URLs.
pub enum Verdict {
    /// Decided here: these are ours.
    Ours(Vec<Url>),
    /// Sent to ZooKeeper: `(tag, claims)` for the URLs given to `register` (in that order)
    /// comes on the reply channel.
    Submitted,
}

/// Where asynchronous claim results arrive.
pub type ClaimReply = crossbeam_channel::Sender<(u64, zk::Result<Vec<Claim>>)>;

impl Dedupe {
    /// Like `claim`, without waiting for ZooKeeper: URLs this process has seen are dropped at
    /// once, the others are submitted to the claimer under `tag` (call `register` first: the
    /// answer may come before this returns). Also returns how many were dropped here.
    pub fn offer(
        &self,
        urls: Vec<Url>,
        (depth, hops): (u32, u32),
        tag: u64,
        reply: &ClaimReply,
        register: impl FnOnce(Vec<Url>),
    ) -> (Verdict, usize) {
        let n = urls.len();
        match self {
            Dedupe::Memory(local) => {
                let new = local.first_time(urls);
                let dups = n - new.len();
                (Verdict::Ours(new), dups)
            }
            Dedupe::ZooKeeper(local, claimer) => {
                let new = local.first_time(urls);
                let dups = n - new.len();
                if new.is_empty() {
                    return (Verdict::Ours(new), dups);
                }
                let entries = entries(&new, depth, hops);
                register(new);
                claimer.submit(entries, tag, reply);
                (Verdict::Submitted, dups)
            }
        }
    }

    /// The URLs that are ours to fetch (at `depth`), in input order.
    pub fn claim(&self, urls: Vec<Url>, depth: u32) -> zk::Result<Vec<Url>> {
        match self {
            Dedupe::Memory(local) => Ok(local.first_time(urls)),
            Dedupe::ZooKeeper(local, claimer) => {
                let new = local.first_time(urls);
                if new.is_empty() {
                    return Ok(new);
                }
                let claims = claimer.claim(entries(&new, depth, 0))?;
                Ok(new.into_iter().zip(claims).filter(|(_, c)| *c == Claim::Claimed).map(|(u, _)| u).collect())
            }
        }
    }

    /// Link occurrences checked so far.
    pub fn checks(&self) -> u64 {
        match self {
            Dedupe::Memory(l) | Dedupe::ZooKeeper(l, _) => l.checks.load(Ordering::Relaxed),
        }
    }

    /// Creates sent to ZooKeeper (0 in memory).
    pub fn zk_creates(&self) -> u64 {
        match self {
            Dedupe::Memory(_) => 0,
            Dedupe::ZooKeeper(_, c) => c.creates(),
        }
    }

    /// The claimer, with `--dedupe zookeeper`.
    pub fn claimer(&self) -> Option<&Claimer> {
        match self {
            Dedupe::Memory(_) => None,
            Dedupe::ZooKeeper(_, c) => Some(c),
        }
    }

    /// `url` (ours) is written to the output: it is no longer owed.
    pub fn done(&self, url: &Url) {
        if let Dedupe::ZooKeeper(_, c) = self {
            c.done(url.as_str());
        }
    }

    /// Marks URLs seen by this process without asking ZooKeeper (adopted ones: ours already).
    pub fn mark_seen<'a>(&self, urls: impl IntoIterator<Item = &'a str>) {
        let local = match self {
            Dedupe::Memory(l) | Dedupe::ZooKeeper(l, _) => l,
        };
        let mut seen = local.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.extend(urls.into_iter().map(url_hash));
    }
}
