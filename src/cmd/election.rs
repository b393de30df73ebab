//! `zkutil election run PATH -- CMD` (run CMD while elected leader) and `zkutil election
//! leader PATH [--watch]`, on `recipes::election`.
//!
//! A candidate is an EPHEMERAL_SEQUENTIAL node `PATH/candidate-NNNNNNNNNN` holding its id;
//! the smallest leads. CMD's streams pass through untouched (stdout is CMD's alone; zkutil's
//! notices go to stderr, the routine ones only with `--verbose`).
//!
//! Losing leadership follows the session-health model (`zk::health`, holder grace). When
//! the session expires (or our node is deleted), CMD gets SIGTERM at once and we campaign
//! again with a new session. A dropped connection is not yet a loss: the session lives on at
//! the server for the session timeout T, counted from the last thing the server heard from
//! us, and the client only notices a silent connection after 2/3 T. So a leader keeps CMD
//! running through a short disconnection (a server restart, a move to another ensemble
//! member) but no longer than T/6 after it noticed (another candidate may be elected T/3
//! after the notice; T/6 keeps a margin), then CMD gets SIGTERM and we start over with a new
//! session. (Curator's LeaderSelector interrupts at SUSPENDED, which ends CMD on every blip;
//! waiting for LOST, T after the disconnection, lets two CMDs overlap.) A follower holds
//! nothing: it rides out a dropped connection for T (the watcher grace) before it campaigns
//! again. Campaigning itself (a create whose reply was lost) gives up on the same terms, and
//! on Ctrl-C/SIGTERM.
//!
//! `election leader --watch` is an observer: it rides through a lost session (watcher
//! grace, T), says so on stderr and watches again with a new session.
//!
//! CMD exiting by itself ends the candidacy: we resign (the next candidate takes over at
//! once) and exit with CMD's code. Ctrl-C/SIGTERM: a leader stops CMD first (SIGTERM, then
//! SIGKILL after a grace period) and resigns after, so two CMDs never overlap; a follower
//! just withdraws. Both close the session and exit 130/143.
//!
//! A SIGKILLed zkutil cannot stop CMD itself, and its node stays until its session times out,
//! when the next leader starts: CMD's watchdog (see `cmd::child`) sends it SIGTERM the moment
//! zkutil dies, however it dies.

use std::io::{self, Write};
use std::process::{ExitCode, ExitStatus};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use crossbeam_channel::{Receiver, RecvError, Select, TryRecvError, bounded, select};

use super::Run;
use super::child::{Child, exit_code, margin};
use super::exit::after_stop;
use crate::cli::{ElectionCmd, ElectionLeaderArgs, ElectionRunArgs, Global};
use crate::recipes::election::{self, Election, Wake};
use crate::util::{escape_data, shutdown, stop_requested};
use crate::zk::{Halt, Lost, SessionWatch, ZooKeeper, validate_path};

/// The candidates' node name prefix: `PATH/candidate-0000000007`.
pub const PREFIX: &str = "candidate-";

impl Run for ElectionCmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            ElectionCmd::Run(a) => a.run(g),
            ElectionCmd::Leader(a) => a.run(g),
            ElectionCmd::IsLeader(a) => a.run(g),
        }
    }
}

/// The default candidate id: `HOSTNAME-PID`.
fn default_id() -> String {
    let host = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok());
    format!("{}-{}", host.as_deref().unwrap_or("localhost"), std::process::id())
}

/// A candidate's id as one printable line.
fn id_line(data: &[u8]) -> String {
    escape_data(data).replace('\n', "\\n")
}

/// A candidate in JSON: `{"leader": ID, "node": NAME}`, nulls when nobody leads.
fn leader_json(c: Option<&election::Candidate>) -> serde_json::Value {
    match c {
        Some(c) => serde_json::json!({ "leader": String::from_utf8_lossy(&c.data), "node": c.name }),
        None => serde_json::json!({ "leader": null, "node": null }),
    }
}

