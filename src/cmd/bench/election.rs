//! `zkutil bench election`: how long a 3-server `kv serve` cluster goes without a leader
//! that takes writes: from signalling the leader (SIGTERM, then SIGKILL) to the first PUT
//! acknowledged by the new leader. The new leader is known in advance (the candidate that
//! registered right after the old one); the clock stops when it says `leader` and a PUT
//! sent to it directly returns OK. After each run the killed server is started again (it
//! joins at the end of the line).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::delay::DelayProxy;
use super::kv::{KvProc, agreed_leader, print_raw, zookeeper};
use crate::cli::{BenchElectionArgs, Global};
use crate::server::{Ensemble, Options};

struct Line {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Line {
    fn connect(addr: &str) -> Result<Line> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Line { r: BufReader::new(s.try_clone()?), w: s })
    }

    fn req(&mut self, l: &str) -> Result<String> {
        self.w.write_all(format!("{l}\n").as_bytes())?;
        let mut out = String::new();
        self.r.read_line(&mut out)?;
        Ok(out.trim_end().to_string())
    }
}

fn stats(v: &mut [Duration]) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!("min {:>7.1} ms   median {:>7.1} ms   max {:>7.1} ms", ms(v[0]), ms(v[v.len() / 2]), ms(v[v.len() - 1]))
}

/// Where the kv servers of one measurement run: starts one on a slot (0, 1, 2: on the rig,
/// host slot + 1), with extra `kv serve` arguments.
type Spawn<'a> = dyn Fn(usize, &[&str]) -> Result<KvProc> + 'a;

/// `runs` handovers per signal on a line of 3 kv servers; the times, per signal.
fn handovers(spawn: &Spawn, runs: usize) -> Result<Vec<(&'static str, Vec<Duration>)>> {
    // In registration order: the front leads, the next one takes over. A replacement runs
    // on the slot of the server it replaces.
    let mut line: VecDeque<(usize, KvProc)> = VecDeque::new();
    for slot in 0..3 {
        line.push_back((slot, spawn(slot, &[])?));
    }
    let mut out = Vec::new();
    for sig in ["TERM", "KILL"] {
        let mut times = Vec::new();
        for run in 0..runs {
            let refs: Vec<&KvProc> = line.iter().map(|(_, p)| p).collect();
            let l = agreed_leader(&refs, Duration::from_secs(30))?;
            if l != 0 {
                bail!("run {run}: the leader is not the oldest server");
            }
            let mut next = Line::connect(&line[1].1.addr)
                .with_context(|| format!("SIG{sig} run {run}: connecting to the next leader"))?;
            let (slot, old) = line.pop_front().context("no leader")?;
            let t = Instant::now();
            old.signal(sig)?;
            let deadline = t + Duration::from_secs(60);
            loop {
                let said = || line[0].1.said(8);
                let role = next.req("ROLE").with_context(|| format!("SIG{sig} run {run}: ROLE{}", said()))?;
                let put = if role == "leader" {
                    next.req(&format!("PUT bench-{sig}-{run} x"))
                        .with_context(|| format!("SIG{sig} run {run}: PUT{}", said()))?
                } else {
                    String::new()
                };
                if put == "OK" {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "SIG{sig} run {run}: no new leader took a write within 60 s (ROLE: {role:?}, PUT: {put:?}){}",
                        said()
                    );
                }
            }
            times.push(t.elapsed());
            drop(old);
            // A replacement copies the state first (--catch-up), as in a rolling restart:
            // without it, once every original server is gone no live server holds the
            // whole history, and the leader would say so instead of "leader".
            line.push_back((slot, spawn(slot, &["--catch-up"])?));
        }
        out.push((sig, times));
    }
    Ok(out)
}

/// The rig's names (tools/rig.sh): host h is namespace `zkrig<h>` at 10.77.0.h; the bridge
/// is 10.77.0.254 in the root namespace.
const RIG_HOSTS: [u8; 3] = [1, 2, 3];
const RIG_BRIDGE: &str = "10.77.0.254";

fn rig_addr(h: u8) -> IpAddr {
    IpAddr::from([10, 77, 0, h])
}

