//! Demo section: the znode commands.

use anyhow::Result;

use super::Demo;

pub fn run(d: &Demo) -> Result<()> {
    d.section("znodes: the commands zkCli.sh users know");
    d.say("A znode holds a little data and may have children. create prints the path it made.");
    d.run(&["create", "/app", "config v1"])?;
    d.run(&["create", "/app/db", "postgres://10.0.0.5/app"])?;
    d.run(&["get", "/app/db"])?;
    d.say("-s adds the Stat: versions, times, the owner of an ephemeral node.");
    d.run(&["get", "-s", "/app"])?;
    d.say("Sequential nodes get a 10-digit counter appended; ephemeral ones die with their session.");
    d.run(&["create", "-s", "/app/job-", "first"])?;
    d.run(&["create", "-s", "/app/job-", "second"])?;
    d.run(&["create", "-e", "/app/i-am-gone-when-zkutil-exits"])?;
    d.run(&["ls", "/app"])?;
    d.say("set with -v is a compare-and-set: it only applies to the version you read.");
    d.run(&["set", "-v", "0", "/app", "config v2"])?;
    d.run_failing(&["set", "-v", "0", "/app", "config v3"])?;
    d.say("tree shows a subtree at a glance, with data sizes.");
    d.run(&["tree", "/app"])?;
    d.say("Errors are one line and a non-zero exit, never a stack trace.");
    d.run_failing(&["delete", "/app"])?;
    d.run(&["deleteall", "/app"])?;
    d.run_failing(&["get", "/app"])?;
    Ok(())
}
