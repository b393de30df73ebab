//! `zkutil find`, `grep`, `du`, `count`: searches and sizes on the traversal engine.

use std::collections::HashMap;
use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::Run;
use super::dump::stat_json;
use crate::cli::{CountArgs, DuArgs, FindArgs, Global, GrepArgs, OutputFormat};
use crate::util::{escape_data, now_millis};
use crate::zk::traverse::{Node, Walk};
use crate::zk::{self, ZooKeeper};

/// Runs a walk whose visitor may fail with an io or other error (kept, and returned as is,
/// so a closed stdout stays a broken pipe).
fn walk(zk: &ZooKeeper, root: &str, w: Walk, mut visit: impl FnMut(Node) -> Result<bool>) -> Result<()> {
    let mut failed = None;
    let w = Walk { skip_denied: true, ..w };
    let r = w.run(zk, root, |n| match visit(n) {
        Ok(descend) => Ok(descend),
        Err(e) => {
            failed = Some(e);
            Err(zk::Error::Zk { code: zk::Code::Closing, path: None })
        }
    });
    match (r, failed) {
        (_, Some(e)) => Err(e),
        (Err(e), None) => Err(e.into()),
        (Ok(stats), None) => {
            if stats.denied > 0 {
                eprintln!(
                    "zkutil: {root}: {} nodes not readable (their ACL denies this session READ; try --auth), skipped with their subtrees",
                    stats.denied
                );
            }
            Ok(())
        }
    }
}

/// `--owner`: hex (0x...) or decimal session id.
pub fn parse_session(s: &str) -> Result<i64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).map(|v| v as i64),
        None => s.parse::<i64>(),
    };
    r.map_err(|_| format!("{s:?} is not a session id (hex 0x... or decimal)"))
}

impl FindArgs {
    fn matches(&self, n: &Node, now: i64) -> bool {
        let name = n.path.rsplit('/').next().unwrap_or("");
        self.name.as_ref().is_none_or(|g| g.matches(name))
            && (!self.ephemeral || n.stat.ephemeral_owner != 0)
            && self.owner.is_none_or(|o| n.stat.ephemeral_owner == o)
            && self.min_children.is_none_or(|m| n.stat.num_children >= m as i32)
            && self.older_than.is_none_or(|d| n.stat.mtime <= now - d.as_millis() as i64)
            && self.data.as_ref().is_none_or(|re| n.data.as_ref().is_some_and(|d| re.is_match(d)))
    }
}

impl Run for FindArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        zk::validate_path(&self.path, false)?;
        let zk = g.connect()?;
        let now = now_millis();
        let mut out = io::BufWriter::new(io::stdout().lock());
        let w = Walk { data: self.data.is_some(), max_depth: self.max_depth, ..Default::default() };
        walk(&zk, &self.path, w, |n| {
            if self.matches(&n, now) {
                match g.output {
                    OutputFormat::Text => writeln!(out, "{}", n.path)?,
                    OutputFormat::Json => writeln!(out, "{}", json!({ "path": n.path, "stat": stat_json(&n.stat) }))?,
                }
            }
            Ok(true)
        })?;
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}

impl Run for GrepArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        zk::validate_path(&self.path, false)?;
        let zk = g.connect()?;
        let mut out = io::BufWriter::new(io::stdout().lock());
        let mut found = false;
        walk(&zk, &self.path, Walk { data: true, ..Default::default() }, |n| {
            let data = n.data.as_deref().unwrap_or_default();
            if !self.regex.is_match(data) {
                return Ok(true);
            }
            found = true;
            if self.files_with_matches {
                writeln!(out, "{}", n.path)?;
                return Ok(true);
            }
            for line in data.split(|&b| b == b'\n').filter(|l| self.regex.is_match(l)) {
                let text = escape_data(line);
                match g.output {
                    OutputFormat::Text => writeln!(out, "{}:{}", n.path, text)?,
                    OutputFormat::Json => writeln!(out, "{}", json!({ "path": n.path, "line": text }))?,
                }
            }
            Ok(true)
        })?;
        out.flush()?;
        // grep(1): 0 when something matched, 1 when nothing did
        Ok(if found { ExitCode::SUCCESS } else { ExitCode::FAILURE })
    }
}

impl Run for DuArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        zk::validate_path(&self.path, false)?;
        let zk = g.connect()?;
        // Totals of every node down to --depth; each node adds to its ancestors up there.
        let mut totals: HashMap<String, (u64, u64)> = HashMap::new();
        let mut order: Vec<String> = Vec::new();
        walk(&zk, &self.path, Walk::default(), |n| {
            if n.depth <= self.depth {
                order.push(n.path.clone());
            }
            let mut p = n.path.as_str();
            let mut d = n.depth;
            loop {
                if d <= self.depth {
                    let t = totals.entry(p.to_string()).or_default();
                    t.0 += n.stat.data_length.max(0) as u64;
                    t.1 += 1;
                }
                if d == 0 {
                    break;
                }
                p = zk::parent(p).unwrap_or("/");
                d -= 1;
            }
            Ok(true)
        })?;
        // Largest first (ties by path), the root's total last, like `du | sort -rn`.
        let root = order.first().cloned().unwrap_or_default();
        let mut rows: Vec<(String, (u64, u64))> = order.into_iter().skip(1).map(|p| (p.clone(), totals[&p])).collect();
        rows.sort_by(|a, b| b.1.0.cmp(&a.1.0).then_with(|| a.0.cmp(&b.0)));
        rows.push((root.clone(), totals[&root]));
        let mut out = io::stdout().lock();
        match g.output {
            OutputFormat::Text => {
                for (p, (bytes, nodes)) in rows {
                    writeln!(out, "{bytes}\t{nodes}\t{p}")?;
                }
            }
            OutputFormat::Json => {
                let v: Vec<_> =
                    rows.into_iter().map(|(p, (b, n))| json!({ "path": p, "bytes": b, "nodes": n })).collect();
                writeln!(out, "{}", serde_json::Value::Array(v))?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Run for CountArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        zk::validate_path(&self.path, false)?;
        let zk = g.connect()?;
        let mut n = 0u64;
        walk(&zk, &self.path, Walk::default(), |_| {
            n += 1;
            Ok(true)
        })?;
        // the nodes under PATH, PATH itself not counted (zkCli's getAllChildrenNumber)
        writeln!(io::stdout().lock(), "{}", n.saturating_sub(1))?;
        Ok(ExitCode::SUCCESS)
    }
}
