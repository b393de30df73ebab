//! Demo section: the distributed mutex (task loop) and `zkutil lock`.

use anyhow::{Result, bail};

use super::Demo;

pub fn run(d: &Demo) -> Result<()> {
    d.section("mutex: a distributed lock, two workers taking turns");
    d.say("Each worker runs 3 tasks; a task takes the lock /demo/mutex, works up to 300ms, releases it.");
    d.say("Contenders are ephemeral-sequential nodes; each waits only on its predecessor.");
    d.say("[A] and [B] are two terminals; their tasks interleave and never overlap.");
    let args = ["mutex", "--tasks", "3", "--max-work", "300ms", "--path", "/demo/mutex"];
    let workers = vec![d.spawn_tagged("A", &args)?, d.spawn_tagged("B", &args)?];
    for w in workers {
        let status = w.wait()?;
        if !status.success() {
            bail!("demo worker failed ({status})");
        }
    }
    d.say("zkutil lock runs a command while holding a lock and passes its exit code through.");
    d.run(&["lock", "/demo/flock", "--", "sh", "-c", "echo holding /demo/flock; exit 0"])?;
    d.say("--shared takes a read lock: readers run together, a writer excludes all.");
    d.run(&["lock", "--shared", "/demo/flock", "--", "echo", "reading under a shared lock"])?;
    Ok(())
}
