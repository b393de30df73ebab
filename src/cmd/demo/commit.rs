//! Demo section: `zkutil commit`, two-phase commit among three participants: all commit,
//! then one votes no and all abort.

use anyhow::Result;

use super::Demo;

/// Each participant says what it does in each phase; `no` votes abort.
const STEP: &str = "case $ZKUTIL_PHASE in prepare) echo \"$ZKUTIL_ID prepares\"; [ \"$ZKUTIL_ID\" != no ];; \
                    *) echo \"$ZKUTIL_ID: $ZKUTIL_PHASE\";; esac";

fn round(d: &Demo, tx: &str, ids: [&str; 3]) -> Result<()> {
    let tagged: Vec<_> = ids
        .iter()
        .map(|id| d.spawn_tagged(id, &["commit", tx, "-n", "3", "--id", id, "--", "sh", "-c", STEP]))
        .collect::<Result<_>>()?;
    for (t, id) in tagged.into_iter().zip(ids) {
        let status = t.wait()?;
        println!("[{id}] (zkutil exited with {})", status.code().unwrap_or(-1));
    }
    Ok(())
}

pub fn run(d: &Demo) -> Result<()> {
    d.section("commit: two-phase commit, every participant commits or every one aborts");
    d.say("Each participant runs CMD with ZKUTIL_PHASE=prepare; exit 0 votes commit. Once all");
    d.say("three voted, each runs CMD again with ZKUTIL_PHASE=commit (or abort).");
    round(d, "/demo/tx-1", ["db", "cache", "index"])?;
    d.run(&["get", "/demo/tx-1/__decision__"])?;
    println!();
    d.say("Now participant `no` votes abort: everyone aborts (exit 1).");
    round(d, "/demo/tx-2", ["db", "no", "index"])?;
    Ok(())
}
