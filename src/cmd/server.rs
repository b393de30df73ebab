//! `zkutil server start|status|stop` (filled in with the launcher).
use std::process::ExitCode;

use anyhow::Result;

use super::Run;
use crate::cli::{Global, ServerCmd};

impl Run for ServerCmd {
    fn run(&self, _g: &Global) -> Result<ExitCode> {
        anyhow::bail!("not yet")
    }
}
