//! `zkutil server start|status|stop`: a local ZooKeeper that outlives the command, tracked
//! by a state file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use crossbeam_channel::select;

use super::Run;
use crate::cli::{Global, ServerCmd, ServerStartArgs, ServerStateArgs};
use crate::server::{self, Ensemble, Options, State};
use crate::util::shutdown;

fn state_path(arg: &Option<PathBuf>) -> PathBuf {
    arg.clone().unwrap_or_else(State::default_path)
}

impl Run for ServerCmd {
    fn run(&self, _g: &Global) -> Result<ExitCode> {
        match self {
            ServerCmd::Start(a) => start(a),
            ServerCmd::Status(a) => status(a),
            ServerCmd::Stop(a) => stop(a),
        }
    }
}

fn start(a: &ServerStartArgs) -> Result<ExitCode> {
    let path = state_path(&a.state_file);
    if let Ok(old) = State::load(&path)
        && server::status(&old).iter().any(|m| m.alive)
    {
        bail!(
            "a server started earlier is still running at {} (state file {}): `zkutil server stop` first",
            old.connect_string(),
            path.display()
        );
    }
    let opts = Options { nodes: a.nodes, base_port: Some(a.port), data_dir: a.data_dir.clone(), ..Options::default() };
    // Start in a thread so Ctrl-C during start-up still tears the half-started servers
    // down (they run in their own process group and would otherwise outlive us).
    let stop = shutdown();
    let (tx, rx) = crossbeam_channel::bounded(1);
    std::thread::spawn(move || {
        let _ = tx.send(Ensemble::start(opts));
    });
    let ensemble = select! {
        recv(rx) -> r => r.context("launcher thread died")?.context("starting ZooKeeper")?,
        recv(stop) -> _ => {
            if let Ok(Ok(e)) = rx.recv() {
                drop(e);
            }
            return Ok(super::exit::after_stop());
        }
    };
    let hosts = ensemble.connect_string();
    let state = ensemble.detach();
    state.save(&path).with_context(|| format!("writing {}", path.display()))?;
    let stop_cmd = match &a.state_file {
        Some(p) => format!("zkutil server stop --state-file {}", p.display()),
        None => "zkutil server stop".to_string(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "ZooKeeper serving at {hosts}")?;
    writeln!(out, "data in {}; `{stop_cmd}` stops it", state.base_dir.display())?;
    Ok(ExitCode::SUCCESS)
}

fn status(a: &ServerStateArgs) -> Result<ExitCode> {
    let path = state_path(&a.state_file);
    let state = load(&path)?;
    let mut all_up = true;
    for m in server::status(&state) {
        let mode = m.mode.as_deref().unwrap_or(if m.alive { "not serving" } else { "down" });
        all_up &= m.mode.is_some();
        writeln!(std::io::stdout().lock(), "{}  pid {}  {}", m.address, m.pid, mode)?;
    }
    Ok(if all_up { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn stop(a: &ServerStateArgs) -> Result<ExitCode> {
    let path = state_path(&a.state_file);
    let state = load(&path)?;
    server::stop_detached(&state, Duration::from_secs(10)).context("stopping ZooKeeper")?;
    let _ = std::fs::remove_file(&path);
    writeln!(std::io::stdout().lock(), "stopped ZooKeeper at {}", state.connect_string())?;
    Ok(ExitCode::SUCCESS)
}

fn load(path: &std::path::Path) -> Result<State> {
    if !path.exists() {
        bail!("no server recorded in {} (start one with `zkutil server start`)", path.display());
    }
    Ok(State::load(path)?)
}
