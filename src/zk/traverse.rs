//! The traversal engine every recursive command uses: pipelined async requests
//! ([`Requests`]), a bounded window in flight, nodes deleted meanwhile skipped.
//!
//! Memory stays bounded: nodes are handed to the caller as they complete and forgotten; what
//! is held is the walk's stack (depth x fan-out names) and the window's replies.

use std::collections::HashMap;

use crossbeam_channel::Sender;

use super::client::ZooKeeper;
use super::error::{Code, Error, Result};
use super::pipeline::{Answer, Requests};
use super::types::{Acl, Stat, join, validate_path};
use super::watch::WatchEvent;

/// Requests kept in flight by default (the C client queues them; the server answers a
/// session's requests in order).
pub const DEFAULT_WINDOW: usize = 1000;

/// One node as the walk saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Full path.
    pub path: String,
    /// 0 for the root of the walk.
    pub depth: usize,
    /// The node's Stat (from the read of its data when data was asked for).
    pub stat: Stat,
    /// The data, when asked for.
    pub data: Option<Vec<u8>>,
    /// The ACL, when asked for.
    pub acl: Option<Vec<Acl>>,
    /// The children's names, sorted (empty for a leaf, or below the depth limit).
    pub children: Vec<String>,
}

/// What to read of every node, and how.
#[derive(Debug, Clone)]
pub struct Walk {
    /// Read each node's data (one get per node; the children are then listed only for
    /// nodes whose Stat says they have some).
    pub data: bool,
    /// Read each node's ACL.
    pub acl: bool,
    /// Do not list below this depth (the root is depth 0).
    pub max_depth: Option<usize>,
    /// Requests in flight at most.
    pub window: usize,
    /// Skip (and count) nodes this session may not read instead of failing on them.
    pub skip_denied: bool,
    /// Arm a one-shot data watch and a children watch on every node read, their events sent
    /// here (reads data and lists every node; a tree cache's initial load).
    pub watch: Option<Sender<WatchEvent>>,
}

impl Default for Walk {
    fn default() -> Walk {
        Walk { data: false, acl: false, max_depth: None, window: DEFAULT_WINDOW, skip_denied: false, watch: None }
    }
}

/// Counts of one walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalkStats {
    /// Nodes handed to the visitor.
    pub visited: u64,
    /// Nodes that vanished while the walk reached them (skipped).
    pub vanished: u64,
    /// Nodes skipped because this session may not read them (with `skip_denied`).
    pub denied: u64,
    /// The highest mzxid seen.
    pub max_mzxid: i64,
}

const K_CHILDREN: u64 = 0;
const K_DATA: u64 = 1;
const K_ACL: u64 = 2;

