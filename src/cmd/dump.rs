//! `zkutil dump`: a subtree as NDJSON (one node per line), and the record format that
//! `load`, `cp` and `diff` share.
//!
//! Format: a header line `{"zkutil_dump":1,"root":...}`, one line per node
//! `{"path","data"|"data_b64","acl":["scheme:id:perms"],"ephemeral","stat":{...}}`, parents
//! before children, and a trailer `{"end":{"nodes":N,"max_mzxid":...,"note":...}}`.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use super::Run;
use crate::cli::{DumpArgs, Global};
use crate::zk::traverse::{Node, Walk};
use crate::zk::{self, Acl, Stat, ZooKeeper};

/// What a dump says about one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Path relative to the dumped root: "" for the root itself, else "/a/b".
    pub rel: String,
    /// The data.
    pub data: Vec<u8>,
    /// The ACL.
    pub acl: Vec<Acl>,
    /// Was ephemeral when dumped (restored as persistent).
    pub ephemeral: bool,
    /// The Stat when dumped.
    pub stat: Stat,
}

impl Record {
    /// The record of a walked node under `root`.
    pub fn of(node: Node, root: &str) -> Record {
        let rel = if node.path == root {
            String::new()
        } else if root == "/" {
            node.path.clone()
        } else {
            node.path[root.len()..].to_string()
        };
        Record {
            rel,
            data: node.data.unwrap_or_default(),
            acl: node.acl.unwrap_or_default(),
            ephemeral: node.stat.ephemeral_owner != 0,
            stat: node.stat,
        }
    }

    /// The full path under `root`.
    pub fn path_under(&self, root: &str) -> String {
        if self.rel.is_empty() {
            root.to_string()
        } else if root == "/" {
            self.rel.clone()
        } else {
            format!("{root}{}", self.rel)
        }
    }

    /// One NDJSON line (without the newline).
    pub fn to_json(&self, root: &str) -> Value {
        let mut v = json!({ "path": self.path_under(root) });
        match std::str::from_utf8(&self.data) {
            Ok(s) => v["data"] = json!(s),
            Err(_) => v["data_b64"] = json!(B64.encode(&self.data)),
        }
        v["acl"] = json!(self.acl.iter().map(acl_string).collect::<Vec<_>>());
        v["ephemeral"] = json!(self.ephemeral);
        v["stat"] = stat_json(&self.stat);
        v
    }

    /// Parses a node line of a dump whose header named `root`.
    pub fn from_json(v: &Value, root: &str) -> Result<Record> {
        let path = v["path"].as_str().context("a node without \"path\"")?;
        let rel = if path == root {
            String::new()
        } else if root == "/" {
            path.to_string()
        } else {
            path.strip_prefix(root)
                .filter(|r| r.starts_with('/'))
                .with_context(|| format!("{path} is not under the dump's root {root}"))?
                .to_string()
        };
        let data = match (&v["data"], &v["data_b64"]) {
            (Value::String(s), _) => s.as_bytes().to_vec(),
            (_, Value::String(b)) => B64.decode(b).with_context(|| format!("{path}: bad base64 data"))?,
            _ => Vec::new(),
        };
        let mut acl = Vec::new();
        for a in v["acl"].as_array().map(Vec::as_slice).unwrap_or_default() {
            let s = a.as_str().with_context(|| format!("{path}: an ACL entry is not a string"))?;
            acl.push(Acl::parse(s).map_err(|e| anyhow::anyhow!("{path}: {e}"))?);
        }
        let s = &v["stat"];
        let i = |k: &str| s[k].as_i64().unwrap_or(0);
        let stat = Stat {
            czxid: i("czxid"),
            mzxid: i("mzxid"),
            ctime: i("ctime"),
            mtime: i("mtime"),
            version: i("version") as i32,
            cversion: i("cversion") as i32,
            aversion: i("aversion") as i32,
            ephemeral_owner: i("ephemeral_owner"),
            data_length: i("data_length") as i32,
            num_children: i("num_children") as i32,
            pzxid: i("pzxid"),
        };
        Ok(Record { rel, data, acl, ephemeral: v["ephemeral"].as_bool().unwrap_or(false), stat })
    }
}

/// zkCli's `scheme:id:perms`.
pub fn acl_string(a: &Acl) -> String {
    format!("{}:{}:{}", a.scheme, a.id, a.perms_string())
}

/// A Stat as JSON, every field by its zkutil name.
pub fn stat_json(s: &Stat) -> Value {
    json!({
        "czxid": s.czxid, "mzxid": s.mzxid, "pzxid": s.pzxid, "ctime": s.ctime, "mtime": s.mtime,
        "version": s.version, "cversion": s.cversion, "aversion": s.aversion,
        "ephemeral_owner": s.ephemeral_owner, "data_length": s.data_length, "num_children": s.num_children,
    })
}

/// Which nodes of a walk go into a dump (and a copy): globs on the full path, `*` within one
/// name, `**` across names.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<glob::Pattern>,
    exclude: Vec<glob::Pattern>,
    /// Keep ephemeral nodes (as persistent).
    pub ephemeral: bool,
}

const GLOB: glob::MatchOptions =
    glob::MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

impl Filter {
    /// A filter of these globs (parsed by clap: a bad one is a usage error).
    pub fn new(include: &[glob::Pattern], exclude: &[glob::Pattern], ephemeral: bool) -> Filter {
        Filter { include: include.to_vec(), exclude: exclude.to_vec(), ephemeral }
    }

    /// Excluded: skip the node and its subtree.
    pub fn excluded(&self, path: &str) -> bool {
        self.exclude.iter().any(|p| p.matches_with(path, GLOB))
    }

