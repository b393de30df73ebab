//! `zkutil bench ...`: each bench prints its figure next to the raw limit measured in the
//! same run, so the ratio means something on a noisy machine.

use std::process::ExitCode;

use anyhow::Result;

use super::Run;
use crate::cli::{BenchCmd, Global};

pub mod crawl;
pub mod delay;
pub mod election;
pub mod kv;
pub mod lock;
pub mod queue;
pub mod raw;
pub mod tree;

impl Run for BenchCmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            BenchCmd::Raw(a) => raw::run(g, a),
            BenchCmd::Queue(a) => queue::run(g, a),
            BenchCmd::Lock(a) => lock::run(g, a),
            BenchCmd::Kv(a) => kv::run(g, a),
            BenchCmd::Election(a) => election::run(g, a),
            BenchCmd::Crawl(a) => crawl::run(g, a),
            BenchCmd::Tree(a) => tree::run(g, a),
        }
    }
}

/// Operations per second.
pub fn rate(n: usize, d: std::time::Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// The median of some durations, in ms.
pub fn median_ms(v: &mut [std::time::Duration]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}
