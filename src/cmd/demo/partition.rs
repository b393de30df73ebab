//! Demo section: `zkutil partition`, members dividing a set of items (kazoo's
//! SetPartitioner), re-divided when a member joins and when one leaves.

use anyhow::Result;

use super::{Demo, wait_for};

const SET: [&str; 6] = ["q1", "q2", "q3", "q4", "q5", "q6"];

fn member(d: &Demo, id: &str) -> Result<super::Tagged> {
    let mut args = vec!["partition", "/demo/partition", "--id", id, "--time-boundary", "500ms", "--print", "--set"];
    args.extend(SET);
    d.spawn_tagged(id, &args)
}

pub fn run(d: &Demo) -> Result<()> {
    d.section("partition: members divide a set of items, and divide again when one comes or goes");
    d.say("Each member prints its share (--print; with -- CMD it would run CMD on it). A share");
    d.say("is held through one lock per item, so no item is ever worked on twice at once.");
    let w1 = member(d, "w1")?;
    wait_for("w1's share", || w1.printed("q1 q2 q3 q4 q5 q6"))?;
    let w2 = member(d, "w2")?;
    wait_for("the division in two", || w1.printed("q1 q3 q5") && w2.printed("q2 q4 q6"))?;
    d.say("w2 leaves: w1 takes everything again.");
    w2.terminate()?;
    w2.wait()?;
    wait_for("w1 alone again", || w1.printed_count("q1 q2 q3 q4 q5 q6") == 2)?;
    w1.terminate()?;
    w1.wait()?;
    Ok(())
}
