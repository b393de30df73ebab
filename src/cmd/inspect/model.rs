//! The inspector's view model: the lazily loaded tree, the selection, the dialogs. It knows
//! neither the terminal nor ZooKeeper: keys, worker replies, watch and session events come
//! in; `Effect`s (requests for the worker, an editor to run, quit) go out. So it is tested
//! without either (ratatui's TestBackend renders it).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::zk::{self, Acl, CreateMode, EventKind, SessionEvent, Stat};

/// How long an added, changed or removed node stays marked (a removed one stays listed).
pub const MARK_FOR: Duration = Duration::from_secs(15);

/// Work for the ZooKeeper worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The children of a node (one get_children; arms a child watch).
    List(String),
    /// The Stat of each node (exists; arms a data watch on each).
    Stats(Vec<String>),
    /// Data, Stat and ACL of one node (arms a data watch).
    Detail(String),
    /// How many nodes the subtree at this path has, itself included.
    Count(String),
    Create {
        path: String,
        data: Vec<u8>,
        mode: CreateMode,
    },
    Delete {
        path: String,
        recursive: bool,
    },
    /// Compare-and-set on `version`; a mismatch comes back as `Reply::Conflict`.
    Set {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// List every ancestor of `path` below `root`, then say whether `path` exists.
    Jump {
        root: String,
        path: String,
    },
}

/// What the worker answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Listed {
        path: String,
        children: Vec<String>,
        stat: Stat,
    },
    Stats(Vec<(String, Option<Stat>)>),
    Detail(Detail),
    Counted {
        path: String,
        nodes: u64,
    },
    Created(String),
    Deleted {
        path: String,
        nodes: u64,
    },
    Saved {
        path: String,
        stat: Stat,
    },
    Conflict(Conflict),
    Jumped {
        path: String,
        found: bool,
    },
    /// A request failed; `gone`: because the node does not exist.
    Failed {
        req: Request,
        error: String,
        gone: bool,
    },
    /// A session (the first, or a new one after expiry) is open; re-read everything.
    NewSession {
        id: i64,
    },
    /// The session expired; the worker is opening a new one.
    Expired,
}

/// One node as the right pane shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detail {
    pub path: String,
    pub data: Vec<u8>,
    pub stat: Stat,
    pub acl: Vec<Acl>,
}

/// A compare-and-set that lost: what we meant to write, what is there now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub path: String,
    pub mine: Vec<u8>,
    pub theirs: Vec<u8>,
    pub stat: Stat,
}

/// Which watch fired.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WatchKey {
    Children(String),
    Node(String),
}

/// What the model asks of the outside world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Send(Request),
    /// Suspend the screen, edit `data` in $EDITOR, then call `App::edited`.
    Edit {
        path: String,
        data: Vec<u8>,
        version: i32,
    },
    /// Put the text on the clipboard (OSC 52).
    Copy(String),
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Added,
    Changed,
    Removed,
}

impl Mark {
    pub fn tag(self) -> &'static str {
        match self {
            Mark::Added => "[new]",
            Mark::Changed => "[changed]",
            Mark::Removed => "[removed]",
        }
    }
}

/// The connection as the top bar shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    Connecting,
    Connected { session: i64, renewed: bool },
    Reconnecting { session: i64 },
    Expired,
}

#[derive(Debug, Default)]
pub struct Node {
    pub stat: Option<Stat>,
    /// Sorted names, once listed (removed ones stay while marked).
    pub children: Option<Vec<String>>,
    pub expanded: bool,
    pub filter: String,
    pub mark: Option<(Mark, Instant)>,
    pub gone: bool,
}

/// One line of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub path: String,
    pub depth: usize,
}

/// A line of text being typed, and what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Jump,
    Filter { list: String },
    CreateName { parent: String },
    CreateTtl { path: String, sequential: bool },
    CreateData { path: String, mode: CreateMode },
}

