//! Local ZooKeeper launcher: a standalone server or a 3-node ensemble of Debian's ZooKeeper
//! 3.8 JVMs on 127.0.0.1 (or on given addresses, `--bind`), used by `zkutil server`, `zkutil demo` and every test.
//!
//! It owns the JVMs it starts: [`Ensemble`]'s Drop kills and reaps them, and in
//! "die with parent" mode a tiny `sh` watchdog per JVM kills it when our process exits for
//! any reason (for servers kept in a never-dropped `static`). It must not use `unsafe`,
//! talk the ZooKeeper protocol (only the `srvr` four-letter word), or bind anything but
//! loopback unless the caller names the addresses ([`Options::bind`]). Server logs go to `<member dir>/zookeeper.log`, never to our stdout/stderr.

mod error;
mod process;
mod state;

use std::fs;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use error::Error;
pub use process::CLASSPATH_ENV;
pub use state::{MemberState, MemberStatus, State, status, stop_detached};

use process::{Launch, Running};

/// How long [`Ensemble::stop`] waits after SIGTERM before it SIGKILLs.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How a [`Ensemble`] is started.
#[derive(Debug, Clone)]
pub struct Options {
    /// Number of members: 1 (standalone) or 3.
    pub nodes: usize,
    /// `None`: free ports picked by the OS. `Some(b)`: member `i` of `n` listens for clients
    /// on `b + i`, for peers on `b + n + i` and for elections on `b + 2n + i`.
    pub base_port: Option<u16>,
    /// Directory holding one `zk<i>` directory per member (created if needed, data kept).
    /// `None`: a temporary directory removed when the [`Ensemble`] is dropped.
    pub data_dir: Option<PathBuf>,
    /// ZooKeeper's tickTime in ms; sessions may last 2 to 20 ticks.
    pub tick_ms: u32,
    /// Kill the JVMs when this process exits, even if the [`Ensemble`] is never dropped.
    pub die_with_parent: bool,
    /// How long [`Ensemble::start`] and [`Ensemble::restart`] wait for members to serve.
    pub ready_timeout: Duration,
    /// Run the JVM with the C1 compiler only: starts with less CPU, serves slower. Good for
    /// tests, not for benchmarks.
    pub light_jvm: bool,
    /// Address of each member (empty: all on 127.0.0.1): member `i` listens for clients,
    /// peers and elections on `bind[i]`. One per member when given.
    pub bind: Vec<IpAddr>,
    /// A command prefix per member (empty: none), e.g. `ip netns exec rig1` to run member
    /// `i` inside a network namespace that owns `bind[i]`. One per member when given.
    pub launch_prefix: Vec<Vec<String>>,
}

impl Default for Options {
    /// One node, free port, temporary directory, tickTime 2000 ms, not tied to this process.
    fn default() -> Options {
        Options {
            nodes: 1,
            base_port: None,
            data_dir: None,
            tick_ms: 2000,
            die_with_parent: false,
            ready_timeout: Duration::from_secs(30),
            light_jvm: false,
            bind: Vec::new(),
            launch_prefix: Vec::new(),
        }
    }
}

impl Options {
    /// What tests want: `nodes` members on free ports in a temporary directory, tickTime
    /// 500 ms (sessions of 1–10 s), dying with the test process, light JVM.
    pub fn for_tests(nodes: usize) -> Options {
        Options { nodes, tick_ms: 500, die_with_parent: true, light_jvm: true, ..Options::default() }
    }
}

/// One member: its ports, its directory and, while started, its JVM.
#[derive(Debug)]
struct Member {
    addr: IpAddr,
    client_port: u16,
    peer_port: u16,
    election_port: u16,
    dir: PathBuf,
    running: Option<Running>,
}

impl Member {
    fn config(&self) -> PathBuf {
        self.dir.join("zoo.cfg")
    }
    fn log(&self) -> PathBuf {
        self.dir.join("zookeeper.log")
    }
}

/// A running local ZooKeeper: standalone or an ensemble. Dropping it kills and reaps every
/// member and removes its temporary directory (if it made one).
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Member>,
    opts: Options,
    base_dir: PathBuf,
    // Declared last: removed after the members are dead.
    tmp: Option<tempfile::TempDir>,
}

