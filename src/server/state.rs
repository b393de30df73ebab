//! The state file of `zkutil server start|status|stop`: which detached JVMs run where.
//!
//! Format: `key=value` lines, `#` comments, e.g.
//! ```text
//! base_dir=/tmp/.tmpAbc123
//! temporary=true
//! member.0.pid=4242
//! member.0.client_port=2181
//! member.0.address=127.0.0.1
//! member.0.dir=/tmp/.tmpAbc123/zk0
//! ```

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Error;
use super::process::{self, is_our_process};

/// What `status` and `stop` need to know about a detached ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    /// The directory holding every member's directory.
    pub base_dir: PathBuf,
    /// `base_dir` is a temporary directory the launcher made: `server stop` removes it
    /// (false for a `--data-dir` the user gave, and for state files written before this key).
    pub temporary: bool,
    /// One entry per member, in member order.
    pub members: Vec<MemberState>,
}

/// One detached member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    /// The JVM's pid.
    pub pid: u32,
    /// The address it listens on (127.0.0.1 unless started with `--bind`; also for state
    /// files written before this key).
    pub address: IpAddr,
    /// Its client port on `address`.
    pub client_port: u16,
    /// Its directory (zoo.cfg, data/, zookeeper.log).
    pub dir: PathBuf,
}

/// What [`status`] found out about one member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// `<address>:<client port>`.
    pub address: String,
    /// The pid from the state file.
    pub pid: u32,
    /// Whether that pid is still one of our ZooKeeper JVMs.
    pub alive: bool,
    /// `srvr`'s `Mode:` ("standalone", "leader", "follower"), `None` if not serving.
    pub mode: Option<String>,
}

impl State {
    /// The default state file: `$XDG_RUNTIME_DIR/zkutil/server.state`, else
    /// `/tmp/zkutil-server-<uid>.state`.
    pub fn default_path() -> PathBuf {
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            return Path::new(&dir).join("zkutil").join("server.state");
        }
        // The uid without unsafe: the owner of our own /proc entry.
        let uid = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
        PathBuf::from(format!("/tmp/zkutil-server-{uid}.state"))
    }

    /// The ZooKeeper connect string, `127.0.0.1:p1,127.0.0.1:p2,...`.
    pub fn connect_string(&self) -> String {
        let addrs: Vec<String> =
            self.members.iter().map(|m| SocketAddr::new(m.address, m.client_port).to_string()).collect();
        addrs.join(",")
    }

    /// Renders the state file's text.
    pub fn to_text(&self) -> String {
        let mut s = String::from("# zkutil server state\n");
        s.push_str(&format!("base_dir={}\n", self.base_dir.display()));
        s.push_str(&format!("temporary={}\n", self.temporary));
        for (i, m) in self.members.iter().enumerate() {
            s.push_str(&format!("member.{i}.pid={}\n", m.pid));
            s.push_str(&format!("member.{i}.client_port={}\n", m.client_port));
            s.push_str(&format!("member.{i}.address={}\n", m.address));
            s.push_str(&format!("member.{i}.dir={}\n", m.dir.display()));
        }
        s
    }

    /// Parses the state file's text; `path` only names the file in errors.
    pub fn from_text(text: &str, path: &Path) -> Result<State, Error> {
        let bad = |why: String| Error::State { path: path.to_path_buf(), why };
        let mut base_dir = None;
        let mut temporary = false;
        // Per member index: (pid, client_port, dir, address) as far as seen.
        type Partial = (Option<u32>, Option<u16>, Option<PathBuf>, Option<IpAddr>);
        let mut members: BTreeMap<usize, Partial> = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_end();
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) =
                line.split_once('=').ok_or_else(|| bad(format!("line {}: expected key=value", n + 1)))?;
            if key == "base_dir" {
                base_dir = Some(PathBuf::from(value));
                continue;
            }
            if key == "temporary" {
                temporary = value == "true";
                continue;
            }
            let mut parts = key.splitn(3, '.');
            let (Some("member"), Some(idx), Some(field)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad(format!("line {}: unknown key {key}", n + 1)));
            };
            let idx: usize = idx.parse().map_err(|_| bad(format!("line {}: bad member index {idx}", n + 1)))?;
            let entry = members.entry(idx).or_default();
            let num_err = |_| bad(format!("line {}: bad number {value}", n + 1));
            match field {
                "pid" => entry.0 = Some(value.parse().map_err(num_err)?),
                "client_port" => entry.1 = Some(value.parse().map_err(num_err)?),
                "dir" => entry.2 = Some(PathBuf::from(value)),
                "address" => {
                    entry.3 = Some(value.parse().map_err(|_| bad(format!("line {}: bad address {value}", n + 1)))?)
                }
                _ => return Err(bad(format!("line {}: unknown key {key}", n + 1))),
            }
        }
        let base_dir = base_dir.ok_or_else(|| bad("no base_dir".into()))?;
        let mut out = Vec::new();
        for (expected, (idx, m)) in members.into_iter().enumerate() {
            if idx != expected {
                return Err(bad(format!("member {expected} missing")));
            }
            match m {
                (Some(pid), Some(client_port), Some(dir), address) => out.push(MemberState {
                    pid,
                    address: address.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    client_port,
                    dir,
                }),
                _ => return Err(bad(format!("member {idx} incomplete"))),
            }
        }
        if out.is_empty() {
            return Err(bad("no members".into()));
        }
        Ok(State { base_dir, temporary, members: out })
    }

    /// Writes the state file (creating its directory), atomically via a rename.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let text = self.to_text();
        if text.lines().count() != 3 + 4 * self.members.len() {
            return Err(Error::State { path: path.to_path_buf(), why: "a path contains a newline".into() });
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        }
        let tmp = path.with_extension("state.tmp");
        fs::write(&tmp, text).map_err(|e| Error::io(format!("write {}", tmp.display()), e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io(format!("write {}", path.display()), e))
    }

    /// Reads a state file written by [`State::save`].
    pub fn load(path: &Path) -> Result<State, Error> {
        let text = fs::read_to_string(path).map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        State::from_text(&text, path)
    }
}

