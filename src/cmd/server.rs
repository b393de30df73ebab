//! `zkutil server start|status|stop`: a local ZooKeeper that outlives the command, tracked
//! by a state file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use crossbeam_channel::select;

use super::Run;
use super::output::print_json;
use crate::cli::{Global, ServerCmd, ServerStartArgs, ServerStateArgs};
use crate::server::{self, Ensemble, Options, State};
use crate::util::shutdown;
use serde_json::json;

fn state_path(arg: &Option<PathBuf>) -> PathBuf {
    arg.clone().unwrap_or_else(State::default_path)
}

impl Run for ServerCmd {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        match self {
            ServerCmd::Start(a) => start(g, a),
            ServerCmd::Status(a) => status(g, a),
            ServerCmd::Stop(a) => stop(g, a),
        }
    }
}

/// `zkutil server stop`, with the `--state-file` it needs.
fn stop_command(state_file: &Option<PathBuf>) -> String {
    match state_file {
        Some(p) => format!("zkutil server stop --state-file {}", p.display()),
        None => "zkutil server stop".to_string(),
    }
}

fn start(g: &Global, a: &ServerStartArgs) -> Result<ExitCode> {
    let path = state_path(&a.state_file);
    if let Ok(old) = State::load(&path)
        && server::status(&old).iter().any(|m| m.alive)
    {
        bail!(
            "a server started earlier is still running at {} (state file {}): `{}` first, or give this one \
             its own --state-file to run both",
            old.connect_string(),
            path.display(),
            stop_command(&a.state_file)
        );
    }
    let base_port = (a.port != 0).then_some(a.port); // 0: free ports picked by the OS
    for (what, len) in [("--bind", a.bind.len()), ("--netns", a.netns.len())] {
        if len != 0 && len != a.nodes {
            return Err(super::exit::usage(format!(
                "server start: {what} names {len} value(s) for --nodes {}: give one per node",
                a.nodes
            )));
        }
    }
    let launch_prefix = a.netns.iter().map(|ns| vec!["ip".into(), "netns".into(), "exec".into(), ns.clone()]).collect();
    let opts = Options {
        nodes: a.nodes,
        base_port,
        data_dir: a.data_dir.clone(),
        bind: a.bind.clone(),
        launch_prefix,
        ..Options::default()
    };
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
    let stop_cmd = stop_command(&a.state_file);
    let logs: Vec<PathBuf> = state.members.iter().map(|m| m.dir.join("zookeeper.log")).collect();
    if g.json() {
        print_json(&json!({
            "hosts": hosts,
            "state_file": path,
            "data_dir": state.base_dir,
            "temporary": state.temporary,
            "logs": logs,
        }))?;
    } else {
        // stdout is only what `eval "$(zkutil server start --port 0)"` needs
        writeln!(std::io::stdout().lock(), "export ZK_HOSTS={hosts}")?;
    }
    crate::status!("ZooKeeper serving at {hosts}");
    let kept = if state.temporary { "removed by stop" } else { "kept by stop" };
    crate::status!("data in {} ({kept}); log in {}", state.base_dir.display(), logs[0].display());
    crate::status!("`{stop_cmd}` stops it");
    Ok(ExitCode::SUCCESS)
}

fn status(g: &Global, a: &ServerStateArgs) -> Result<ExitCode> {
    let path = state_path(&a.state_file);
    let state = load(&path)?;
    let members = server::status(&state);
    let all_up = members.iter().all(|m| m.mode.is_some());
    if g.json() {
        let list: Vec<_> = members
            .iter()
            .zip(&state.members)
            .map(|(m, s)| {
                json!({
                    "address": m.address,
                    "pid": m.pid,
                    "alive": m.alive,
                    "mode": m.mode,
                    "log": s.dir.join("zookeeper.log"),
                })
            })
            .collect();
        print_json(&json!({
            "hosts": state.connect_string(),
            "state_file": path,
            "data_dir": state.base_dir,
            "serving": all_up,
            "members": list,
        }))?;
    } else {
        let mut out = std::io::stdout().lock();
        for m in &members {
            let mode = m.mode.as_deref().unwrap_or(if m.alive { "not serving" } else { "down" });
            writeln!(out, "{}  pid {}  {}", m.address, m.pid, mode)?;
        }
    }
    Ok(if all_up { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn stop(_g: &Global, a: &ServerStateArgs) -> Result<ExitCode> {
    let path = state_path(&a.state_file);
    let state = load(&path)?;
    server::stop_detached(&state, Duration::from_secs(10)).context("stopping ZooKeeper")?;
    let _ = std::fs::remove_file(&path);
    if state.temporary {
        std::fs::remove_dir_all(&state.base_dir)
            .or_else(|e| if e.kind() == std::io::ErrorKind::NotFound { Ok(()) } else { Err(e) })
            .with_context(|| format!("removing the data directory {}", state.base_dir.display()))?;
        crate::status!("stopped ZooKeeper at {}; removed {}", state.connect_string(), state.base_dir.display());
    } else {
        crate::status!("stopped ZooKeeper at {}; data kept in {}", state.connect_string(), state.base_dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &std::path::Path) -> Result<State> {
    if !path.exists() {
        bail!("no server recorded in {} (start one with `zkutil server start`)", path.display());
    }
    Ok(State::load(path)?)
}
