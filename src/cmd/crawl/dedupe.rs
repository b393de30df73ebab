//! Which URLs are new. Both modes keep a local set of the hashes this process has already
//! decided (claimed, or found claimed), so a URL is sent to ZooKeeper at most once per
//! process; `--dedupe zookeeper` then asks the shared table through a pipelining
//! [`Claimer`], `--dedupe memory` stops at the local set (single process only).

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use url::Url;

use crate::recipes::urlset::{Claim, Claimer, url_hash};
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

impl Dedupe {
    /// The URLs that are ours to fetch, in input order.
    pub fn claim(&self, urls: Vec<Url>) -> zk::Result<Vec<Url>> {
        match self {
            Dedupe::Memory(local) => Ok(local.first_time(urls)),
            Dedupe::ZooKeeper(local, claimer) => {
                let new = local.first_time(urls);
                if new.is_empty() {
                    return Ok(new);
                }
                let claims = claimer.claim(new.iter().map(|u| u.as_str().to_string()).collect())?;
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

    /// Sessions the claimer used (1 + expiries survived); 0 in memory.
    pub fn sessions(&self) -> u32 {
        match self {
            Dedupe::Memory(_) => 0,
            Dedupe::ZooKeeper(_, c) => c.sessions(),
        }
    }
}
