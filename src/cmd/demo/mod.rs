//! `zkutil demo`: a narrated walk through zkutil on a throwaway local ZooKeeper. Each
//! section runs the real zkutil binary, so what is shown is exactly what a user can type.

use std::io::Write;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::Run;
use crate::cli::{DemoArgs, Global};
use crate::server::{Ensemble, Options};

mod crawl;
mod election;
mod kv;
mod mutex;
mod queue;
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
        let shown: Vec<String> = args
            .iter()
            .map(|a| if a.contains(' ') || a.is_empty() { format!("'{a}'") } else { a.to_string() })
            .collect();
        println!("$ zkutil {}", shown.join(" "));
        let _ = std::io::stdout().flush();
    }

    /// A zkutil command, ready to run against the demo's server.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args).env("ZK_HOSTS", &self.hosts).stdin(Stdio::null());
        c
    }

    /// Shows and runs `zkutil ARGS`, its output going straight to the terminal.
    pub fn run(&self, args: &[&str]) -> Result<()> {
        self.show(args);
        let status = self.command(args).status().with_context(|| format!("running zkutil {}", args.join(" ")))?;
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
    /// `[tag]` (as if it ran in its own terminal). Wait for it with `Tagged::wait`.
    pub fn spawn_tagged(&self, tag: &str, args: &[&str]) -> Result<Tagged> {
        println!("[{tag}]$ zkutil {} &", args.join(" "));
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting zkutil {}", args.join(" ")))?;
        let out = child.stdout.take().context("child stdout")?;
        let tag = tag.to_string();
        let printer = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                println!("[{tag}] {line}");
            }
        });
        Ok(Tagged { child, printer })
    }

    /// Shows and starts `zkutil ARGS` in the background.
    pub fn spawn(&self, args: &[&str]) -> Result<Child> {
        println!("$ zkutil {} &", args.join(" "));
        self.command(args).spawn().with_context(|| format!("starting zkutil {}", args.join(" ")))
    }
}

/// A background zkutil whose output is printed with a tag.
pub struct Tagged {
    child: Child,
    printer: std::thread::JoinHandle<()>,
}

impl Tagged {
    /// Waits for it to exit and for its last line to be printed.
    pub fn wait(mut self) -> Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        let _ = self.printer.join();
        Ok(status)
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
        crawl::run(&demo)?;
        println!("\nDone. The demo's ZooKeeper is stopped and its data removed.");
        drop(server);
        Ok(ExitCode::SUCCESS)
    }
}