impl Walk {
    /// Walks `root` and its subtree. `visit` gets each node once all its parts are in and
    /// returns whether to descend into its children. Order: depth-first pre-order, children
    /// of one parent sorted (zkCli's `ls -R` order), so parents always come before their
    /// children. Requests run ahead of the visit: the next `window` unread nodes of the
    /// walk's stack (siblings and their subtrees, nearest first) are read while the visitor
    /// works. A node deleted while the walk reaches it is skipped with its subtree; the root
    /// missing is `NoNode`.
    pub fn run(&self, zk: &ZooKeeper, root: &str, mut visit: impl FnMut(Node) -> Result<bool>) -> Result<WalkStats> {
        validate_path(root, false)?;
        let window = self.window.max(3);
        let mut reqs = zk.requests();
        // The walk's stack, top last. A slot leaves only from the top, once complete, so an
        // index is a stable request tag while the slot has requests in flight.
        let mut stack: Vec<Slot> = vec![Slot::new(root.to_string(), 0)];
        // Runs of slots not yet requested, [start, end), the topmost last; requests take the
        // highest index first (the next to be visited).
        let mut unread: Vec<(usize, usize)> = vec![(0, 1)];
        let mut stats = WalkStats::default();
        loop {
            // Fill the window from the top of the stack down.
            while reqs.in_flight() + 3 <= window {
                let Some(run) = unread.last_mut() else { break };
                run.1 -= 1;
                let i = run.1;
                if run.0 == run.1 {
                    unread.pop();
                }
                self.request(&mut reqs, i, &mut stack[i])?;
            }
            // Visit the complete slots at the top.
            while stack.last().is_some_and(|s| s.requested && s.waiting == 0) {
                let s = stack.pop().expect("checked above");
                if s.denied {
                    stats.denied += 1;
                    continue;
                }
                if s.gone {
                    stats.vanished += 1;
                    continue;
                }
                stats.visited += 1;
                stats.max_mzxid = stats.max_mzxid.max(s.node.stat.mzxid);
                let depth = s.node.depth;
                let kids: Vec<String> = s.node.children.iter().rev().map(|k| join(&s.node.path, k)).collect();
                if visit(s.node)? && !kids.is_empty() {
                    let start = stack.len();
                    stack.extend(kids.into_iter().map(|k| Slot::new(k, depth + 1)));
                    unread.push((start, stack.len()));
                }
            }
            if stack.is_empty() {
                break;
            }
            if unread.last().is_some_and(|r| r.1 == stack.len()) && reqs.in_flight() + 3 <= window {
                continue; // room for the children just pushed
            }
            let Some((tag, r)) = reqs.recv() else { break };
            let (i, kind) = ((tag / 4) as usize, tag % 4);
            let Some(s) = stack.get_mut(i) else { continue };
            s.waiting -= 1;
            match r {
                Err(Code::NoNode) => {
                    if s.node.depth == 0 {
                        return Err(Error::Zk { code: Code::NoNode, path: Some(s.node.path.clone()) });
                    }
                    s.gone = true;
                }
                Err(Code::NoAuth) if self.skip_denied && s.node.depth > 0 => {
                    s.denied = true;
                    s.gone = true;
                }
                Err(code) => return Err(Error::Zk { code, path: Some(s.node.path.clone()) }),
                Ok(Answer::Children(mut kids, stat)) => {
                    kids.sort_unstable();
                    s.node.children = kids;
                    if !self.data && self.watch.is_none() {
                        s.node.stat = stat;
                    }
                }
                Ok(Answer::Data(data, stat)) => {
                    s.node.stat = stat;
                    s.node.data = Some(data);
                }
                Ok(Answer::Exists(stat)) => s.node.stat = stat,
                Ok(Answer::Acl(acl, _)) => s.node.acl = Some(acl),
                Ok(_) => {}
            }
            // With data, list only the nodes whose Stat says they have children.
            if kind == K_DATA
                && !s.gone
                && !s.listed
                && s.node.stat.num_children > 0
                && self.max_depth.is_none_or(|m| s.node.depth < m)
            {
                s.listed = true;
                s.waiting += 1;
                reqs.children(tag - K_DATA + K_CHILDREN, &s.node.path)?;
            }
        }
        Ok(stats)
    }

    fn request(&self, reqs: &mut Requests<'_>, i: usize, s: &mut Slot) -> Result<()> {
        let tag = i as u64 * 4;
        s.requested = true;
        let list = self.max_depth.is_none_or(|m| s.node.depth < m);
        if let Some(events) = &self.watch {
            reqs.get_w(tag + K_DATA, &s.node.path, events)?;
            reqs.children_w(tag + K_CHILDREN, &s.node.path, events)?;
            s.listed = true;
            s.waiting += 1; // and one more below
        } else if self.data {
            reqs.get(tag + K_DATA, &s.node.path)?;
        } else if list {
            reqs.children(tag + K_CHILDREN, &s.node.path)?;
            s.listed = true;
        } else {
            reqs.exists(tag + K_DATA, &s.node.path)?;
        }
        s.waiting += 1;
        if self.acl {
            reqs.get_acl(tag + K_ACL, &s.node.path)?;
            s.waiting += 1;
        }
        Ok(())
    }
}

struct Slot {
    node: Node,
    requested: bool,
    waiting: u8,
    gone: bool,
    denied: bool,
    listed: bool,
}

impl Slot {
    fn new(path: String, depth: usize) -> Slot {
        Slot {
            node: Node { path, depth, stat: Stat::default(), data: None, acl: None, children: Vec::new() },
            requested: false,
            waiting: 0,
            gone: false,
            denied: false,
            listed: false,
        }
    }
}

