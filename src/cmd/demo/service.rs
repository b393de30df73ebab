//! Demo section: `zkutil service register|list`, service discovery in Curator's layout.

use anyhow::Result;

use super::{Demo, wait_for};

pub fn run(d: &Demo) -> Result<()> {
    d.section("service: discovery that Curator (curator-x-discovery) clients understand");
    d.say("An instance is an ephemeral node /services/NAME/ID holding Curator's ServiceInstance JSON.");
    let watch = d.spawn_tagged("watch", &["service", "list", "demo-web", "--watch"])?;
    let reg = d.spawn_tagged(
        "web-1",
        &[
            "service",
            "register",
            "demo-web",
            "--id",
            "web-1",
            "--address",
            "127.0.0.1",
            "--port",
            "8080",
            "--payload",
            r#"{"zone":"a"}"#,
        ],
    )?;
    wait_for("the watch to see web-1", || watch.printed("+web-1\t127.0.0.1\t8080\t{\"zone\":\"a\"}"))?;
    d.run(&["get", "/services/demo-web/web-1"])?;
    println!();
    d.say("Stopping the instance unregisters it at once.");
    reg.terminate()?;
    reg.wait()?;
    wait_for("the watch to see web-1 go", || watch.printed("-web-1"))?;
    watch.terminate()?;
    watch.wait()?;
    Ok(())
}
