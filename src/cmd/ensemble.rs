//! `zkutil ensemble status`, `zkutil owner`, `zkutil config`: the ensemble as an operator
//! sees it, from the four-letter words (`srvr`, `mntr`, `cons`) of every host of the
//! connect string, with the AdminServer's HTTP commands as the fallback when the words are
//! not whitelisted, and from `zoo_getconfig`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::Run;
use crate::cli::{ConfigArgs, EnsembleCmd, Global, OutputFormat, OwnerArgs, StatusArgs};
use crate::zk;

/// The `host:port` members of a connect string (chroot dropped, port 2181 by default).
pub fn members(hosts: &str) -> Vec<String> {
    let list = hosts.split('/').next().unwrap_or("");
    list.split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            let has_port = h.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) && !h.ends_with(']');
            if has_port { h.to_string() } else { format!("{h}:2181") }
        })
        .collect()
}

/// Sends a four-letter word and reads the whole answer, within `timeout` per step.
pub fn four_letter(member: &str, word: &str, timeout: Duration) -> io::Result<String> {
    let addr = member.to_socket_addrs()?.next().ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(word.as_bytes())?;
    let deadline = Instant::now() + timeout * 2;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf)? {
            0 => break,
            n => out.extend_from_slice(&buf[..n]),
        }
        if Instant::now() > deadline {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "answer too slow"));
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn not_whitelisted(answer: &str) -> bool {
    answer.contains("not in the whitelist") || answer.contains("not executed")
}

/// `mntr` as key -> value (`zk_server_state` ...), from the four-letter word or, when it is
/// not whitelisted, from the AdminServer (`http://HOST:ADMIN_PORT/commands/monitor`).
fn monitor(member: &str, admin_port: u16, timeout: Duration) -> Result<BTreeMap<String, String>, String> {
    match four_letter(member, "mntr", timeout) {
        Ok(a) if !a.trim().is_empty() && !not_whitelisted(&a) => Ok(a
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()),
        Ok(a) if not_whitelisted(&a) => admin_monitor(member, admin_port, timeout),
        Ok(_) => Err("no answer to mntr (not serving)".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn admin_monitor(member: &str, admin_port: u16, timeout: Duration) -> Result<BTreeMap<String, String>, String> {
    let host = member.rsplit_once(':').map_or(member, |(h, _)| h);
    let url = format!("http://{host}:{admin_port}/commands/monitor");
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(timeout * 2)).build().into();
    let body = agent
        .get(&url)
        .call()
        .map_err(|e| format!("mntr is not whitelisted and {url}: {e}"))?
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{url}: {e}"))?;
    let mut m = BTreeMap::new();
    for (k, v) in v.as_object().into_iter().flatten() {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // the AdminServer names keys without the zk_ prefix
        m.insert(format!("zk_{k}"), text);
    }
    Ok(m)
}

/// `srvr`'s `Zxid:` line.
fn srvr_zxid(member: &str, timeout: Duration) -> Option<i64> {
    let a = four_letter(member, "srvr", timeout).ok()?;
    let z = a.lines().find_map(|l| l.strip_prefix("Zxid:"))?.trim();
    i64::from_str_radix(z.trim_start_matches("0x"), 16).ok()
}

/// One member's row.
#[derive(Debug, Clone)]
struct Row {
    member: String,
    mode: String,
    zxid: Option<i64>,
    m: BTreeMap<String, String>,
    error: Option<String>,
}

impl Row {
    fn serving(&self) -> bool {
        matches!(self.mode.as_str(), "leader" | "follower" | "standalone" | "observer")
    }

    fn get(&self, k: &str) -> &str {
        self.m.get(k).map_or("-", String::as_str)
    }
}

fn fetch(member: &str, admin_port: u16, timeout: Duration) -> Row {
    match monitor(member, admin_port, timeout) {
        Ok(m) => {
            let mode = m.get("zk_server_state").cloned().unwrap_or_else(|| "unknown".into());
            let zxid = srvr_zxid(member, timeout);
            Row { member: member.to_string(), mode, zxid, m, error: None }
        }
        Err(e) => {
            Row { member: member.to_string(), mode: "down".into(), zxid: None, m: BTreeMap::new(), error: Some(e) }
        }
    }
}

/// How far `zxid` is behind the leader's, in transactions. A member still in an older
/// epoch lags by at least the transactions of the leader's epoch (None: unknown).
fn lag(zxid: Option<i64>, leader: Option<i64>) -> Option<i64> {
    let (z, l) = (zxid?, leader?);
    if z >> 32 == l >> 32 {
        Some((l - z).max(0))
    } else if z < l {
        Some(l & 0xffff_ffff)
    } else {
        None
    }
}

impl Run for EnsembleCmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            EnsembleCmd::Status(a) => status(g, a),
        }
    }
}