/// What one session's candidacy ended with.
enum Next {
    Exit(ExitCode),
    /// Lost: campaign again with a new session. `stopped_cmd`: we led, and CMD got SIGTERM.
    Again {
        why: String,
        stopped_cmd: bool,
    },
}

/// A receiver that disconnects once `stop` fires or CMD exits. It does not take CMD's exit
/// status ([`Election::wait`] takes one stop receiver and discards what it delivers): the
/// status stays in `done` for [`Child::reaped`].
fn stop_or_exit(stop: &Receiver<()>, done: &Receiver<io::Result<ExitStatus>>) -> Result<Receiver<()>> {
    let (tx, rx) = bounded::<()>(0);
    let (stop, done) = (stop.clone(), done.clone());
    std::thread::Builder::new()
        .name("election-wake".into())
        .spawn(move || {
            let mut sel = Select::new();
            sel.recv(&stop);
            sel.recv(&done);
            sel.ready(); // readiness only: nothing is received
            drop(tx);
        })
        .context("spawning the thread that waits for CMD")?;
    Ok(rx)
}

/// Connects again after a lost session, trying until it works or the user stops us (None).
/// The connect runs on its own thread so that Ctrl-C is served at once.
pub(crate) fn reconnect(g: &Global, what: &str, stop: &Receiver<()>) -> Result<Option<ZooKeeper>> {
    reconnect_until(g, what, stop, None)
}

/// As [`reconnect`], giving up (None) at `deadline` too.
pub(crate) fn reconnect_until(
    g: &Global,
    what: &str,
    stop: &Receiver<()>,
    deadline: Option<std::time::Instant>,
) -> Result<Option<ZooKeeper>> {
    let timer = deadline.map_or_else(crossbeam_channel::never, crossbeam_channel::at);
    loop {
        let (tx, rx) = bounded(1);
        let g2 = g.clone();
        std::thread::spawn(move || {
            let _ = tx.send(g2.connect_owned());
        });
        select! {
            recv(rx) -> r => match r {
                Ok(Ok(zk)) => return Ok(Some(zk)),
                Ok(Err(e)) => eprintln!("zkutil: {what}: reconnecting: {e:#}"),
                Err(_) => bail!("{what}: reconnecting: the connect thread died"),
            },
            recv(stop) -> _ => return Ok(None),
            recv(timer) -> _ => return Ok(None),
        }
        // the connect timeout already paced this attempt; a short pause in case it failed fast
        select! {
            recv(stop) -> _ => return Ok(None),
            recv(timer) -> _ => return Ok(None),
            default(Duration::from_secs(1)) => {}
        }
    }
}

/// Turns an election error into "campaign again" (the session or our node is gone) or a
/// failure. `lost`: the session-health model's verdict, if the session is lost.
fn again_or_fail(err: election::Error, lost: Option<Lost>, what: &str, stopped_cmd: bool) -> Result<Next> {
    let why = match (err, lost) {
        (election::Error::Stopped, _) => return Ok(Next::Exit(after_stop())),
        (election::Error::Lost, Some(why @ Lost::Silent(_))) if stopped_cmd => {
            format!("{why} (a sixth of the session timeout): another candidate may lead by now")
        }
        (election::Error::Lost, Some(why)) => why.to_string(),
        (election::Error::Lost, None) => "our candidate node was deleted".to_string(),
        (election::Error::Zk(e), _) if e.is_outcome_unknown() => e.to_string(),
        (election::Error::Zk(e), _) => return Err(anyhow!(e).context(what.to_string())),
    };
    Ok(Next::Again { why, stopped_cmd })
}

impl ElectionRunArgs {
    /// A routine notice, on stderr with --verbose.
    fn note(&self, what: &str, text: std::fmt::Arguments) {
        if self.verbose {
            eprintln!("zkutil: {what}: {text}");
        }
    }

