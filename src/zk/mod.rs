//! Safe ZooKeeper client over libzookeeper_mt: the only module with `unsafe`.
//!
//! Threading: the C library runs its own IO and completion threads. C callbacks only hand
//! events to Rust channels; sync calls are made from ordinary Rust threads; after session
//! expiry the handle is dead and its owner builds a new one.

#![warn(missing_docs)]

mod callbacks;
mod client;
mod error;
pub mod health;
mod pipeline;
mod sys;
pub mod traverse;
mod types;
mod watch;

pub use client::{ConnectOptions, Op, OpResult, ZooKeeper};
pub use error::{Code, Error, Result};
pub use health::{Halt, Health, Lost, SessionWatch};
pub use pipeline::{Answer, Requests};
pub use types::{Acl, CreateMode, MAX_PACKET, Stat, join, parent, perms, sequence_of, validate_path};
pub use watch::{EventKind, SessionEvent, WatchEvent};
