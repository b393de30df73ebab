//! `zkutil bench kv`: GET and PUT throughput of a 3-server `kv serve` cluster it starts
//! (on its own ZooKeeper), with 50 concurrent clients, next to one `redis-server` under
//! the same load in the same run (when installed), and the raw ZooKeeper limits.
//!
//! Both sides get the same client: RESP requests (GET / SET), one outstanding request per
//! connection, one thread per connection. The kv clients are spread over the 3 servers:
//! GETs are answered locally, PUTs reaching a follower are forwarded to the leader, which
//! replies once both replicas acknowledged.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::raw::{RawLimits, measure};
use crate::cli::{BenchKvArgs, Global};
use crate::server::{Ensemble, Options};
use crate::zk::ZooKeeper;

/// A free loopback port (bound then released).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A `zkutil kv serve` child process; killed on drop.
pub struct KvProc {
    pub child: Child,
    pub addr: String,
    /// Where its stderr goes, if anywhere.
    pub log: Option<PathBuf>,
}

impl KvProc {
    /// Starts `zkutil kv serve` on a free port (with `extra` arguments) and waits until it
    /// has a role.
    pub fn start(
        hosts: &str,
        cluster: &str,
        session_timeout: &str,
        log: Option<PathBuf>,
        extra: &[&str],
    ) -> Result<KvProc> {
        let addr = format!("127.0.0.1:{}", free_port()?);
        KvProc::start_at(&[], &addr, hosts, cluster, session_timeout, log, extra)
    }

    /// Starts `zkutil kv serve --listen addr` under a command prefix (e.g. `ip netns exec
    /// zkrig1`, which execs: the child is the server) and waits until it has a role.
    pub fn start_at(
        prefix: &[String],
        addr: &str,
        hosts: &str,
        cluster: &str,
        session_timeout: &str,
        log: Option<PathBuf>,
        extra: &[&str],
    ) -> Result<KvProc> {
        let addr = addr.to_string();
        let exe = std::env::current_exe().context("finding the zkutil binary")?;
        let stderr = match &log {
            Some(p) => Stdio::from(std::fs::File::create(p)?),
            None => Stdio::null(),
        };
        let mut cmd = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let child = cmd
            .args(["--hosts", hosts, "--session-timeout", session_timeout, "kv", "serve", "--listen", &addr])
            .args(["--cluster", cluster])
            .args(extra)
            .env("RUST_LOG", "warn,zookeeper=off")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .context("starting zkutil kv serve")?;
        let mut p = KvProc { child, addr, log };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !p.role().is_some_and(|r| r.starts_with("leader") || r.starts_with("follower")) {
            if Instant::now() > deadline || p.child.try_wait().is_ok_and(|s| s.is_some()) {
                bail!("kv server {} did not start (role {:?}){}", p.addr, p.role(), p.said(5));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(p)
    }

    /// The last `n` lines of its log, as `: line | line` (empty without a log).
    pub fn said(&self, n: usize) -> String {
        let text = self.log.as_ref().and_then(|l| std::fs::read_to_string(l).ok()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let last = &lines[lines.len().saturating_sub(n)..];
        if last.is_empty() { String::new() } else { format!(": {}", last.join(" | ")) }
    }

    /// One line-protocol request on a new connection.
    pub fn line(&self, req: &str) -> Option<String> {
        line_req(&self.addr, req)
    }

    pub fn role(&self) -> Option<String> {
        self.line("ROLE")
    }

    pub fn signal(&self, sig: &str) -> Result<()> {
        let st = Command::new("kill").args(["-s", sig, &self.child.id().to_string()]).status()?;
        if !st.success() {
            bail!("kill -s {sig} {} failed", self.child.id());
        }
        Ok(())
    }
}

impl Drop for KvProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn line_req(addr: &str, req: &str) -> Option<String> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(15))).ok()?;
    (&s).write_all(format!("{req}\n").as_bytes()).ok()?;
    let mut l = String::new();
    BufReader::new(&s).read_line(&mut l).ok()?;
    Some(l.trim_end().to_string())
}

