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
pub mod diff;
pub mod dump;
pub mod election;
pub mod ensemble;
pub mod exit;
pub mod find;
pub mod group;
pub mod kv;
pub mod load;
pub mod lock;
pub mod queue;
pub mod semaphore;
pub mod server;
pub mod shell;
pub mod txn;
pub mod watch_tree;

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
            Cmd::Dump(c) => c.run(g),
            Cmd::Load(c) => c.run(g),
            Cmd::Cp(c) => c.run(g),
            Cmd::Diff(c) => c.run(g),
            Cmd::Find(c) => c.run(g),
            Cmd::Grep(c) => c.run(g),
            Cmd::Du(c) => c.run(g),
            Cmd::Count(c) => c.run(g),
            Cmd::Ensemble(c) => c.run(g),
            Cmd::Owner(c) => c.run(g),
            Cmd::Config(c) => c.run(g),
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

    /// Connects with these flags. Once the command has armed the Ctrl-C/SIGTERM handler
    /// (`util::shutdown`), a signal during the connect ends it at once with
    /// [`exit::Stopped`] instead of waiting out the connect timeout.
    pub fn connect(&self) -> Result<ZooKeeper> {
        if let Some(a) = &self.auth
            && !a.contains(':')
        {
            anyhow::bail!("--auth: expected USER:PASSWORD");
        }
        let opts = self.options();
        let Some(stop) = crate::util::shutdown_if_armed() else {
            return Ok(ZooKeeper::connect_with(&opts)?);
        };
        if crate::util::stop_requested() {
            return Err(exit::Stopped.into());
        }
        // The connect blocks in the C client's session wait: run it aside. An abandoned
        // attempt closes its handle when it ends (there is no session to lose yet).
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::Builder::new().name("zk-connect".into()).spawn(move || {
            let _ = tx.send(ZooKeeper::connect_with(&opts));
        })?;
        crossbeam_channel::select! {
            recv(rx) -> r => Ok(r.map_err(|_| anyhow::anyhow!("the connect thread died"))??),
            recv(stop) -> _ => Err(exit::Stopped.into()),
        }
    }
}
