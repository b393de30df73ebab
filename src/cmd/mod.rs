//! One module per subcommand; `Run` dispatches. Commands decide what the user reads;
//! recipes below them never print.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cmd, Global};
use crate::zk::{ConnectOptions, ZooKeeper};

pub mod barrier;
pub mod bench;
pub mod child;
pub mod counter;
pub mod crawl;
pub mod demo;
pub mod election;
pub mod exit;
pub mod group;
pub mod kv;
pub mod lock;
pub mod queue;
pub mod semaphore;
pub mod server;
pub mod shell;
pub mod txn;

/// A subcommand.
pub trait Run {
    /// Runs it; the exit code carries meaning for some commands.
    fn run(&self, g: &Global) -> Result<ExitCode>;
}

impl Run for Cmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            Cmd::Ls(c) => c.run(g),
            Cmd::Get(c) => c.run(g),
            Cmd::Set(c) => c.run(g),
            Cmd::Create(c) => c.run(g),
            Cmd::Delete(c) => c.run(g),
            Cmd::DeleteAll(c) => shell::delete_all(g, &c.path),
            Cmd::Stat(c) => shell::stat(g, &c.path),
            Cmd::Watch(c) => c.run(g),
            Cmd::Tree(c) => c.run(g),
            Cmd::GetAcl(c) => shell::get_acl(g, &c.path),
            Cmd::SetAcl(c) => c.run(g),
            Cmd::Server(c) => c.run(g),
            Cmd::Demo(c) => c.run(g),
            Cmd::Bench(c) => c.run(g),
            Cmd::Barrier(c) => c.run(g),
            Cmd::Counter(c) => c.run(g),
            Cmd::Group(c) => c.run(g),
            Cmd::Txn(c) => c.run(g),
            Cmd::Queue(c) => c.run(g),
            Cmd::Mutex(c) => c.run(g),
            Cmd::Lock(c) => c.run(g),
            Cmd::Semaphore(c) => c.run(g),
            Cmd::Kv(c) => c.run(g),
            Cmd::Election(c) => c.run(g),
            Cmd::Crawl(c) => c.run(g),
        }
    }
}

impl Global {
    /// The connect options these flags describe.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions {
            session_timeout: self.session_timeout,
            connect_timeout: self.connect_timeout,
            digest: self.auth.clone(),
            ..ConnectOptions::new(self.hosts.clone())
        }
    }

    /// Connects with these flags.
    pub fn connect(&self) -> Result<ZooKeeper> {
        if let Some(a) = &self.auth
            && !a.contains(':')
        {
            anyhow::bail!("--auth: expected USER:PASSWORD");
        }
        Ok(ZooKeeper::connect_with(&self.options())?)
    }
}
