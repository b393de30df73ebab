//! `zkutil election is-leader PATH --id ID`: Curator LeaderLatch's `hasLeadership` as an
//! exit code, for scripts that campaign with `election run` elsewhere and only ask. PATH may
//! also be a Curator LeaderLatch's (its `_c_<uuid>-latch-<seq>` nodes hold the participant
//! id): then ID is asked about among Curator's participants.
//!
//! The answer is read after a `sync`, so the server we ask has caught up with the leader of
//! the ensemble: a candidacy that ended before the call is not reported as leading. 0: the
//! leading candidate (the smallest sequence number) registered ID; 1: it did not, nobody
//! campaigns, or the question could not be answered (then with one `zkutil:` line on
//! stderr). A "yes" is true when read: leadership can end the moment after.

use std::process::ExitCode;

use anyhow::{Result, anyhow};

use super::Run;
use super::election::PREFIX;
use crate::cli::{ElectionIsLeaderArgs, Global};
use crate::recipes::election;
use crate::zk::{Code, validate_path};

impl Run for ElectionIsLeaderArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let what = format!("election {}", self.path);
        validate_path(&self.path, false).map_err(|e| anyhow!("{what}: {e}"))?;
        let zk = g.connect()?;
        match zk.sync(&self.path) {
            Ok(()) => {}
            Err(e) if e.code() == Some(Code::NoNode) => {}
            Err(e) => return Err(anyhow!(e).context(format!("{what}: sync"))),
        }
        // zkutil's candidates, else a Curator LeaderLatch's participants
        let leader = match election::leader(&zk, &self.path, PREFIX) {
            Ok(None) => election::latch_leader(&zk, &self.path),
            r => r,
        };
        let leader = leader.map_err(|e| anyhow!("{what}: {e}"))?;
        Ok(match leader {
            Some(c) if c.data == self.id.as_bytes() => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        })
    }
}
