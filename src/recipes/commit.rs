//! Two-phase commit, the ZooKeeper recipe without a coordinator process: a transaction node
//! `PATH`, one persistent child `PATH/<id>` per participant holding its vote (empty until
//! it voted, then `commit` or `abort`, written once: a set at version 0), and the decision
//! `PATH/__decision__` (`commit`, or `abort` and a line saying why), created once: the
//! create that wins is the decision, and every other proposal reads it back. So a late vote,
//! or a participant that timed out while another saw all votes, cannot change what was
//! decided: everyone acts on the one node.
//!
//! A participant proposes `commit` when it sees N participants that all voted commit, and
//! `abort` when one voted abort, when more than N joined, or when its deadline passes (a
//! participant that died before voting, or never came). Everything is persistent: a
//! participant that restarts under the same id finds its vote and the decision again, and
//! a session that expires loses nothing but its watches.
//!
//! This module never prints.

use std::fmt;
use std::time::Instant;

use crossbeam_channel::{Receiver, Select};

use super::support::retrying;
use crate::zk::{self, Code, CreateMode, SessionWatch, WatchEvent, ZooKeeper};

/// The decision's node name under the transaction (no participant may use it).
pub const DECISION: &str = "__decision__";

/// A participant's vote, or the transaction's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    /// Go ahead.
    Commit,
    /// Roll back.
    Abort,
}

impl Vote {
    /// The word stored in ZooKeeper (and put in `ZKUTIL_PHASE`).
    pub fn word(self) -> &'static str {
        match self {
            Vote::Commit => "commit",
            Vote::Abort => "abort",
        }
    }

    /// Reads a stored vote or decision (its first line); None for empty (not voted) or junk.
    pub fn parse(data: &[u8]) -> Option<Vote> {
        let text = String::from_utf8_lossy(data);
        match text.lines().next().unwrap_or("").trim() {
            "commit" => Some(Vote::Commit),
            "abort" => Some(Vote::Abort),
            _ => None,
        }
    }
}

impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.word())
    }
}

/// The decision, as read from its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Commit or abort.
    pub outcome: Vote,
    /// Why (for an abort: who voted no, who was missing).
    pub why: String,
}

impl Decision {
    fn encode(&self) -> Vec<u8> {
        format!("{}\n{}", self.outcome, self.why).into_bytes()
    }

    fn decode(data: &[u8]) -> Option<Decision> {
        let outcome = Vote::parse(data)?;
        let text = String::from_utf8_lossy(data);
        Some(Decision { outcome, why: text.split_once('\n').map(|(_, w)| w.to_string()).unwrap_or_default() })
    }
}

/// Why a call failed.
#[derive(Debug)]
pub enum Error {
    /// ZooKeeper refused or failed a call (a lost session among them: call again with a
    /// new one, nothing is lost).
    Zk(zk::Error),
    /// The transaction was decided before this (new) participant joined.
    DecidedWithout(Decision),
    /// The id is not a usable participant name.
    BadId(String),
    /// Cancelled by the caller.
    Cancelled,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Zk(e) => e.fmt(f),
            Error::DecidedWithout(d) => write!(f, "already decided ({}) before this participant joined", d.outcome),
            Error::BadId(why) => f.write_str(why),
            Error::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for Error {}

impl From<zk::Error> for Error {
    fn from(e: zk::Error) -> Error {
        Error::Zk(e)
    }
}

/// Where a participant stands when it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// A new participant (or one that died before voting): prepare, then vote.
    ToVote,
    /// Already voted (a restart): await the decision.
    Voted(Vote),
    /// Already decided, and we took part: act on it.
    Decided(Decision),
}

/// One participant of one transaction, on one session.
pub struct Participant<'z> {
    zk: &'z ZooKeeper,
    health: SessionWatch,
    path: String,
    node: String,
    id: String,
    n: u32,
}

impl<'z> Participant<'z> {
    /// Joins the transaction at `path` as `id`, one of `n`: creates `path` (and parents) and
    /// our node unless they exist.
    pub fn join(zk: &'z ZooKeeper, path: &str, id: &str, n: u32) -> Result<(Participant<'z>, Joined), Error> {
        if id.is_empty() || id == DECISION || id.contains('/') || id == "." || id == ".." {
            return Err(Error::BadId(format!("{id:?} cannot be a participant id (a node name, not {DECISION})")));
        }
        zk::validate_path(path, false)?;
        let node = zk::join(path, id);
        let health = SessionWatch::watcher(zk);
        let me = Participant { zk, health, path: path.to_string(), node, id: id.to_string(), n };
        retrying(zk, &me.health, || zk.ensure_path(path, CreateMode::Persistent))?;
        let existed = match retrying(zk, &me.health, || zk.create(&me.node, b"", CreateMode::Persistent)) {
            Ok(_) => false,
            Err(e) if e.code() == Some(Code::NodeExists) => true,
            Err(e) => return Err(e.into()),
        };
        if let Some(d) = me.decision()? {
            // a restart (our node was there) acts on it; a newcomer took no part
            if existed {
                return Ok((me, Joined::Decided(d)));
            }
            let _ = retrying(zk, &me.health, || match zk.delete(&me.node, None) {
                Err(e) if e.code() == Some(Code::NoNode) => Ok(()),
                r => r,
            });
            return Err(Error::DecidedWithout(d));
        }
        let (data, _) = retrying(zk, &me.health, || zk.get(&me.node))?;
        let joined = match Vote::parse(&data) {
            Some(v) => Joined::Voted(v),
            None => Joined::ToVote,
        };
        Ok((me, joined))
    }

