//! Demo section: `zkutil election run` with two candidates (as two terminals), `election
//! leader [--watch]`, and the hand-over when the leader is stopped.

use anyhow::Result;

use super::{Demo, wait_for};

const PATH: &str = "/demo/election";

/// How many candidates are registered (read quietly).
fn candidates(d: &Demo) -> usize {
    d.command(&["ls", PATH])
        .output()
        .map(|o| o.stdout.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count())
        .unwrap_or(0)
}

pub fn run(d: &Demo) -> Result<()> {
    d.section("election: a command that runs on exactly one machine, the elected leader");
    d.say("Candidates are ephemeral-sequential nodes under /demo/election; the smallest leads and");
    d.say("runs CMD, the others wait (each watching only its predecessor). [A] and [B] are two");
    d.say("terminals; [watch] prints every change of leader.");
    let watch = d.spawn_tagged("watch", &["election", "leader", "--watch", PATH])?;
    wait_for("the watch", || watch.printed("(none)"))?;
    let a_cmd =
        "echo A leads, working; trap \"echo A got SIGTERM, stopping; exit 0\" TERM; while :; do sleep 0.1; done";
    let a = d.spawn_tagged("A", &["election", "run", "--id", "A", PATH, "--", "sh", "-c", a_cmd])?;
    wait_for("A to lead", || a.printed("A leads, working"))?;
    let b_cmd = "echo B leads, working; sleep 1; echo B done; exit 3";
    let b = d.spawn_tagged("B", &["election", "run", "--id", "B", PATH, "--", "sh", "-c", b_cmd])?;
    wait_for("B to campaign", || candidates(d) == 2)?;
    d.run(&["election", "leader", PATH])?;
    d.say("Stop A (SIGTERM, as Ctrl-C would): its CMD is stopped first, then A resigns, and B");
    d.say("leads at once (a SIGKILLed A would be replaced once its session times out).");
    a.terminate()?;
    let status = a.wait()?;
    println!("[A] (zkutil exited with {})", status.code().unwrap_or(-1));
    wait_for("B to lead", || b.printed("B leads, working"))?;
    d.run(&["election", "leader", PATH])?;
    d.say("B's CMD exits 3 by itself: B resigns and exits with CMD's code.");
    let status = b.wait()?;
    println!("[B] (zkutil exited with {})", status.code().unwrap_or(-1));
    wait_for("the watch to see no leader", || watch.printed_count("(none)") == 2)?;
    watch.terminate()?;
    watch.wait()?;
    Ok(())
}
