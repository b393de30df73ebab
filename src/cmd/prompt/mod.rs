//! `zkutil shell`: an interactive prompt running every zkutil command over one session.

pub mod session;

use std::process::ExitCode;

use anyhow::Result;

use super::Run;
use crate::cli::{Global, ShellArgs};

impl Run for ShellArgs {
    fn run(&self, _g: &Global) -> Result<ExitCode> {
        anyhow::bail!("shell: not yet")
    }
}
