//! Demo section: `zkutil kv serve`, three servers and a ZooKeeper-elected leader: add and
//! read, failover, the stale read (and --catch-up).

use std::process::Child;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{Demo, wait_for};
use crate::cmd::bench::kv::{free_port, line_req};

struct Srv {
    child: Child,
    addr: String,
}

impl Drop for Srv {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return; // already exited and reaped
        }
        let _ = crate::util::send_signal(self.child.id(), nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

fn start(d: &Demo, extra: &[&str]) -> Result<Srv> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let mut args = vec!["--session-timeout", "2s", "kv", "serve", "--listen", &addr, "--cluster", "demo"];
    args.extend_from_slice(extra);
    let child = d.spawn(&args)?;
    let s = Srv { child, addr };
    wait_for(&format!("kv server {} to start", s.addr), || {
        role(&s).is_some_and(|r| r == "leader" || r.starts_with("follower"))
    })?;
    Ok(s)
}

fn role(s: &Srv) -> Option<String> {
    line_req(&s.addr, "ROLE")
}

/// Sends one request the way `echo REQ | nc -q1 HOST PORT` would, and shows the reply.
fn ask(s: &Srv, req: &str) -> Result<String> {
    let (h, p) = s.addr.rsplit_once(':').unwrap_or((&s.addr, ""));
    println!("$ echo '{req}' | nc -q1 {h} {p}");
    let reply = line_req(&s.addr, req).with_context(|| format!("asking {}", s.addr))?;
    println!("{reply}");
    // Let the servers' log lines for this request come out before the next step.
    std::thread::sleep(Duration::from_millis(50));
    Ok(reply)
}

fn leader_of(servers: &[&Srv]) -> Result<usize> {
    let mut found = 0;
    wait_for("one leader and its followers", || {
        let roles: Vec<String> = servers.iter().map(|s| role(s).unwrap_or_default()).collect();
        let Some(i) = roles.iter().position(|r| r == "leader") else { return false };
        found = i;
        let want = format!("follower {}", servers[i].addr);
        roles.iter().enumerate().all(|(j, r)| j == i || *r == want)
    })
    .context("the servers did not agree on a leader")?;
    Ok(found)
}

pub fn run(d: &Demo) -> Result<()> {
    d.section("kv: a replicated key-value server with a ZooKeeper-elected leader");
    d.say("Three servers form the cluster `demo`. Each registers an ephemeral sequential node under");
    d.say("/kv/demo/election; the smallest sequence number leads. Their log lines are prefixed with the time.");
    let a = start(d, &[])?;
    let b = start(d, &[])?;
    let c = start(d, &[])?;
    let l = leader_of(&[&a, &b, &c])?;
    d.run(&["ls", "/kv/demo/election"])?;

    d.say("Add and read: any server takes a write; a follower forwards it to the leader, which");
    d.say("answers OK once every live replica has it. Reads are answered from the local copy.");
    let servers = [&a, &b, &c];
    let f = servers[(l + 1) % 3];
    ask(f, "ROLE")?;
    ask(f, "PUT colour blue")?;
    ask(servers[(l + 2) % 3], "GET colour")?;
    ask(servers[l], "GET colour")?;

    d.say("Failover: kill -9 the leader. Its session expires (a few seconds), its node vanishes, and the");
    d.say("next candidate (watching its predecessor) takes over. Writes through a survivor succeed.");
    let mut servers = vec![a, b, c];
    let old = servers.remove(l);
    println!("$ kill -9 {}   # the leader, {}", old.child.id(), old.addr);
    let old_addr = old.addr.clone();
    let mut old = old;
    old.child.kill()?;
    old.child.wait()?;
    drop(old);
    let refs: Vec<&Srv> = servers.iter().collect();
    let nl = leader_of(&refs)?;
    ask(&servers[1 - nl], "LEADER")?;
    ask(&servers[1 - nl], "PUT size large")?;
    ask(&servers[nl], "GET size")?;

    d.say("The stale read: the killed server comes back (same address) as a follower. It starts");
    d.say("empty and only receives new writes, so older keys read as NONE until written again.");
    let back = start_at(d, &old_addr, &[])?;
    ask(&back, "ROLE")?;
    ask(&back, "GET colour")?;
    ask(&back, "PUT colour green")?;
    ask(&back, "GET colour")?;
    ask(&back, "GET size")?;
    d.say("With --catch-up, a joining server first copies the leader's state, then serves.");
    let cu = start(d, &["--catch-up"])?;
    wait_for("the catch-up", || line_req(&cu.addr, "GET size").is_some_and(|r| !r.starts_with("ERR catching up")))?;
    ask(&cu, "GET size")?;
    ask(&cu, "GET colour")?;
    d.say("Ctrl-C or SIGTERM closes a server's session first, so its node vanishes at once.");
    drop((back, cu, servers));
    Ok(())
}

fn start_at(d: &Demo, addr: &str, extra: &[&str]) -> Result<Srv> {
    let mut args = vec!["--session-timeout", "2s", "kv", "serve", "--listen", addr, "--cluster", "demo"];
    args.extend_from_slice(extra);
    let child = d.spawn(&args)?;
    let s = Srv { child, addr: addr.to_string() };
    wait_for(&format!("kv server {addr} to come back"), || role(&s).is_some_and(|r| r.starts_with("follower")))?;
    Ok(s)
}
