//! Coordination recipes built on the safe zk API.

pub mod urlset;
