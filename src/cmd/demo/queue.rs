//! Demo section: a producer/consumer queue.

use anyhow::{Context, Result, bail};

use super::Demo;

pub fn run(d: &Demo) -> Result<()> {
    d.section("queue: producers and consumers on sequential znodes");
    d.say("Items are sequential children entry-<priority>-<seq> (kazoo's Queue format); lower priority first.");
    d.run(&["queue", "produce", "/jobs", "resize photo-1", "resize photo-2", "resize photo-3"])?;
    d.run(&["queue", "produce", "--priority", "5", "/jobs", "refund order 42"])?;
    d.run(&["queue", "len", "/jobs"])?;
    d.run(&["queue", "peek", "-n", "2", "/jobs"])?;
    d.say("consume takes items in queue order; each item goes to exactly one consumer.");
    d.run(&["queue", "consume", "-n", "2", "/jobs"])?;
    d.run(&["queue", "consume", "/jobs"])?;
    d.say("A --follow consumer waits on a children watch for new items (here: until 1s idle).");
    let mut follower = d.spawn(&["queue", "consume", "--follow", "--timeout", "1s", "/jobs"])?;
    d.run(&["queue", "produce", "--count", "3", "/jobs"])?;
    let status = follower.wait().context("waiting for the follower")?;
    if !status.success() {
        bail!("the --follow consumer failed ({status})");
    }
    d.say("With -- CMD each item goes to CMD's stdin and is removed only when CMD exits 0.");
    d.run(&["queue", "produce", "/mail", "hello alice", "hello bob"])?;
    d.run(&["queue", "consume", "/mail", "--", "sh", "-c", "echo \"sending: $(cat)\""])?;
    d.say("A failing CMD leaves its item queued (a crashed consumer's claim dies with its session).");
    d.run(&["queue", "produce", "/mail", "hello mallory"])?;
    d.run_failing(&["queue", "consume", "/mail", "--", "sh", "-c", "cat >/dev/null; exit 3"])?;
    d.run(&["queue", "len", "/mail"])?;
    d.say("--delay hides an item until its time (Curator's delay queue); a follower wakes when it is due.");
    d.run(&["queue", "produce", "--delay", "2s", "/later", "reminder"])?;
    d.run(&["queue", "consume", "/later"])?;
    d.run(&["queue", "consume", "--follow", "-n", "1", "/later"])?;
    Ok(())
}
