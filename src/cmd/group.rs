//! `zkutil group join|list`: membership for the lifetime of this process (or of CMD), and the
//! member list for service discovery.
//!
//! A member outlives its session: when the session expires (or the connection stays down
//! longer than the session timeout, after which the others no longer see us), `join` says so
//! on stderr, connects again and re-joins under the same name with a new session. CMD keeps
//! running meanwhile. If the name was taken in between, `join` ends CMD and exits 1.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::{ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use anyhow::Result;
use crossbeam_channel::{Receiver, never, select};

use super::Run;
use super::child::{Child, exit_code, margin};
use super::exit::after_stop;
use super::output::{Ndjson, data_fields, event, print_json};
use crate::cli::{Global, GroupCmd, GroupJoinArgs, GroupListArgs};
use crate::recipes::group::{self, Group, Member};
use crate::util::{escape_data, shutdown};
use crate::zk::{Lost, SessionWatch, ZooKeeper};
use serde_json::json;

impl Run for GroupCmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            GroupCmd::Join(a) => a.run(g),
            GroupCmd::List(a) => a.run(g),
        }
    }
}

/// What ended a wait of a long-running group command.
enum Wake {
    ChildExited(ExitStatus),
    Stopped,
    SessionLost(Lost),
}

fn child_done(child: &Option<Child>) -> Receiver<io::Result<ExitStatus>> {
    child.as_ref().map_or_else(never, |c| c.done().clone())
}

/// Waits while the session is healthy (the session-health model, watcher grace: a
/// connection down longer than the session timeout counts as lost; the server has expired
/// the session by then, and the client only hears of it once it reaches a server again).
/// None when `wake` fired.
fn watch_session(
    health: &SessionWatch,
    stop: &Receiver<()>,
    child: &mut Option<Child>,
    wake: &Receiver<crate::zk::WatchEvent>,
) -> Result<Option<Wake>> {
    let done = child_done(child);
    let lost = || Wake::SessionLost(health.lost_why().unwrap_or(Lost::Expired));
    select! {
        recv(done) -> r => {
            let status = child.as_mut().map(|c| c.reaped(r)).transpose()?;
            Ok(status.map(Wake::ChildExited))
        }
        recv(stop) -> _ => Ok(Some(Wake::Stopped)),
        // a watch disconnects without an event when the session expires
        recv(wake) -> ev => Ok(if ev.is_ok() { None } else { Some(lost()) }),
        recv(health.lost()) -> _ => Ok(Some(lost())),
    }
}

/// Connects again after a lost session, trying until it works, the user stops us or CMD
/// exits. The connect runs on its own thread so that Ctrl-C is served at once.
fn reconnect(
    g: &Global,
    what: &str,
    stop: &Receiver<()>,
    child: &mut Option<Child>,
) -> Result<Result<ZooKeeper, Wake>> {
    let done = child_done(child);
    loop {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let g2 = g.clone();
        std::thread::spawn(move || {
            let _ = tx.send(g2.connect_owned());
        });
        select! {
            recv(rx) -> r => match r {
                Ok(Ok(zk)) => return Ok(Ok(zk)),
                Ok(Err(e)) => eprintln!("zkutil: {what}: reconnecting: {e:#}"),
                Err(_) => anyhow::bail!("{what}: reconnecting: the connect thread died"),
            },
            recv(done) -> r => {
                let status = child.as_mut().map(|c| c.reaped(r)).transpose()?;
                return Ok(Err(status.map_or(Wake::Stopped, Wake::ChildExited)));
            }
            recv(stop) -> _ => return Ok(Err(Wake::Stopped)),
        }
        // the connect timeout already paced this attempt; a short pause in case it failed fast
        select! {
            recv(stop) -> _ => return Ok(Err(Wake::Stopped)),
            default(Duration::from_secs(1)) => {}
        }
    }
}

