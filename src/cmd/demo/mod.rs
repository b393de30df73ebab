//! `zkutil demo`: a narrated walk through zkutil on a throwaway local ZooKeeper. Each
//! section runs the real zkutil binary, so what is shown is exactly what a user can type.

use std::io::Write;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::Run;
use crate::cli::{DemoArgs, Global};
use crate::server::{Ensemble, Options};

mod commit;
mod crawl;
mod election;
mod kv;
mod lease;
mod mutex;
mod partition;
mod queue;
mod service;
mod znodes;

/// The demo's context: where ZooKeeper is, which binary to run, how to narrate.
pub struct Demo {
    pub hosts: String,
    exe: std::path::PathBuf,
    pause: Duration,
}

impl Demo {
    /// A section heading.
    pub fn section(&self, title: &str) {
        println!("\n=== {title} ===");
    }

    /// A line of narration.
    pub fn say(&self, text: &str) {
        println!("# {text}");
    }

    fn show(&self, args: &[&str]) {
        println!("$ zkutil {}", shown(args));
        let _ = std::io::stdout().flush();
    }

    /// A zkutil command, ready to run against the demo's server.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args).env("ZK_HOSTS", &self.hosts).stdin(Stdio::null());
        c
    }

    /// Shows and runs `zkutil ARGS`, its output shown as a terminal would: `get` writes data
    /// unchanged when stdout is not a terminal, so a missing final newline is added here.
    pub fn run(&self, args: &[&str]) -> Result<()> {
        self.show(args);
        let out = self
            .command(args)
            .stderr(Stdio::inherit())
            .output()
            .with_context(|| format!("running zkutil {}", args.join(" ")))?;
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(&out.stdout)?;
        if !out.stdout.is_empty() && !out.stdout.ends_with(b"\n") {
            stdout.write_all(b"\n")?;
        }
        stdout.flush()?;
        drop(stdout);
        let status = out.status;
        std::thread::sleep(self.pause);
        if !status.success() {
            bail!("demo step `zkutil {}` failed ({status})", args.join(" "));
        }
        Ok(())
    }

    /// Shows and runs a command that is expected to fail (to show an error message).
    pub fn run_failing(&self, args: &[&str]) -> Result<()> {
        self.show(args);
        let status = self.command(args).status()?;
        if status.success() {
            bail!("demo step `zkutil {}` should have failed", args.join(" "));
        }
        Ok(())
    }

    /// Shows and starts `zkutil ARGS` in the background, its output lines prefixed with
    /// `[tag]` (as if it ran in its own terminal) and kept for `Tagged::printed`.
    pub fn spawn_tagged(&self, tag: &str, args: &[&str]) -> Result<Tagged> {
        println!("[{tag}]$ zkutil {} &", shown(args));
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting zkutil {}", args.join(" ")))?;
        let out = child.stdout.take().context("child stdout")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (kept, tag) = (lines.clone(), tag.to_string());
        let printer = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                println!("[{tag}] {line}");
                kept.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(Tagged { child, lines, printer: Some(printer) })
    }

    /// Shows and starts `zkutil ARGS` in the background.
    pub fn spawn(&self, args: &[&str]) -> Result<Child> {
        println!("$ zkutil {} &", shown(args));
        self.command(args).spawn().with_context(|| format!("starting zkutil {}", args.join(" ")))
    }
}

/// Polls `cond` every 20 ms until it holds; fails after 20 s naming `what`.
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        if std::time::Instant::now() > deadline {
            bail!("demo: timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// How a command line is shown: arguments with spaces (or empty) in single quotes.
fn shown(args: &[&str]) -> String {
    let quoted: Vec<String> =
        args.iter().map(|a| if a.contains(' ') || a.is_empty() { format!("'{a}'") } else { a.to_string() }).collect();
    quoted.join(" ")
}

/// A background zkutil whose output is printed with a tag (and kept). Dropping it kills a
/// process still running, so a failed demo step leaves nothing behind.
pub struct Tagged {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    printer: Option<std::thread::JoinHandle<()>>,
}

impl Tagged {
    /// How many of its lines so far were exactly `line`.
    pub fn printed_count(&self, line: &str) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|l| *l == line).count()
    }

    /// True once it printed exactly `line`.
    pub fn printed(&self, line: &str) -> bool {
        self.printed_count(line) > 0
    }

    /// Sends it SIGTERM (as Ctrl-C in its terminal would stop it).
    pub fn terminate(&self) -> Result<()> {
        crate::util::send_signal(self.child.id(), nix::sys::signal::Signal::SIGTERM)
            .context("signalling a demo process")
    }

    /// Waits for it to exit and for its last line to be printed.
    pub fn wait(mut self) -> Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        if let Some(p) = self.printer.take() {
            let _ = p.join();
        }
        Ok(status)
    }
}

impl Drop for Tagged {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Run for DemoArgs {
    fn run(&self, _g: &Global) -> Result<ExitCode> {
        println!("Starting a throwaway ZooKeeper on a free loopback port...");
        let server = Ensemble::start(Options { die_with_parent: true, ..Options::default() })
            .context("starting ZooKeeper for the demo")?;
        let demo = Demo {
            hosts: server.connect_string(),
            exe: std::env::current_exe().context("finding the zkutil binary")?,
            pause: self.pause,
        };
        println!("ZooKeeper is serving at {} (ZK_HOSTS points every command there).", demo.hosts);
        znodes::run(&demo)?;
        queue::run(&demo)?;
        mutex::run(&demo)?;
        kv::run(&demo)?;
        election::run(&demo)?;
        lease::run(&demo)?;
        partition::run(&demo)?;
        commit::run(&demo)?;
        service::run(&demo)?;
        crawl::run(&demo)?;
        println!(
            "\nTwo more need a terminal of their own, so try them against your ZooKeeper:\n  \
             zkutil inspect [PATH]   browse, watch and edit the tree in a terminal UI (? lists the keys)\n  \
             zkutil shell            every command above at one prompt, over one session, with cd and Tab"
        );
        println!("\nDone. The demo's ZooKeeper is stopped and its data removed.");
        drop(server);
        Ok(ExitCode::SUCCESS)
    }
}
