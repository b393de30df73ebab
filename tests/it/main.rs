//! One integration-test binary (one link of the static library): every test runs against a
//! real ZooKeeper started by zkutil's own launcher.

mod child;
mod cli;
mod client;
mod conventions;
mod crawl;
mod election;
mod health;
mod inspect;
mod kv;
mod kv_faults;
mod lock;
mod queue;
mod recipes;
mod semaphore;
mod support;
mod toolkit;
mod watch;
