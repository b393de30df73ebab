//! `zkutil bench queue`: produce, consume, and both at once, next to the raw pipelined
//! create rate measured in the same run.

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, Sender};

use super::rate;
use super::raw::measure;
use crate::cli::{BenchQueueArgs, Global};
use crate::recipes::queue::{self, Item, Queue, Sink};
use crate::zk::{CreateMode, ZooKeeper};

/// Counts items; the one that reaches `target` disconnects the stop channel.
struct Count {
    n: Arc<AtomicUsize>,
    target: usize,
    stop: Arc<Mutex<Option<Sender<()>>>>,
}

impl Sink for Count {
    fn item(&mut self, _item: &Item) -> std::io::Result<()> {
        if self.n.fetch_add(1, Ordering::Relaxed) + 1 >= self.target {
            self.stop.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
        Ok(())
    }
}

/// Runs `consumers` consumers, each on its own session, until `target` items were taken
/// (or, without `follow`, until the queue is empty).
fn consume_all(g: &Global, path: &str, consumers: usize, target: usize, follow: bool) -> Result<(usize, Duration)> {
    let sessions: Vec<ZooKeeper> = (0..consumers).map(|_| g.connect_owned()).collect::<Result<_>>()?;
    let n = Arc::new(AtomicUsize::new(0));
    let (tx, stop): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(0);
    let tx = Arc::new(Mutex::new(Some(tx)));
    let t = Instant::now();
    let results: Vec<Result<queue::End, queue::Error>> = std::thread::scope(|s| {
        let handles: Vec<_> = sessions
            .iter()
            .map(|zk| {
                let mut sink = Count { n: n.clone(), target, stop: tx.clone() };
                let stop = stop.clone();
                s.spawn(move || {
                    let q = Queue::new(zk, path)?;
                    q.consume(&queue::Options { follow, ..Default::default() }, &stop, &mut sink)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("consumer thread")).collect()
    });
    let elapsed = t.elapsed();
    for r in results {
        r.context("consumer")?;
    }
    Ok((n.load(Ordering::Relaxed), elapsed))
}

pub fn run(g: &Global, a: &BenchQueueArgs) -> Result<ExitCode> {
    let zk = g.connect()?;
    let consumers = usize::from(a.consumers);
    let raw = measure(&zk, 200, a.items, queue::WINDOW)?;
    let root = format!("/zkutil-bench-queue-{}", std::process::id());
    zk.create(&root, b"", CreateMode::Persistent).with_context(|| format!("creating {root}"))?;
    let result = (|| -> Result<[(f64, Duration); 3]> {
        let items: Vec<Vec<u8>> = (0..a.items).map(|i| format!("item-{i}").into_bytes()).collect();
        let path = format!("{root}/q1");
        let q = Queue::new(&zk, &path)?;
        let t = Instant::now();
        q.produce(&items, queue::DEFAULT_PRIORITY)?;
        let produce = t.elapsed();
        let (got, consume) = consume_all(g, &path, consumers, a.items, false)?;
        if got != a.items {
            bail!("consumed {got} of {} items", a.items);
        }

        // end to end: consumers follow a fresh queue while the producer fills it
        let path = format!("{root}/q2");
        Queue::new(&zk, &path)?.ensure()?;
        let producer = {
            let g = g.clone();
            let path = path.clone();
            std::thread::spawn(move || -> Result<()> {
                let zk = g.connect()?;
                Queue::new(&zk, &path)?.produce(&items, queue::DEFAULT_PRIORITY)?;
                Ok(())
            })
        };
        let (got, both) = consume_all(g, &path, consumers, a.items, true)?;
        producer.join().expect("producer thread")?;
        if got != a.items {
            bail!("consumed {got} of {} items end to end", a.items);
        }
        Ok([(rate(a.items, produce), produce), (rate(a.items, consume), consume), (rate(a.items, both), both)])
    })();
    zk.delete_tree(&root).with_context(|| format!("cleaning up {root}"))?;
    let [produce, consume, both] = result?;
    // raw again after the queue runs: on a busy machine one sample can be far off
    let after = measure(&zk, 200, a.items, queue::WINDOW)?;
    let raw_rate = (raw.creates_per_s + after.creates_per_s) / 2.0;
    let vs = |r: f64| 100.0 * r / raw_rate.max(1e-9);
    println!("server:                 {}", g.hosts);
    println!(
        "raw pipelined creates: {:>8.0} creates/s  (mean of {:.0} before and {:.0} after; {} nodes, {} in flight)",
        raw_rate,
        raw.creates_per_s,
        after.creates_per_s,
        a.items,
        queue::WINDOW
    );
    println!(
        "produce:               {:>8.0} items/s    {:>5.1}% of raw  ({} items in {:.2} s)",
        produce.0,
        vs(produce.0),
        a.items,
        produce.1.as_secs_f64()
    );
    println!(
        "consume:               {:>8.0} items/s    {:>5.1}% of raw  ({} consumer{}, {:.2} s)",
        consume.0,
        vs(consume.0),
        consumers,
        if consumers == 1 { "" } else { "s" },
        consume.1.as_secs_f64()
    );
    println!(
        "end to end:            {:>8.0} items/s    {:>5.1}% of raw  (producer and consumers together, {:.2} s)",
        both.0,
        vs(both.0),
        both.1.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
