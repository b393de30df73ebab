//! `zkutil bench`.
use std::process::ExitCode;

use anyhow::Result;

use super::Run;
use crate::cli::{BenchCmd, Global};

impl Run for BenchCmd {
    fn run(&self, _g: &Global) -> Result<ExitCode> {
        anyhow::bail!("not yet")
    }
}