impl Ensemble {
    /// Starts the members and returns once every one of them serves (`srvr` shows a
    /// `Mode:` line: standalone, or leader/follower). With auto-picked ports, a start that
    /// fails because a member exited (a port stolen in between) is retried twice.
    pub fn start(opts: Options) -> Result<Ensemble, Error> {
        if opts.nodes != 1 && opts.nodes != 3 {
            return Err(Error::Setup(format!("a local ZooKeeper has 1 or 3 nodes, not {}", opts.nodes)));
        }
        for (what, len) in [("--bind addresses", opts.bind.len()), ("launch prefixes", opts.launch_prefix.len())] {
            if len != 0 && len != opts.nodes {
                return Err(Error::Setup(format!("{len} {what} for {} node(s): give one per node", opts.nodes)));
            }
        }
        let java = process::find_java()?;
        let classpath = process::classpath()?;
        let (tmp, base_dir) = match &opts.data_dir {
            Some(d) => {
                fs::create_dir_all(d).map_err(|e| Error::io(format!("create {}", d.display()), e))?;
                let abs = d.canonicalize().map_err(|e| Error::io(format!("resolve {}", d.display()), e))?;
                (None, abs)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("zkutil-server-")
                    .tempdir()
                    .map_err(|e| Error::io("create a temporary directory", e))?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let attempts = if opts.base_port.is_none() { 3 } else { 1 };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut ens = Ensemble { members: Vec::new(), opts: opts.clone(), base_dir: base_dir.clone(), tmp: None };
            let started = ens.configure().and_then(|()| ens.launch_all(&java, &classpath));
            match started {
                Ok(()) => {
                    ens.tmp = tmp;
                    return Ok(ens);
                }
                // Dropping `ens` kills what it started; `tmp` lives on for the retry.
                Err(Error::Exited { .. }) if attempt < attempts => {
                    log::warn!("ZooKeeper exited while starting; retrying on new ports");
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Shortcut for tests: [`Options::for_tests`] with one node.
    pub fn standalone() -> Result<Ensemble, Error> {
        Ensemble::start(Options::for_tests(1))
    }

    /// Picks ports and writes each member's directory and zoo.cfg.
    fn configure(&mut self) -> Result<(), Error> {
        let n = self.opts.nodes;
        let addr = |i: usize| self.opts.bind.get(i).copied().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let ports: Vec<u16> = match self.opts.base_port {
            Some(b) => {
                let top = usize::from(b) + 3 * n;
                if top > usize::from(u16::MAX) + 1 {
                    return Err(Error::Setup(format!("base port {b} too high for {n} nodes")));
                }
                let ports: Vec<u16> = (0..3 * n).map(|k| b + k as u16).collect();
                // Checked up front: with a ZooKeeper already on the port, our readiness
                // probe would be answered by that one while ours fails to bind.
                // An address that is not ours here (it lives in another network namespace)
                // cannot be checked: skipped.
                let in_use = |a: IpAddr, p: u16| matches!(TcpListener::bind((a, p)), Err(e) if e.kind() != std::io::ErrorKind::AddrNotAvailable);
                for (k, &p) in ports.iter().enumerate() {
                    let a = addr(k % n);
                    if in_use(a, p) {
                        return Err(Error::Setup(format!(
                            "port {p} on {a} is already in use (another ZooKeeper? `zkutil server status`)"
                        )));
                    }
                }
                ports
            }
            None => free_ports(3 * n)?,
        };
        for i in 0..n {
            let dir = self.base_dir.join(format!("zk{i}"));
            let data = dir.join("data");
            fs::create_dir_all(&data).map_err(|e| Error::io(format!("create {}", data.display()), e))?;
            self.members.push(Member {
                addr: addr(i),
                client_port: ports[i],
                peer_port: ports[n + i],
                election_port: ports[2 * n + i],
                dir,
                running: None,
            });
        }
        for (i, m) in self.members.iter().enumerate() {
            let data = m.dir.join("data");
            let mut cfg = format!(
                "# written by zkutil\n\
                 tickTime={tick}\n\
                 initLimit=10\n\
                 syncLimit=5\n\
                 dataDir={data}\n\
                 clientPort={port}\n\
                 clientPortAddress={addr}\n\
                 admin.enableServer=false\n\
                 4lw.commands.whitelist=*\n\
                 maxClientCnxns=0\n",
                tick = self.opts.tick_ms,
                data = data.display(),
                port = m.client_port,
                addr = m.addr,
            );
            if n > 1 {
                for (j, peer) in self.members.iter().enumerate() {
                    cfg.push_str(&format!(
                        "server.{}={}:{}:{}\n",
                        j + 1,
                        peer.addr,
                        peer.peer_port,
                        peer.election_port
                    ));
                }
            }
            if n > 1 {
                let myid = data.join("myid");
                fs::write(&myid, format!("{}\n", i + 1))
                    .map_err(|e| Error::io(format!("write {}", myid.display()), e))?;
            }
            let path = m.config();
            fs::write(&path, cfg).map_err(|e| Error::io(format!("write {}", path.display()), e))?;
        }
        Ok(())
    }

    fn launch_all(&mut self, java: &Path, classpath: &str) -> Result<(), Error> {
        let started = Instant::now();
        for i in 0..self.members.len() {
            self.launch(i, java, classpath)?;
        }
        let all: Vec<usize> = (0..self.members.len()).collect();
        self.wait_serving(&all)?;
        log::debug!(
            "ZooKeeper ({} node(s)) serving at {} after {:?}",
            self.members.len(),
            self.connect_string(),
            started.elapsed()
        );
        Ok(())
    }

    fn launch(&mut self, i: usize, java: &Path, classpath: &str) -> Result<(), Error> {
        let m = &mut self.members[i];
        let (config, log) = (m.config(), m.log());
        let temporary = self.opts.data_dir.is_none();
        let prefix = self.opts.launch_prefix.get(i).map(Vec::as_slice).unwrap_or_default();
        m.running = Some(Running::spawn(&Launch {
            java,
            classpath,
            config: &config,
            log: &log,
            die_with_parent: self.opts.die_with_parent,
            cleanup: temporary.then_some((m.dir.as_path(), self.base_dir.as_path())),
            light_jvm: self.opts.light_jvm,
            prefix,
        })?);
        Ok(())
    }

    /// Polls `srvr` on `which` members until each shows a `Mode:` line; fails at once if
    /// one exits, or at the ready timeout.
    fn wait_serving(&mut self, which: &[usize]) -> Result<(), Error> {
        let deadline = Instant::now() + self.opts.ready_timeout;
        let mut pending: Vec<usize> = which.to_vec();
        loop {
            for &i in &pending {
                let m = &mut self.members[i];
                let exited = match &mut m.running {
                    Some(r) => r.exit_status().map(|s| s.to_string()),
                    None => Some("not started".to_string()),
                };
                if let Some(status) = exited {
                    return Err(Error::Exited {
                        member: i,
                        status,
                        log: m.log(),
                        log_tail: process::log_tail(&m.log(), 15),
                    });
                }
            }
            pending.retain(|&i| process::probe_mode(self.members[i].addr, self.members[i].client_port).is_none());
            let Some(&first) = pending.first() else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                let log = self.members[first].log();
                return Err(Error::Timeout {
                    what: format!("ZooKeeper member(s) {pending:?} to serve ({:?})", self.opts.ready_timeout),
                    log_tail: process::log_tail(&log, 15),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn member(&mut self, i: usize) -> Result<&mut Member, Error> {
        self.members.get_mut(i).ok_or(Error::NoSuchMember(i))
    }

    /// The connect string, `127.0.0.1:p1,127.0.0.1:p2,...` (the members' own addresses
    /// with [`Options::bind`]).
    pub fn connect_string(&self) -> String {
        let addrs: Vec<String> = (0..self.len()).map(|i| self.member_address(i)).collect();
        addrs.join(",")
    }

    /// `<address>:<client port>` of member `i` (127.0.0.1 unless bound elsewhere). Panics
    /// if there is no member `i`.
    pub fn member_address(&self, i: usize) -> String {
        let m = &self.members[i];
        std::net::SocketAddr::new(m.addr, m.client_port).to_string()
    }

    /// Number of members (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: an ensemble has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The directory holding the members' `zk<i>` directories.
    pub fn base_dir(&self) -> &Path {
        &self.base_dir
    }

    /// Member `i`'s log file. Panics if there is no member `i`.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.members[i].log()
    }

    /// SIGKILLs member `i`'s JVM (a crash) and reaps it. A no-op if it is not running.
    pub fn kill(&mut self, i: usize) -> Result<(), Error> {
        if let Some(mut r) = self.member(i)?.running.take() {
            r.kill();
        }
        Ok(())
    }

    /// Stops member `i` gracefully: SIGTERM, up to 10 s to exit, then SIGKILL; reaps it.
    pub fn stop(&mut self, i: usize) -> Result<(), Error> {
        if let Some(mut r) = self.member(i)?.running.take() {
            r.stop(STOP_GRACE);
        }
        Ok(())
    }

    /// Starts member `i` again (stopping it first if it runs) on the same ports and data,
    /// and returns once it serves (for an ensemble member: once it has rejoined).
    pub fn restart(&mut self, i: usize) -> Result<(), Error> {
        self.stop(i)?;
        let java = process::find_java()?;
        let classpath = process::classpath()?;
        self.launch(i, &java, &classpath)?;
        self.wait_serving(&[i])
    }

    /// Member `i`'s `srvr` mode ("standalone", "leader", "follower"), `None` if it is not
    /// serving (or not running, or there is no member `i`).
    pub fn mode(&self, i: usize) -> Option<String> {
        let m = self.members.get(i)?;
        m.running.as_ref()?;
        process::probe_mode(m.addr, m.client_port)
    }

    /// The member that is leader now (a standalone server leads itself), `None` during an
    /// election or if none serves.
    pub fn leader(&self) -> Option<usize> {
        (0..self.len()).find(|&i| matches!(self.mode(i).as_deref(), Some("leader" | "standalone")))
    }

    /// The JVM pid of each member, `None` for a member not started (killed, stopped). An
    /// exited but not yet noticed member still shows its pid; see [`Ensemble::is_running`].
    pub fn pids(&self) -> Vec<Option<u32>> {
        self.members.iter().map(|m| m.running.as_ref().map(Running::pid)).collect()
    }

    /// Whether member `i`'s JVM is still running (it is reaped if it has exited).
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.members.get_mut(i).and_then(|m| m.running.as_mut()) {
            Some(r) => r.is_alive(),
            None => false,
        }
    }

    /// Leaves the running members running after we exit (for `zkutil server start`) and
    /// returns what `status` and `stop` need. The directory is kept, even a temporary one.
    ///
    /// Start with `die_with_parent: false`: then each JVM has its own process group, so a
    /// Ctrl-C at our terminal does not reach it. (Detaching disarms the watchdogs, but a JVM
    /// started with `die_with_parent` stays in our process group.) Members not running are
    /// left out of the state.
    pub fn detach(mut self) -> State {
        let temporary = self.tmp.is_some();
        if let Some(t) = self.tmp.take() {
            let _ = t.keep();
        }
        let members = std::mem::take(&mut self.members)
            .into_iter()
            .filter_map(|mut m| {
                let mut r = m.running.take()?;
                if !r.is_alive() {
                    return None;
                }
                Some(MemberState { pid: r.detach(), address: m.addr, client_port: m.client_port, dir: m.dir })
            })
            .collect();
        State { base_dir: self.base_dir.clone(), temporary, members }
    }
}

impl Drop for Ensemble {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut r) = m.running.take() {
                r.kill();
            }
        }
    }
}

/// Picks `n` distinct free loopback ports: all listeners are held at once, then dropped.
fn free_ports(n: usize) -> Result<Vec<u16>, Error> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::io("bind 127.0.0.1:0 to pick a free port", e))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::io("read a picked port", e))
}

#[cfg(test)]
mod tests;
