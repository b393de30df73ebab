//! Coordination recipes built on the safe zk API.

pub mod barrier;
pub mod counter;
pub mod group;
mod support;
pub mod queue;
