//! The znode commands, with zkCli.sh's names: ls, get, set, create, delete, deleteall,
//! stat, watch, tree, getacl, setacl; and `digest`, which prints the id setacl needs.
//! Each prints text, or with `-o json` one JSON document (NDJSON events for `watch`).

use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use base64::Engine as _;
use crossbeam_channel::select;
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};

use super::Run;
use super::exit::usage;
use super::output::{Ndjson, acl_json, data_fields, event, print_json, stat_json};
use crate::cli::{
    CreateArgs, DeleteArgs, DigestArgs, GetArgs, Global, LsArgs, SetAclArgs, SetArgs, TreeArgs, WatchArgs,
};
use crate::util::{escape_data, format_millis, shutdown};
use crate::zk::{self, Code, CreateMode, Halt, Lost, SessionWatch, Stat, ZooKeeper};

/// `-` means stdin; anything else is the data itself.
fn read_data(arg: Option<&str>) -> Result<Vec<u8>> {
    match arg {
        Some("-") => {
            let mut buf = Vec::new();
            io::stdin().read_to_end(&mut buf).context("reading data from stdin")?;
            Ok(buf)
        }
        Some(s) => Ok(s.as_bytes().to_vec()),
        None => Ok(Vec::new()),
    }
}

/// zkCli's Stat layout.
pub fn write_stat(out: &mut impl Write, s: &Stat) -> io::Result<()> {
    writeln!(out, "cZxid = {:#x}", s.czxid)?;
    writeln!(out, "ctime = {}", format_millis(s.ctime))?;
    writeln!(out, "mZxid = {:#x}", s.mzxid)?;
    writeln!(out, "mtime = {}", format_millis(s.mtime))?;
    writeln!(out, "pZxid = {:#x}", s.pzxid)?;
    writeln!(out, "cversion = {}", s.cversion)?;
    writeln!(out, "dataVersion = {}", s.version)?;
    writeln!(out, "aclVersion = {}", s.aversion)?;
    writeln!(out, "ephemeralOwner = {:#x}", s.ephemeral_owner)?;
    writeln!(out, "dataLength = {}", s.data_length)?;
    writeln!(out, "numChildren = {}", s.num_children)
}

fn sorted_children(zk: &ZooKeeper, path: &str) -> zk::Result<Vec<String>> {
    let mut c = zk.children(path)?;
    c.sort();
    Ok(c)
}

