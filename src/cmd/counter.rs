//! `zkutil counter PATH [get | add N | set N]`: prints the value (after the change).

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use super::Run;
use super::output::print_json;
use crate::cli::{CounterArgs, CounterOp, Global};
use crate::recipes::counter::{Counter, Error as CounterError};

impl Run for CounterArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        crate::zk::validate_path(&self.path, false)?;
        let zk = g.connect()?;
        let counter = Counter::new(&zk, &self.path)?;
        let value = match self.op.unwrap_or(CounterOp::Get) {
            CounterOp::Get => counter.get()?,
            CounterOp::Add { n } => counter.add(n)?,
            CounterOp::Set { n } => match counter.set(n) {
                Ok(_) => n,
                // `set` is a blind overwrite by definition: it also repairs a node that holds
                // something other than an integer (the compare-and-set path reads it first).
                Err(CounterError::NotANumber { .. }) => {
                    zk.set(&self.path, n.to_string().as_bytes(), None)?;
                    n
                }
                Err(e) => return Err(e.into()),
            },
        };
        if g.json() {
            print_json(&json!({ "path": self.path, "value": value }))?;
        } else {
            println!("{value}");
        }
        Ok(ExitCode::SUCCESS)
    }
}
