#![forbid(unsafe_code)]
//! zkutil's entry point: parse, set up logging, run, map the error to one stderr line.

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use clap::{ArgMatches, CommandFactory, FromArgMatches};
use zkutil::cli::Cli;
use zkutil::cmd::Run;
use zkutil::cmd::exit::{Coded, Stopped, USAGE, after_stop, is_usage};

fn main() -> ExitCode {
    // clap prints its usage errors itself and exits 2; the matches name the subcommand
    // whose usage line a later usage error shows.
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_error(e),
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging();
    zkutil::cmd::output::set_quiet(cli.global.quiet);
    quiet_broken_pipe_panics();
    // A closed stdout is success (`zkutil ls -R / | head`), whether a command sees it as
    // an io::Error or `println!` panics on it; unwinding still runs every Drop (sessions
    // closed, local servers stopped).
    match panic::catch_unwind(AssertUnwindSafe(|| cli.cmd.run(&cli.global))) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Ok(Err(e)) if e.is::<Stopped>() => after_stop(), // Ctrl-C while connecting
        Ok(Err(e)) if is_usage(&e) => usage_error(&matches, &e),
        Ok(Err(e)) if e.is::<Coded>() => {
            eprintln!("zkutil: {e:#}");
            e.downcast_ref::<Coded>().map_or(ExitCode::FAILURE, |c| ExitCode::from(c.code))
        }
        Ok(Err(e)) => {
            eprintln!("zkutil: {e:#}");
            ExitCode::FAILURE
        }
        Err(payload) if is_broken_pipe_panic(payload.as_ref()) => ExitCode::SUCCESS,
        Err(payload) => panic::resume_unwind(payload),
    }
}

/// clap's own errors (help and version included), with two fixes to its usage line: it is
/// always there (clap leaves it out for a value that fails its check), and it never shows
/// `--hosts`/`--auth` as if required (clap lists the flags it saw, and a value from
/// ZK_HOSTS/ZK_AUTH counts as seen).
fn clap_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let mut root = Cli::command();
    root.build();
    let args: Vec<String> = std::env::args().collect();
    let mut cmd = &root;
    for a in args.iter().skip(1).take_while(|a| *a != "--") {
        if let Some(sub) = cmd.find_subcommand(a) {
            cmd = sub;
        }
    }
    let usage = cmd.clone().render_usage().to_string();
    let mut text = String::new();
    let mut has_usage = false;
    for line in e.render().to_string().lines() {
        if line.starts_with("Usage:") {
            has_usage = true;
            text.push_str(&line.replace(" --hosts <HOSTS>", "").replace(" --auth <USER:PASSWORD>", ""));
        } else if line.starts_with("For more information") && !has_usage {
            text.push_str(&usage);
            text.push_str("\n\n");
            text.push_str(line);
        } else {
            text.push_str(line);
        }
        text.push('\n');
    }
    eprint!("{text}");
    ExitCode::from(USAGE)
}

/// A usage error found while running: clap's layout (`error: ...`, the subcommand's usage
/// line, the `--help` hint), exit 2.
fn usage_error(matches: &ArgMatches, e: &anyhow::Error) -> ExitCode {
    let mut root = Cli::command();
    root.build();
    let (mut cmd, mut m) = (&root, matches);
    while let Some((name, sub)) = m.subcommand() {
        match cmd.find_subcommand(name) {
            Some(c) => (cmd, m) = (c, sub),
            None => break,
        }
    }
    let _ = cmd.clone().error(clap::error::ErrorKind::ValueValidation, format!("{e:#}")).print();
    ExitCode::from(USAGE)
}

/// env_logger: RUST_LOG rules; by default warnings of zkutil itself and nothing of the
/// C library (whose reconnect attempts would otherwise chatter) nor of the HTML parser
/// (every page with broken markup), info for `kv serve`.
fn init_logging() {
    let default = "warn,zookeeper=off,html5ever=off,zkutil::cmd::kv=info";
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format_timestamp_millis()
        .init();
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe))
}

/// `println!` panics with "failed printing to stdout: Broken pipe (os error 32)".
fn is_broken_pipe_panic(payload: &(dyn Any + Send)) -> bool {
    let msg = payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied());
    msg.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("os error 32"))
}

/// Keeps the panic message (and backtrace) of a broken-pipe `println!` off the terminal;
/// every other panic is reported as usual.
fn quiet_broken_pipe_panics() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info| {
        if !is_broken_pipe_panic(info.payload()) {
            default(info);
        }
    }));
}
