//! One integration-test binary (one link of the static library): every test runs against a
//! real ZooKeeper started by zkutil's own launcher.

mod across_hosts;
mod child;
mod cli;
mod client;
mod commit;
mod conventions;
mod crawl;
mod curator;
mod election;
mod health;
mod inspect;
mod is_leader;
mod kv;
mod kv_faults;
mod lease;
mod lock;
mod partition;
mod prompt;
mod queue;
mod recipes;
mod semaphore;
mod service;
mod support;
mod toolkit;
mod watch;
