//! Followers forward PUT and DEL to the leader over pooled peer connections and relay its
//! reply. One request at a time per connection; a connection is reused by later requests
//! (so 50 concurrent clients on a follower use up to 50 connections to the leader, each
//! with its own thread there: no head-of-line blocking behind a slow write).

use std::io::{BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::Duration;

use super::Node;
use super::peer::{Peer, PeerError, refusal};
use super::protocol::{Frame, read_frame, write_array};
use super::store::{Op, WriteError};

const IDLE_MAX: usize = 256;

/// What the leader answered.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Applied and acknowledged by every live replica; whether the key existed.
    Ok(bool),
    /// The server we reached does not lead (any more).
    NotLeader,
    /// The leader applied it but could not get every ack, or refused it.
    Err(String),
}

#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<(String, Peer)>>,
}

impl Pool {
    /// Sends `op` to the leader at `addr`.
    pub fn call(&self, node: &Node, addr: &str, op: &Op) -> Result<Reply, PeerError> {
        let conn = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            idle.iter().position(|(a, _)| a == addr).map(|i| idle.swap_remove(i).1)
        };
        let mut p = match conn {
            Some(p) => p,
            None => Peer::connect(addr, &node.secret, Duration::from_secs(2))?,
        };
        let reply = match op {
            Op::Put(k, v) => p.call(&[b"PUT", k, v])?,
            Op::Del(k) => p.call(&[b"DEL", k])?,
        };
        let r = match &reply[..] {
            [ok, e] if ok == b"OK" => Reply::Ok(e == b"1"),
            [n] if n == b"NOTLEADER" => Reply::NotLeader,
            [e, why] if e == b"ERR" => Reply::Err(String::from_utf8_lossy(why).into_owned()),
            other => return Err(refusal(other)),
        };
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_MAX {
            idle.push((addr.to_string(), p));
        }
        Ok(r)
    }

    /// Drops idle connections to servers other than `addr` (after a leader change).
    pub fn retain(&self, addr: &str) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(a, p)| {
            let keep = a == addr;
            if !keep {
                p.shutdown();
            }
            keep
        });
    }
}

/// Leader side of a forwarding connection: executes PUT/DEL frames as this server's own
/// writes (only while it leads) until the connection closes.
pub fn serve(
    node: &Node,
    r: &mut BufReader<TcpStream>,
    w: &mut BufWriter<TcpStream>,
    first: Vec<Vec<u8>>,
    _from: &SocketAddr,
) -> std::io::Result<()> {
    let mut msg = first;
    loop {
        let op = match &msg[..] {
            [c, k, v] if c == b"PUT" => Some(Op::Put(k.clone(), v.clone())),
            [c, k] if c == b"DEL" => Some(Op::Del(k.clone())),
            _ => None,
        };
        match op {
            None => write_array(w, &[b"ERR", b"unknown peer request"])?,
            Some(op) => match node.store.write(op, node.write_timeout) {
                Ok((existed, _)) => write_array(w, &[b"OK", if existed { b"1" } else { b"0" }])?,
                Err(WriteError::NotLeader) => write_array(w, &[b"NOTLEADER"])?,
                Err(WriteError::Timeout) => write_array(w, &[b"ERR", super::TIMEOUT_TEXT.as_bytes()])?,
            },
        }
        w.flush()?;
        msg = match read_frame(r) {
            Ok(Frame::Resp(a)) => a,
            _ => return Ok(()),
        };
    }
}
