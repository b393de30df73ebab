//! Coordination recipes built on the safe zk API.

#![warn(missing_docs)]

pub mod barrier;
pub mod commit;
mod contender;
pub mod counter;
pub mod discovery;
pub mod election;
pub mod group;
pub mod kazoo;
pub mod lease;
pub mod lock;
pub mod partitioner;
pub mod queue;
pub mod semaphore;
mod support;
pub mod urlset;
