//! `zkutil demo`.
use std::process::ExitCode;

use anyhow::Result;

use super::Run;
use crate::cli::{DemoArgs, Global};

impl Run for DemoArgs {
    fn run(&self, _g: &Global) -> Result<ExitCode> {
        anyhow::bail!("not yet")
    }
}
