//! The znode commands, with zkCli.sh's names: ls, get, set, create, delete, deleteall,
//! stat, watch, tree, getacl, setacl.

use std::io::{self, Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use crossbeam_channel::select;

use super::Run;
use crate::cli::{CreateArgs, DeleteArgs, GetArgs, Global, LsArgs, SetAclArgs, SetArgs, TreeArgs, WatchArgs};
use crate::util::{escape_data, format_millis, shutdown};
use crate::zk::{self, Acl, Code, CreateMode, Stat, ZooKeeper};

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

impl Run for LsArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let zk = g.connect()?;
        let mut out = io::stdout().lock();
        if self.recursive {
            // depth-first, full paths, parents before children (zkCli's ls -R), pipelined
            let mut io_err = None;
            zk::traverse::Walk::default()
                .run(&zk, &self.path, |n| match writeln!(out, "{}", n.path) {
                    Ok(()) => Ok(true),
                    Err(e) => {
                        io_err = Some(e);
                        Err(zk::Error::Zk { code: Code::Closing, path: None })
                    }
                })
                .map_err(|e| io_err.take().map(anyhow::Error::from).unwrap_or_else(|| e.into()))?;
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
    fn arm(&self, zk: &ZooKeeper) -> Result<(String, crossbeam_channel::Receiver<zk::WatchEvent>)> {
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
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Run for WatchArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        if self.recursive {
            return super::watch_tree::run(self, g);
        }
        let stop = shutdown();
        let zk = g.connect()?;
        let lost = zk.session_lost();
        let mut out = io::stdout().lock();
        let (line, mut changed) = self.arm(&zk)?;
        writeln!(out, "{}: {line}", self.path)?;
        out.flush()?;
        let mut seen = 0u64;
        while self.count.is_none_or(|n| seen < n) {
            select! {
                recv(changed) -> ev => {
                    let ev = ev.map_err(|_| anyhow::anyhow!("{}: watch lost: the session expired", self.path))?;
                    seen += 1;
                    let (line, rx) = self.arm(&zk)?;
                    changed = rx;
                    writeln!(out, "{} {}: {line}", ev.kind, ev.path)?;
                    out.flush()?;
                }
                // a reconnect keeps the armed watch; only a lost session ends it
                recv(lost) -> _ => anyhow::bail!("{}: watch lost: the ZooKeeper session was lost", self.path),
                recv(stop) -> _ => return Ok(super::exit::after_stop()),
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Run for TreeArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let zk = g.connect()?;
        let mut out = io::stdout().lock();
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