impl Input {
    pub fn prompt(&self) -> String {
        match self {
            Input::Jump => "Go to path (absolute, or relative to the selected node):".into(),
            Input::Filter { list } => format!("Show only children of {list} whose name contains:"),
            Input::CreateName { parent } => format!("Name of the new child of {parent}:"),
            Input::CreateTtl { .. } => "Time to live (e.g. 30s, 10m, 1h):".into(),
            Input::CreateData { path, .. } => format!("Data of {path} (may be empty):"),
        }
    }
}

/// What a confirmed dialog does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create { path: String, data: Vec<u8>, mode: CreateMode },
    Delete { path: String, recursive: bool },
    Save { path: String, data: Vec<u8>, version: i32 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Normal,
    Help,
    Input {
        what: Input,
        text: String,
    },
    /// Pick the create mode of `path`: p, s, c, t.
    CreateMode {
        path: String,
    },
    Confirm {
        question: String,
        action: Action,
    },
    Conflict(Conflict),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub text: String,
    pub error: bool,
    pub at: Instant,
}

pub struct App {
    pub hosts: String,
    pub root: String,
    pub read_only: bool,
    pub nodes: HashMap<String, Node>,
    pub rows: Vec<Row>,
    pub cursor: usize,
    pub scroll: usize,
    /// Tree rows that fit on screen (set by the view).
    pub height: usize,
    pub detail: Option<Detail>,
    pub detail_scroll: u16,
    pub conn: Conn,
    pub mode: Mode,
    pub status: Option<Status>,
    detail_in_flight: Option<String>,
    stats_in_flight: HashSet<String>,
    /// Select this path once it shows up (after a create or a jump).
    select_when_listed: Option<String>,
}

fn is_under(path: &str, root: &str) -> bool {
    root == "/" || path == root || path.strip_prefix(root).is_some_and(|rest| rest.starts_with('/'))
}

/// Resolves `input` against `base`: absolute as is, else relative (`.` and `..` allowed).
pub fn resolve(base: &str, input: &str) -> String {
    let mut parts: Vec<&str> = if input.starts_with('/') { Vec::new() } else { base.split('/').collect() };
    for p in input.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let joined: Vec<&str> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    format!("/{}", joined.join("/"))
}

impl App {
    /// A model for the tree at `root`, and the requests that start it.
    pub fn new(hosts: &str, root: &str, read_only: bool) -> (App, Vec<Effect>) {
        let mut app = App {
            hosts: hosts.to_string(),
            root: root.to_string(),
            read_only,
            nodes: HashMap::new(),
            rows: Vec::new(),
            cursor: 0,
            scroll: 0,
            height: 20,
            detail: None,
            detail_scroll: 0,
            conn: Conn::Connecting,
            mode: Mode::Normal,
            status: None,
            detail_in_flight: None,
            stats_in_flight: HashSet::new(),
            select_when_listed: None,
        };
        app.nodes.insert(root.to_string(), Node { expanded: true, ..Node::default() });
        app.rebuild();
        let fx = vec![Effect::Send(Request::List(root.to_string()))];
        (app, fx)
    }

    pub fn selected(&self) -> Option<&str> {
        self.rows.get(self.cursor).map(|r| r.path.as_str())
    }