impl Run for LsArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let zk = g.connect()?;
        let mut out = io::stdout().lock();
        if self.recursive {
            // depth-first, full paths, parents before children (zkCli's ls -R), pipelined
            let mut all = Vec::new();
            let mut io_err = None;
            let json = g.json();
            zk::traverse::Walk::default()
                .run(&zk, &self.path, |n| {
                    if json {
                        all.push(n.path.clone());
                        return Ok(true);
                    }
                    match writeln!(out, "{}", n.path) {
                        Ok(()) => Ok(true),
                        Err(e) => {
                            io_err = Some(e);
                            Err(zk::Error::Zk { code: Code::Closing, path: None })
                        }
                    }
                })
                .map_err(|e| io_err.take().map(anyhow::Error::from).unwrap_or_else(|| e.into()))?;
            if json {
                print_json(&json!({ "path": self.path, "paths": all }))?;
            }
        } else {
            let (mut kids, stat) = zk.children2(&self.path)?;
            kids.sort();
            if g.json() {
                let mut doc = json!({ "path": self.path, "children": kids });
                if self.stat {
                    doc["stat"] = stat_json(&stat);
                }
                print_json(&doc)?;
                return Ok(ExitCode::SUCCESS);
            }
            for k in &kids {
                writeln!(out, "{k}")?;
            }
            if self.stat {
                write_stat(&mut out, &stat)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Run for GetArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let zk = g.connect()?;
        let (data, stat) = zk.get(&self.path)?;
        if g.json() {
            let mut doc = json!({ "path": self.path });
            doc.as_object_mut().expect("an object").extend(data_fields(&data));
            if self.stat {
                doc["stat"] = stat_json(&stat);
            }
            print_json(&doc)?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut out = io::stdout().lock();
        write_data(&mut out, &data, self.raw || !io::stdout().is_terminal())?;
        if self.stat {
            if !data.is_empty() && !data.ends_with(b"\n") {
                writeln!(out)?; // the Stat starts on its own line
            }
            write_stat(&mut out, &stat)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Run for SetArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let data = read_data(Some(&self.data))?;
        let zk = g.connect()?;
        let stat = zk.set(&self.path, &data, self.expected_version)?;
        if self.stat && g.json() {
            print_json(&json!({ "path": self.path, "stat": stat_json(&stat) }))?;
        } else if self.stat {
            write_stat(&mut io::stdout().lock(), &stat)?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl CreateArgs {
    fn mode(&self) -> CreateMode {
        match (self.ephemeral, self.sequential, self.container, self.ttl) {
            (_, _, true, _) => CreateMode::Container,
            (_, true, _, Some(t)) => CreateMode::PersistentSequentialWithTtl { ttl_ms: t.as_millis().max(1) as i64 },
            (_, false, _, Some(t)) => CreateMode::PersistentWithTtl { ttl_ms: t.as_millis().max(1) as i64 },
            (true, true, ..) => CreateMode::EphemeralSequential,
            (true, false, ..) => CreateMode::Ephemeral,
            (false, true, ..) => CreateMode::PersistentSequential,
            (false, false, ..) => CreateMode::Persistent,
        }
    }
}

impl Run for CreateArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let data = read_data(self.data.as_deref())?;
        let mode = self.mode();
        zk::validate_path(&self.path, mode.is_sequential())?;
        let zk = g.connect()?;
        if self.parents
            && let Some(parent) = zk::parent(&self.path)
        {
            zk.ensure_path(parent, CreateMode::Persistent)?;
        }
        let created = match zk.create(&self.path, &data, mode) {
            Err(e) if e.code() == Some(Code::NoNode) => {
                // The server says NONODE about the parent; name it, and the way out.
                let parent = zk::parent(&self.path).unwrap_or("/");
                anyhow::bail!("{}: the parent {parent} does not exist (create -p makes it)", self.path)
            }
            r => r?,
        };
        if g.json() {
            print_json(&json!({ "path": created }))?;
        } else {
            writeln!(io::stdout().lock(), "{created}")?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Run for DeleteArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let zk = g.connect()?;
        zk.delete(&self.path, self.expected_version)?;
        Ok(ExitCode::SUCCESS)
    }
}

pub fn delete_all(g: &Global, path: &str) -> Result<ExitCode> {
    zk::validate_path(path, false)?;
    let zk = g.connect()?;
    if zk.exists(path)?.is_none() {
        return Err(zk::Error::Zk { code: Code::NoNode, path: Some(path.into()) }.into());
    }
    zk.delete_tree(path)?;
    Ok(ExitCode::SUCCESS)
}

pub fn stat(g: &Global, path: &str) -> Result<ExitCode> {
    let zk = g.connect()?;
    match zk.exists(path)? {
        Some(s) if g.json() => print_json(&json!({ "path": path, "stat": stat_json(&s) }))?,
        Some(s) => write_stat(&mut io::stdout().lock(), &s)?,
        None => return Err(zk::Error::Zk { code: Code::NoNode, path: Some(path.into()) }.into()),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn get_acl(g: &Global, path: &str) -> Result<ExitCode> {
    let zk = g.connect()?;
    let (acl, _) = zk.get_acl(path)?;
    if g.json() {
        print_json(&json!({ "path": path, "acl": acl.iter().map(acl_json).collect::<Vec<_>>() }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = io::stdout().lock();
    for a in acl {
        writeln!(out, "{}:{}:{}", a.scheme, a.id, a.perms_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

impl Run for SetAclArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let acl = &self.acl.0;
        if !self.force
            && let Some(a) = acl.iter().find(|a| a.scheme == "digest" && !is_digest_id(&a.id))
        {
            // A password pasted where its hash belongs: nobody can ever authenticate as
            // that id, so the node would be locked for good.
            return Err(usage(format!(
                "{}: digest:{} is not USER:HASH with a 28-character base64 hash (a password instead of its \
                 hash would lock the node for good); `zkutil digest USER:PASSWORD` prints the id, --force \
                 sets it anyway",
                self.path, a.id
            )));
        }
        if !self.force && !acl.iter().any(|a| a.perms & zk::perms::ADMIN != 0) {
            // Without ADMIN nobody (short of a ZooKeeper superuser) can ever change this
            // ACL again, not even to undo it.
            return Err(usage(format!(
                "{}: no entry of this ACL grants ADMIN ('a'), so nobody could change it again; \
                 add 'a' for someone (e.g. world:anyone:r,digest:admin:HASH:cdrwa) or pass --force",
                self.path
            )));
        }
        let zk = g.connect()?;
        zk.set_acl(&self.path, acl, self.expected_version)?;
        Ok(ExitCode::SUCCESS)
    }
}

/// What `watch` read after an event: the node's data, its children, or nothing.
enum Seen {
    Data(Vec<u8>),
    Children(Vec<String>),
    NoNode,
}

impl Seen {
    /// The text after `PATH: ` on a watch line.
    fn line(&self) -> String {
        match self {
            Seen::Data(d) => escape_data(d),
            Seen::Children(k) => format!("[{}]", k.join(", ")),
            Seen::NoNode => "(no node)".to_string(),
        }
    }

    /// The fields of a watch event in JSON.
    fn json(&self) -> Value {
        match self {
            Seen::Data(d) => {
                let mut m = data_fields(d);
                m.insert("exists".into(), true.into());
                Value::Object(m)
            }
            Seen::Children(k) => json!({ "exists": true, "children": k }),
            Seen::NoNode => json!({ "exists": false }),
        }
    }
}

impl WatchArgs {
    /// Reads the node (or its children) and arms the next watch in the same call. A missing
    /// node is watched for creation.
    fn arm(&self, zk: &ZooKeeper) -> zk::Result<(Seen, crossbeam_channel::Receiver<zk::WatchEvent>)> {
        loop {
            let read = if self.children {
                zk.children_w(&self.path).map(|(mut kids, _, rx)| {
                    kids.sort();
                    (Seen::Children(kids), rx)
                })
            } else {
                zk.get_w(&self.path).map(|(data, _, rx)| (Seen::Data(data), rx))
            };
            match read {
                Ok(r) => return Ok(r),
                Err(e) if e.code() == Some(Code::NoNode) => {
                    let (stat, rx) = zk.exists_w(&self.path)?;
                    if stat.is_none() {
                        return Ok((Seen::NoNode, rx));
                    } // created between the two calls: read it
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Run for WatchArgs {
    /// A watcher (the session-health model's watcher grace, T): a reconnect keeps the armed
    /// watch; a lost session (expired, or no connection for T) is ridden through: it says
    /// so on stderr, connects again, re-arms and prints the node as it is now.
    fn run(&self, g: &Global) -> Result<ExitCode> {
        if self.recursive {
            return super::watch_tree::run(self, g);
        }
        let stop = shutdown();
        let what = format!("watch {}", self.path);
        let mut zk = g.connect_owned()?;
        let mut out = io::stdout().lock();
        let mut events = Ndjson::stdout();
        let mut seen = 0u64;
        let mut pending: Option<zk::WatchEvent> = None; // printed with the read that follows it
        loop {
            let health = SessionWatch::watcher(&zk);
            loop {
                let (now, changed) = match health.retry(&stop, None, || self.arm(&zk)) {
                    Ok(v) => v,
                    Err(Halt::Stopped) => return Ok(super::exit::after_stop()),
                    Err(Halt::Zk(e)) if e.is_session_lost() => break,
                    Err(e) => return Err(anyhow::anyhow!(e)),
                };
                let ev = pending.take();
                if g.json() {
                    let (kind, path) = match &ev {
                        Some(ev) => (ev.kind.to_string(), ev.path.as_str()),
                        None => ("initial".to_string(), self.path.as_str()),
                    };
                    events.emit(&event(&kind, path, now.json()))?;
                } else {
                    match ev {
                        Some(ev) => writeln!(out, "{} {}: {}", ev.kind, ev.path, now.line())?,
                        None => writeln!(out, "{}: {}", self.path, now.line())?,
                    }
                    out.flush()?;
                }
                if self.count.is_some_and(|n| seen >= n) {
                    return Ok(ExitCode::SUCCESS);
                }
                select! {
                    recv(changed) -> ev => match ev {
                        Ok(ev) => {
                            seen += 1;
                            pending = Some(ev);
                        }
                        Err(_) => break, // disconnected without an event: the session expired
                    },
                    // a reconnect keeps the armed watch; only a lost session ends it
                    recv(health.lost()) -> _ => break,
                    recv(stop) -> _ => return Ok(super::exit::after_stop()),
                }
            }
            let why = health.lost_why().unwrap_or(Lost::Expired);
            eprintln!("zkutil: {what}: the session was lost ({why}); watching again with a new session");
            drop(health);
            drop(zk);
            zk = match super::election::reconnect(g, &what, &stop)? {
                Some(z) => z,
                None => return Ok(super::exit::after_stop()),
            };
        }
    }
}

impl Run for TreeArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let zk = g.connect()?;
        let mut out = io::stdout().lock();
        let stat = zk
            .exists(&self.path)?
            .ok_or_else(|| zk::Error::Zk { code: Code::NoNode, path: Some(self.path.clone()) })?;
        if g.json() {
            drop(out);
            let name = self.path.rsplit('/').next().unwrap_or("");
            print_json(&tree_json(&zk, &self.path, name, &stat, 1, self.depth)?)?;
            return Ok(ExitCode::SUCCESS);
        }
        // Siblings still to come at each depth, to draw the branches (pipelined walk).
        let mut left: Vec<usize> = Vec::new();
        let mut io_err = None;
        let walk = zk::traverse::Walk { max_depth: self.depth, ..Default::default() };
        walk.run(&zk, &self.path, |n| {
            left.truncate(n.depth + 1);
            let line = if n.depth == 0 {
                format!("{}{}", n.path, node_note(&n.stat))
            } else {
                left[n.depth] = left[n.depth].saturating_sub(1);
                let prefix: String = left[1..n.depth].iter().map(|&l| if l > 0 { "│   " } else { "    " }).collect();
                let branch = if left[n.depth] == 0 { "└── " } else { "├── " };
                format!("{prefix}{branch}{}{}", n.path.rsplit('/').next().unwrap_or(""), node_note(&n.stat))
            };
            if let Err(e) = writeln!(out, "{line}") {
                io_err = Some(e);
                return Err(zk::Error::Zk { code: Code::Closing, path: None });
            }
            left.resize(n.depth + 1, 0);
            left.push(n.children.len());
            Ok(true)
        })
        .map_err(|e| io_err.take().map(anyhow::Error::from).unwrap_or_else(|| e.into()))?;
        Ok(ExitCode::SUCCESS)
    }
}

/// `tree -o json`: `{"path", "name", "dataLength", "ephemeral", "numChildren", "children": [...]}`,
/// nested (children cut at --depth are counted in numChildren but not listed).
fn tree_json(zk: &ZooKeeper, path: &str, name: &str, stat: &Stat, depth: usize, max: Option<usize>) -> Result<Value> {
    let mut children = Vec::new();
    if stat.num_children > 0 && max.is_none_or(|m| depth <= m) {
        let kids = match sorted_children(zk, path) {
            Ok(k) => k,
            Err(e) if e.code() == Some(Code::NoNode) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for k in kids {
            let child = zk::join(path, &k);
            let Some(s) = zk.exists(&child)? else { continue };
            children.push(tree_json(zk, &child, &k, &s, depth + 1, max)?);
        }
    }
    Ok(json!({
        "path": path,
        "name": name,
        "dataLength": stat.data_length,
        "ephemeral": stat.ephemeral_owner != 0,
        "numChildren": stat.num_children,
        "children": children,
    }))
}

fn node_note(s: &Stat) -> String {
    let mut note = String::new();
    if s.data_length > 0 {
        note.push_str(&format!("  [{} B]", s.data_length));
    }
    if s.ephemeral_owner != 0 {
        note.push_str("  (ephemeral)");
    }
    note
}

/// Writes node data for `get`: the bytes unchanged when `raw` (any pipe or file, or
/// `--raw`), so `get /a | create /b -` copies byte for byte; on a terminal, text as is with
/// binary bytes escaped, and a final newline when the data has none.
fn write_data(out: &mut impl Write, data: &[u8], raw: bool) -> io::Result<()> {
    if raw {
        return out.write_all(data);
    }
    let text = escape_data(data);
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// ZooKeeper's digest id of `user:password`: `user:base64(sha1(user:password))`.
pub fn digest_id(credentials: &str) -> String {
    let user = credentials.split_once(':').map_or(credentials, |(u, _)| u);
    let hash = Sha1::digest(credentials.as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// True for a digest ACL id `USER:HASH` whose HASH is a base64 SHA-1 (28 characters).
fn is_digest_id(id: &str) -> bool {
    let Some((_, hash)) = id.rsplit_once(':') else { return false };
    hash.len() == 28
        && hash.ends_with('=')
        && base64::engine::general_purpose::STANDARD.decode(hash).is_ok_and(|b| b.len() == 20)
}

impl Run for DigestArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let id = digest_id(&self.credentials);
        if g.json() {
            print_json(&json!({ "scheme": "digest", "id": id }))?;
        } else {
            writeln!(io::stdout().lock(), "digest:{id}")?;
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_ids_match_zookeeper() {
        // DigestAuthenticationProvider.generateDigest("super:test")
        assert_eq!(digest_id("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
        assert!(is_digest_id(&digest_id("bob:pw")));
        assert!(!is_digest_id("bob:pw"));
        assert!(!is_digest_id("bob"));
    }

    #[test]
    fn data_is_raw_through_a_pipe() {
        let mut v = Vec::new();
        write_data(&mut v, br#"C:\tmp"#, true).unwrap();
        assert_eq!(v, br#"C:\tmp"#);
        let mut v = Vec::new();
        write_data(&mut v, b"\xffx", false).unwrap();
        assert_eq!(v, b"\\xffx\n");
    }
}
