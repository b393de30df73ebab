//! `zkutil inspect [PATH]`: browse, watch and edit the tree in a terminal UI.
//!
//! Three parts: `model` (state and keys, no terminal, no ZooKeeper), `view` (draws the
//! model with ratatui), `worker` (the ZooKeeper calls, on their own thread). This module
//! owns the terminal and the loop that carries keys, replies and watch events between
//! them.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use crossbeam_channel::{Receiver, TryRecvError};
use ratatui::Terminal;
use ratatui::crossterm::event::{self, Event, KeyEventKind};
use ratatui::crossterm::terminal::{self, EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::crossterm::{cursor, execute};
use ratatui::prelude::CrosstermBackend;

use super::Run;
use crate::cli::{Global, InspectArgs};
use crate::zk::{self, Code, SessionEvent, WatchEvent};

pub mod data;
pub mod model;
pub mod view;
mod worker;

#[cfg(test)]
mod tests;

use model::{App, Effect, WatchKey};
use worker::{Msg, Worker};

type Term = Terminal<CrosstermBackend<io::Stdout>>;

/// Raw mode and the alternate screen, undone on drop (also when a panic unwinds).
struct Screen {
    term: Term,
}

impl Screen {
    fn enter() -> Result<Screen> {
        terminal::enable_raw_mode().context("switching the terminal to raw mode")?;
        let mut out = io::stdout();
        if let Err(e) = execute!(out, EnterAlternateScreen, cursor::Hide) {
            let _ = terminal::disable_raw_mode();
            return Err(e).context("opening the alternate screen");
        }
        let term = Terminal::new(CrosstermBackend::new(io::stdout())).context("setting up the terminal")?;
        Ok(Screen { term })
    }

    fn suspend(&mut self) {
        let _ = execute!(io::stdout(), LeaveAlternateScreen, cursor::Show);
        let _ = terminal::disable_raw_mode();
    }

    fn resume(&mut self) -> Result<()> {
        terminal::enable_raw_mode()?;
        execute!(io::stdout(), EnterAlternateScreen, cursor::Hide)?;
        self.term.clear()?;
        Ok(())
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        self.suspend();
    }
}

impl Run for InspectArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        zk::validate_path(&self.path, false)?;
        if !io::stdout().is_terminal() || !io::stdin().is_terminal() {
            bail!("inspect: needs a terminal (stdin and stdout); for scripts use ls, get, tree or shell");
        }
        let stop = crate::util::shutdown(); // SIGTERM (and SIGINT outside raw mode) end it cleanly
        let zk = g.connect()?;
        if zk.exists(&self.path)?.is_none() {
            return Err(zk::Error::Zk { code: Code::NoNode, path: Some(self.path.clone()) }.into());
        }
        let opts = zk.options().clone();
        let worker = Worker::start(zk, opts).context("starting the ZooKeeper thread")?;
        let mut screen = Screen::enter()?;
        let (mut app, fx) = App::new(&g.hosts, &self.path, self.read_only);
        let mut lp = Loop { worker, watches: Vec::new(), session: None };
        let mut quit = lp.apply(&mut app, &mut screen, fx)?;
        let mut dirty = true;
        let mut last_tick = Instant::now();
        while !quit {
            if dirty {
                screen.term.draw(|f| view::render(f, &mut app))?;
                let fx = app.wants();
                quit |= lp.apply(&mut app, &mut screen, fx)?;
                dirty = false;
            }
            if event::poll(Duration::from_millis(40))? {
                match event::read()? {
                    Event::Key(k) if k.kind != KeyEventKind::Release => {
                        let fx = app.on_key(k);
                        quit |= lp.apply(&mut app, &mut screen, fx)?;
                        dirty = true;
                    }
                    Event::Resize(..) => dirty = true,
                    _ => {}
                }
            }
            let (fx, changed) = lp.drain(&mut app);
            dirty |= changed;
            quit |= lp.apply(&mut app, &mut screen, fx)?;
            if last_tick.elapsed() >= Duration::from_secs(1) {
                last_tick = Instant::now();
                app.tick(last_tick);
                dirty = true; // times shown as "ago" move on
            }
            if matches!(stop.try_recv(), Err(TryRecvError::Disconnected)) {
                break;
            }
        }
        drop(screen);
        Ok(ExitCode::SUCCESS)
    }
}

