//! Exit codes, in one place (the README's table mirrors this).
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success |
//! | 1    | runtime failure (one `zkutil: ...` line on stderr) |
//! | 2    | usage error: clap's, or a [`Usage`] error a command returns (with a usage line) |
//! | 1    | no error line: `diff` found differences, `grep` no match, `ensemble status` a member down |
//! | 75   | `lock`, `semaphore`, `barrier wait`, ... gave up: not acquired (`--conflict-exit-code`) |
//! | 126  | CMD found but not executable (checked before anything is taken) |
//! | 127  | CMD not found (checked before anything is taken) |
//! | 130  | stopped by Ctrl-C (SIGINT) after cleaning up |
//! | 143  | stopped by SIGTERM after cleaning up |
//! | N    | `lock`, `election run`, ... pass the exit code of their CMD through |

use std::process::ExitCode;

/// A usage error: exit 2.
pub const USAGE: u8 = 2;
/// "Not acquired": the default of `--conflict-exit-code` (EX_TEMPFAIL, as `flock -E` uses).
pub const CONFLICT: u8 = 75;
/// CMD exists but cannot be executed (a shell's 126).
pub const CANNOT_EXECUTE: u8 = 126;
/// CMD not found (a shell's 127).
pub const NOT_FOUND: u8 = 127;

use crate::util::{Stop, stopped_by};

/// Exit code for a command that stopped because of a signal (or 0 when none came).
pub fn after_stop() -> ExitCode {
    match stopped_by() {
        Some(Stop::Interrupt) => ExitCode::from(130),
        Some(Stop::Terminate) => ExitCode::from(143),
        None => ExitCode::SUCCESS,
    }
}

/// The error of a command interrupted by SIGINT/SIGTERM before it had anything to clean up
/// (e.g. while connecting): `main` prints nothing for it and exits via [`after_stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped by a signal")
    }
}

impl std::error::Error for Stopped {}

/// A usage error found after parsing (a bad argument clap could not judge alone): `main`
/// prints it with the subcommand's usage line and exits 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// `return Err(usage("..."))` from a command.
pub fn usage(msg: impl Into<String>) -> anyhow::Error {
    Usage(msg.into()).into()
}

/// True for an error that is the user's input, not a failure: a [`Usage`] error, or an
/// invalid znode path that is one of the command-line arguments (one read from a file or
/// from stdin is a runtime failure), however deep it was found.
pub fn is_usage(e: &anyhow::Error) -> bool {
    e.chain().any(|c| match c.downcast_ref::<crate::zk::Error>() {
        Some(crate::zk::Error::InvalidPath { path, .. }) => std::env::args().any(|a| a == *path),
        _ => c.is::<Usage>(),
    })
}

/// The exit code a command returns when it gave up on a lock, lease or barrier.
pub fn conflict(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// A failure with its own exit code: `main` prints `zkutil: <error>` and exits `code`
/// (75 for "not acquired", 126/127 for a CMD that cannot run).
#[derive(Debug)]
pub struct Coded {
    pub code: u8,
    pub error: anyhow::Error,
}

impl std::fmt::Display for Coded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for Coded {}

/// `return Err(coded(75, anyhow!("...")))`.
pub fn coded(code: u8, error: impl Into<anyhow::Error>) -> anyhow::Error {
    Coded { code, error: error.into() }.into()
}

/// "Not acquired": a lock, lease, semaphore or barrier given up on; exits `code`
/// (`--conflict-exit-code`, default [`CONFLICT`]).
pub fn gave_up(code: u8, msg: impl std::fmt::Display) -> anyhow::Error {
    coded(code, anyhow::anyhow!("{msg}"))
}

/// Checks, before anything is taken, that CMD can be started, as a shell would find it:
/// a name without `/` is looked up in PATH. Not found: exit 127; found but not an
/// executable file: exit 126.
pub fn check_runnable(cmd: &[String]) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Some(program) = cmd.first() else { return Ok(()) };
    let executable =
        |p: &std::path::Path| std::fs::metadata(p).map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let not_found = || coded(NOT_FOUND, anyhow::anyhow!("{program}: command not found"));
    let denied = || coded(CANNOT_EXECUTE, anyhow::anyhow!("{program}: not an executable file"));
    if program.is_empty() {
        return Err(not_found());
    }
    if program.contains('/') {
        return match executable(std::path::Path::new(program)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(denied()),
            Err(_) => Err(coded(NOT_FOUND, anyhow::anyhow!("{program}: no such file"))),
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let mut seen_denied = false;
    for dir in std::env::split_paths(&path) {
        let dir = if dir.as_os_str().is_empty() { std::path::PathBuf::from(".") } else { dir };
        match executable(&dir.join(program)) {
            Ok(true) => return Ok(()),
            Ok(false) => seen_denied = true,
            Err(_) => {}
        }
    }
    Err(if seen_denied { denied() } else { not_found() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(cmd: &[&str]) -> Option<u8> {
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        check_runnable(&cmd).err().map(|e| e.downcast_ref::<Coded>().expect("coded").code)
    }

    #[test]
    fn commands_are_found_like_a_shell_does() {
        assert_eq!(code_of(&["true"]), None);
        assert_eq!(code_of(&["/bin/sh", "-c", "x"]), None);
        assert_eq!(code_of(&["no-such-command-zkutil"]), Some(NOT_FOUND));
        assert_eq!(code_of(&["/no/such/file"]), Some(NOT_FOUND));
        assert_eq!(code_of(&["/etc/passwd"]), Some(CANNOT_EXECUTE));
        assert_eq!(code_of(&["/tmp"]), Some(CANNOT_EXECUTE));
    }
}
