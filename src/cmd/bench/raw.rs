//! `zkutil bench raw`: the limits every other bench is held against.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use super::rate;
use crate::cli::{BenchRawArgs, Global};
use crate::zk::{CreateMode, ZooKeeper};

/// What one client alone reaches against the server.
#[derive(Debug, Clone, Copy)]
pub struct RawLimits {
    /// Sequential create+delete pairs per second (two round trips each).
    pub pairs_per_s: f64,
    /// Pipelined creates per second.
    pub creates_per_s: f64,
}

/// Measures both limits under a scratch node, and removes it.
pub fn measure(zk: &ZooKeeper, pairs: usize, pipelined: usize, window: usize) -> Result<RawLimits> {
    let root = format!("/zkutil-bench-raw-{}", std::process::id());
    zk.create(&root, b"", CreateMode::Persistent).with_context(|| format!("creating {root}"))?;
    let result = (|| -> Result<RawLimits> {
        let node = format!("{root}/n");
        let t = Instant::now();
        for _ in 0..pairs {
            zk.create(&node, b"x", CreateMode::Persistent)?;
            zk.delete(&node, None)?;
        }
        let pairs_per_s = rate(pairs, t.elapsed());

        let paths: Vec<String> = (0..pipelined).map(|i| format!("{root}/p{i}")).collect();
        let t = Instant::now();
        let results = zk.create_many(paths.iter().map(|p| (p.as_str(), &b"x"[..], CreateMode::Persistent)), window);
        let creates_per_s = rate(pipelined, t.elapsed());
        if let Some(Err(e)) = results.into_iter().find(|r| r.is_err()) {
            return Err(e).context("pipelined create");
        }
        Ok(RawLimits { pairs_per_s, creates_per_s })
    })();
    zk.delete_tree(&root).with_context(|| format!("cleaning up {root}"))?;
    result
}

pub fn run(g: &Global, a: &BenchRawArgs) -> Result<ExitCode> {
    let zk = g.connect()?;
    let l = measure(&zk, a.ops, a.pipelined, a.window)?;
    println!("server:                 {}", g.hosts);
    println!("sequential create+delete: {:>9.0} pairs/s   ({} pairs, one round trip at a time)", l.pairs_per_s, a.ops);
    println!(
        "pipelined creates:        {:>9.0} creates/s ({} nodes, {} in flight)",
        l.creates_per_s, a.pipelined, a.window
    );
    Ok(ExitCode::SUCCESS)
}
