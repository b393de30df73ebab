//! `zkutil queue produce|consume|len|peek`: the words around `recipes::queue`.

use std::io::{self, BufWriter, Read, Write};
use std::process::{ExitCode, ExitStatus};

use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, select};

use super::Run;
use super::child::Child;
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
        let n = q.produce(&items, self.priority).with_context(|| format!("producing to {}", self.path))?;
        if g.json() {
            print_json(&json!({ "path": self.path, "queued": n }))?;
        } else {
            println!("queued {n} item{} to {}", if n == 1 { "" } else { "s" }, self.path);
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
        let items = Queue::new(&zk, &self.path)?.peek(self.count)?;
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

/// An item in JSON: `{"node", "data", "encoding"}`.
fn item_json(item: &Item) -> serde_json::Value {
    let mut m = data_fields(&item.data);
    m.insert("node".into(), item.path.clone().into());
    serde_json::Value::Object(m)
}

/// Items to stdout, raw, newline-terminated (or, `json`, one NDJSON event each). Stdout is
/// line-buffered, so a write error (a reader that went away) shows up on the item that was
/// not delivered, and the recipe puts it back in the queue.
struct Lines<W: Write> {
    out: W,
    json: Option<String>,
}

impl<W: Write> Sink for Lines<W> {
    fn item(&mut self, item: &Item) -> io::Result<()> {
        if let Some(queue) = &self.json {
            let ev = event("item", queue, item_json(item));
            serde_json::to_writer(&mut self.out, &ev)?;
            return self.out.write_all(b"\n");
        }
        self.out.write_all(&item.data)?;
        self.out.write_all(b"\n")
    }

    fn idle(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl Run for QueueConsumeArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        super::exit::check_runnable(&self.cmd)?;
        let stop = shutdown();
        let zk = g.connect()?;
        let q = Queue::new(&zk, &self.path)?;
        if !self.cmd.is_empty() {
            return self.run_cmd(&zk, &q, &stop);
        }
        let opts = queue::Options { max: self.count, follow: self.follow, idle: self.timeout };
        let mut sink = Lines { out: io::stdout().lock(), json: g.json().then(|| self.path.clone()) };
        let end = q.consume(&opts, &stop, &mut sink);
        let flushed = sink.out.flush();
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
            Err(e) => Err(anyhow::Error::new(e).context(format!("consuming from {}", self.path))),
            Ok(End::Stopped) => Ok(after_stop()),
            Ok(_) => {
                flushed?;
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

impl QueueConsumeArgs {
    /// At least once: claim an item, run CMD on it, complete it only when CMD exits 0.
    fn run_cmd(&self, _zk: &ZooKeeper, q: &Queue<'_>, stop: &Receiver<()>) -> Result<ExitCode> {
        let mut claimer = Claimer::new(q);
        let mut done = 0u64;
        while self.count.is_none_or(|n| done < n) {
            let claim = match claimer.next(self.follow, self.timeout, stop) {
                Ok(Claimed::Item(c)) => c,
                Ok(Claimed::Empty | Claimed::Idle) => break,
                Ok(Claimed::Stopped) => return Ok(after_stop()),
                Err(e) => return Err(anyhow::Error::new(e).context(format!("consuming from {}", self.path))),
            };
            let path = claim.item().path.clone();
            let status = run_on(&self.cmd, &claim.item().data, stop);
            match status {
                Ok(s) if s.success() => {
                    claim.complete().with_context(|| format!("completing {path}"))?;
                    done += 1;
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
fn run_on(cmd: &[String], data: &[u8], stop: &Receiver<()>) -> Result<ExitStatus> {
    let mut child = Child::spawn_fed(cmd, data.to_vec())?;
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
