//! Demo section: `zkutil crawl` on a small site the demo serves itself on 127.0.0.1.

use anyhow::{Context, Result};

use super::Demo;
use crate::cmd::crawl::site::{Server, demo_site};

pub fn run(d: &Demo) -> Result<()> {
    d.section("crawl: a crawler whose seen-URL set lives in ZooKeeper");
    let site = Server::start(demo_site).context("serving the demo site")?;
    let start = format!("{}/", site.base("127.0.0.1"));
    let dir = tempfile::tempdir().context("temporary directory")?;
    let out = dir.path().join("URLs.txt");
    let out_s = out.to_string_lossy().into_owned();
    d.say(&format!("The demo serves a small site at {start} (robots.txt keeps crawlers out of /admin/)."));
    d.say("Crawl it two links deep with 4 threads; each URL is claimed by creating a znode.");
    d.run(&[
        "crawl",
        &start,
        "--name",
        "demo-site",
        "--depth",
        "2",
        "--threads",
        "4",
        "--buckets",
        "4",
        "--out",
        &out_s,
    ])?;
    d.say("One line per fetched URL: depth, HTTP status (or error:REASON), URL. A redirect's target");
    d.say("keeps the depth; <base href> is honoured; mailto:, #fragments, the PDF's body (not HTML),");
    d.say("/admin/ (robots.txt) and the off-site link add nothing.");
    println!("$ cat URLs.txt");
    let mut lines: Vec<String> = std::fs::read_to_string(&out)?.lines().map(str::to_string).collect();
    lines.sort(); // threads finish in any order
    for l in lines {
        println!("{l}");
    }
    d.say("The claims: /crawler/NAME/buckets/BUCKET/KEY, KEY a hash of the URL, the URL as data.");
    d.run(&["tree", "/crawler/demo-site"])?;
    let home = crate::recipes::urlset::UrlSet::new("demo-site", 4).map_err(anyhow::Error::msg)?.path_of(&start);
    d.run(&["get", &home])?;
    d.say("Another crawler of the same --name (here or on another machine) skips what is claimed:");
    d.run(&["crawl", &start, "--name", "demo-site", "--buckets", "4", "--out", &out_s])?;
    d.say("--reset clears the crawl (with no URL it only clears).");
    d.run(&["crawl", "--reset", "--name", "demo-site"])?;
    d.say("A bad start URL is one line and exit 1 (dead pages are error: lines and the crawl goes on).");
    d.run_failing(&["crawl", "ftp://127.0.0.1/", "--out", &out_s])?;
    Ok(())
}