    /// Whether the walked node goes into the output (the walk goes on below it either way).
    pub fn keeps(&self, n: &Node) -> bool {
        (self.ephemeral || n.stat.ephemeral_owner == 0)
            && (self.include.is_empty() || self.include.iter().any(|p| p.matches_with(&n.path, GLOB)))
    }
}

/// Walks `root` on `zk` with data and ACLs, handing every kept node's record to `each`.
/// Returns the number of records and the highest mzxid seen.
pub fn walk_records(
    zk: &ZooKeeper,
    root: &str,
    filter: &Filter,
    mut each: impl FnMut(Record) -> Result<()>,
) -> Result<(u64, i64)> {
    let mut failed: Option<anyhow::Error> = None;
    let mut kept = 0u64;
    let walk = Walk { data: true, acl: true, ..Default::default() };
    let r = walk.run(zk, root, |n| {
        if n.depth > 0 && filter.excluded(&n.path) {
            return Ok(false);
        }
        if !filter.keeps(&n) {
            return Ok(true);
        }
        kept += 1;
        match each(Record::of(n, root)) {
            Ok(()) => Ok(true),
            Err(e) => {
                failed = Some(e);
                Err(zk::Error::Zk { code: zk::Code::Closing, path: None })
            }
        }
    });
    match (r, failed) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(anyhow::Error::from(e).context(format!("dumping {root}"))),
        (Ok(stats), None) => Ok((kept, stats.max_mzxid)),
    }
}

/// The note every dump carries.
pub const NOT_A_SNAPSHOT: &str =
    "a dump of a live tree is not a snapshot: nodes are read one by one, changes after max_mzxid may be partly in it";

/// Opens FILE for writing (`-`: stdout), gzip when the name ends in `.gz`.
pub fn create_output(file: Option<&Path>) -> Result<Box<dyn Write>> {
    Ok(match file {
        None => Box::new(BufWriter::new(io::stdout().lock())),
        Some(p) if p == Path::new("-") => Box::new(BufWriter::new(io::stdout().lock())),
        Some(p) => {
            let f = File::create(p).with_context(|| format!("creating {}", p.display()))?;
            if p.extension().is_some_and(|e| e == "gz") {
                Box::new(flate2::write::GzEncoder::new(BufWriter::new(f), flate2::Compression::fast()))
            } else {
                Box::new(BufWriter::new(f))
            }
        }
    })
}

/// Opens a dump for reading (`-`: stdin); gzip is recognised by its magic bytes.
pub fn open_input(file: &Path) -> Result<Box<dyn BufRead>> {
    let raw: Box<dyn Read> = if file == Path::new("-") {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(file).with_context(|| format!("opening {}", file.display()))?)
    };
    let mut r = BufReader::new(raw);
    let gz = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if gz { Box::new(BufReader::new(flate2::read::GzDecoder::new(r))) } else { Box::new(r) })
}

/// Reads a dump: its root and its records, one at a time.
pub struct DumpReader {
    lines: io::Lines<Box<dyn BufRead>>,
    name: String,
    line: usize,
    /// The dumped root.
    pub root: String,
    /// The trailer's node count, once read.
    pub ended: bool,
}

impl DumpReader {
    /// Opens `file` and reads its header.
    pub fn open(file: &Path) -> Result<DumpReader> {
        let mut lines = open_input(file)?.lines();
        let name = file.display().to_string();
        let first = lines.next().transpose().with_context(|| format!("reading {name}"))?.unwrap_or_default();
        let head: Value =
            serde_json::from_str(&first).with_context(|| format!("{name}: line 1 is not a zkutil dump header"))?;
        if head["zkutil_dump"].as_i64() != Some(1) {
            bail!("{name}: not a zkutil dump (no {{\"zkutil_dump\":1}} header)");
        }
        let root = head["root"].as_str().with_context(|| format!("{name}: the header has no root"))?.to_string();
        zk::validate_path(&root, false)?;
        Ok(DumpReader { lines, name, line: 1, root, ended: false })
    }
}

impl Iterator for DumpReader {
    type Item = Result<Record>;

    fn next(&mut self) -> Option<Result<Record>> {
        loop {
            let line = match self.lines.next()? {
                Ok(l) => l,
                Err(e) => return Some(Err(anyhow::Error::from(e).context(format!("reading {}", self.name)))),
            };
            self.line += 1;
            if line.trim().is_empty() {
                continue;
            }
            let v: Value = match serde_json::from_str(&line) {
                Ok(v) => v,
                Err(e) => return Some(Err(anyhow::anyhow!("{} line {}: {e}", self.name, self.line))),
            };
            if v.get("end").is_some() {
                self.ended = true;
                continue;
            }
            return Some(
                Record::from_json(&v, &self.root).with_context(|| format!("{} line {}", self.name, self.line)),
            );
        }
    }
}

impl Run for DumpArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        zk::validate_path(&self.path, false)?;
        let filter = Filter::new(&self.include, &self.exclude, self.ephemeral);
        let zk = g.connect()?;
        let mut out = create_output(self.out.as_deref())?;
        writeln!(out, "{}", json!({ "zkutil_dump": 1, "root": self.path, "hosts": g.hosts }))?;
        let (n, max_mzxid) = walk_records(&zk, &self.path, &filter, |r| {
            serde_json::to_writer(&mut out, &r.to_json(&self.path))?;
            out.write_all(b"\n")?;
            Ok(())
        })?;
        writeln!(out, "{}", json!({ "end": { "nodes": n, "max_mzxid": max_mzxid, "note": NOT_A_SNAPSHOT } }))?;
        out.flush()?;
        drop(out); // finishes the gzip stream
        crate::status!("zkutil: dumped {n} nodes of {} (max mzxid {max_mzxid:#x}); {NOT_A_SNAPSHOT}", self.path);
        Ok(ExitCode::SUCCESS)
    }
}