/// Checks that the rig is up: every namespace runs a command, the bridge address is ours.
fn rig_is_up() -> Result<()> {
    let why = "the rig is not up (as root: `tools/rig.sh up`)";
    for h in RIG_HOSTS {
        let ok = Command::new("ip")
            .args(["netns", "exec", &format!("zkrig{h}"), "true"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            bail!("--hosts-rig: {why}: cannot run a command in namespace zkrig{h}");
        }
    }
    TcpListener::bind((RIG_BRIDGE, 0))
        .with_context(|| format!("--hosts-rig: {why}: no bridge address {RIG_BRIDGE}"))?;
    Ok(())
}

/// A 3-member ensemble, member i on rig host i + 1, tickTime 100 ms as on loopback.
fn rig_ensemble() -> Result<Ensemble> {
    let opts = Options {
        nodes: 3,
        // away from 2181..: a rig ensemble started by hand (README) may be running
        base_port: Some(12181),
        tick_ms: 100,
        die_with_parent: true,
        ready_timeout: Duration::from_secs(60),
        bind: RIG_HOSTS.iter().map(|&h| rig_addr(h)).collect(),
        launch_prefix: RIG_HOSTS
            .iter()
            .map(|&h| ["ip", "netns", "exec", &format!("zkrig{h}")].map(String::from).to_vec())
            .collect(),
        ..Options::default()
    };
    let ens = Ensemble::start(opts).context("starting ZooKeeper on the rig")?;
    crate::status!("bench: started ZooKeeper on the rig at {}", ens.connect_string());
    Ok(ens)
}

fn print_times(times: &mut [(&'static str, Vec<Duration>)], goals: Option<Duration>) {
    for (sig, v) in times.iter_mut() {
        let goal = match (goals, *sig) {
            (None, _) => String::new(),
            (Some(_), "TERM") => "   (goal: median <= 50 ms)".to_string(),
            (Some(t), _) => format!("   (goal: <= session timeout + 250 ms = {} ms)", t.as_millis() + 250),
        };
        println!("  SIG{sig:<4} handover: {}{goal}", stats(v));
    }
}

pub fn run(_g: &Global, a: &BenchElectionArgs) -> Result<ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if let Some(d) = a.rig_delay.iter().find(|d| **d > Duration::from_secs(1)) {
        return Err(crate::cmd::exit::usage(format!("--rig-delay {}: at most 1s", humantime::format_duration(*d))));
    }
    if a.hosts_rig {
        rig_is_up()?;
    }
    let timeout = humantime::format_duration(a.server_session_timeout).to_string();
    if !a.rig_only {
        // tickTime 100 ms: ZooKeeper checks for expired sessions every tick, so a killed
        // leader's session ends close to the session timeout.
        let (zk_server, raw) = zookeeper(100)?;
        let hosts = zk_server.connect_string();
        let cluster = format!("bench-election-{}", std::process::id());
        print_raw(&raw);
        println!("3 kv servers, session timeout {timeout}, {} runs per signal", a.runs);
        println!("loopback: 1 ZooKeeper server, 3 kv servers, all on 127.0.0.1");
        let spawn = |_slot: usize, extra: &[&str]| KvProc::start(&hosts, &cluster, &timeout, None, extra);
        print_times(&mut handovers(&spawn, a.runs)?, Some(a.server_session_timeout));
    }
    if !a.hosts_rig {
        return Ok(ExitCode::SUCCESS);
    }
    let ens = rig_ensemble()?;
    // Peers off loopback must prove a shared secret.
    let mut secret = tempfile::NamedTempFile::new().context("writing the kv servers' secret")?;
    writeln!(secret, "{}", uuid::Uuid::new_v4()).context("writing the kv servers' secret")?;
    let secret_path = secret.path().to_str().context("the temporary directory's path is not UTF-8")?.to_string();
    let port = AtomicU16::new(17001);
    // The kv servers' stderr: the tail is shown when one does not start.
    let logs = tempfile::tempdir().context("making a directory for the kv servers' logs")?;
    println!(
        "rig: 3 hosts (10.77.0.1-3), on each a ZooKeeper member and a kv server; session timeout {timeout}, {} runs \
         per signal",
        a.runs
    );
    for (i, &delay) in a.rig_delay.iter().enumerate() {
        // Each kv server reaches the members through one proxy per member, in this process
        // (root namespace, on the bridge): every byte between a kv server and ZooKeeper,
        // both ways, `delay` late. Quorum traffic and kv's own replication go direct.
        let proxies: Vec<DelayProxy> = if delay.is_zero() {
            Vec::new()
        } else {
            (0..ens.len())
                .map(|m| {
                    let upstream: SocketAddr = ens.member_address(m).parse()?;
                    Ok(DelayProxy::start(RIG_BRIDGE.parse()?, upstream, delay)?)
                })
                .collect::<Result<_>>()
                .context("starting the delay proxies")?
        };
        let hosts = if proxies.is_empty() {
            ens.connect_string()
        } else {
            proxies.iter().map(|p| p.addr.to_string()).collect::<Vec<_>>().join(",")
        };
        let cluster = format!("bench-election-rig-{}-{i}", std::process::id());
        let spawn = |slot: usize, extra: &[&str]| {
            let h = RIG_HOSTS[slot];
            let prefix = ["ip", "netns", "exec", &format!("zkrig{h}")].map(String::from);
            let addr = SocketAddr::new(rig_addr(h), port.fetch_add(1, Ordering::Relaxed)).to_string();
            let mut args = vec!["--secret-file", secret_path.as_str()];
            args.extend_from_slice(extra);
            let log = logs.path().join(format!("kv-{}.log", addr.replace(':', "-")));
            KvProc::start_at(&prefix, &addr, &hosts, &cluster, &timeout, Some(log), &args)
        };
        if delay.is_zero() {
            println!("rig +0 ms: kv servers connect to the members directly");
        } else {
            println!(
                "rig +{} ms: each way between every kv server and ZooKeeper (user-space proxy; quorum traffic not \
                 delayed)",
                delay.as_millis()
            );
        }
        print_times(&mut handovers(&spawn, a.runs)?, None);
    }
    Ok(ExitCode::SUCCESS)
}