/// Counts of one [`delete_tree`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeleteStats {
    /// Nodes this call deleted.
    pub deleted: u64,
    /// Deletes that found the node already gone.
    pub vanished: u64,
    /// Listings made (one per node that had children).
    pub listed: u64,
}

enum Job {
    Delete(String),
    List(String),
}

/// Deletes `root` and its subtree with pipelined requests. Every node is first simply
/// deleted; one that turns out to have children is listed, its children deleted the same
/// way, and it is deleted again once they are gone. Leaves, most of any big tree, cost one
/// pipelined delete and no listing. Nodes deleted by someone else meanwhile are fine; a node
/// that keeps getting new children fails after 10 rounds. A missing root is fine (0 deleted).
pub fn delete_tree(zk: &ZooKeeper, root: &str, window: usize) -> Result<DeleteStats> {
    validate_path(root, false)?;
    if root == "/" {
        return Err(Error::InvalidPath { path: "/".into(), reason: "refusing to delete the root" });
    }
    let window = window.max(1);
    let mut reqs = zk.requests();
    let mut stats = DeleteStats::default();
    // Per node found non-empty: children not yet gone, and how often it was listed.
    let mut waiting: HashMap<String, (usize, u32)> = HashMap::new();
    // Last in, first out keeps the pending set to about depth x fan-out.
    let mut jobs: Vec<Job> = vec![Job::Delete(root.to_string())];
    let mut flight: HashMap<u64, Job> = HashMap::new();
    let mut next = 0u64;
    loop {
        while reqs.in_flight() < window {
            let Some(job) = jobs.pop() else { break };
            match &job {
                Job::Delete(p) => reqs.delete(next, p, None)?,
                Job::List(p) => reqs.children(next, p)?,
            }
            flight.insert(next, job);
            next += 1;
        }
        let Some((tag, r)) = reqs.recv() else { break };
        let Some(job) = flight.remove(&tag) else { continue };
        match (job, r) {
            (Job::Delete(p), r @ (Ok(_) | Err(Code::NoNode))) => {
                if r.is_ok() {
                    stats.deleted += 1;
                } else {
                    stats.vanished += 1;
                }
                waiting.remove(&p);
                child_gone(&p, root, &mut waiting, &mut jobs);
            }
            (Job::Delete(p), Err(Code::NotEmpty)) => {
                let rounds = waiting.get(&p).map_or(0, |w| w.1);
                if rounds >= 10 {
                    return Err(Error::Zk { code: Code::NotEmpty, path: Some(p) });
                }
                waiting.insert(p.clone(), (usize::MAX, rounds + 1));
                jobs.push(Job::List(p));
            }
            (Job::List(p), Ok(Answer::Children(kids, _))) => {
                stats.listed += 1;
                let entry = waiting.entry(p.clone()).or_insert((0, 1));
                entry.0 = kids.len();
                if kids.is_empty() {
                    jobs.push(Job::Delete(p));
                } else {
                    jobs.extend(kids.iter().map(|k| Job::Delete(join(&p, k))));
                }
            }
            (Job::List(p), Err(Code::NoNode)) => {
                // deleted by someone else between our delete and our listing
                waiting.remove(&p);
                stats.vanished += 1;
                child_gone(&p, root, &mut waiting, &mut jobs);
            }
            (Job::Delete(p) | Job::List(p), Err(code)) => return Err(Error::Zk { code, path: Some(p) }),
            (Job::List(_), Ok(_)) => {}
        }
    }
    Ok(stats)
}

/// One child of `p`'s parent is gone: when it was the last one, delete the parent again.
fn child_gone(p: &str, root: &str, waiting: &mut HashMap<String, (usize, u32)>, jobs: &mut Vec<Job>) {
    if p == root {
        return;
    }
    let Some(parent) = super::types::parent(p) else { return };
    if let Some(w) = waiting.get_mut(parent)
        && w.0 != usize::MAX
    {
        w.0 = w.0.saturating_sub(1);
        if w.0 == 0 {
            w.0 = usize::MAX; // listed again if the retry finds new children
            jobs.push(Job::Delete(parent.to_string()));
        }
    }
}
