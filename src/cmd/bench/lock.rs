//! `zkutil bench lock`: sessions contending for one lock with no work inside; the handoff
//! rate next to the raw sequential create+delete pair rate measured in the same run.

use std::process::ExitCode;
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use crossbeam_channel::never;

use super::{median_ms, rate, raw};
use crate::cli::{BenchLockArgs, Global};
use crate::recipes::lock::{Held, Lock, Mode};

/// Slices the run is cut into: raw pairs and lock rounds alternate, so a change of load on
/// a busy machine weighs on both figures alike.
const SLICES: usize = 5;

pub fn run(g: &Global, a: &BenchLockArgs) -> Result<ExitCode> {
    if a.clients == 0 || a.rounds == 0 || a.raw_ops == 0 {
        anyhow::bail!("--clients, --rounds and --raw-ops must be at least 1");
    }
    let zk = g.connect()?;
    let dir = format!("/zkutil-bench-lock-{}", std::process::id());
    let sessions: Vec<_> = (0..a.clients).map(|_| g.connect_owned()).collect::<Result<_>>()?;
    let holding = AtomicBool::new(false);
    let overlaps = AtomicUsize::new(0);
    let (mut raw_time, mut raw_pairs, mut lock_time) = (Duration::ZERO, 0, Duration::ZERO);
    let mut lat = Vec::with_capacity(a.clients * a.rounds);
    for slice in 0..SLICES {
        let pairs = a.raw_ops / SLICES + usize::from(slice < a.raw_ops % SLICES);
        if pairs > 0 {
            let l = raw::measure(&zk, pairs, 1, 1)?;
            raw_time += Duration::from_secs_f64(pairs as f64 / l.pairs_per_s);
            raw_pairs += pairs;
        }
        let rounds = a.rounds / SLICES + usize::from(slice < a.rounds % SLICES);
        if rounds == 0 {
            continue;
        }
        let start = Barrier::new(a.clients + 1);
        let (took, results) = std::thread::scope(|s| {
            let handles: Vec<_> = sessions
                .iter()
                .map(|client| {
                    let (start, holding, overlaps, dir) = (&start, &holding, &overlaps, &dir);
                    s.spawn(move || -> Result<Vec<Duration>> {
                        let lock = Lock::new(client, dir, Mode::Exclusive);
                        start.wait();
                        let lock = lock?;
                        let cancel = never();
                        let mut lat = Vec::with_capacity(rounds);
                        let mut previous = None;
                        for _ in 0..rounds {
                            let t = Instant::now();
                            // After the first turn, release and queue again in one multi.
                            let held = match previous.take() {
                                None => lock.acquire(None, &cancel, |_| {}),
                                Some(h) => Held::requeue(h, None, &cancel, |_| {}),
                            }
                            .map_err(|e| anyhow!(e))?;
                            lat.push(t.elapsed());
                            if holding.swap(true, Ordering::SeqCst) {
                                overlaps.fetch_add(1, Ordering::SeqCst);
                            }
                            holding.store(false, Ordering::SeqCst);
                            previous = Some(held);
                        }
                        if let Some(h) = previous {
                            h.release().map_err(|e| anyhow!(e))?;
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
        lock_time += took;
        for r in results {
            lat.extend(r.context("contending client")?);
        }
    }
    let _ = zk.delete_tree(&dir);
    let pairs_per_s = rate(raw_pairs, raw_time);
    let t0 = lock_time;
    let total = a.clients * a.rounds;
    let acq = rate(total, t0);
    println!("server:                   {}", g.hosts);
    println!(
        "sequential create+delete: {:>9.0} pairs/s   ({raw_pairs} pairs, one client; in {SLICES} slices between the lock's)",
        pairs_per_s
    );
    println!(
        "lock handoffs:            {:>9.0} acquisitions/s ({:.2}x the pair rate; {} clients x {} rounds)",
        acq,
        acq / pairs_per_s,
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
