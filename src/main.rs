#![forbid(unsafe_code)]
//! zkutil's entry point: parse, set up logging, run, map the error to one stderr line.

use std::io;
use std::process::ExitCode;

use clap::Parser;
use zkutil::cli::Cli;
use zkutil::cmd::Run;

fn main() -> ExitCode {
    let cli = Cli::parse(); // clap prints usage errors itself and exits 2
    init_logging();
    match cli.cmd.run(&cli.global) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS, // `zkutil ls -R / | head`
        Err(e) => {
            eprintln!("zkutil: {e:#}");
            ExitCode::FAILURE
        }
    }
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
