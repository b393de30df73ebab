//! Safe ZooKeeper client (placeholder).
mod sys;
