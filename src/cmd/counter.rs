//! `zkutil counter PATH [get | add N | set N]`: prints the value (after the change).

use std::process::ExitCode;

use anyhow::Result;

use super::Run;
use crate::cli::{CounterArgs, CounterOp, Global};
use crate::recipes::counter::Counter;

impl Run for CounterArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        crate::zk::validate_path(&self.path, false)?;
        let zk = g.connect()?;
        let counter = Counter::new(&zk, &self.path)?;
        let value = match self.op.unwrap_or(CounterOp::Get) {
            CounterOp::Get => counter.get()?,
            CounterOp::Add { n } => counter.add(n)?,
            CounterOp::Set { n } => {
                counter.set(n)?;
                n
            }
        };
        println!("{value}");
        Ok(ExitCode::SUCCESS)
    }
}
