//! `zkutil shell`: an interactive prompt running every zkutil command over one session.

pub mod session;