    pub fn node(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    fn say(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: false, at: Instant::now() });
    }

    fn complain(&mut self, text: impl Into<String>) {
        self.status = Some(Status { text: text.into(), error: true, at: Instant::now() });
    }

    /// The flattened tree: the root, then each expanded node's (filtered) children.
    pub fn rebuild(&mut self) {
        let keep = self.selected().map(str::to_string);
        let mut rows = Vec::new();
        let mut stack = vec![(self.root.clone(), 0usize)];
        while let Some((path, depth)) = stack.pop() {
            let node = self.nodes.get(&path);
            if let Some(n) = node
                && n.expanded
                && let Some(kids) = &n.children
            {
                let filter = n.filter.to_lowercase();
                let base = if path == "/" { "" } else { path.as_str() };
                for k in kids.iter().rev() {
                    if filter.is_empty() || k.to_lowercase().contains(&filter) {
                        stack.push((format!("{base}/{k}"), depth + 1));
                    }
                }
            }
            rows.push(Row { path, depth });
        }
        self.rows = rows;
        match keep.and_then(|k| self.rows.iter().position(|r| r.path == k)) {
            Some(i) => self.cursor = i,
            None => self.cursor = self.cursor.min(self.rows.len().saturating_sub(1)),
        }
        self.fix_scroll();
    }

    pub fn fix_scroll(&mut self) {
        let h = self.height.max(1);
        if self.cursor < self.scroll {
            self.scroll = self.cursor;
        } else if self.cursor >= self.scroll + h {
            self.scroll = self.cursor + 1 - h;
        }
        self.scroll = self.scroll.min(self.rows.len().saturating_sub(h));
    }

    fn move_to(&mut self, i: usize) {
        let last = self.rows.len().saturating_sub(1);
        let i = i.min(last);
        if i != self.cursor {
            self.cursor = i;
            self.detail_scroll = 0;
        }
        self.fix_scroll();
    }

    fn select_path(&mut self, path: &str) -> bool {
        match self.rows.iter().position(|r| r.path == path) {
            Some(i) => {
                self.move_to(i);
                true
            }
            None => false,
        }
    }

    fn mark(&mut self, path: &str, mark: Mark) {
        let n = self.nodes.entry(path.to_string()).or_default();
        n.mark = Some((mark, Instant::now()));
        n.gone = mark == Mark::Removed;
    }

    /// The list the cursor is in: the selected node's parent (the root's own children when
    /// the root is selected).
    fn current_list(&self) -> String {
        let sel = self.selected().unwrap_or(&self.root);
        if sel == self.root { sel.to_string() } else { zk::parent(sel).unwrap_or("/").to_string() }
    }

    /// Requests the selected node's detail and the Stat of each visible row that lacks
    /// one; at most one detail and one batch per row in flight.
    pub fn wants(&mut self) -> Vec<Effect> {
        let mut fx = Vec::new();
        let end = (self.scroll + self.height.max(1)).min(self.rows.len());
        let missing: Vec<String> = self.rows[self.scroll.min(end)..end]
            .iter()
            .filter(|r| {
                let n = self.nodes.get(&r.path);
                n.is_none_or(|n| n.stat.is_none() && !n.gone) && !self.stats_in_flight.contains(&r.path)
            })
            .map(|r| r.path.clone())
            .collect();
        if !missing.is_empty() && !matches!(self.conn, Conn::Expired | Conn::Connecting | Conn::Reconnecting { .. }) {
            self.stats_in_flight.extend(missing.iter().cloned());
            fx.push(Effect::Send(Request::Stats(missing)));
        }
        if let Some(sel) = self.selected().map(str::to_string)
            && self.detail.as_ref().is_none_or(|d| d.path != sel)
            && self.detail_in_flight.is_none()
            && !self.nodes.get(&sel).is_some_and(|n| n.gone)
            && !matches!(self.conn, Conn::Expired | Conn::Connecting | Conn::Reconnecting { .. })
        {
            self.detail_in_flight = Some(sel.clone());
            fx.push(Effect::Send(Request::Detail(sel)));
        }
        fx
    }

    /// Drops removed nodes whose mark has run out, and stale status lines.
    pub fn tick(&mut self, now: Instant) -> bool {
        let expired: Vec<String> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.mark.is_some_and(|(_, at)| now.duration_since(at) >= MARK_FOR))
            .map(|(p, _)| p.clone())
            .collect();
        let mut changed = false;
        for p in expired {
            let gone = self.nodes.get(&p).is_some_and(|n| n.gone);
            if !gone {
                if let Some(n) = self.nodes.get_mut(&p) {
                    n.mark = None;
                }
                changed = true;
                continue;
            }
            if let Some(parent) = zk::parent(&p)
                && let Some(kids) = self.nodes.get_mut(parent).and_then(|n| n.children.as_mut())
            {
                let name = p.rsplit('/').next().unwrap_or("");
                kids.retain(|k| k != name);
            }
            let prefix = format!("{p}/");
            self.nodes.retain(|k, _| k != &p && !k.starts_with(&prefix));
            changed = true;
        }
        if self.status.as_ref().is_some_and(|s| now.duration_since(s.at) > Duration::from_secs(10)) {
            self.status = None;
            changed = true;
        }
        if changed {
            self.rebuild();
        }
        changed
    }

    pub fn on_session(&mut self, ev: SessionEvent) -> Vec<Effect> {
        let session = match self.conn {
            Conn::Connected { session, .. } | Conn::Reconnecting { session } => session,
            _ => 0,
        };
        match ev {
            SessionEvent::Connecting => self.conn = Conn::Reconnecting { session },
            SessionEvent::Connected | SessionEvent::ConnectedReadOnly => {
                let was = self.conn;
                self.conn = Conn::Connected { session, renewed: false };
                if matches!(was, Conn::Reconnecting { .. }) {
                    // requests that failed while away are asked again
                    self.stats_in_flight.clear();
                    self.detail_in_flight = None;
                    return self.relist_all();
                }
            }
            SessionEvent::Expired | SessionEvent::AuthFailed => self.conn = Conn::Expired,
        }
        Vec::new()
    }

    fn relist_all(&mut self) -> Vec<Effect> {
        let mut listed: Vec<String> =
            self.nodes.iter().filter(|(_, n)| n.children.is_some() || n.expanded).map(|(p, _)| p.clone()).collect();
        listed.sort();
        listed.into_iter().map(|p| Effect::Send(Request::List(p))).collect()
    }

    pub fn on_watch(&mut self, key: WatchKey, kind: EventKind) -> Vec<Effect> {
        let mut fx = Vec::new();
        match (key, kind) {
            (WatchKey::Children(p), EventKind::ChildrenChanged) if self.nodes.contains_key(&p) => {
                fx.push(Effect::Send(Request::List(p)));
            }
            (WatchKey::Children(p) | WatchKey::Node(p), EventKind::Deleted) if self.nodes.contains_key(&p) => {
                self.mark(&p, Mark::Removed);
            }
            (WatchKey::Node(p), EventKind::DataChanged | EventKind::Created) => {
                let was_gone = self.nodes.get(&p).is_some_and(|n| n.gone);
                self.mark(&p, if was_gone || kind == EventKind::Created { Mark::Added } else { Mark::Changed });
                if let Some(n) = self.nodes.get_mut(&p) {
                    n.stat = None; // re-read (and re-armed) by `wants`
                }
                if self.detail.as_ref().is_some_and(|d| d.path == p) {
                    self.detail = None;
                }
            }
            _ => {}
        }
        fx
    }

    pub fn on_reply(&mut self, reply: Reply) -> Vec<Effect> {
        let mut fx = Vec::new();
        match reply {
            Reply::Listed { path, children, stat } => self.listed(path, children, stat),
            Reply::Stats(stats) => {
                for (p, st) in stats {
                    self.stats_in_flight.remove(&p);
                    match st {
                        Some(st) => {
                            let n = self.nodes.entry(p).or_default();
                            n.stat = Some(st);
                        }
                        None => {
                            if self.nodes.get(&p).is_some_and(|n| !n.gone) {
                                self.mark(&p, Mark::Removed);
                            }
                        }
                    }
                }
            }
            Reply::Detail(d) => {
                if self.detail_in_flight.as_deref() == Some(&d.path) {
                    self.detail_in_flight = None;
                }
                let n = self.nodes.entry(d.path.clone()).or_default();
                n.stat = Some(d.stat);
                if self.selected() == Some(&d.path) {
                    self.detail = Some(d);
                }
            }
            Reply::Counted { path, nodes } => {
                let question = if nodes > 1 {
                    format!("Delete {path} and the {} nodes under it ({nodes} nodes in all)? [y/N]", nodes - 1)
                } else {
                    format!("Delete {path}? [y/N]")
                };
                self.say(format!("{path}: {nodes} node(s)"));
                self.mode = Mode::Confirm { question, action: Action::Delete { path, recursive: nodes > 1 } };
            }
            Reply::Created(path) => {
                self.say(format!("created {path}"));
                if let Some(parent) = zk::parent(&path) {
                    let parent = parent.to_string();
                    self.nodes.entry(parent.clone()).or_default().expanded = true;
                    self.select_when_listed = Some(path.clone());
                    fx.push(Effect::Send(Request::List(parent)));
                }
            }
            Reply::Deleted { path, nodes } => {
                self.say(format!("deleted {path} ({nodes} node(s))"));
                self.mark(&path, Mark::Removed);
            }
            Reply::Saved { path, stat } => {
                self.say(format!("saved {path} (dataVersion {})", stat.version));
                if self.detail.as_ref().is_some_and(|d| d.path == path) {
                    self.detail = None;
                }
            }
            Reply::Conflict(c) => {
                self.complain(format!(
                    "{}: changed by someone else since you read it (now dataVersion {})",
                    c.path, c.stat.version
                ));
                self.mode = Mode::Conflict(c);
            }
            Reply::Jumped { path, found } => {
                if !found {
                    self.complain(format!("{path}: no such node"));
                } else {
                    let mut p = path.as_str();
                    while let Some(parent) = zk::parent(p) {
                        if !is_under(parent, &self.root) {
                            break;
                        }
                        self.nodes.entry(parent.to_string()).or_default().expanded = true;
                        p = parent;
                    }
                    self.rebuild();
                    if !self.select_path(&path) {
                        self.complain(format!("{path}: not shown (a filter hides it?)"));
                    }
                }
            }
            Reply::Failed { req, error, gone } => {
                match &req {
                    Request::Stats(ps) => {
                        for p in ps {
                            self.stats_in_flight.remove(p);
                        }
                    }
                    Request::Detail(p) => {
                        if self.detail_in_flight.as_deref() == Some(p) {
                            self.detail_in_flight = None;
                        }
                        if gone {
                            self.mark(p, Mark::Removed);
                        }
                    }
                    Request::List(p) if gone && self.nodes.contains_key(p) => {
                        self.mark(p, Mark::Removed);
                    }
                    _ => {}
                }
                if !matches!(req, Request::Stats(_)) {
                    self.complain(error);
                }
            }
            Reply::NewSession { id } => {
                let renewed = !matches!(self.conn, Conn::Connecting);
                self.conn = Conn::Connected { session: id, renewed };
                if renewed {
                    self.say(format!("new session {id:#x}: the view was read again"));
                    self.stats_in_flight.clear();
                    self.detail_in_flight = None;
                    self.detail = None;
                    for n in self.nodes.values_mut() {
                        n.stat = None;
                    }
                    fx.extend(self.relist_all());
                }
            }
            Reply::Expired => {
                self.conn = Conn::Expired;
                self.complain("the session expired: opening a new one");
            }
        }
        fx
    }

    fn listed(&mut self, path: String, mut children: Vec<String>, stat: Stat) {
        children.sort();
        let now = Instant::now();
        let base = if path == "/" { String::new() } else { path.clone() };
        let old = self.nodes.get_mut(&path).and_then(|n| n.children.take());
        let mut merged = children.clone();
        if let Some(old) = old {
            let new: HashSet<&String> = children.iter().collect();
            let before: HashSet<&String> = old.iter().collect();
            for k in children.iter().filter(|k| !before.contains(k)) {
                let n = self.nodes.entry(format!("{base}/{k}")).or_default();
                n.mark = Some((Mark::Added, now));
                n.gone = false;
            }
            for k in old.iter().filter(|k| !new.contains(k)) {
                let p = format!("{base}/{k}");
                let n = self.nodes.entry(p).or_default();
                if !n.gone {
                    n.mark = Some((Mark::Removed, now));
                    n.gone = true;
                }
                if n.mark.is_some() {
                    merged.push(k.clone()); // stays listed, marked, until the mark runs out
                }
            }
            merged.sort();
        }
        let n = self.nodes.entry(path).or_default();
        n.children = Some(merged);
        n.stat = Some(stat);
        n.gone = false;
        self.rebuild();
        if let Some(want) = self.select_when_listed.clone()
            && self.select_path(&want)
        {
            self.select_when_listed = None;
        }
    }

    /// After the editor returned: ask before saving, unless nothing changed.
    pub fn edited(&mut self, path: String, before: &[u8], after: Vec<u8>, version: i32) {
        if after == before {
            self.say(format!("{path}: no change"));
            return;
        }
        self.mode = Mode::Confirm {
            question: format!("Save {} bytes to {path} (only if still at dataVersion {version})? [y/N]", after.len()),
            action: Action::Save { path, data: after, version },
        };
    }

    /// The editor could not run.
    pub fn edit_failed(&mut self, why: String) {
        self.complain(why);
    }

    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            return vec![Effect::Quit];
        }
        match std::mem::replace(&mut self.mode, Mode::Normal) {
            Mode::Normal => self.normal_key(key),
            Mode::Help => Vec::new(), // any key closes it
            Mode::Input { what, mut text } => match key.code {
                KeyCode::Esc => Vec::new(),
                KeyCode::Enter => self.input_done(what, text),
                KeyCode::Backspace => {
                    text.pop();
                    self.mode = Mode::Input { what, text };
                    Vec::new()
                }
                KeyCode::Char(c) => {
                    text.push(c);
                    self.mode = Mode::Input { what, text };
                    Vec::new()
                }
                _ => {
                    self.mode = Mode::Input { what, text };
                    Vec::new()
                }
            },
            Mode::CreateMode { path } => {
                let mode = match key.code {
                    KeyCode::Char('p') => Some(CreateMode::Persistent),
                    KeyCode::Char('s') => Some(CreateMode::PersistentSequential),
                    KeyCode::Char('c') => Some(CreateMode::Container),
                    KeyCode::Char('t') => {
                        self.mode =
                            Mode::Input { what: Input::CreateTtl { path, sequential: false }, text: String::new() };
                        return Vec::new();
                    }
                    KeyCode::Char('T') => {
                        self.mode =
                            Mode::Input { what: Input::CreateTtl { path, sequential: true }, text: String::new() };
                        return Vec::new();
                    }
                    KeyCode::Esc => return Vec::new(),
                    _ => None,
                };
                match mode {
                    Some(mode) => {
                        self.mode = Mode::Input { what: Input::CreateData { path, mode }, text: String::new() }
                    }
                    None => self.mode = Mode::CreateMode { path },
                }
                Vec::new()
            }
            Mode::Confirm { question, action } => match key.code {
                KeyCode::Char('y' | 'Y') => match action {
                    Action::Create { path, data, mode } => vec![Effect::Send(Request::Create { path, data, mode })],
                    Action::Delete { path, recursive } => vec![Effect::Send(Request::Delete { path, recursive })],
                    Action::Save { path, data, version } => vec![Effect::Send(Request::Set { path, data, version })],
                },
                KeyCode::Char('n' | 'N') | KeyCode::Esc | KeyCode::Char('q') => {
                    self.say("cancelled");
                    Vec::new()
                }
                _ => {
                    self.mode = Mode::Confirm { question, action };
                    Vec::new()
                }
            },
            Mode::Conflict(c) => match key.code {
                KeyCode::Char('o') => {
                    vec![Effect::Send(Request::Set { path: c.path, data: c.mine, version: c.stat.version })]
                }
                KeyCode::Char('e') => vec![Effect::Edit { path: c.path, data: c.mine, version: c.stat.version }],
                KeyCode::Char('k') | KeyCode::Esc | KeyCode::Char('q') => {
                    self.say(format!("{}: kept their version; your edit is dropped", c.path));
                    self.detail = None;
                    Vec::new()
                }
                _ => {
                    self.mode = Mode::Conflict(c);
                    Vec::new()
                }
            },
        }
    }

    fn refuse_if_read_only(&mut self, what: &str) -> bool {
        if self.read_only {
            self.complain(format!("read-only: {what} is disabled (started with --read-only)"));
        }
        self.read_only
    }

    fn normal_key(&mut self, key: KeyEvent) -> Vec<Effect> {
        let page = self.height.max(1);
        let sel = self.selected().unwrap_or(&self.root).to_string();
        match key.code {
            KeyCode::Char('q') => return vec![Effect::Quit],
            KeyCode::Esc => self.status = None,
            KeyCode::Char('?') => self.mode = Mode::Help,
            KeyCode::Up | KeyCode::Char('k') => self.move_to(self.cursor.saturating_sub(1)),
            KeyCode::Down | KeyCode::Char('j') => self.move_to(self.cursor + 1),
            KeyCode::PageUp => self.move_to(self.cursor.saturating_sub(page)),
            KeyCode::PageDown => self.move_to(self.cursor + page),
            KeyCode::Home => self.move_to(0),
            KeyCode::End => self.move_to(usize::MAX),
            KeyCode::Char('K') => self.detail_scroll = self.detail_scroll.saturating_sub(5),
            KeyCode::Char('J') => self.detail_scroll = self.detail_scroll.saturating_add(5),
            KeyCode::Right | KeyCode::Enter | KeyCode::Char('l') => {
                let n = self.nodes.entry(sel.clone()).or_default();
                if n.gone {
                    return Vec::new();
                }
                if n.expanded && n.children.as_ref().is_some_and(|c| !c.is_empty()) {
                    self.move_to(self.cursor + 1);
                } else if n.stat.is_some_and(|s| s.num_children == 0) && n.children.is_none() {
                    self.say(format!("{sel} has no children"));
                } else {
                    n.expanded = true;
                    let load = n.children.is_none();
                    self.rebuild();
                    if load {
                        return vec![Effect::Send(Request::List(sel))];
                    }
                }
            }
            KeyCode::Left | KeyCode::Char('h') => {
                let n = self.nodes.entry(sel.clone()).or_default();
                if n.expanded && sel != self.root {
                    n.expanded = false;
                    self.rebuild();
                } else if sel != self.root
                    && let Some(parent) = zk::parent(&sel)
                {
                    let parent = parent.to_string();
                    self.select_path(&parent);
                }
            }
            KeyCode::Char('r') => {
                let mut fx = Vec::new();
                let list = self.current_list();
                for p in [list, sel.clone()] {
                    if self.nodes.get(&p).is_some_and(|n| n.children.is_some()) {
                        fx.push(Effect::Send(Request::List(p)));
                    }
                }
                fx.dedup();
                let end = (self.scroll + page).min(self.rows.len());
                let visible: Vec<String> =
                    self.rows[self.scroll.min(end)..end].iter().map(|r| r.path.clone()).collect();
                for p in visible {
                    if let Some(n) = self.nodes.get_mut(&p) {
                        n.stat = None;
                    }
                }
                self.detail = None;
                self.say("refreshed");
                return fx;
            }
            KeyCode::Char('g') => self.mode = Mode::Input { what: Input::Jump, text: String::new() },
            KeyCode::Char('/') => {
                let list = self.current_list();
                let text = self.nodes.get(&list).map(|n| n.filter.clone()).unwrap_or_default();
                self.mode = Mode::Input { what: Input::Filter { list }, text };
            }
            KeyCode::Char('y') => {
                self.say(format!("copied {sel} to the clipboard"));
                return vec![Effect::Copy(sel)];
            }
            KeyCode::Char('c') if !self.refuse_if_read_only("create") => {
                self.mode = Mode::Input { what: Input::CreateName { parent: sel }, text: String::new() };
            }
            KeyCode::Char('e') => {
                if self.refuse_if_read_only("edit") {
                    return Vec::new();
                }
                match &self.detail {
                    Some(d) if d.path == sel => {
                        return vec![Effect::Edit { path: sel, data: d.data.clone(), version: d.stat.version }];
                    }
                    _ => self.complain(format!("{sel}: not read yet; try again")),
                }
            }
            KeyCode::Char('d') | KeyCode::Delete => {
                if self.refuse_if_read_only("delete") {
                    return Vec::new();
                }
                if sel == "/" || sel == "/zookeeper" || sel.starts_with("/zookeeper/") {
                    self.complain(format!("{sel}: ZooKeeper's own node; not deleted"));
                } else {
                    self.say(format!("counting the nodes under {sel}…"));
                    return vec![Effect::Send(Request::Count(sel))];
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn input_done(&mut self, what: Input, text: String) -> Vec<Effect> {
        let sel = self.selected().unwrap_or(&self.root).to_string();
        match what {
            Input::Jump => {
                let text = text.trim();
                if text.is_empty() {
                    return Vec::new();
                }
                let path = resolve(&sel, text);
                if !is_under(&path, &self.root) {
                    self.complain(format!("{path} is outside the inspected tree {}", self.root));
                    return Vec::new();
                }
                self.say(format!("going to {path}…"));
                vec![Effect::Send(Request::Jump { root: self.root.clone(), path })]
            }
            Input::Filter { list } => {
                let filter = text.trim().to_string();
                self.nodes.entry(list.clone()).or_default().filter = filter.clone();
                if filter.is_empty() {
                    self.say(format!("{list}: filter cleared"));
                } else {
                    self.say(format!("{list}: only children containing {filter:?}"));
                }
                self.rebuild();
                Vec::new()
            }
            Input::CreateName { parent } => {
                let name = text.trim();
                let path = zk::join(&parent, name);
                if name.is_empty() || name.contains('/') {
                    self.complain("a child's name is one path component: not empty, no '/'");
                } else if let Err(e) = zk::validate_path(&path, true) {
                    self.complain(e.to_string());
                } else {
                    self.mode = Mode::CreateMode { path };
                }
                Vec::new()
            }
            Input::CreateTtl { path, sequential } => {
                match crate::util::parse_duration(&text) {
                    Ok(d) => {
                        let ttl_ms = d.as_millis().max(1) as i64;
                        let mode = if sequential {
                            CreateMode::PersistentSequentialWithTtl { ttl_ms }
                        } else {
                            CreateMode::PersistentWithTtl { ttl_ms }
                        };
                        self.mode = Mode::Input { what: Input::CreateData { path, mode }, text: String::new() };
                    }
                    Err(e) => self.complain(format!("TTL: {e}")),
                }
                Vec::new()
            }
            Input::CreateData { path, mode } => {
                let question = format!("Create {path} ({}, {} bytes of data)? [y/N]", mode_name(mode), text.len());
                self.mode = Mode::Confirm { question, action: Action::Create { path, data: text.into_bytes(), mode } };
                Vec::new()
            }
        }
    }
}

/// How a create mode is named in dialogs.
pub fn mode_name(mode: CreateMode) -> String {
    match mode {
        CreateMode::Persistent => "persistent".into(),
        CreateMode::PersistentSequential => "persistent sequential".into(),
        CreateMode::Container => "container".into(),
        CreateMode::Ephemeral => "ephemeral".into(),
        CreateMode::EphemeralSequential => "ephemeral sequential".into(),
        CreateMode::PersistentWithTtl { ttl_ms } => format!("TTL {}", humantime::format_duration(ms(ttl_ms))),
        CreateMode::PersistentSequentialWithTtl { ttl_ms } => {
            format!("sequential, TTL {}", humantime::format_duration(ms(ttl_ms)))
        }
    }
}

fn ms(ms: i64) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}
