//! `zkutil bench lock`: sessions contending for one lock with no work inside; the handoff
//! rate next to the raw sequential create+delete pair rate measured in the same run.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use crossbeam_channel::never;

use super::{median_ms, rate, raw};
use crate::cli::{BenchLockArgs, Global};
use crate::cmd::shell::delete_tree;
use crate::recipes::lock::{Lock, Mode};

pub fn run(g: &Global, a: &BenchLockArgs) -> Result<ExitCode> {
    if a.clients == 0 || a.rounds == 0 {
        anyhow::bail!("--clients and --rounds must be at least 1");
    }
    let zk = g.connect()?;
    let limits = raw::measure(&zk, a.raw_ops, 2000, 1000)?;
    let dir = format!("/zkutil-bench-lock-{}", std::process::id());

    let sessions: Vec<_> = (0..a.clients).map(|_| g.connect()).collect::<Result<_>>()?;
    let start = Arc::new(Barrier::new(a.clients + 1));
    let holding = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicUsize::new(0));
    let (t0, results) = std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .iter()
            .map(|client| {
                let (start, holding, overlaps, dir) = (start.clone(), holding.clone(), overlaps.clone(), dir.clone());
                s.spawn(move || -> Result<Vec<Duration>> {
                    let lock = Lock::new(client, &dir, Mode::Exclusive)?;
                    let cancel = never();
                    let mut lat = Vec::with_capacity(a.rounds);
                    start.wait();
                    for _ in 0..a.rounds {
                        let t = Instant::now();
                        let held = lock.acquire(None, &cancel, |_| {}).map_err(|e| anyhow!(e))?;
                        lat.push(t.elapsed());
                        if holding.swap(true, Ordering::SeqCst) {
                            overlaps.fetch_add(1, Ordering::SeqCst);
                        }
                        holding.store(false, Ordering::SeqCst);
                        held.release().map_err(|e| anyhow!(e))?;
                    }
                    Ok(lat)
                })
            })
            .collect();
        start.wait();
        let t0 = Instant::now();
        let results: Vec<_> =
            handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("panicked")))).collect();
        (t0.elapsed(), results)
    });
    let mut lat = Vec::new();
    for r in results {
        lat.extend(r.context("contending client")?);
    }
    let _ = delete_tree(&zk, &dir);
    let total = a.clients * a.rounds;
    let acq = rate(total, t0);
    println!("server:                   {}", g.hosts);
    println!(
        "sequential create+delete: {:>9.0} pairs/s   ({} pairs, one client, same run)",
        limits.pairs_per_s, a.raw_ops
    );
    println!(
        "lock handoffs:            {:>9.0} acquisitions/s ({:.2}x the pair rate; {} clients x {} rounds)",
        acq,
        acq / limits.pairs_per_s,
        a.clients,
        a.rounds
    );
    println!("median acquire latency:   {:>9.2} ms", median_ms(&mut lat));
    let bad = overlaps.load(Ordering::SeqCst);
    println!("overlapping holds:        {bad:>9}");
    if bad > 0 {
        anyhow::bail!("{bad} acquisitions overlapped another holder");
    }
    Ok(ExitCode::SUCCESS)
}
