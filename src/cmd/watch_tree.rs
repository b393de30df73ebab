//! `zkutil watch -R PATH`: every create, delete and data change under PATH, one line each.
//!
//! The 3.8 C client cannot send persistent recursive watches (no addWatch opcode), so this is
//! a tree cache of one-shot watches, as Curator's TreeCache: the initial load on the
//! traversal engine arms a data and a children watch on every node; each event re-reads the
//! node (re-arming its watch) and reports what differs from the cache, so a duplicate event
//! reports nothing. Within one session the C client re-arms every watch after a reconnect
//! and the server fires those whose nodes changed meanwhile. When a read fails (connection
//! loss) or the session is lost, the whole subtree is read again, on the same or a new
//! session, and the difference from the cache is reported: nothing is silently lost.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use base64::Engine;
use crossbeam_channel::{Sender, select, unbounded};
use serde_json::json;

use crate::cli::{Global, WatchArgs};
use crate::util::{escape_data, shutdown};
use crate::zk::traverse::Walk;
use crate::zk::{self, Answer, Code, EventKind, Halt, Lost, SessionWatch, WatchEvent, ZooKeeper};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    data: Vec<u8>,
    version: i32,
    czxid: i64,
    children: BTreeSet<String>,
}

type Tree = HashMap<String, Entry>;

struct Cache<'a> {
    root: String,
    nodes: Tree,
    events: Sender<WatchEvent>,
    out: io::StdoutLock<'a>,
    json: bool,
    printed: u64,
}

/// Reads `root`'s subtree, arming watches on every node; a missing root is an empty tree
/// (with an exists watch for its creation).
fn load(zk: &ZooKeeper, root: &str, events: &Sender<WatchEvent>) -> zk::Result<Tree> {
    let mut tree = Tree::new();
    // Nodes this session may not read are left out (as find and du leave them out).
    let walk = Walk { watch: Some(events.clone()), skip_denied: true, ..Default::default() };
    let r = walk.run(zk, root, |n| {
        let entry = Entry {
            data: n.data.unwrap_or_default(),
            version: n.stat.version,
            czxid: n.stat.czxid,
            children: n.children.into_iter().collect(),
        };
        tree.insert(n.path, entry);
        Ok(true)
    });
    match r {
        Ok(_) => Ok(tree),
        Err(e) if e.code() == Some(Code::NoAuth) && tree.is_empty() => Ok(tree),
        Err(e) if e.code() == Some(Code::NoNode) && tree.is_empty() => {
            let mut reqs = zk.requests();
            reqs.exists_w(0, root, events)?;
            match reqs.recv() {
                Some((_, Ok(_))) => load(zk, root, events), // created meanwhile
                Some((_, Err(Code::NoNode))) | None => Ok(tree),
                Some((_, Err(code))) => Err(zk::Error::Zk { code, path: Some(root.into()) }),
            }
        }
        Err(e) => Err(e),
    }
}

/// One watched read: data (`children` false) or the children list; None when missing.
fn read(zk: &ZooKeeper, path: &str, children: bool, events: &Sender<WatchEvent>) -> zk::Result<Option<Answer>> {
    let mut reqs = zk.requests();
    if children {
        reqs.children_w(0, path, events)?;
    } else {
        reqs.get_w(0, path, events)?;
    }
    match reqs.recv() {
        Some((_, Ok(a))) => Ok(Some(a)),
        // gone, or no longer readable by this session: out of view either way
        Some((_, Err(Code::NoNode | Code::NoAuth))) | None => Ok(None),
        Some((_, Err(code))) => Err(zk::Error::Zk { code, path: Some(path.into()) }),
    }
}

