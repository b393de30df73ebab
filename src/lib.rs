//! zkutil: ZooKeeper coordination recipes and znode commands over the official C client.
//!
//! Data flows one way: `cmd` -> `recipes` -> `zk` -> C. Only `zk` may use `unsafe`.

#[allow(unsafe_code)]
pub mod zk;

pub mod cli;
pub mod cmd;
pub mod recipes;
pub mod server;
pub mod util;

/// `zkutil --version`: zkutil's version, the C client's it was built with, and the commit.
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (ZooKeeper C client ",
    env!("ZKUTIL_C_CLIENT_VERSION"),
    ", git ",
    env!("ZKUTIL_GIT_HASH"),
    ")"
);
