//! `zkutil diff A B`: compares two subtrees (live paths, on one or two clusters, or dumps)
//! node by node: added, removed, changed data or ACL. Exits 1 when they differ, like diff(1).
//! Ephemeral nodes are left out on both sides, as dump leaves them out.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use super::Run;
use super::dump::{DumpReader, Filter, Record, acl_string, walk_records};
use super::load::{connect_spec, split_spec};
use crate::cli::{DiffArgs, Global};
use crate::util::escape_data;
use crate::zk;

/// A side of the comparison: relative path -> record, and the root to print paths under.
fn side(g: &Global, spec: &str) -> Result<(String, BTreeMap<String, Record>)> {
    let mut nodes = BTreeMap::new();
    if Path::new(spec).is_file() || spec == "-" {
        let reader = DumpReader::open(Path::new(spec))?;
        let root = reader.root.clone();
        for r in reader {
            let r = r?;
            if !r.ephemeral {
                nodes.insert(r.rel.clone(), r);
            }
        }
        return Ok((root, nodes));
    }
    let (hosts, path) = split_spec(spec);
    zk::validate_path(path, false)?;
    let zk = connect_spec(g, hosts)?;
    walk_records(&zk, path, &Filter::default(), |r| {
        nodes.insert(r.rel.clone(), r);
        Ok(())
    })?;
    Ok((path.to_string(), nodes))
}

fn show(root: &str, rel: &str) -> String {
    Record { rel: rel.to_string(), data: Vec::new(), acl: Vec::new(), ephemeral: false, stat: Default::default() }
        .path_under(root)
}

fn short(data: &[u8]) -> String {
    let mut s = escape_data(&data[..data.len().min(60)]);
    if data.len() > 60 {
        s.push_str(&format!("... ({} bytes)", data.len()));
    }
    s
}

impl Run for DiffArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let (ra, a) = side(g, &self.a)?;
        let (rb, b) = side(g, &self.b)?;
        let mut out = io::stdout().lock();
        let mut differ = false;
        for (rel, x) in &a {
            match b.get(rel) {
                None => {
                    differ = true;
                    writeln!(out, "- {}", show(&ra, rel))?;
                }
                Some(y) => {
                    if x.data != y.data {
                        differ = true;
                        writeln!(out, "~ {} data: {} -> {}", show(&ra, rel), short(&x.data), short(&y.data))?;
                    }
                    if !self.no_acl && x.acl != y.acl {
                        differ = true;
                        let acl = |r: &Record| r.acl.iter().map(acl_string).collect::<Vec<_>>().join(",");
                        writeln!(out, "~ {} acl: {} -> {}", show(&ra, rel), acl(x), acl(y))?;
                    }
                }
            }
        }
        for rel in b.keys().filter(|k| !a.contains_key(*k)) {
            differ = true;
            writeln!(out, "+ {}", show(&rb, rel))?;
        }
        Ok(if differ { ExitCode::FAILURE } else { ExitCode::SUCCESS })
    }
}
