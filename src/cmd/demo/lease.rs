//! Demo section: `zkutil lease`, a right until a time that the same id renews and others
//! are refused (exit 75), in kazoo's layout.

use anyhow::{Result, bail};

use super::Demo;

pub fn run(d: &Demo) -> Result<()> {
    d.section("lease: run a job on one host of many, until a time (kazoo's NonBlockingLease)");
    d.say("host-a takes the lease for 10 minutes and runs its job; host-b is refused (exit 75,");
    d.say("nothing run); host-a renews (same id). The lease is a record, not a session.");
    d.run(&["lease", "/demo/lease", "--duration", "10m", "--id", "host-a", "--", "echo", "host-a runs the job"])?;
    let args = ["lease", "/demo/lease", "--duration", "10m", "--id", "host-b", "--", "echo", "never printed"];
    println!("$ zkutil {}", args.join(" "));
    let status = d.command(&args).status()?;
    println!("(exit {})", status.code().unwrap_or(-1));
    if status.code() != Some(75) {
        bail!("demo: host-b should have been refused with 75, got {status}");
    }
    d.run(&[
        "lease",
        "/demo/lease",
        "--duration",
        "10m",
        "--id",
        "host-a",
        "--",
        "echo",
        "host-a renewed, runs again",
    ])?;
    d.run(&["lease", "/demo/lease", "--status"])?;
    d.run(&["get", "/demo/lease/lease_holder"])?;
    println!();
    Ok(())
}
