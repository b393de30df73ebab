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