/// Waits until exactly one server leads and the others follow it; its index.
pub fn agreed_leader(servers: &[&KvProc], timeout: Duration) -> Result<usize> {
    let deadline = Instant::now() + timeout;
    loop {
        let roles: Vec<String> = servers.iter().map(|s| s.role().unwrap_or_default()).collect();
        if let Some(i) = roles.iter().position(|r| r == "leader") {
            let want = format!("follower {}", servers[i].addr);
            if roles.iter().enumerate().all(|(j, r)| j == i || *r == want) {
                return Ok(i);
            }
        }
        if Instant::now() > deadline {
            bail!("the kv servers did not agree on a leader: {roles:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A RESP client with one request in flight.
struct Resp {
    r: BufReader<TcpStream>,
    w: TcpStream,
    line: Vec<u8>,
}

impl Resp {
    fn connect(addr: &str) -> Result<Resp> {
        let s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Resp { r: BufReader::new(s.try_clone()?), w: s, line: Vec::new() })
    }

    fn call(&mut self, args: &[&[u8]]) -> Result<bool> {
        let mut req = Vec::with_capacity(64);
        req.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            req.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            req.extend_from_slice(a);
            req.extend_from_slice(b"\r\n");
        }
        self.w.write_all(&req)?;
        self.line.clear();
        self.r.read_until(b'\n', &mut self.line)?;
        match self.line.first() {
            Some(b'+') | Some(b':') => Ok(true),
            Some(b'$') => {
                let n: i64 =
                    std::str::from_utf8(&self.line[1..]).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(-1);
                if n >= 0 {
                    let mut buf = vec![0u8; n as usize + 2];
                    self.r.read_exact(&mut buf)?;
                }
                Ok(true)
            }
            _ => bail!("error reply: {}", String::from_utf8_lossy(&self.line).trim_end()),
        }
    }
}

#[derive(Clone, Copy)]
enum Load {
    Get,
    Set,
}

/// `clients` threads, client i on `addrs[i % len]`, for `secs`; operations per second.
fn load(addrs: &[String], clients: usize, keys: usize, value: &[u8], d: Duration, kind: Load) -> Result<f64> {
    let done = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let conns: Vec<Resp> = (0..clients).map(|i| Resp::connect(&addrs[i % addrs.len()])).collect::<Result<_>>()?;
    let start = Instant::now();
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let (done, count, value) = (done.clone(), count.clone(), value.to_vec());
            std::thread::spawn(move || -> Result<()> {
                let mut x = (i as u64 + 1).wrapping_mul(0x9e3779b97f4a7c15);
                let mut n = 0u64;
                while !done.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("key:{:06}", x % keys as u64);
                    match kind {
                        Load::Get => c.call(&[b"GET", key.as_bytes()])?,
                        Load::Set => c.call(&[b"SET", key.as_bytes(), &value])?,
                    };
                    n += 1;
                }
                count.fetch_add(n, Ordering::Relaxed);
                Ok(())
            })
        })
        .collect();
    std::thread::sleep(d);
    done.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
    }
    Ok(count.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

fn fill(addr: &str, keys: usize, value: &[u8]) -> Result<()> {
    let mut c = Resp::connect(addr)?;
    for k in 0..keys {
        c.call(&[b"SET", format!("key:{k:06}").as_bytes(), value])?;
    }
    Ok(())
}

/// A throwaway redis-server on a free loopback port.
struct Redis(Child, String);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Result<Option<Redis>> {
    let port = free_port()?.to_string();
    let child = match Command::new("redis-server")
        .args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("starting redis-server"),
    };
    let r = Redis(child, format!("127.0.0.1:{port}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Resp::connect(&r.1).and_then(|mut c| c.call(&[b"PING"])).is_err() {
        if Instant::now() > deadline {
            bail!("redis-server did not start");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Some(r))
}

/// The bench's own ZooKeeper and the raw limits measured on it.
pub fn zookeeper(tick_ms: u32) -> Result<(Ensemble, RawLimits)> {
    let zk_server = Ensemble::start(Options { die_with_parent: true, tick_ms, ..Options::default() })
        .context("starting ZooKeeper for the bench")?;
    crate::status!("bench: started its own ZooKeeper at {} (--hosts is not used)", zk_server.connect_string());
    let zk = ZooKeeper::connect(&zk_server.connect_string(), Duration::from_secs(10))?;
    let raw = measure(&zk, 1000, 10000, 1000).context("measuring the raw limits")?;
    Ok((zk_server, raw))
}

pub fn print_raw(raw: &RawLimits) {
    println!(
        "raw ZooKeeper limits (same run): {:.0} create+delete pairs/s, {:.0} pipelined creates/s",
        raw.pairs_per_s, raw.creates_per_s
    );
}

pub fn run(_g: &Global, a: &BenchKvArgs) -> Result<ExitCode> {
    let (zk_server, raw) = zookeeper(2000)?;
    let hosts = zk_server.connect_string();
    let cluster = format!("bench-{}", std::process::id());
    let servers: Vec<KvProc> =
        (0..3).map(|_| KvProc::start(&hosts, &cluster, "10s", None, &[])).collect::<Result<_>>()?;
    let refs: Vec<&KvProc> = servers.iter().collect();
    agreed_leader(&refs, Duration::from_secs(30))?;
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let value = vec![b'x'; a.value_size];
    fill(&addrs[0], a.keys, &value)?;
    print_raw(&raw);
    println!(
        "load: {} clients, {} keys, {}-byte values, {:?} per phase, RESP, one request in flight per client",
        a.clients, a.keys, a.value_size, a.duration
    );
    let kv_get = load(&addrs, a.clients, a.keys, &value, a.duration, Load::Get)?;
    let kv_put = load(&addrs, a.clients, a.keys, &value, a.duration, Load::Set)?;
    println!("zkutil kv, 3 servers:  GET {kv_get:>9.0}/s   PUT {kv_put:>9.0}/s (replicated to 2 replicas, acked)");
    drop(servers);
    match start_redis()? {
        None => println!("redis-server is not installed: no comparison"),
        Some(r) => {
            let addrs = vec![r.1.clone()];
            fill(&addrs[0], a.keys, &value)?;
            let rd_get = load(&addrs, a.clients, a.keys, &value, a.duration, Load::Get)?;
            let rd_set = load(&addrs, a.clients, a.keys, &value, a.duration, Load::Set)?;
            println!("redis-server, 1 server: GET {rd_get:>9.0}/s   SET {rd_set:>9.0}/s");
            println!(
                "ratios: GET {:.2} of Redis (goal >= 0.50), PUT {:.2} of Redis SET (goal >= 0.25)",
                kv_get / rd_get,
                kv_put / rd_set
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