/// Whether `m.pid` still is the JVM we started for `m` (same main class, same config).
fn member_alive(m: &MemberState) -> bool {
    let cfg = m.dir.join("zoo.cfg");
    is_our_process(m.pid, &[process::main_class(), &cfg.to_string_lossy()])
}

/// Probes every member of a detached ensemble: is its pid still our JVM, what does
/// `srvr` say.
pub fn status(state: &State) -> Vec<MemberStatus> {
    state
        .members
        .iter()
        .map(|m| MemberStatus {
            address: SocketAddr::new(m.address, m.client_port).to_string(),
            pid: m.pid,
            alive: member_alive(m),
            mode: process::probe_mode(m.address, m.client_port),
        })
        .collect()
}

/// Stops a detached ensemble: SIGTERM to every member still alive, up to `grace` for them
/// to exit, then SIGKILL. Pids that are no longer our JVMs are left alone. The data
/// directories are kept (remove `state.base_dir` to drop the data).
pub fn stop_detached(state: &State, grace: Duration) -> Result<(), Error> {
    let alive: Vec<&MemberState> = state.members.iter().filter(|m| member_alive(m)).collect();
    for m in &alive {
        // Already gone between the check and now is fine.
        let _ = crate::util::send_signal(m.pid, nix::sys::signal::Signal::SIGTERM);
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline && alive.iter().any(|m| member_alive(m)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for m in alive.iter().filter(|m| member_alive(m)) {
        let _ = crate::util::send_signal(m.pid, nix::sys::signal::Signal::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && alive.iter().any(|m| member_alive(m)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    match alive.iter().find(|m| member_alive(m)) {
        Some(m) => Err(Error::io(
            format!("stop ZooKeeper pid {}", m.pid),
            std::io::Error::other("still running after SIGKILL"),
        )),
        None => Ok(()),
    }
}