impl Run for GroupJoinArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        super::exit::check_runnable(&self.cmd)?;
        let stop = shutdown();
        let what = format!("group {}", self.path);
        let mut child: Option<Child> = None;
        let mut zk = g.connect_owned()?;
        let mut rejoin = false;
        let mut old_session: Option<i64> = None;
        loop {
            let group = Group::new(&zk, &self.path)?;
            let member = match group.join(&self.name, self.data.as_bytes()) {
                // Our old session's node: the server deletes it when it expires that session
                // (the old handle could not say goodbye while disconnected). Wait for that.
                Err(group::Error::NameTaken { owner, .. }) if Some(owner) == old_session => {
                    let deadline = Instant::now() + zk.session_timeout() * 3;
                    if !group.wait_gone(&self.name, deadline, &stop)? {
                        if crate::util::stop_requested() {
                            return Ok(after_stop());
                        }
                        anyhow::bail!("{what}: the node of our expired session {owner:#x} is still there");
                    }
                    group.join(&self.name, self.data.as_bytes())?
                }
                r => r?,
            };
            old_session = Some(zk.session_id());
            crate::status!("{} {} as {}", if rejoin { "re-joined" } else { "joined" }, self.path, self.name);
            if child.is_none() && !self.cmd.is_empty() {
                child = Some(Child::spawn(&self.cmd, margin(&zk))?);
            }
            let wake = loop {
                if let Some(w) = watch_session(group.health(), &stop, &mut child, &never())? {
                    break w;
                }
            };
            match wake {
                Wake::ChildExited(status) => {
                    drop(member);
                    return Ok(exit_code(status));
                }
                Wake::Stopped => {
                    // out of the group first (the others stop routing to us), then end CMD
                    drop(member);
                    drop(zk);
                    if let Some(mut c) = child {
                        c.terminate()?;
                    }
                    return Ok(after_stop());
                }
                Wake::SessionLost(why) => {
                    eprintln!(
                        "zkutil: {what}: {why}: {} is no longer a member; re-joining with a new session",
                        self.name
                    );
                    member.abandon();
                    drop(zk);
                    zk = match reconnect(g, &what, &stop, &mut child)? {
                        Ok(zk) => zk,
                        Err(Wake::ChildExited(status)) => return Ok(exit_code(status)),
                        Err(_) => {
                            if let Some(mut c) = child.take() {
                                c.terminate()?;
                            }
                            return Ok(after_stop());
                        }
                    };
                    rejoin = true;
                }
            }
        }
    }
}

/// One member in JSON: `{"name", "data", "encoding"}`.
fn member_json(name: &str, data: &[u8]) -> serde_json::Value {
    let mut m = data_fields(data);
    m.insert("name".into(), name.into());
    serde_json::Value::Object(m)
}

/// One member as a line: NAME, a tab, DATA (escaped, newlines and tabs included).
fn member_line(name: &str, data: &[u8]) -> String {
    let data = escape_data(data).replace('\n', "\\n").replace('\t', "\\t");
    if data.is_empty() { name.to_string() } else { format!("{name}\t{data}") }
}

impl Run for GroupListArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let stop = shutdown();
        let zk = g.connect_owned()?;
        let mut out = io::stdout().lock();
        if !self.watch {
            let members = Group::new(&zk, &self.path)?.members()?;
            if g.json() {
                let list: Vec<_> = members.iter().map(|m| member_json(&m.name, &m.data)).collect();
                print_json(&json!({ "path": self.path, "members": list }))?;
                return Ok(ExitCode::SUCCESS);
            }
            for Member { name, data, .. } in members {
                writeln!(out, "{}", member_line(&name, &data))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let mut events = Ndjson::stdout();
        let what = format!("group {}", self.path);
        // name -> (data, czxid): a re-join under the same name is a leave and a join
        let mut known: BTreeMap<String, (Vec<u8>, i64)> = BTreeMap::new();
        let mut zk = zk;
        let mut none = None;
        loop {
            let group = Group::new(&zk, &self.path)?;
            let why = loop {
                let (members, watch) = match group.members_w() {
                    Ok(r) => r,
                    Err(group::Error::Zk(e)) if e.is_session_lost() => {
                        break group.health().lost_why().unwrap_or(Lost::Expired);
                    }
                    Err(e) => return Err(e.into()),
                };
                let now: BTreeMap<String, (Vec<u8>, i64)> =
                    members.into_iter().map(|m| (m.name, (m.data, m.created))).collect();
                for (name, was) in &known {
                    if now.get(name) != Some(was) {
                        if g.json() {
                            events.emit(&event("leave", &self.path, json!({ "name": name })))?;
                        } else {
                            writeln!(out, "-{name}")?;
                        }
                    }
                }
                for (name, is) in &now {
                    if known.get(name) != Some(is) {
                        if g.json() {
                            events.emit(&event("join", &self.path, member_json(name, &is.0)))?;
                        } else {
                            writeln!(out, "+{}", member_line(name, &is.0))?;
                        }
                    }
                }
                out.flush()?;
                known = now;
                match watch_session(group.health(), &stop, &mut none, &watch)? {
                    None => continue, // a join or a leave: list again
                    Some(Wake::SessionLost(why)) => break why,
                    Some(_) => return Ok(after_stop()),
                }
            };
            eprintln!("zkutil: {what}: {why}; listing again with a new session");
            drop(group);
            drop(zk);
            zk = match reconnect(g, &what, &stop, &mut none)? {
                Ok(zk) => zk,
                Err(_) => return Ok(after_stop()),
            };
        }
    }
}
