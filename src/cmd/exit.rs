//! Exit codes, in one place (the README's table mirrors this).
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | success |
//! | 1    | runtime failure (one `zkutil: ...` line on stderr) |
//! | 2    | usage error (clap) |
//! | 130  | stopped by Ctrl-C (SIGINT) after cleaning up |
//! | 143  | stopped by SIGTERM after cleaning up |
//! | N    | `lock`, `election run`, ... pass the exit code of their CMD through |

use std::process::ExitCode;

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