    /// Our id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The decision, if made.
    pub fn decision(&self) -> Result<Option<Decision>, Error> {
        let path = zk::join(&self.path, DECISION);
        match retrying(self.zk, &self.health, || self.zk.get(&path)) {
            Ok((data, _)) => Ok(Decision::decode(&data)),
            Err(e) if e.code() == Some(Code::NoNode) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes our vote, once (a second vote, even after a lost reply, keeps the first).
    /// Returns the vote that stands.
    pub fn vote(&self, v: Vote) -> Result<Vote, Error> {
        match retrying(self.zk, &self.health, || self.zk.set(&self.node, v.word().as_bytes(), Some(0))) {
            Ok(_) => Ok(v),
            Err(e) if e.code() == Some(Code::BadVersion) => {
                let (data, _) = retrying(self.zk, &self.health, || self.zk.get(&self.node))?;
                Ok(Vote::parse(&data).unwrap_or(v))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Proposes `d`: the first proposal is the decision; returns the decision.
    pub fn propose(&self, d: &Decision) -> Result<Decision, Error> {
        let path = zk::join(&self.path, DECISION);
        match retrying(self.zk, &self.health, || self.zk.create(&path, &d.encode(), CreateMode::Persistent)) {
            Ok(_) => Ok(d.clone()),
            // someone decided first (or our create landed before a lost reply): read it
            Err(e) if e.code() == Some(Code::NodeExists) => {
                // read it on a server that has caught up with the create that won
                let _ = retrying(self.zk, &self.health, || self.zk.sync(&path));
                match self.decision()? {
                    Some(d) => Ok(d),
                    None => Err(Error::Zk(zk::Error::Zk { code: Code::NoNode, path: Some(path) })),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for the decision, proposing one as soon as the votes make it (or at
    /// `deadline`: abort, naming who had not voted). Wakes on watches, never polls.
    pub fn await_decision(&self, deadline: Instant, cancel: &Receiver<()>) -> Result<Decision, Error> {
        loop {
            // the decision first, with a watch on its creation
            let dpath = zk::join(&self.path, DECISION);
            let (exists, dwatch) = retrying(self.zk, &self.health, || self.zk.exists_w(&dpath))?;
            if exists.is_some()
                && let Some(d) = self.decision()?
            {
                return Ok(d);
            }
            let (kids, _, cwatch) = retrying(self.zk, &self.health, || self.zk.children_w(&self.path))?;
            let mut ids: Vec<String> = kids.into_iter().filter(|k| k != DECISION).collect();
            ids.sort();
            let mut votes = Vec::new();
            let mut watches: Vec<Receiver<WatchEvent>> = vec![dwatch, cwatch];
            for id in &ids {
                let p = zk::join(&self.path, id);
                match retrying(self.zk, &self.health, || self.zk.get_w(&p)) {
                    Ok((data, _, w)) => {
                        let v = Vote::parse(&data);
                        if v.is_none() {
                            watches.push(w); // wake when it votes
                        }
                        votes.push((id.clone(), v));
                    }
                    Err(e) if e.code() == Some(Code::NoNode) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let no: Vec<&str> =
                votes.iter().filter(|(_, v)| *v == Some(Vote::Abort)).map(|(i, _)| i.as_str()).collect();
            let proposal = if !no.is_empty() {
                Some(Decision { outcome: Vote::Abort, why: format!("{} voted abort", no.join(", ")) })
            } else if votes.len() > self.n as usize {
                Some(Decision {
                    outcome: Vote::Abort,
                    why: format!("{} participants joined, more than {}", votes.len(), self.n),
                })
            } else if votes.len() == self.n as usize && votes.iter().all(|(_, v)| *v == Some(Vote::Commit)) {
                Some(Decision { outcome: Vote::Commit, why: format!("all {} voted commit", self.n) })
            } else if Instant::now() >= deadline {
                let waiting: Vec<&str> = votes.iter().filter(|(_, v)| v.is_none()).map(|(i, _)| i.as_str()).collect();
                let missing = (self.n as usize).saturating_sub(votes.len());
                let mut why = String::from("timed out");
                if !waiting.is_empty() {
                    why.push_str(&format!("; no vote from {}", waiting.join(", ")));
                }
                if missing > 0 {
                    why.push_str(&format!("; {missing} of {} never joined", self.n));
                }
                Some(Decision { outcome: Vote::Abort, why })
            } else {
                None
            };
            if let Some(p) = proposal {
                return self.propose(&p);
            }
            let mut sel = Select::new();
            for w in &watches {
                sel.recv(w);
            }
            let cancel_i = sel.recv(cancel);
            let lost_i = sel.recv(self.health.lost());
            let idx = match sel.ready_deadline(deadline) {
                Ok(i) => i,
                Err(_) => continue, // the deadline: propose abort on the next pass
            };
            if idx == cancel_i {
                return Err(Error::Cancelled);
            }
            if idx == lost_i {
                // cut off (or expired): the caller resumes on a new session, nothing is lost
                return Err(Error::Zk(self.health.error()));
            }
            // a watch fired, or disconnected (the session ended: the next call says so)
            let _ = watches[idx].try_recv();
            if !self.health.may_act() {
                return Err(Error::Zk(self.health.error()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn votes_and_decisions_read_back() {
        assert_eq!(Vote::parse(b"commit"), Some(Vote::Commit));
        assert_eq!(Vote::parse(b"abort\nc voted abort"), Some(Vote::Abort));
        assert_eq!(Vote::parse(b""), None);
        let d = Decision { outcome: Vote::Abort, why: "timed out; no vote from c".into() };
        assert_eq!(Decision::decode(&d.encode()), Some(d));
    }
}
