//! One ZooKeeper JVM as a child process, plus its optional "die with parent" watchdog,
//! and the `srvr` probe. No unsafe: signals other than SIGKILL go through `kill(1)`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::Error;

/// Default class path: Debian's zookeeper package. The jar's manifest pulls in its own
/// dependencies; slf4j-simple makes the server log at all (to stderr, i.e. our log file).
pub(crate) const DEFAULT_CLASSPATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar";

/// Environment variable overriding the class path (default: Debian's
/// `/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar`).
pub const CLASSPATH_ENV: &str = "ZKUTIL_ZOOKEEPER_CLASSPATH";

const MAIN_CLASS: &str = "org.apache.zookeeper.server.quorum.QuorumPeerMain";

/// How long one readiness probe may take, connect and read each. ZooKeeper 3.8.0 has a
/// start-up race in which an early 4lw connection is neither answered nor closed.
const PROBE_TIMEOUT: Duration = Duration::from_millis(200);

/// The watchdog: ignores terminal signals, blocks on stdin until EOF (our process exited,
/// for whatever reason, or dropped the pipe), then SIGKILLs the JVM ($1). Given a
/// temporary member directory ($2) and base directory ($3), it removes them too (the last
/// member's watchdog removes the then empty base). It is SIGKILLed itself ("disarmed")
/// before we reap the JVM, so it can never hit a reused pid.
const WATCHDOG: &str = "trap '' INT HUP TERM QUIT; read line; kill -KILL \"$1\" 2>/dev/null; \
    [ -n \"$2\" ] || exit 0; sleep 0.2; rm -rf \"$2\"; rmdir \"$3\" 2>/dev/null; exit 0";

/// Finds the java binary: `$JAVA_HOME/bin/java`, else `java` on `PATH`.
pub(crate) fn find_java() -> Result<PathBuf, Error> {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        let p = Path::new(&home).join("bin/java");
        if p.is_file() {
            return Ok(p);
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("java");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    Err(Error::Setup(
        "java not found (neither $JAVA_HOME/bin/java nor java on PATH); run vendor/setup.sh \
         to install default-jre-headless and zookeeper"
            .into(),
    ))
}

/// The class path to run ZooKeeper with; every entry must exist.
pub(crate) fn classpath() -> Result<String, Error> {
    let cp = std::env::var(CLASSPATH_ENV).unwrap_or_else(|_| DEFAULT_CLASSPATH.to_string());
    for entry in cp.split(':').filter(|e| !e.is_empty()) {
        if !Path::new(entry).exists() {
            return Err(Error::Setup(format!(
                "ZooKeeper jar {entry} is missing; run vendor/setup.sh to install Debian's \
                 zookeeper package (or set {CLASSPATH_ENV})"
            )));
        }
    }
    Ok(cp)
}

/// What it takes to launch one JVM.
pub(crate) struct Launch<'a> {
    pub java: &'a Path,
    pub classpath: &'a str,
    pub config: &'a Path,
    pub log: &'a Path,
    pub die_with_parent: bool,
    /// Member and base directory the watchdog removes after killing the JVM (temporary
    /// directories only).
    pub cleanup: Option<(&'a Path, &'a Path)>,
    pub light_jvm: bool,
    /// Command prefix the JVM runs under (e.g. `ip netns exec NAME`, which execs, so the
    /// pid stays the JVM's); empty: none.
    pub prefix: &'a [String],
}

/// A running (or exited but not yet reaped) member JVM.
#[derive(Debug)]
pub(crate) struct Running {
    java: Child,
    watchdog: Option<Child>,
    exited: Option<ExitStatus>,
}