fn status(g: &Global, a: &StatusArgs) -> Result<ExitCode> {
    let members = members(&g.hosts);
    if members.is_empty() {
        bail!("--hosts {:?}: no host to ask", g.hosts);
    }
    let timeout = g.connect_timeout.min(Duration::from_secs(3));
    let rows: Vec<Row> = std::thread::scope(|s| {
        let handles: Vec<_> = members.iter().map(|m| s.spawn(move || fetch(m, a.admin_port, timeout))).collect();
        handles.into_iter().map(|h| h.join().expect("status thread")).collect()
    });
    let leader_zxid = rows.iter().find(|r| r.mode == "leader" || r.mode == "standalone").and_then(|r| r.zxid);
    let healthy = rows.iter().all(Row::serving);
    let mut out = io::stdout().lock();
    if g.json() {
        let v: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "member": r.member, "mode": r.mode,
                    "zxid": r.zxid.map(|z| format!("{z:#x}")),
                    "lag": lag(r.zxid, leader_zxid),
                    "latency_min": r.m.get("zk_min_latency"), "latency_avg": r.m.get("zk_avg_latency"),
                    "latency_max": r.m.get("zk_max_latency"),
                    "connections": r.m.get("zk_num_alive_connections"),
                    "outstanding": r.m.get("zk_outstanding_requests"),
                    "nodes": r.m.get("zk_znode_count"), "watches": r.m.get("zk_watch_count"),
                    "error": r.error,
                })
            })
            .collect();
        writeln!(out, "{}", json!({ "healthy": healthy, "members": v }))?;
    } else {
        writeln!(
            out,
            "{:<22} {:<10} {:<12} {:>5} {:>16} {:>5} {:>5} {:>7} {:>7}",
            "MEMBER", "MODE", "ZXID", "LAG", "LAT min/avg/max", "CONNS", "OUTST", "NODES", "WATCHES"
        )?;
        for r in &rows {
            if let Some(e) = &r.error {
                writeln!(out, "{:<22} {:<10} {e}", r.member, r.mode)?;
                continue;
            }
            let lat = format!("{}/{}/{}", r.get("zk_min_latency"), r.get("zk_avg_latency"), r.get("zk_max_latency"));
            writeln!(
                out,
                "{:<22} {:<10} {:<12} {:>5} {:>16} {:>5} {:>5} {:>7} {:>7}",
                r.member,
                r.mode,
                r.zxid.map_or("-".into(), |z| format!("{z:#x}")),
                lag(r.zxid, leader_zxid).map_or("-".into(), |l| l.to_string()),
                lat,
                r.get("zk_num_alive_connections"),
                r.get("zk_outstanding_requests"),
                r.get("zk_znode_count"),
                r.get("zk_watch_count"),
            )?;
        }
    }
    Ok(if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `cons` lines: ` /127.0.0.1:40312[1](queued=0,...,sid=0x10000a1b2c3d0001,...)`.
fn find_session(cons: &str, session: i64) -> Option<String> {
    let want = format!("sid={:#x}", session);
    cons.lines().find(|l| l.contains(&format!("{want},")) || l.contains(&format!("{want})"))).map(|l| {
        let l = l.trim().trim_start_matches('/');
        l.split('[').next().unwrap_or(l).to_string()
    })
}

impl Run for OwnerArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        zk::validate_path(&self.path, false)?;
        let zk = g.connect()?;
        let stat = zk
            .exists(&self.path)?
            .ok_or_else(|| zk::Error::Zk { code: zk::Code::NoNode, path: Some(self.path.clone()) })?;
        if stat.ephemeral_owner == 0 {
            bail!("{}: not an ephemeral node (no session owns it)", self.path);
        }
        let session = stat.ephemeral_owner;
        let timeout = g.connect_timeout.min(Duration::from_secs(3));
        let mut found = None;
        let mut denied = Vec::new();
        for m in members(&g.hosts) {
            match four_letter(&m, "cons", timeout) {
                Ok(a) if not_whitelisted(&a) => denied.push(m),
                Ok(a) => {
                    if let Some(client) = find_session(&a, session) {
                        found = Some((client, m));
                        break;
                    }
                }
                Err(_) => {}
            }
        }
        let mut out = io::stdout().lock();
        match (found, g.output) {
            (Some((client, server)), OutputFormat::Text) => {
                writeln!(out, "session {session:#x} client {client} server {server}")?
            }
            (Some((client, server)), OutputFormat::Json) => writeln!(
                out,
                "{}",
                json!({ "path": self.path, "session": format!("{session:#x}"), "client": client, "server": server })
            )?,
            (None, OutputFormat::Text) => {
                writeln!(out, "session {session:#x}")?;
                let why = if denied.is_empty() {
                    "no server of --hosts lists it (disconnected, or on a server not in --hosts)".to_string()
                } else {
                    format!("`cons` is not whitelisted on {}", denied.join(", "))
                };
                eprintln!("zkutil: {}: client address unknown: {why}", self.path);
            }
            (None, OutputFormat::Json) => {
                writeln!(out, "{}", json!({ "path": self.path, "session": format!("{session:#x}"), "client": null }))?
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Run for ConfigArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let zk = g.connect()?;
        let (data, stat) = zk.config()?;
        let text = String::from_utf8_lossy(&data);
        let mut out = io::stdout().lock();
        if g.json() {
            let mut servers = Vec::new();
            let mut version = None;
            for l in text.lines() {
                if let Some(v) = l.strip_prefix("version=") {
                    version = Some(v.to_string());
                } else if let Some((k, v)) = l.split_once('=') {
                    servers.push(json!({ "key": k, "value": v }));
                }
            }
            writeln!(
                out,
                "{}",
                json!({ "version": version, "entries": servers, "mzxid": format!("{:#x}", stat.mzxid) })
            )?;
        } else if text.trim().is_empty() {
            eprintln!("zkutil: the ensemble has no dynamic configuration (a standalone server, or reconfig disabled)");
        } else {
            write!(out, "{text}")?;
            if !text.ends_with('\n') {
                writeln!(out)?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_a_connect_string() {
        assert_eq!(members("a:1,b,c:3/chroot"), vec!["a:1", "b:2181", "c:3"]);
        assert_eq!(members("127.0.0.1:2181"), vec!["127.0.0.1:2181"]);
    }

    #[test]
    fn session_in_cons() {
        let cons = " /127.0.0.1:40312[1](queued=0,recved=3,sent=3,sid=0x100007f2a3b0001,lop=PING,est=1)\n \
                    /127.0.0.1:40314[0](queued=0,recved=1,sent=0)\n";
        assert_eq!(find_session(cons, 0x100007f2a3b0001).as_deref(), Some("127.0.0.1:40312"));
        assert_eq!(find_session(cons, 0x100007f2a3b00), None);
    }

    #[test]
    fn lag_only_within_an_epoch() {
        assert_eq!(lag(Some(0x1_0000_0005), Some(0x1_0000_0009)), Some(4));
        assert_eq!(lag(Some(0x1_0000_0005), Some(0x2_0000_0001)), Some(1));
        assert_eq!(lag(Some(0x3_0000_0005), Some(0x2_0000_0001)), None);
    }
}
