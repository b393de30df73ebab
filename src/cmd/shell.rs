//! The znode commands, with zkCli.sh's names: ls, get, set, create, delete, deleteall,
//! stat, watch, tree, getacl, setacl.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use crossbeam_channel::select;

use super::Run;
use crate::cli::{CreateArgs, DeleteArgs, GetArgs, Global, LsArgs, SetAclArgs, SetArgs, TreeArgs, WatchArgs};
use crate::util::{escape_data, format_millis, shutdown};
use crate::zk::{self, Acl, Code, CreateMode, Halt, Lost, SessionWatch, Stat, ZooKeeper};

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
            // depth-first, full paths, parents before children (zkCli's ls -R)
            let mut stack = vec![self.path.clone()];
            while let Some(p) = stack.pop() {
                writeln!(out, "{p}")?;
                let kids = match sorted_children(&zk, &p) {
                    Ok(k) => k,
                    Err(e) if e.code() == Some(Code::NoNode) && p != self.path => continue, // deleted meanwhile
                    Err(e) => return Err(e.into()),
                };
                stack.extend(kids.iter().rev().map(|k| zk::join(&p, k)));
            }
        } else {
            let (mut kids, stat) = zk.children2(&self.path)?;
            kids.sort();
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
        let mut out = io::stdout().lock();
        if self.raw {
            out.write_all(&data)?;
        } else {
            let text = escape_data(&data);
            out.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                writeln!(out)?;
            }
        }
        if self.stat {
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
        if self.stat {
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
        writeln!(io::stdout().lock(), "{created}")?;
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
        Some(s) => write_stat(&mut io::stdout().lock(), &s)?,
        None => return Err(zk::Error::Zk { code: Code::NoNode, path: Some(path.into()) }.into()),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn get_acl(g: &Global, path: &str) -> Result<ExitCode> {
    let zk = g.connect()?;
    let (acl, _) = zk.get_acl(path)?;
    let mut out = io::stdout().lock();
    for a in acl {
        writeln!(out, "{}:{}:{}", a.scheme, a.id, a.perms_string())?;
    }
    Ok(ExitCode::SUCCESS)
}

impl Run for SetAclArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let acl: Vec<Acl> =
            self.acl.split(',').map(Acl::parse).collect::<Result<_, _>>().map_err(|e| anyhow::anyhow!(e))?;
        if !self.force && !acl.iter().any(|a| a.perms & zk::perms::ADMIN != 0) {
            // Without ADMIN nobody (short of a ZooKeeper superuser) can ever change this
            // ACL again, not even to undo it.
            anyhow::bail!(
                "{}: no entry of this ACL grants ADMIN ('a'), so nobody could change it again; \
                 add 'a' for someone (e.g. world:anyone:r,digest:admin:HASH:cdrwa) or pass --force",
                self.path
            );
        }
        let zk = g.connect()?;
        zk.set_acl(&self.path, &acl, self.expected_version)?;
        Ok(ExitCode::SUCCESS)
    }
}

impl WatchArgs {
    /// Reads the node (or its children) and arms the next watch in the same call. A missing
    /// node is watched for creation.
    fn arm(&self, zk: &ZooKeeper) -> zk::Result<(String, crossbeam_channel::Receiver<zk::WatchEvent>)> {
        loop {
            let read = if self.children {
                zk.children_w(&self.path).map(|(mut kids, _, rx)| {
                    kids.sort();
                    (format!("[{}]", kids.join(", ")), rx)
                })
            } else {
                zk.get_w(&self.path).map(|(data, _, rx)| (escape_data(&data), rx))
            };
            match read {
                Ok(r) => return Ok(r),
                Err(e) if e.code() == Some(Code::NoNode) => {
                    let (stat, rx) = zk.exists_w(&self.path)?;
                    if stat.is_none() {
                        return Ok(("(no node)".to_string(), rx));
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
        let stop = shutdown();
        let what = format!("watch {}", self.path);
        let mut zk = g.connect()?;
        let mut out = io::stdout().lock();
        let mut seen = 0u64;
        let mut event: Option<zk::WatchEvent> = None; // printed with the read that follows it
        loop {
            let health = SessionWatch::watcher(&zk);
            loop {
                let (line, changed) = match health.retry(&stop, None, || self.arm(&zk)) {
                    Ok(v) => v,
                    Err(Halt::Stopped) => return Ok(super::exit::after_stop()),
                    Err(Halt::Zk(e)) if e.is_session_lost() => break,
                    Err(e) => return Err(anyhow::anyhow!(e)),
                };
                match event.take() {
                    Some(ev) => writeln!(out, "{} {}: {line}", ev.kind, ev.path)?,
                    None => writeln!(out, "{}: {line}", self.path)?,
                }
                out.flush()?;
                if self.count.is_some_and(|n| seen >= n) {
                    return Ok(ExitCode::SUCCESS);
                }
                select! {
                    recv(changed) -> ev => match ev {
                        Ok(ev) => {
                            seen += 1;
                            event = Some(ev);
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
        writeln!(out, "{}{}", self.path, node_note(&stat))?;
        tree_level(&zk, &mut out, &self.path, "", 1, self.depth)?;
        Ok(ExitCode::SUCCESS)
    }
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

fn tree_level(
    zk: &ZooKeeper,
    out: &mut impl Write,
    path: &str,
    prefix: &str,
    depth: usize,
    max: Option<usize>,
) -> Result<()> {
    if max.is_some_and(|m| depth > m) {
        return Ok(());
    }
    let kids = match sorted_children(zk, path) {
        Ok(k) => k,
        Err(e) if e.code() == Some(Code::NoNode) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for (i, k) in kids.iter().enumerate() {
        let last = i + 1 == kids.len();
        let child = zk::join(path, k);
        let Some(stat) = zk.exists(&child)? else { continue };
        writeln!(out, "{prefix}{}{k}{}", if last { "└── " } else { "├── " }, node_note(&stat))?;
        if stat.num_children > 0 {
            let deeper = format!("{prefix}{}", if last { "    " } else { "│   " });
            tree_level(zk, out, &child, &deeper, depth + 1, max)?;
        }
    }
    Ok(())
}
