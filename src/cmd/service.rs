//! `zkutil service register NAME --address HOST [--port P] ... [-- CMD]` and `zkutil service
//! list [NAME] [--watch]`: service discovery in Curator's layout (`recipes::discovery`).
//!
//! `register` prints the instance id, then stays registered (an ephemeral node) until it is
//! stopped or CMD exits. Like Curator's ServiceDiscovery, it registers again when its
//! session is lost (expired, or no connection for longer than the session timeout): same
//! id, same registration time, new session. CMD keeps running meanwhile.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{never, select};
use serde_json::{Value, json};

use super::Run;
use super::child::{Child, exit_code, margin};
use super::exit::{Stopped, after_stop};
use super::output::{Ndjson, event, print_json};
use crate::cli::{Global, ServiceCmd, ServiceListArgs, ServiceRegisterArgs};
use crate::recipes::discovery::{self, Instance};
use crate::util::{now_millis, shutdown};
use crate::zk::{SessionWatch, ZooKeeper};

impl Run for ServiceCmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            ServiceCmd::Register(a) => a.run(g),
            ServiceCmd::List(a) => a.run(g),
        }
    }
}

/// Connects, again and again until it works or we are stopped (None).
fn connect_until_stopped(g: &Global, what: &str, stop: &crossbeam_channel::Receiver<()>) -> Result<Option<ZooKeeper>> {
    loop {
        match g.connect_owned() {
            Ok(zk) => return Ok(Some(zk)),
            Err(e) if e.is::<Stopped>() => return Ok(None),
            Err(e) => eprintln!("zkutil: {what}: reconnecting: {e:#}"),
        }
        select! {
            recv(stop) -> _ => return Ok(None),
            default(Duration::from_secs(1)) => {}
        }
    }
}

impl ServiceRegisterArgs {
    fn instance(&self) -> Result<Instance> {
        let payload = match &self.payload {
            Some(p) => serde_json::from_str(p).map_err(|e| anyhow!("--payload: not JSON: {e}"))?,
            None => Value::Null,
        };
        let uri_spec = match &self.uri_spec {
            Some(s) => discovery::uri_spec(s).map_err(|e| anyhow!("--uri-spec: {e}"))?,
            None => Value::Null,
        };
        Ok(Instance {
            name: self.name.clone(),
            id: self.id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            address: Some(self.address.clone()),
            port: self.port.map(i64::from),
            ssl_port: self.ssl_port.map(i64::from),
            payload,
            registration_time_utc: now_millis(),
            service_type: "DYNAMIC".into(),
            uri_spec,
            enabled: true,
        })
    }
}

impl Run for ServiceRegisterArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let stop = shutdown();
        let what = format!("service {}", self.name);
        let inst = self.instance()?;
        let mut child: Option<Child> = None;
        let mut zk = g.connect_owned()?;
        let mut first = true;
        loop {
            // a registration is watched as a watcher's: lost on expiry, or after a silence of
            // a whole session timeout (the server has expired us by then, or will)
            let health = SessionWatch::watcher(&zk);
            let lost = health.lost();
            let reg = discovery::register(&zk, &self.base, &inst).map_err(|e| anyhow!("{what}: registering: {e}"))?;
            if first {
                let mut out = io::stdout();
                writeln!(out, "{}", inst.id)?;
                out.flush()?;
                first = false;
            } else {
                crate::status!("zkutil: {what}: registered {} again", reg.node());
            }
            if child.is_none() && !self.cmd.is_empty() {
                child = Some(Child::spawn(&self.cmd, margin(&zk))?);
            }
            let done = child.as_ref().map_or_else(never, |c| c.done().clone());
            select! {
                recv(done) -> r => {
                    let status = child.as_mut().map(|c| c.reaped(r)).transpose()?;
                    drop(reg);
                    return Ok(status.map_or(ExitCode::SUCCESS, exit_code));
                },
                recv(stop) -> _ => {
                    // out of discovery first (clients stop routing to us), then end CMD
                    drop(reg);
                    drop(zk);
                    if let Some(mut c) = child {
                        c.terminate()?;
                    }
                    return Ok(after_stop());
                },
                recv(lost) -> _ => {
                    crate::status!("zkutil: {what}: {}: {} is gone; registering again with a new session", health.error(), reg.node());
                    reg.abandon();
                }
            }
            drop(zk);
            zk = match connect_until_stopped(g, &what, &stop)? {
                Some(z) => z,
                None => {
                    if let Some(mut c) = child {
                        c.terminate()?;
                    }
                    return Ok(after_stop());
                }
            };
        }
    }
}