impl Cache<'_> {
    fn emit(&mut self, what: &str, path: &str, data: Option<&[u8]>) -> io::Result<()> {
        self.printed += 1;
        if self.json {
            let mut v = json!({ "event": what, "path": path });
            if let Some(d) = data {
                match std::str::from_utf8(d) {
                    Ok(s) => v["data"] = json!(s),
                    Err(_) => v["data_b64"] = json!(base64::engine::general_purpose::STANDARD.encode(d)),
                }
            }
            writeln!(self.out, "{v}")?;
        } else {
            match data {
                Some(d) if what != "deleted" => writeln!(self.out, "{what} {path} {}", escape_data(d))?,
                _ => writeln!(self.out, "{what} {path}")?,
            }
        }
        self.out.flush()
    }

    /// Removes `path` and everything under it from the cache, reporting each node (children
    /// before their parent).
    fn remove_subtree(&mut self, path: &str) -> io::Result<()> {
        let Some(e) = self.nodes.remove(path) else { return Ok(()) };
        for k in &e.children {
            self.remove_subtree(&zk::join(path, k))?;
        }
        if let Some(parent) = zk::parent(path)
            && let Some(p) = self.nodes.get_mut(parent)
        {
            p.children.remove(path.rsplit('/').next().unwrap_or(""));
        }
        self.emit("deleted", path, None)
    }

    /// Reports the difference between the cached subtree at `path` and `fresh` (a new read
    /// of it), and takes `fresh` in.
    fn merge(&mut self, path: &str, fresh: Tree) -> io::Result<()> {
        // gone, or re-created (another czxid): deleted
        let mut stale: Vec<String> = self
            .nodes
            .keys()
            .filter(|p| under(p, path) && fresh.get(*p).is_none_or(|f| f.czxid != self.nodes[*p].czxid))
            .cloned()
            .collect();
        stale.sort_by(|a, b| b.cmp(a)); // children before parents
        for p in stale {
            if let Some(e) = self.nodes.remove(&p) {
                let _ = e;
                self.emit("deleted", &p, None)?;
            }
        }
        let mut paths: Vec<&String> = fresh.keys().collect();
        paths.sort(); // parents before children
        for p in paths {
            let f = &fresh[p];
            match self.nodes.get(p) {
                None => self.emit("created", p, Some(&f.data))?,
                Some(old) if old.version != f.version || old.data != f.data => {
                    self.emit("changed", p, Some(&f.data))?
                }
                Some(_) => {}
            }
        }
        if let Some(parent) = zk::parent(path)
            && let Some(pe) = self.nodes.get_mut(parent)
            && fresh.contains_key(path)
        {
            pe.children.insert(path.rsplit('/').next().unwrap_or("").to_string());
        }
        self.nodes.extend(fresh);
        Ok(())
    }

    fn handle(&mut self, zk: &ZooKeeper, ev: WatchEvent) -> Result<()> {
        let p = ev.path.as_str();
        if !under(p, &self.root) {
            return Ok(());
        }
        match ev.kind {
            EventKind::Created => {
                if !self.nodes.contains_key(p) {
                    let fresh = load(zk, p, &self.events)?;
                    self.merge(p, fresh)?;
                }
            }
            EventKind::DataChanged | EventKind::Deleted => {
                if !self.nodes.contains_key(p) {
                    return Ok(()); // an old watch of a node already reported gone
                }
                match read(zk, p, false, &self.events)? {
                    None => {
                        self.remove_subtree(p)?;
                        if p == self.root {
                            let fresh = load(zk, p, &self.events)?; // arms the exists watch
                            self.merge(p, fresh)?;
                        }
                    }
                    Some(Answer::Data(data, stat)) => {
                        let old = &self.nodes[p];
                        if old.czxid != stat.czxid {
                            // deleted and created again between the event and this read
                            self.remove_subtree(p)?;
                            let fresh = load(zk, p, &self.events)?;
                            self.merge(p, fresh)?;
                        } else if old.version != stat.version {
                            self.emit("changed", p, Some(&data))?;
                            let e = self.nodes.get_mut(p).expect("checked");
                            e.version = stat.version;
                            e.data = data;
                        }
                    }
                    Some(_) => {}
                }
            }
            EventKind::ChildrenChanged => {
                if !self.nodes.contains_key(p) {
                    return Ok(());
                }
                match read(zk, p, true, &self.events)? {
                    None => self.remove_subtree(p)?,
                    Some(Answer::Children(kids, _)) => {
                        let now: BTreeSet<String> = kids.into_iter().collect();
                        let old = self.nodes[p].children.clone();
                        for gone in old.difference(&now) {
                            self.remove_subtree(&zk::join(p, gone))?;
                        }
                        for new in now.difference(&old) {
                            let child = zk::join(p, new);
                            let fresh = load(zk, &child, &self.events)?;
                            self.merge(&child, fresh)?;
                        }
                        if let Some(e) = self.nodes.get_mut(p) {
                            e.children = now;
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(())
    }
}

/// `p` is `root` or below it.
fn under(p: &str, root: &str) -> bool {
    root == "/" || p == root || p.strip_prefix(root).is_some_and(|r| r.starts_with('/'))
}

pub fn run(a: &WatchArgs, g: &Global) -> Result<ExitCode> {
    zk::validate_path(&a.path, false)?;
    let stop = shutdown();
    let what = format!("watch -R {}", a.path);
    let (tx, events) = unbounded();
    let mut zk = g.connect_owned()?;
    let out = io::stdout().lock();
    let nodes = load(&zk, &a.path, &tx)?;
    crate::status!("zkutil: watching {} nodes under {}", nodes.len(), a.path);
    let mut cache = Cache { root: a.path.clone(), nodes, events: tx, out, json: g.json(), printed: 0 };
    // A watcher (the session-health model's watcher grace, T): a reconnect keeps every armed
    // watch; a lost session is ridden through with a new one and a full read.
    let mut health = SessionWatch::watcher(&zk);
    loop {
        if a.count.is_some_and(|n| cache.printed >= n) {
            return Ok(ExitCode::SUCCESS);
        }
        let mut resync = false;
        select! {
            recv(events) -> ev => {
                let ev = ev.expect("we hold a sender");
                if let Err(e) = cache.handle(&zk, ev) {
                    if e.downcast_ref::<io::Error>().is_some() {
                        return Err(e);
                    }
                    log::warn!("{what}: {e:#}; reading the subtree again");
                    resync = true;
                }
            }
            recv(health.lost()) -> _ => {
                let why = health.lost_why().unwrap_or(Lost::Expired);
                eprintln!("zkutil: {what}: the session was lost ({why}); reading the subtree again on a new one");
                drop(health);
                drop(zk);
                zk = match super::election::reconnect(g, &what, &stop)? {
                    Some(z) => z,
                    None => return Ok(super::exit::after_stop()),
                };
                health = SessionWatch::watcher(&zk);
                resync = true;
            }
            recv(stop) -> _ => return Ok(super::exit::after_stop()),
        }
        while resync {
            match health.wait_connected(&stop, None) {
                Ok(()) => {}
                Err(Halt::Stopped) => return Ok(super::exit::after_stop()),
                Err(_) => break, // lost again: the next round reconnects
            }
            match load(&zk, &a.path, &cache.events) {
                Ok(fresh) => {
                    let root = cache.root.clone();
                    cache.merge(&root, fresh)?;
                    resync = false;
                }
                Err(e) => log::warn!("{what}: reading the subtree again: {e}"),
            }
        }
    }
}
