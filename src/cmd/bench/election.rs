//! `zkutil bench election`: how long a 3-server `kv serve` cluster goes without a leader
//! that takes writes: from signalling the leader (SIGTERM, then SIGKILL) to the first PUT
//! acknowledged by the new leader. The new leader is known in advance (the candidate that
//! registered right after the old one); the clock stops when it says `leader` and a PUT
//! sent to it directly returns OK. After each run the killed server is started again (it
//! joins at the end of the line).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::kv::{KvProc, agreed_leader, print_raw, zookeeper};
use crate::cli::{BenchElectionArgs, Global};

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

pub fn run(_g: &Global, a: &BenchElectionArgs) -> Result<ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    // tickTime 100 ms: ZooKeeper checks for expired sessions every tick, so a killed
    // leader's session ends close to the session timeout.
    let (zk_server, raw) = zookeeper(100)?;
    let hosts = zk_server.connect_string();
    let cluster = format!("bench-election-{}", std::process::id());
    let timeout = humantime::format_duration(a.server_session_timeout).to_string();
    // In registration order: the front leads, the next one takes over.
    let mut line: VecDeque<KvProc> = VecDeque::new();
    for _ in 0..3 {
        line.push_back(KvProc::start(&hosts, &cluster, &timeout, None, &[])?);
    }
    print_raw(&raw);
    println!("3 kv servers, session timeout {timeout}, {} runs per signal", a.runs);
    for sig in ["TERM", "KILL"] {
        let mut times = Vec::new();
        for run in 0..a.runs {
            let refs: Vec<&KvProc> = line.iter().collect();
            let l = agreed_leader(&refs, Duration::from_secs(30))?;
            if l != 0 {
                bail!("run {run}: the leader is not the oldest server");
            }
            let mut next = Line::connect(&line[1].addr)?;
            let old = line.pop_front().context("no leader")?;
            let t = Instant::now();
            old.signal(sig)?;
            let deadline = t + Duration::from_secs(60);
            loop {
                if next.req("ROLE")? == "leader" && next.req(&format!("PUT bench-{sig}-{run} x"))? == "OK" {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("run {run}: no new leader took a write within 60 s");
                }
            }
            times.push(t.elapsed());
            drop(old);
            // A replacement copies the state first (--catch-up), as in a rolling restart:
            // without it, once every original server is gone no live server holds the
            // whole history, and the leader would say so instead of "leader".
            line.push_back(KvProc::start(&hosts, &cluster, &timeout, None, &["--catch-up"])?);
        }
        let goal = if sig == "TERM" {
            "goal: median <= 50 ms".to_string()
        } else {
            format!("goal: <= session timeout + 250 ms = {} ms", a.server_session_timeout.as_millis() + 250)
        };
        println!("SIG{sig:<4} handover: {}   ({goal})", stats(&mut times));
    }
    Ok(ExitCode::SUCCESS)
}
