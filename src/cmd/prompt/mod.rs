//! `zkutil shell`: every zkutil command at a prompt, over one session kept open, with a
//! current node (`cd`, `pwd`, relative paths), line editing, persistent history and tab
//! completion; or the same commands from `-c` or stdin, stopping at the first failure.
//!
//! A line is parsed by the very clap definitions `zkutil` itself uses (`Cli`) and run by
//! the same `Run` dispatch; `session::lend` makes `Global::connect` hand it the shell's
//! session instead of opening one.

use std::any::Any;
use std::io::{self, BufRead, IsTerminal, Write};
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Result;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{CompletionType, Config, Editor};

use super::Run;
use crate::cli::{Cli, Cmd, Global, ShellArgs};
use crate::zk::{Code, SessionEvent, ZooKeeper};

pub mod complete;
pub mod line;
pub mod session;

use complete::Completion;
use line::resolve;

/// What one line asks of the shell.
enum Next {
    Go(ExitCode),
    /// `exit [N]`, Ctrl-D, or stdout closed.
    Exit(ExitCode),
}

struct Shell {
    global: Global,
    zk: Arc<Mutex<Arc<ZooKeeper>>>,
    cwd: Arc<Mutex<String>>,
    previous: String,
    /// `exit` was run.
    exiting: bool,
}

impl Run for ShellArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        if session::current(&g.options()).is_some() {
            anyhow::bail!("shell: already in a shell");
        }
        // Ctrl-C (SIGINT) stops the running command, not the shell; see `util::reset_shutdown`
        let _ = crate::util::shutdown();
        let zk = Arc::new(g.connect_owned()?);
        let mut sh = Shell {
            global: g.clone(),
            zk: Arc::new(Mutex::new(zk)),
            cwd: Arc::new(Mutex::new("/".into())),
            previous: "/".into(),
            exiting: false,
        };
        if let Some(text) = &self.command {
            return Ok(sh.script(text));
        }
        if !io::stdin().is_terminal() {
            return Ok(sh.stdin());
        }
        sh.interactive()
    }
}

impl Shell {
    fn cwd(&self) -> String {
        self.cwd.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn session(&self) -> Arc<ZooKeeper> {
        self.zk.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// `-c TEXT`: each command in turn; the first failure ends it with its code.
    fn script(&mut self, text: &str) -> ExitCode {
        let commands = match line::split(text) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("zkutil: shell: {e}");
                return ExitCode::from(2);
            }
        };
        for words in commands {
            match self.exec(&words) {
                Next::Go(code) if code == ExitCode::SUCCESS => {}
                Next::Go(code) | Next::Exit(code) => return code,
            }
        }
        ExitCode::SUCCESS
    }

