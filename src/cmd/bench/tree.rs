//! `zkutil bench tree`: the traversal engine against the raw pipelined limits of the same run.
//! A tree of N nodes (every node has up to --fanout children) is built, read raw (one
//! pipelined get per known path), walked (listing; data and ACL as dump reads them), deleted
//! raw (pipelined deletes of the known paths, children first), built again and deleted by the
//! engine, which has to discover the tree as it goes.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use super::rate;
use crate::cli::{BenchTreeArgs, Global};
use crate::zk::traverse::{self, Walk};
use crate::zk::{CreateMode, ZooKeeper};

/// Paths of the bench tree under `root`, parents before children: node i's parent is node
/// (i - 1) / fanout (node 0 is the root itself).
fn tree_paths(root: &str, n: usize, fanout: usize) -> Vec<String> {
    let mut paths: Vec<String> = Vec::with_capacity(n);
    paths.push(root.to_string());
    for i in 1..n {
        let parent = (i - 1) / fanout;
        let p = format!("{}/n{i}", paths[parent]);
        paths.push(p);
    }
    paths
}

fn build(zk: &ZooKeeper, paths: &[String], window: usize) -> Result<f64> {
    let data = [b'x'; 32];
    let t = Instant::now();
    let results = zk.create_many(paths.iter().map(|p| (p.as_str(), &data[..], CreateMode::Persistent)), window);
    let r = rate(paths.len(), t.elapsed());
    if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
        return Err(e).context("building the bench tree");
    }
    Ok(r)
}

/// Pipelined requests over known paths, `window` in flight; every answer must be Ok.
fn raw(zk: &ZooKeeper, paths: &[&String], window: usize, delete: bool) -> Result<f64> {
    let mut reqs = zk.requests();
    let t = Instant::now();
    let mut failed = None;
    for (i, p) in paths.iter().enumerate() {
        while reqs.in_flight() >= window {
            if let Some((tag, Err(code))) = reqs.recv() {
                failed.get_or_insert((tag, code));
            }
        }
        if delete { reqs.delete(i as u64, p, None)? } else { reqs.get(i as u64, p)? }
    }
    while let Some((tag, r)) = reqs.recv() {
        if let Err(code) = r {
            failed.get_or_insert((tag, code));
        }
    }
    let r = rate(paths.len(), t.elapsed());
    if let Some((tag, code)) = failed {
        bail!("{}: {code}", paths[tag as usize]);
    }
    Ok(r)
}

pub fn run(g: &Global, a: &BenchTreeArgs) -> Result<ExitCode> {
    let zk = g.connect()?;
    let root = format!("/zkutil-bench-tree-{}", std::process::id());
    let (n, fanout, window) = (a.nodes as usize, a.fanout as usize, a.window as usize);
    let paths = tree_paths(&root, n, fanout);
    let result = (|| -> Result<()> {
        let create = build(&zk, &paths, window)?;
        let refs: Vec<&String> = paths.iter().collect();
        let read = raw(&zk, &refs, window, false)?;

        let t = Instant::now();
        let listed = Walk { window, ..Default::default() }.run(&zk, &root, |_| Ok(true))?;
        let list = rate(listed.visited as usize, t.elapsed());
        if listed.visited as usize != n {
            bail!("the walk saw {} nodes of {n}", listed.visited);
        }
        let t = Instant::now();
        let dumped = Walk { data: true, acl: true, window, ..Default::default() }.run(&zk, &root, |_| Ok(true))?;
        let dump = rate(dumped.visited as usize, t.elapsed());

        let rev: Vec<&String> = paths.iter().rev().collect();
        let delete_raw = raw(&zk, &rev, window, true)?;
        build(&zk, &paths, window)?;
        let t = Instant::now();
        let d = traverse::delete_tree(&zk, &root, window)?;
        let delete = rate(d.deleted as usize, t.elapsed());
        if d.deleted as usize != n {
            bail!("the engine deleted {} nodes of {n}", d.deleted);
        }

        let pct = |x: f64, of: f64| 100.0 * x / of.max(1e-9);
        println!("server:          {}", g.hosts);
        println!("tree:            {n} nodes, fan-out {}, {} requests in flight", fanout, window);
        println!("raw creates:     {create:>9.0} /s   (pipelined, known paths)");
        println!("raw gets:        {read:>9.0} /s   (pipelined, known paths)");
        println!("raw deletes:     {delete_raw:>9.0} /s   (pipelined, known paths, children first)");
        println!("walk (list):     {list:>9.0} nodes/s  ({:.0}% of raw gets)", pct(list, read));
        println!("walk (dump):     {dump:>9.0} nodes/s  ({:.0}% of raw gets; data + ACL per node)", pct(dump, read));
        println!("delete_tree:     {delete:>9.0} nodes/s  ({:.0}% of raw deletes)", pct(delete, delete_raw));
        Ok(())
    })();
    if let Err(e) = zk.delete_tree(&root) {
        log::warn!("cleaning up {root}: {e}");
    }
    result?;
    Ok(ExitCode::SUCCESS)
}