struct Loop {
    worker: Worker,
    watches: Vec<(WatchKey, Receiver<WatchEvent>)>,
    session: Option<Receiver<SessionEvent>>,
}

impl Loop {
    /// Feeds the model what arrived: replies, fired watches, session changes.
    fn drain(&mut self, app: &mut App) -> (Vec<Effect>, bool) {
        let mut fx = Vec::new();
        let mut changed = false;
        while let Ok(m) = self.worker.rx.try_recv() {
            changed = true;
            match m {
                Msg::Reply(r) => fx.extend(app.on_reply(r)),
                Msg::Watch(k, rx) => self.watches.push((k, rx)),
                Msg::Session(rx) => self.session = Some(rx),
            }
        }
        if let Some(s) = &self.session {
            while let Ok(ev) = s.try_recv() {
                changed = true;
                fx.extend(app.on_session(ev));
            }
        }
        let mut fired = Vec::new();
        self.watches.retain(|(k, rx)| match rx.try_recv() {
            Ok(ev) => {
                fired.push((k.clone(), ev.kind));
                false
            }
            Err(TryRecvError::Empty) => true,
            Err(TryRecvError::Disconnected) => false, // session gone: a new one re-arms
        });
        for (k, kind) in fired {
            changed = true;
            fx.extend(app.on_watch(k, kind));
        }
        (fx, changed)
    }

    /// Carries out the model's effects; true to quit.
    fn apply(&mut self, app: &mut App, screen: &mut Screen, fx: Vec<Effect>) -> Result<bool> {
        let mut queue = fx;
        while !queue.is_empty() {
            let mut next = Vec::new();
            for e in queue {
                match e {
                    Effect::Quit => return Ok(true),
                    Effect::Send(r) => {
                        let _ = self.worker.tx.send(r);
                    }
                    Effect::Copy(text) => {
                        // OSC 52: the terminal (or tmux) puts it on the clipboard
                        let mut out = io::stdout();
                        let _ = write!(out, "\x1b]52;c;{}\x07", data::base64(text.as_bytes()));
                        let _ = out.flush();
                    }
                    Effect::Edit { path, data, version } => {
                        screen.suspend();
                        let edited = edit_in_editor(&path, &data);
                        screen.resume()?;
                        match edited {
                            Ok(after) => app.edited(path, &data, after, version),
                            Err(e) => app.edit_failed(format!("{path}: editor: {e:#}")),
                        }
                        next.extend(app.wants());
                    }
                }
            }
            queue = next;
        }
        Ok(false)
    }
}

/// Runs $VISUAL / $EDITOR (default `vi`) on a temporary file holding `data`; returns what
/// the file holds when the editor exits 0.
fn edit_in_editor(path: &str, data: &[u8]) -> Result<Vec<u8>> {
    let editor = std::env::var("VISUAL")
        .ok()
        .filter(|e| !e.trim().is_empty())
        .or_else(|| std::env::var("EDITOR").ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".into());
    let name = path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or("root");
    let suffix = if data::show(data).0 == data::Kind::Json { ".json" } else { ".txt" };
    let mut file = tempfile::Builder::new().prefix(&format!("zk-{name}-")).suffix(suffix).tempfile()?;
    file.write_all(data)?;
    file.flush()?;
    // through sh, so EDITOR may carry arguments ("code --wait")
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("zkutil-edit")
        .arg(file.path())
        .status()
        .with_context(|| format!("running {editor}"))?;
    if !status.success() {
        bail!("{editor} exited with {status}; nothing saved");
    }
    Ok(std::fs::read(file.path())?)
}