/// One instance as a line: ID, ADDRESS, PORT, PAYLOAD (compact JSON), tab-separated, `-`
/// for what is missing.
fn instance_line(i: &Instance) -> String {
    let dash = |s: Option<String>| s.unwrap_or_else(|| "-".into());
    let payload = if i.payload.is_null() { "-".to_string() } else { i.payload.to_string() };
    format!("{}\t{}\t{}\t{payload}", i.id, dash(i.address.clone()), dash(i.port.map(|p| p.to_string())))
}

impl ServiceListArgs {
    /// The readable instances by node name, the unreadable ones reported on stderr.
    fn readable(&self, what: &str, listed: Vec<discovery::Listed>) -> BTreeMap<String, Instance> {
        let mut out = BTreeMap::new();
        for (node, inst) in listed {
            match inst {
                Ok(i) => {
                    out.insert(node, i);
                }
                Err(why) => eprintln!("zkutil: {what}: {node}: not a ServiceInstance: {why}"),
            }
        }
        out
    }

    /// The readable instances by node name, as lines.
    fn lines(&self, what: &str, listed: Vec<discovery::Listed>) -> BTreeMap<String, String> {
        self.readable(what, listed).into_iter().map(|(n, i)| (n, instance_line(&i))).collect()
    }
}

impl Run for ServiceListArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let stop = shutdown();
        let mut zk = g.connect_owned()?;
        let mut out = io::stdout().lock();
        let Some(name) = &self.name else {
            let names = discovery::names(&zk, &self.base)?;
            if g.json() {
                print_json(&json!({ "base": self.base, "services": names }))?;
                return Ok(ExitCode::SUCCESS);
            }
            for n in names {
                writeln!(out, "{n}")?;
            }
            return Ok(ExitCode::SUCCESS);
        };
        let what = format!("service {name}");
        if !self.watch {
            let (listed, _) = discovery::instances(&zk, &self.base, name, false).with_context(|| what.clone())?;
            if g.json() {
                let list: Vec<Value> = self.readable(&what, listed).into_values().map(|i| i.to_value()).collect();
                print_json(&json!({ "base": self.base, "name": name, "instances": list }))?;
                return Ok(ExitCode::SUCCESS);
            }
            for line in self.lines(&what, listed).values() {
                writeln!(out, "{line}")?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut events = Ndjson::stdout();
        let path = discovery::service_path(&self.base, name);
        let mut known_json: BTreeMap<String, Instance> = BTreeMap::new();
        let mut known: BTreeMap<String, String> = BTreeMap::new();
        loop {
            let health = SessionWatch::watcher(&zk);
            let lost = health.lost();
            loop {
                let (listed, watch) = match discovery::instances(&zk, &self.base, name, true) {
                    Ok(r) => r,
                    Err(discovery::Error::Zk(e)) if e.is_session_lost() => break,
                    Err(e) => bail!("{what}: {e}"),
                };
                if g.json() {
                    let now = self.readable(&what, listed);
                    for (node, was) in &known_json {
                        if now.get(node) != Some(was) {
                            events.emit(&event("unregister", &path, json!({ "id": node })))?;
                        }
                    }
                    for (node, is) in &now {
                        if known_json.get(node) != Some(is) {
                            events.emit(&event("register", &path, json!({ "instance": is.to_value() })))?;
                        }
                    }
                    known_json = now;
                } else {
                    let now = self.lines(&what, listed);
                    for (node, line) in &known {
                        if now.get(node) != Some(line) {
                            writeln!(out, "-{node}")?;
                        }
                    }
                    for (node, line) in &now {
                        if known.get(node) != Some(line) {
                            writeln!(out, "+{line}")?;
                        }
                    }
                    out.flush()?;
                    known = now;
                }
                let watch = watch.unwrap_or_else(never);
                select! {
                    recv(watch) -> ev => if ev.is_err() { break },
                    recv(lost) -> _ => break,
                    recv(stop) -> _ => return Ok(after_stop()),
                }
            }
            crate::status!("zkutil: {what}: {}; listing again with a new session", health.error());
            drop(zk);
            zk = match connect_until_stopped(g, &what, &stop)? {
                Some(z) => z,
                None => return Ok(after_stop()),
            };
        }
    }
}