impl Running {
    /// Spawns the JVM, its log going to `launch.log` (appended), and, in die-with-parent
    /// mode, its watchdog.
    pub(crate) fn spawn(launch: &Launch<'_>) -> Result<Running, Error> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(launch.log)
            .map_err(|e| Error::io(format!("open {}", launch.log.display()), e))?;
        let log2 = log.try_clone().map_err(|e| Error::io("duplicate log file handle", e))?;
        let mut cmd = match launch.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(launch.java);
                c
            }
            None => Command::new(launch.java),
        };
        cmd.arg("-Xmx256m")
            .arg("-XX:+UseSerialGC")
            // No /tmp/hsperfdata_<user>/<pid> file per JVM.
            .arg("-XX:-UsePerfData");
        if launch.light_jvm {
            // C1 only: ~15% less CPU to start, but lower peak throughput (not for benches).
            cmd.arg("-XX:TieredStopAtLevel=1");
        }
        cmd.arg("-Dzookeeper.admin.enableServer=false")
            .arg("-Dzookeeper.extendedTypesEnabled=true")
            .arg("-cp")
            .arg(launch.classpath)
            .arg(MAIN_CLASS)
            .arg(launch.config)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2));
        if !launch.die_with_parent {
            // Out of our process group: a Ctrl-C at our terminal does not reach it, and it
            // outlives us once detached.
            cmd.process_group(0);
        }
        let java = cmd.spawn().map_err(|e| Error::io(format!("spawn {}", launch.java.display()), e))?;
        let mut running = Running { java, watchdog: None, exited: None };
        if launch.die_with_parent {
            let pid = running.java.id().to_string();
            let (member_dir, base_dir) = launch.cleanup.unwrap_or((Path::new(""), Path::new("")));
            let spawned = Command::new("/bin/sh")
                .args(["-c", WATCHDOG, "zkutil-watchdog", &pid])
                .arg(member_dir)
                .arg(base_dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            match spawned {
                Ok(w) => running.watchdog = Some(w),
                Err(e) => {
                    running.kill();
                    return Err(Error::io("spawn /bin/sh (watchdog)", e));
                }
            }
        }
        Ok(running)
    }

    /// The JVM's pid.
    pub(crate) fn pid(&self) -> u32 {
        self.java.id()
    }

    /// The exit status if the JVM has exited (it is then reaped). Never blocks.
    ///
    /// Reaping frees the pid, so the watchdog is disarmed first; we look at
    /// `/proc/<pid>/stat` to see a zombie without reaping it.
    pub(crate) fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_some() {
            return self.exited;
        }
        if self.watchdog.is_some() {
            match proc_state(self.pid()) {
                Some(s) if s != 'Z' => return None,
                _ => self.disarm(),
            }
        }
        if let Ok(Some(status)) = self.java.try_wait() {
            self.exited = Some(status);
        }
        self.exited
    }

    /// Whether the JVM is still running.
    pub(crate) fn is_alive(&mut self) -> bool {
        self.exit_status().is_none()
    }

    /// SIGKILLs the JVM and reaps it.
    pub(crate) fn kill(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            // SIGKILL first, so this really is a crash of the JVM; it is a zombie (pid not
            // reusable) until the wait below.
            let _ = self.java.kill();
            self.disarm();
            self.exited = self.java.wait().ok();
        }
        self.exited
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Always reaps.
    pub(crate) fn stop(&mut self, grace: Duration) -> Option<ExitStatus> {
        if self.is_alive() {
            // The pid cannot have been reused: the JVM is our child and not yet reaped.
            if let Err(e) = crate::util::send_signal(self.pid(), nix::sys::signal::Signal::SIGTERM) {
                log::warn!("SIGTERM to ZooKeeper pid {}: {e}; killing it", self.pid());
                return self.kill();
            }
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if !self.is_alive() {
                    return self.exited;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.kill()
    }

    /// Lets the JVM run on without us: the watchdog is disarmed and the child forgotten
    /// (dropping a `Child` neither kills nor waits).
    pub(crate) fn detach(mut self) -> u32 {
        self.disarm();
        self.pid()
    }

    /// SIGKILLs and reaps the watchdog (a no-op without one). Its stdin pipe closes after
    /// it is dead, so it cannot act on the EOF.
    fn disarm(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// The state letter of `/proc/<pid>/stat` ('R', 'S', 'Z', ...), `None` if there is no such
/// process.
pub(crate) fn proc_state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ...": comm may contain spaces and parentheses; the state follows the
    // last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.trim_start().chars().next()
}

/// Whether `pid` is a live (not zombie) process whose command line contains every one of
/// `needles`: guards signals sent to pids read from a state file against pid reuse.
pub(crate) fn is_our_process(pid: u32, needles: &[&str]) -> bool {
    if matches!(proc_state(pid), None | Some('Z')) {
        return false;
    }
    let Ok(raw) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
    needles.iter().all(|n| cmdline.contains(n))
}

/// The main class's name, to recognise our JVMs in `/proc/<pid>/cmdline`.
pub(crate) fn main_class() -> &'static str {
    MAIN_CLASS
}

/// Sends a four-letter word to `ip:port` and returns the answer; every step is capped by
/// [`PROBE_TIMEOUT`].
pub(crate) fn four_letter(ip: IpAddr, port: u16, word: &str) -> io::Result<String> {
    let addr = SocketAddr::new(ip, port);
    let mut s = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT)?;
    s.set_read_timeout(Some(PROBE_TIMEOUT))?;
    s.set_write_timeout(Some(PROBE_TIMEOUT))?;
    s.write_all(word.as_bytes())?;
    let deadline = Instant::now() + PROBE_TIMEOUT * 2;
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err(e),
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "4lw answer too slow"));
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The `Mode:` of the server on `ip:port` ("standalone", "leader", "follower", ...), `None`
/// if it does not answer or does not serve yet.
pub(crate) fn probe_mode(ip: IpAddr, port: u16) -> Option<String> {
    let answer = four_letter(ip, port, "srvr").ok()?;
    answer.lines().find_map(|l| l.strip_prefix("Mode:")).map(|m| m.trim().to_string())
}

/// The last `n` lines of a log file (empty if it cannot be read).
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let mut text = String::new();
    let _ = f.read_to_string(&mut text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