    /// Commands from stdin, a line at a time (a command that reads stdin, such as
    /// `create PATH -` or `txn`, reads what follows).
    fn stdin(&mut self) -> ExitCode {
        let mut text = String::new();
        loop {
            text.clear();
            // the lock must end before the line runs: a command may read stdin itself
            let read = io::stdin().lock().read_line(&mut text);
            match read {
                Ok(0) => return ExitCode::SUCCESS,
                Ok(_) => {
                    let code = self.script(&text);
                    if code != ExitCode::SUCCESS || self.exiting {
                        return code;
                    }
                }
                Err(e) => {
                    eprintln!("zkutil: shell: reading stdin: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }

    fn prompt(&self) -> String {
        let zk = self.session();
        let state = match zk.state() {
            Some(SessionEvent::Connected) => "connected",
            Some(SessionEvent::ConnectedReadOnly) => "read-only",
            Some(SessionEvent::Connecting) => "reconnecting",
            Some(SessionEvent::Expired) => "expired",
            Some(SessionEvent::AuthFailed) => "auth failed",
            None => "connecting",
        };
        format!("zk {} [{state}] {}> ", self.global.hosts, self.cwd())
    }

    fn interactive(&mut self) -> Result<ExitCode> {
        let config = Config::builder()
            .completion_type(CompletionType::List)
            .history_ignore_dups(true)?
            .max_history_size(10_000)?
            .auto_add_history(false)
            .build();
        let mut rl: Editor<Completion, DefaultHistory> = Editor::with_config(config)?;
        rl.set_helper(Some(Completion::new(self.zk.clone(), self.cwd.clone())));
        let history = history_file();
        if let Some(h) = &history {
            let _ = rl.load_history(h);
        }
        eprintln!(
            "zkutil shell on {}, session {:#x} (`help` lists the commands; Ctrl-D leaves)",
            self.global.hosts,
            self.session().session_id()
        );
        let code = loop {
            match rl.readline(&self.prompt()) {
                Ok(text) => {
                    if !text.trim().is_empty() {
                        let _ = rl.add_history_entry(text.as_str());
                        if let Some(h) = &history {
                            let _ = rl.append_history(h); // at once: a killed shell keeps it
                        }
                    }
                    let commands = match line::split(&text) {
                        Ok(c) => c,
                        Err(e) => {
                            eprintln!("zkutil: shell: {e}");
                            continue;
                        }
                    };
                    let mut exit = None;
                    for words in commands {
                        match self.exec(&words) {
                            Next::Go(c) if c == ExitCode::SUCCESS => {}
                            Next::Go(_) => break, // the rest of the line is skipped, as with `&&`
                            Next::Exit(c) => {
                                exit = Some(c);
                                break;
                            }
                        }
                    }
                    if let Some(c) = exit {
                        break c;
                    }
                }
                Err(ReadlineError::Interrupted) => continue, // Ctrl-C: drop the line
                Err(ReadlineError::Eof) => break ExitCode::SUCCESS,
                Err(e) => return Err(e.into()),
            }
        };
        Ok(code)
    }

    /// Runs one command (words as typed).
    fn exec(&mut self, words: &[String]) -> Next {
        let Some(first) = words.first() else { return Next::Go(ExitCode::SUCCESS) };
        match first.as_str() {
            "exit" | "quit" => {
                let code = words.get(1).and_then(|c| c.parse::<u8>().ok()).unwrap_or(0);
                self.exiting = true;
                return Next::Exit(ExitCode::from(code));
            }
            "pwd" => {
                return match writeln!(io::stdout(), "{}", self.cwd()) {
                    Ok(()) => Next::Go(ExitCode::SUCCESS),
                    Err(_) => Next::Exit(ExitCode::SUCCESS), // stdout closed
                };
            }
            "cd" => return Next::Go(self.cd(words.get(1).map(String::as_str))),
            "help" if words.len() == 1 => {
                let mut help = Cli::command().render_help().to_string();
                help.push_str(
                    "\nIn the shell also: cd [PATH|-|..]  pwd  exit [CODE]; relative paths start at the current node.\n",
                );
                print!("{help}");
                return Next::Go(ExitCode::SUCCESS);
            }
            _ => {}
        }
        let mut argv: Vec<String> = std::iter::once("zkutil".to_string()).chain(words.iter().cloned()).collect();
        let cli = match self.parse(&mut argv) {
            Ok(cli) => cli,
            Err(e) => {
                let _ = e.print();
                return Next::Go(if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS });
            }
        };
        if matches!(cli.cmd, Cmd::Shell(_)) {
            eprintln!("zkutil: shell: already in a shell");
            return Next::Go(ExitCode::from(2));
        }
        self.ensure_session();
        let _lent = session::lend(self.session());
        super::output::set_quiet(cli.global.quiet);
        let result = panic::catch_unwind(AssertUnwindSafe(|| cli.cmd.run(&cli.global)));
        let stopped = crate::util::stop_requested();
        let code = match result {
            Ok(Ok(code)) => code,
            Ok(Err(e)) if is_broken_pipe(&e) => return Next::Exit(ExitCode::SUCCESS),
            Ok(Err(e)) if e.is::<super::exit::Stopped>() => super::exit::after_stop(),
            // the same mapping as main's: usage errors exit 2, coded ones with their code
            Ok(Err(e)) if super::exit::is_usage(&e) => {
                eprintln!("zkutil: {e:#}");
                ExitCode::from(super::exit::USAGE)
            }
            Ok(Err(e)) if e.is::<super::exit::Coded>() => {
                eprintln!("zkutil: {e:#}");
                e.downcast_ref::<super::exit::Coded>().map_or(ExitCode::FAILURE, |c| ExitCode::from(c.code))
            }
            Ok(Err(e)) => {
                eprintln!("zkutil: {e:#}");
                ExitCode::FAILURE
            }
            Err(p) if is_broken_pipe_panic(p.as_ref()) => return Next::Exit(ExitCode::SUCCESS),
            Err(p) => {
                let msg = p.downcast_ref::<String>().map(String::as_str).or_else(|| p.downcast_ref::<&str>().copied());
                eprintln!("zkutil: {}: crashed: {}", words.join(" "), msg.unwrap_or("panic"));
                ExitCode::FAILURE
            }
        };
        if crate::util::stopped_by() == Some(crate::util::Stop::Terminate) {
            return Next::Exit(super::exit::after_stop()); // SIGTERM ends the shell too
        }
        if stopped {
            crate::util::reset_shutdown(); // Ctrl-C stopped this line; the next one runs
        }
        Next::Go(code)
    }

    /// Parses a line with zkutil's own definitions: relative paths made absolute against
    /// the current node; the shell's connection flags unless the line gives its own.
    fn parse(&self, argv: &mut Vec<String>) -> Result<Cli, clap::Error> {
        let cwd = self.cwd();
        let root = Cli::command();
        // Path arguments that insist on an absolute path reject a relative one while parsing:
        // make the rejected word absolute and parse again.
        let mut tries = 0;
        let m = loop {
            let e = match root.clone().try_get_matches_from(argv.iter()) {
                Ok(m) => break m,
                Err(e) => e,
            };
            let (Some(ContextValue::String(arg)), Some(ContextValue::String(bad))) =
                (e.get(ContextKind::InvalidArg), e.get(ContextKind::InvalidValue))
            else {
                return Err(e);
            };
            tries += 1;
            if e.kind() != ErrorKind::ValueValidation || !arg.contains("PATH") || bad.starts_with('/') || tries > 16 {
                return Err(e);
            }
            let abs = resolve(&cwd, bad);
            match argv.iter_mut().skip(1).rev().find(|t| *t == bad) {
                Some(t) => *t = abs,
                None => return Err(e),
            }
        };
        let (mut level, mut cmd) = (&m, &root);
        while let Some((name, sub)) = level.subcommand() {
            let Some(c) = cmd.find_subcommand(name) else { break };
            (level, cmd) = (sub, c);
            if !level.ids().any(|id| id.as_str() == "path") {
                continue;
            }
            match level.value_source("path") {
                Some(ValueSource::CommandLine) => {
                    let raw: Vec<String> =
                        level.get_raw("path").into_iter().flatten().map(|v| v.to_string_lossy().into_owned()).collect();
                    for v in raw.iter().filter(|v| !v.starts_with('/')) {
                        let abs = resolve(&cwd, v);
                        if let Some(t) = argv.iter_mut().skip(1).rev().find(|t| *t == v) {
                            *t = abs;
                        } else if let Some(t) = argv.iter_mut().rev().find(|t| t.as_str() == format!("--path={v}")) {
                            *t = format!("--path={abs}");
                        }
                    }
                }
                Some(ValueSource::DefaultValue)
                    if cwd != "/"
                        && !argv.iter().any(|a| a == "--")
                        && cmd.get_arguments().any(|a| a.get_id() == "path" && a.is_positional()) =>
                {
                    argv.push(cwd.clone()); // `ls` lists the current node
                }
                _ => {}
            }
        }
        let m = root.try_get_matches_from(argv.iter())?;
        let mut cli = Cli::from_arg_matches(&m)?;
        let given = |id: &str| m.value_source(id) == Some(ValueSource::CommandLine);
        let g = &mut cli.global;
        if !given("hosts") {
            g.hosts = self.global.hosts.clone();
        }
        if !given("session_timeout") {
            g.session_timeout = self.global.session_timeout;
        }
        if !given("connect_timeout") {
            g.connect_timeout = self.global.connect_timeout;
        }
        if !given("auth") {
            g.auth = self.global.auth.clone();
        }
        if !given("output") {
            g.output = self.global.output; // `zkutil -o json shell`: every line in JSON
        }
        g.quiet |= self.global.quiet;
        Ok(cli)
    }

    fn cd(&mut self, to: Option<&str>) -> ExitCode {
        let cwd = self.cwd();
        let target = match to {
            None => "/".to_string(),
            Some("-") => self.previous.clone(),
            Some(p) => resolve(&cwd, p),
        };
        self.ensure_session();
        match self.session().exists(&target) {
            Ok(Some(_)) => {
                self.previous = cwd;
                *self.cwd.lock().unwrap_or_else(|e| e.into_inner()) = target;
                ExitCode::SUCCESS
            }
            Ok(None) => {
                eprintln!("zkutil: cd: {target}: {}", Code::NoNode);
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("zkutil: cd: {e}");
                ExitCode::FAILURE
            }
        }
    }

    /// After the session expired, a new one (said on stderr); a failure to connect is
    /// left to the command, which reports it.
    fn ensure_session(&mut self) {
        if !self.session().is_dead() {
            return;
        }
        match self.global.connect_owned() {
            Ok(zk) => {
                eprintln!("zkutil: shell: the session expired; working in a new session {:#x}", zk.session_id());
                *self.zk.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(zk);
            }
            Err(e) => eprintln!("zkutil: shell: the session expired and a new one failed: {e:#}"),
        }
    }
}

/// `$XDG_STATE_HOME/zkutil/history`, else `~/.local/state/zkutil/history` (its folder
/// created); None without a home.
fn history_file() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()).map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".local/state"))
    })?;
    let dir = state.join("zkutil");
    std::fs::create_dir_all(&dir).ok()?;
    Some(dir.join("history"))
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

fn is_broken_pipe_panic(payload: &(dyn Any + Send)) -> bool {
    let msg = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
    msg.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("os error 32"))
}