    /// One session's candidacy: campaign, run CMD while leader, until CMD exits, the user
    /// stops us, or the session (or our node) is lost.
    fn candidacy(&self, zk: &ZooKeeper, id: &str, what: &str, stop: &Receiver<()>) -> Result<Next> {
        let program = &self.command[0];
        let mut e = match Election::campaign_until(zk, &self.path, PREFIX, id.as_bytes(), stop) {
            Ok(e) => e,
            Err(err) => {
                // campaign_until's Lost comes from its health: expired, or silent for T
                let lost = Some(if zk.is_dead() { Lost::Expired } else { Lost::Silent(zk.session_timeout()) });
                return again_or_fail(err, lost, what, false);
            }
        };
        self.note(what, format_args!("campaigning as {id} ({})", e.name()));
        let mut state = match e.state() {
            Ok(s) => s,
            Err(err) => {
                let lost = e.lost_why();
                e.abandon();
                return again_or_fail(err, lost, what, false);
            }
        };
        let mut child: Option<Child> = None;
        let mut wake = stop.clone();
        let mut following: Option<String> = None;
        loop {
            if state.is_leader() && child.is_none() {
                self.note(what, format_args!("elected leader as {id}; running {program}"));
                let c = match Child::spawn(&self.command, margin(zk)) {
                    Ok(c) => c,
                    Err(err) => {
                        let _ = e.resign();
                        return Err(err.context(what.to_string()));
                    }
                };
                wake = stop_or_exit(stop, c.done())?;
                child = Some(c);
            } else if !state.is_leader() && following.as_deref() != Some(&state.leader.name) {
                self.note(what, format_args!("following {}", id_line(&state.leader.data)));
                following = Some(state.leader.name.clone());
            }
            // A leader keeps CMD through a suspended connection; the election's session
            // health (holder grace) ends the wait with Lost once it must let go.
            match e.wait(&wake, None) {
                Ok(Wake::Changed(s) | Wake::Resumed(s)) => {
                    state = s;
                    if child.is_some() && !state.is_leader() {
                        // cannot happen while our node stands first; never run CMD as a follower
                        let _ = child.take().map(|mut c| c.terminate());
                        e.abandon();
                        let why = format!("{} leads now", id_line(&state.leader.data));
                        return Ok(Next::Again { why, stopped_cmd: true });
                    }
                }
                Ok(Wake::Suspended | Wake::TimedOut) => {}
                Ok(Wake::Stopped) => {
                    if stop_requested() {
                        // CMD first, then the node: the next leader never overlaps with it.
                        if let Some(mut c) = child.take() {
                            c.terminate()?;
                        }
                        let _ = e.resign();
                        return Ok(Next::Exit(after_stop()));
                    }
                    let Some(c) = child.as_mut() else { continue };
                    let r = match c.done().try_recv() {
                        Ok(r) => Ok(r),
                        Err(TryRecvError::Empty) => {
                            wake = stop_or_exit(stop, c.done())?; // a spurious wake-up: wait anew
                            continue;
                        }
                        Err(TryRecvError::Disconnected) => Err(RecvError),
                    };
                    let status = c.reaped(r)?;
                    // The next candidate takes over at once (the session's close would do it too).
                    let _ = e.resign();
                    return Ok(Next::Exit(exit_code(status)));
                }
                Err(err) => {
                    let stopped_cmd = child.take().map(|mut c| c.terminate()).is_some();
                    let lost = e.lost_why();
                    e.abandon();
                    return again_or_fail(err, lost, what, stopped_cmd);
                }
            }
        }
    }
}

