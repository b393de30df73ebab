//! `zkutil bench crawl`: serves a generated site on loopback and crawls it twice in the same
//! run, deduping in ZooKeeper and then in memory, next to the raw client limits.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::raw::measure;
use crate::cli::{BenchCrawlArgs, CrawlFormat, Global};
use crate::cmd::crawl::dedupe::{Dedupe, Local};
use crate::cmd::crawl::fetch::FetchOptions;
use crate::cmd::crawl::output::Output;
use crate::cmd::crawl::site::{self, Server};
use crate::cmd::crawl::{Config, Summary, WRITE_AHEAD, crawl};
use crate::recipes::urlset::{Claimer, UrlSet};

pub fn run(g: &Global, a: &BenchCrawlArgs) -> Result<ExitCode> {
    let server = Server::start(site::generated(a.pages, a.links)).context("starting the loopback site")?;
    let zk = g.connect()?;
    let raw = measure(&zk, 1000, 10_000, 1000)?;
    let dir = tempfile::tempdir().context("temporary directory")?;
    let cfg = Config {
        start: vec![url::Url::parse(&format!("{}/p/0.html", server.base("127.0.0.1")))?],
        depth: u32::MAX,
        threads: a.threads as usize,
        any_host: false,
        fetch: FetchOptions {
            timeout: Duration::from_secs(10),
            max_body: 5 << 20,
            robots: true,
            delay: Duration::ZERO,
            threads: a.threads as usize,
        },
        max_pages: None,
        progress: false,
        claim_start: true,
    };

    let name = format!("zkutil-bench-crawl-{}", std::process::id());
    let set = UrlSet::new(&name, 64).map_err(anyhow::Error::msg)?;
    set.prepare(&zk).context("preparing the bench crawl")?;
    let zk_run = (|| -> Result<Summary> {
        let claimer = Claimer::start(set.clone(), g.connect_owned()?, "bench", WRITE_AHEAD * cfg.threads)?;
        let dedupe = Dedupe::ZooKeeper(Local::default(), claimer);
        let out = Output::open(&dir.path().join("zk.txt"), CrawlFormat::Tsv)?;
        crawl(&cfg, &dedupe, &out)
    })();
    UrlSet::reset(&zk, &name).context("removing the bench crawl")?;
    let zk_run = zk_run?;
    let out = Output::open(&dir.path().join("mem.txt"), CrawlFormat::Tsv)?;
    let mem_run = crawl(&cfg, &Dedupe::Memory(Local::default()), &out)?;
    if crate::util::stop_requested() {
        return Ok(crate::cmd::exit::after_stop());
    }
    for (what, s) in [("zookeeper", &zk_run), ("memory", &mem_run)] {
        // robots.txt is a 404, the root page is not linked: every page once
        if s.fetched != a.pages as u64 || s.errors != 0 {
            bail!("{what} crawl fetched {} of {} pages ({} errors)", s.fetched, a.pages, s.errors);
        }
    }

    println!("server:                   {}", g.hosts);
    println!(
        "site:                     {} pages x {} links on {} ({} threads)",
        a.pages,
        a.links,
        server.base("127.0.0.1"),
        a.threads
    );
    println!("raw sequential create+delete: {:>9.0} pairs/s", raw.pairs_per_s);
    println!("raw pipelined creates:        {:>9.0} creates/s", raw.creates_per_s);
    for (what, s) in [("zookeeper dedupe", &zk_run), ("memory dedupe", &mem_run)] {
        let secs = s.elapsed.as_secs_f64().max(1e-9);
        let claims = match s.zk_creates {
            0 => "-".to_string(),
            n => format!("{:.0}", n as f64 / secs),
        };
        println!(
            "{what:<17} {:>8.0} pages/s  {:>9.0} link checks/s  {claims:>8} zk claims/s  ({} pages, {} links checked, {} claims, {} dones, {:.2} s)",
            s.pages_per_s(),
            s.checks as f64 / secs,
            s.fetched,
            s.checks,
            s.zk_creates,
            s.zk_deletes,
            secs
        );
    }
    println!("zookeeper / memory:       {:.2} (goal >= 0.5)", zk_run.pages_per_s() / mem_run.pages_per_s().max(1e-9));
    Ok(ExitCode::SUCCESS)
}
