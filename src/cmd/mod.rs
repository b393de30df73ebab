//! One module per subcommand; `Run` dispatches. Commands decide what the user reads;
//! recipes below them never print.

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cmd, Global};
use crate::zk::{ConnectOptions, ZooKeeper};
pub use prompt::session::Session;

pub mod barrier;
pub mod bench;
pub mod child;
pub mod commit;
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
pub mod help;
pub mod inspect;
pub mod is_leader;
pub mod kv;
pub mod lease;
pub mod load;
pub mod lock;
pub mod output;
pub mod partition;
pub mod prompt;
pub mod queue;
pub mod semaphore;
pub mod server;
pub mod service;
pub mod txn;
pub mod watch_tree;
pub mod znode;

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
            Cmd::DeleteAll(c) => znode::delete_all(g, &c.path),
            Cmd::Stat(c) => znode::stat(g, &c.path),
            Cmd::Watch(c) => c.run(g),
            Cmd::Tree(c) => c.run(g),
            Cmd::GetAcl(c) => znode::get_acl(g, &c.path),
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
            Cmd::Lease(c) => c.run(g),
            Cmd::Commit(c) => c.run(g),
            Cmd::Partition(c) => c.run(g),
            Cmd::Service(c) => c.run(g),
            Cmd::Digest(c) => c.run(g),
            Cmd::Completions(c) => help::completions(c.shell),
            Cmd::Man(c) => help::man(c.dir.as_deref()),
            Cmd::Inspect(c) => c.run(g),
            Cmd::Shell(c) => c.run(g),
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
            ..ConnectOptions::new(normalize_hosts(&self.hosts))
        }
    }

    /// The session a command works in: inside `zkutil shell`, the shell's own session
    /// (when these flags name the same ensemble and credentials); otherwise a new one, as
    /// [`Global::connect_owned`] makes. It derefs to [`ZooKeeper`].
    pub fn connect(&self) -> Result<Session> {
        if let Some(zk) = prompt::session::current(&self.options()) {
            return Ok(Session::Shared(zk));
        }
        self.connect_owned().map(Session::Owned)
    }

    /// A new session of its own, never the shell's: for commands that hand the session
    /// on by value, keep it past their return, or open several. Once the command has armed
    /// the Ctrl-C/SIGTERM handler (`util::shutdown`), a signal during the connect ends it
    /// at once with [`exit::Stopped`] instead of waiting out the connect timeout.
    pub fn connect_owned(&self) -> Result<ZooKeeper> {
        let opts = self.options();
        refused_by_every_host(&opts.hosts)?;
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

/// The connect string in the C client's form: a host without a port gets ZooKeeper's 2181
/// (as kazoo and Curator do), and a bracketed IPv6 literal `[::1]:2181` loses its brackets
/// (the C client splits host and port at the last colon). Anything it cannot read is left
/// for the client's own check to report.
pub fn normalize_hosts(hosts: &str) -> String {
    let hosts = hosts.trim();
    let (servers, chroot) = match hosts.find('/') {
        Some(i) => hosts.split_at(i),
        None => (hosts, ""),
    };
    let one = |hp: &str| -> String {
        if let Some(rest) = hp.strip_prefix('[')
            && let Some((addr, after)) = rest.split_once(']')
        {
            return match after.strip_prefix(':') {
                Some(port) => format!("{addr}:{port}"),
                None if after.is_empty() => format!("{addr}:2181"),
                None => hp.to_string(),
            };
        }
        if !hp.is_empty() && !hp.contains(':') { format!("{hp}:2181") } else { hp.to_string() }
    };
    let servers: Vec<String> = servers.split(',').map(|s| one(s.trim())).collect();
    format!("{}{chroot}", servers.join(","))
}

/// Fails at once when every host of the connect string refuses a TCP connection (nothing
/// listens there), instead of letting the C client retry until the connect timeout. Any
/// other outcome (one accepts, a name does not resolve, a connect times out) leaves the
/// verdict to the client. `c_hosts` is the normalized string.
fn refused_by_every_host(c_hosts: &str) -> Result<()> {
    use std::net::{TcpStream, ToSocketAddrs};
    let servers = c_hosts.split('/').next().unwrap_or("");
    let mut refused = Vec::new();
    for hp in servers.split(',') {
        let Some((host, port)) = hp.rsplit_once(':') else { return Ok(()) };
        let Ok(port) = port.parse::<u16>() else { return Ok(()) };
        refused.push(if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") });
        let Ok(addrs) = (host, port).to_socket_addrs() else { return Ok(()) };
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(1)) {
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                _ => return Ok(()),
            }
        }
    }
    if refused.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "cannot reach ZooKeeper at {}: connection refused by every host (is the server running?)",
        refused.join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::normalize_hosts;

    #[test]
    fn hosts_get_the_default_port_and_lose_ipv6_brackets() {
        assert_eq!(normalize_hosts("zk1"), "zk1:2181");
        assert_eq!(normalize_hosts("zk1,zk2:2182/app"), "zk1:2181,zk2:2182/app");
        assert_eq!(normalize_hosts("[::1]:2181"), "::1:2181");
        assert_eq!(normalize_hosts("[::1]/x"), "::1:2181/x");
        assert_eq!(normalize_hosts("127.0.0.1:2181"), "127.0.0.1:2181");
        assert_eq!(normalize_hosts("localhost:notaport"), "localhost:notaport");
    }
}