impl Run for ElectionRunArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let stop = shutdown();
        let what = format!("election {}", self.path);
        validate_path(&self.path, false).map_err(|e| anyhow::Error::new(e).context(what.clone()))?;
        let id = match &self.id {
            Some(id) if id.is_empty() => return Err(super::exit::usage(format!("{what}: --id must not be empty"))),
            Some(id) => id.clone(),
            None => default_id(),
        };
        // a typo fails before campaigning (127/126, as a shell), not once elected
        super::exit::check_runnable(&self.command)?;
        let mut first = Some(g.connect_owned()?);
        loop {
            let zk = match first.take() {
                Some(zk) => zk,
                None => match reconnect(g, &what, &stop)? {
                    Some(zk) => zk,
                    None => return Ok(after_stop()),
                },
            };
            match self.candidacy(&zk, &id, &what, &stop)? {
                Next::Exit(code) => return Ok(code),
                Next::Again { why, stopped_cmd: false } => {
                    eprintln!("zkutil: {what}: {why}; campaigning again with a new session")
                }
                Next::Again { why, stopped_cmd: true } => eprintln!(
                    "zkutil: {what}: lost leadership: {why}; sent {} SIGTERM; campaigning again with a new session",
                    self.command[0]
                ),
            }
            drop(zk); // closes the old session (if it is still there): its node goes with it
            if stop_requested() {
                return Ok(after_stop());
            }
        }
    }
}

impl Run for ElectionLeaderArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let stop = shutdown();
        let what = format!("election {}", self.path);
        validate_path(&self.path, false).map_err(|e| anyhow::Error::new(e).context(what.clone()))?;
        let zk = g.connect_owned()?;
        if !self.watch {
            return match election::leader(&zk, &self.path, PREFIX) {
                Ok(Some(c)) if g.json() => {
                    let mut doc = leader_json(Some(&c));
                    doc["path"] = self.path.clone().into();
                    super::output::print_json(&doc)?;
                    Ok(ExitCode::SUCCESS)
                }
                Ok(Some(c)) => {
                    println!("{}", id_line(&c.data));
                    Ok(ExitCode::SUCCESS)
                }
                Ok(None) if zk.exists(&self.path)?.is_none() => {
                    bail!("{what}: no such election (no node {})", self.path)
                }
                Ok(None) => bail!("{what}: no leader (nobody campaigns)"),
                Err(e) => Err(anyhow!(e).context(format!("{what}: reading the leader"))),
            };
        }
        let mut out = io::stdout().lock();
        let mut zk = zk;
        // The leader's node name last printed (None: `(none)`), so a change prints one line.
        let mut last: Option<Option<String>> = None;
        loop {
            // An observer: watcher grace (T); a lost session is ridden through on a new one.
            let health = SessionWatch::watcher(&zk);
            let why = loop {
                let read = health.retry(&stop, None, || match election::leader_w(&zk, &self.path, PREFIX) {
                    Ok(v) => Ok(v),
                    Err(election::Error::Zk(e)) => Err(e),
                    Err(_) => Err(health.error()),
                });
                let (leader, watch) = match read {
                    Ok(v) => v,
                    Err(Halt::Stopped) => return Ok(after_stop()),
                    Err(Halt::Zk(e)) if e.is_session_lost() => break health.lost_why().unwrap_or(Lost::Expired),
                    Err(e) => return Err(anyhow!(e).context(format!("{what}: reading the leader"))),
                };
                let name = leader.as_ref().map(|c| c.name.clone());
                if last.as_ref() != Some(&name) {
                    match &leader {
                        _ if g.json() => {
                            let ev = super::output::event("leader", &self.path, leader_json(leader.as_ref()));
                            super::output::write_json(&mut out, &ev)?;
                        }
                        Some(c) => writeln!(out, "{}", id_line(&c.data))?,
                        None => writeln!(out, "(none)")?,
                    }
                    out.flush()?;
                    last = Some(name);
                }
                select! {
                    recv(watch) -> _ => {} // fired, or disconnected with the session: read again
                    recv(health.lost()) -> _ => break health.lost_why().unwrap_or(Lost::Expired),
                    recv(stop) -> _ => return Ok(after_stop()),
                }
            };
            eprintln!("zkutil: {what}: the session was lost ({why}); watching again with a new session");
            drop(zk);
            zk = match reconnect(g, &what, &stop)? {
                Some(zk) => zk,
                None => return Ok(after_stop()),
            };
        }
    }
}
