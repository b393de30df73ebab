//! One integration-test binary (one link of the static library): every test runs against a
//! real ZooKeeper started by zkutil's own launcher.

mod cli;
mod client;
mod crawl;
mod election;
mod inspect;
mod kv;
mod lock;
mod prompt;
mod queue;
mod recipes;
mod semaphore;
mod support;
mod watch;
