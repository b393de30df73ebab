//! Demo section: `zkutil election run` with two candidates (as two terminals), `election
//! leader [--watch]`, and the hand-over when the leader is stopped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::Signal;

use super::Demo;
use crate::util::send_signal;

const PATH: &str = "/demo/election";

/// A background zkutil whose stdout lines are printed with a tag (and kept), which the demo
/// can signal.
struct Bg {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    printer: Option<std::thread::JoinHandle<()>>,
}

impl Bg {
    fn start(d: &Demo, tag: &str, args: &[&str]) -> Result<Bg> {
        let shown: Vec<String> =
            args.iter().map(|a| if a.contains(' ') { format!("'{a}'") } else { a.to_string() }).collect();
        println!("[{tag}]$ zkutil {} &", shown.join(" "));
        let mut child = d
            .command(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting zkutil {}", args.join(" ")))?;
        let out = child.stdout.take().context("child stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (l, tag) = (lines.clone(), tag.to_string());
        let printer = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("[{tag}] {line}");
                l.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(Bg { child, lines, printer: Some(printer) })
    }

    fn printed(&self, line: &str) -> bool {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|l| l == line)
    }

    fn terminate(&self) -> Result<()> {
        send_signal(self.child.id(), Signal::SIGTERM).context("signalling a demo process")
    }

    fn wait(mut self) -> Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        if let Some(p) = self.printer.take() {
            let _ = p.join();
        }
        Ok(status)
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        if Instant::now() > deadline {
            bail!("demo: timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// How many candidates are registered (read quietly).
fn candidates(d: &Demo) -> usize {
    d.command(&["ls", PATH])
        .output()
        .map(|o| o.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count())
        .unwrap_or(0)
}

pub fn run(d: &Demo) -> Result<()> {
    d.section("election: a command that runs on exactly one machine, the elected leader");
    d.say("Candidates are ephemeral-sequential nodes under /demo/election; the smallest leads and");
    d.say("runs CMD, the others wait (each watching only its predecessor). [A] and [B] are two");
    d.say("terminals; [watch] prints every change of leader.");
    let watch = Bg::start(d, "watch", &["election", "leader", "--watch", PATH])?;
    wait_for("the watch", || watch.printed("(none)"))?;
    let a_cmd =
        "echo A leads, working; trap \"echo A got SIGTERM, stopping; exit 0\" TERM; while :; do sleep 0.1; done";
    let a = Bg::start(d, "A", &["election", "run", "--id", "A", PATH, "--", "sh", "-c", a_cmd])?;
    wait_for("A to lead", || a.printed("A leads, working"))?;
    let b_cmd = "echo B leads, working; sleep 1; echo B done; exit 3";
    let b = Bg::start(d, "B", &["election", "run", "--id", "B", PATH, "--", "sh", "-c", b_cmd])?;
    wait_for("B to campaign", || candidates(d) == 2)?;
    d.run(&["election", "leader", PATH])?;
    d.say("Stop A (SIGTERM, as Ctrl-C would): its CMD is stopped first, then A resigns, and B");
    d.say("leads at once (a SIGKILLed A would be replaced once its session times out).");
    a.terminate()?;
    let status = a.wait()?;
    println!("[A] (zkutil exited with {})", status.code().unwrap_or(-1));
    wait_for("B to lead", || b.printed("B leads, working"))?;
    d.run(&["election", "leader", PATH])?;
    d.say("B's CMD exits 3 by itself: B resigns and exits with CMD's code.");
    let status = b.wait()?;
    println!("[B] (zkutil exited with {})", status.code().unwrap_or(-1));
    wait_for("the watch to see no leader", || {
        watch.lines.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|l| *l == "(none)").count() == 2
    })?;
    watch.terminate()?;
    watch.wait()?;
    Ok(())
}
