//! `zkutil queue produce|consume|len|peek`: the words around `recipes::queue`.

use std::io::{self, BufWriter, Read, Write};
use std::process::{ExitCode, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, select};

use super::Run;
use super::child::{self, Child};
use super::exit::after_stop;
use super::output::{data_fields, event, print_json};
use crate::cli::{Global, PathArg, QueueCmd, QueueConsumeArgs, QueuePeekArgs, QueueProduceArgs};
use crate::recipes::queue::{self, Claimed, Claimer, End, Item, Queue, Sink};
use crate::util::{shutdown, stop_requested};
use crate::zk::ZooKeeper;
use serde_json::json;

impl Run for QueueCmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            QueueCmd::Produce(a) => a.run(g),
            QueueCmd::Consume(a) => a.run(g),
            QueueCmd::Len(a) => len(g, a),
            QueueCmd::Peek(a) => a.run(g),
        }
    }
}

/// Splits stdin into items, one per line (the newline is not part of the item; a final line
/// without one still counts).
pub fn lines(input: &[u8]) -> Vec<&[u8]> {
    let mut items: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if input.is_empty() || input.ends_with(b"\n") {
        items.pop();
    }
    items
}

impl Run for QueueProduceArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let mut stdin = Vec::new();
        let items: Vec<Vec<u8>> = if let Some(n) = self.count {
            (0..n).map(|i| format!("item-{i}").into_bytes()).collect()
        } else if !self.items.is_empty() {
            self.items.iter().map(|s| s.as_bytes().to_vec()).collect()
        } else {
            io::stdin().lock().read_to_end(&mut stdin).context("reading items from stdin")?;
            lines(&stdin).into_iter().map(<[u8]>::to_vec).collect()
        };
        let zk = g.connect()?;
        let q = Queue::new(&zk, &self.path)?;
        // the due time is taken once the session is up, so the delay counts from the write
        let due = match (self.delay, self.at) {
            (Some(d), _) if !d.is_zero() => Some(queue::epoch_ms() + d.as_nanos().div_ceil(1_000_000) as u64),
            (_, at) => at,
        };
        let n = if self.curator { q.produce_curator(&items, due) } else { q.produce_due(&items, self.priority, due) }
            .with_context(|| format!("producing to {}", self.path))?;
        if g.json() {
            let mut doc = json!({ "path": self.path, "queued": n });
            if let Some(due) = due {
                doc["due"] = due_json(due);
            }
            print_json(&doc)?;
        } else {
            let due = due.map(|d| format!(", due {}", rfc3339_ms(d))).unwrap_or_default();
            println!("queued {n} item{} to {}{due}", if n == 1 { "" } else { "s" }, self.path);
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn len(g: &Global, a: &PathArg) -> Result<ExitCode> {
    let zk = g.connect()?;
    let n = Queue::new(&zk, &a.path)?.len()?;
    if g.json() {
        print_json(&json!({ "path": a.path, "length": n }))?;
    } else {
        println!("{n}");
    }
    Ok(ExitCode::SUCCESS)
}

impl Run for QueuePeekArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let zk = g.connect()?;
        let items = Queue::new(&zk, &self.path)?.peek_with(self.count, self.all)?;
        if g.json() {
            let list: Vec<_> = items.iter().map(item_json).collect();
            print_json(&json!({ "path": self.path, "items": list }))?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut out = BufWriter::new(io::stdout().lock());
        for item in items {
            out.write_all(&item.data)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    }
}

/// An item in JSON: `{"node", "data", "encoding"}`, and `"due"` for a delayed item.
fn item_json(item: &Item) -> serde_json::Value {
    let mut m = data_fields(&item.data);
    m.insert("node".into(), item.path.clone().into());
    let name = item.path.rsplit('/').next().unwrap_or_default();
    if let Some(p) = queue::Position::parse(name).filter(|p| p.due > 0) {
        m.insert("due".into(), due_json(p.due));
    }
    serde_json::Value::Object(m)
}

/// A due time in JSON: RFC 3339 with milliseconds, UTC.
fn due_json(due: u64) -> serde_json::Value {
    rfc3339_ms(due).into()
}

fn rfc3339_ms(epoch_ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(epoch_ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Items to stdout, raw, newline-terminated (or, `json`, one NDJSON event each). Stdout is
/// line-buffered, so a write error (a reader that went away) shows up on the item that was
/// not delivered, and the recipe puts it back in the queue. Counts what it delivered.
struct Lines<W: Write> {
    out: W,
    json: Option<String>,
    delivered: u64,
    recovered: u64,
}

impl<W: Write> Sink for Lines<W> {
    fn item(&mut self, item: &Item) -> io::Result<()> {
        if let Some(queue) = &self.json {
            let ev = event("item", queue, item_json(item));
            serde_json::to_writer(&mut self.out, &ev)?;
            self.out.write_all(b"\n")?;
        } else {
            self.out.write_all(&item.data)?;
            self.out.write_all(b"\n")?;
        }
        self.delivered += 1;
        Ok(())
    }

    fn recovered(&mut self, item: &Item) -> io::Result<()> {
        self.item(item)?;
        self.recovered += 1;
        Ok(())
    }

    fn idle(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// True when `e` means the session is gone (a new one can go on).
fn session_lost(e: &queue::Error) -> bool {
    matches!(e, queue::Error::SessionLost { .. } | queue::Error::InDoubt { .. })
}

impl Run for QueueConsumeArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        super::exit::check_runnable(&self.cmd)?;
        let stop = shutdown();
        if !self.cmd.is_empty() {
            return self.run_cmd(g, &stop);
        }
        let what = format!("consuming from {}", self.path);
        let mut zk = g.connect_owned()?;
        let mut sink =
            Lines { out: io::stdout().lock(), json: g.json().then(|| self.path.clone()), delivered: 0, recovered: 0 };
        let mut in_doubt = Vec::new();
        let mut noted = false;
        let (end, not_due) = loop {
            let q = Queue::new(&zk, &self.path)?;
            if self.follow && !noted && matches!(q.len(), Err(queue::Error::NoQueue { .. })) {
                eprintln!("zkutil: {what}: the queue does not exist yet; waiting for it");
            }
            noted = true;
            let end = q.settle(std::mem::take(&mut in_doubt), &mut sink).and_then(|_| {
                let max = self.count.map(|n| n.saturating_sub(sink.delivered));
                q.consume(&queue::Options { max, follow: self.follow, idle: self.timeout }, &stop, &mut sink)
            });
            match end {
                // Ride it out with a new session: items whose delete was in flight are
                // decided on it (their data is at hand).
                Err(e) if session_lost(&e) && !stop_requested() => {
                    if let queue::Error::InDoubt { items, .. } = e {
                        in_doubt = items;
                    }
                    eprintln!("zkutil: {what}: the ZooKeeper session was lost; continuing with a new session");
                    drop(q);
                    zk = g.connect_owned().with_context(|| format!("{what}: reconnecting"))?;
                }
                end => break (end, q.not_due()),
            }
        };
        let flushed = sink.out.flush();
        if sink.recovered > 0 {
            eprintln!(
                "zkutil: {what}: note: {} item{} taken across a lost connection {} delivered; each is a duplicate \
                 only if another consumer took it at the same moment",
                sink.recovered,
                if sink.recovered == 1 { "" } else { "s" },
                if sink.recovered == 1 { "was" } else { "were" },
            );
        }
        match end {
            Err(queue::Error::Sink { error, lost, requeued }) => {
                if requeued > 0 {
                    log::warn!("{requeued} taken but unwritten items were put back in the queue");
                }
                if lost > 0 {
                    log::warn!("{lost} taken items could not be written nor put back");
                }
                Err(error.into())
            }
            Err(e) => Err(anyhow::Error::new(e).context(what)),
            Ok(End::Stopped) => Ok(after_stop()),
            Ok(End::NoQueue) => {
                flushed?;
                eprintln!("zkutil: {what}: the queue does not exist; nothing to consume");
                Ok(ExitCode::SUCCESS)
            }
            Ok(end) => {
                flushed?;
                if end == End::Empty {
                    note_not_due(&what, not_due);
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// Says on stderr that delayed items remain (a consumer without --follow does not wait).
fn note_not_due(what: &str, not_due: Option<(usize, u64)>) {
    if let Some((n, first)) = not_due {
        crate::status!(
            "zkutil: {what}: {n} item{} not due yet (the first at {}); --follow waits for {}",
            if n == 1 { " is" } else { "s are" },
            rfc3339_ms(first),
            if n == 1 { "it" } else { "them" },
        );
    }
}

impl QueueConsumeArgs {
    /// At least once: claim an item, run CMD on it, complete it only when CMD exits 0. A
    /// lost session is ridden out with a new one (a claim lost with it leaves its item in
    /// the queue, to be run again).
    fn run_cmd(&self, g: &Global, stop: &Receiver<()>) -> Result<ExitCode> {
        let what = format!("consuming from {}", self.path);
        let mut done = 0u64;
        let mut noted = false;
        loop {
            let zk = g.connect_owned()?;
            let q = Queue::new(&zk, &self.path)?;
            if !noted && matches!(q.len(), Err(queue::Error::NoQueue { .. })) {
                if self.follow {
                    eprintln!("zkutil: {what}: the queue does not exist yet; waiting for it");
                } else {
                    eprintln!("zkutil: {what}: the queue does not exist; nothing to consume");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            noted = true;
            match self.claim_loop(&zk, &q, stop, &mut done) {
                Err(e) if e.downcast_ref::<queue::Error>().is_some_and(session_lost) && !stop_requested() => {
                    eprintln!("zkutil: {what}: the ZooKeeper session was lost; continuing with a new session");
                }
                Err(e) if zk.is_dead() && self.follow && !stop_requested() => {
                    eprintln!("zkutil: {what}: {e:#}; continuing with a new session");
                }
                r => return r,
            }
        }
    }

    fn claim_loop(&self, zk: &ZooKeeper, q: &Queue<'_>, stop: &Receiver<()>, done: &mut u64) -> Result<ExitCode> {
        let mut claimer = Claimer::new(q);
        while self.count.is_none_or(|n| *done < n) {
            let claim = match claimer.next(self.follow, self.timeout, stop) {
                Ok(Claimed::Item(c)) => c,
                Ok(Claimed::Empty) => {
                    note_not_due(&format!("consuming from {}", self.path), q.not_due());
                    break;
                }
                Ok(Claimed::Idle) => break,
                Ok(Claimed::Stopped) => return Ok(after_stop()),
                Err(e) => return Err(anyhow::Error::new(e).context(format!("consuming from {}", self.path))),
            };
            let path = claim.item().path.clone();
            let status = run_on(&self.cmd, &claim.item().data, child::margin(zk), stop);
            match status {
                Ok(s) if s.success() => {
                    claim.complete().with_context(|| format!("completing {path}"))?;
                    *done += 1;
                }
                Ok(s) => {
                    claim.release().with_context(|| format!("releasing {path}"))?;
                    if stop_requested() {
                        return Ok(after_stop());
                    }
                    bail!("{} {} on item {path}; the item stays in the queue", self.cmd[0], describe(s));
                }
                Err(e) => {
                    claim.release().with_context(|| format!("releasing {path}"))?;
                    return Err(e);
                }
            }
            if stop_requested() {
                return Ok(after_stop());
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn describe(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with status {c}"),
        (None, Some(sig)) => format!("was killed by signal {sig}"),
        _ => format!("failed ({s})"),
    }
}

/// Runs CMD with `data` on its stdin; CMD's stdout and stderr are ours. Ctrl-C/SIGTERM
/// while it runs is passed on to CMD (SIGKILL after a grace period), whose failure then
/// leaves the item in the queue.
fn run_on(cmd: &[String], data: &[u8], margin: Duration, stop: &Receiver<()>) -> Result<ExitStatus> {
    let mut child = Child::spawn_fed(cmd, data.to_vec(), margin)?;
    select! {
        recv(child.done()) -> r => child.reaped(r),
        recv(stop) -> _ => child.forward_stop(),
    }
}

#[cfg(test)]
mod tests {
    use super::lines;

    #[test]
    fn stdin_lines() {
        assert_eq!(lines(b"a\nb\n"), vec![&b"a"[..], b"b"]);
        assert_eq!(lines(b"a\n\nb"), vec![&b"a"[..], b"", b"b"]);
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"\n"), vec![&b""[..]]);
    }
}
