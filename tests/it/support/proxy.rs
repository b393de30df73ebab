//! A TCP proxy in front of one ZooKeeper server, for fault injection:
//! - `cut()`: a network partition: bytes in both directions are swallowed and new
//!   connections go nowhere, closing nothing (the client only notices by its receive
//!   timeout, 2/3 of the session timeout); `heal()` ends it for new connections;
//! - `cut_after(ops, marker, how)`: the same, or a closed connection, right after the proxy
//!   forwarded a request of one of `ops` (ZooKeeper opcodes) whose bytes contain `marker`:
//!   the server applies it, the client never hears the reply (an outcome-unknown call).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::t;

/// ZooKeeper opcodes (OpCode in the jute protocol).
pub mod op {
    pub const CREATE: i32 = 1;
    pub const SET_DATA: i32 = 5;
    pub const MULTI: i32 = 14;
    pub const CREATE2: i32 = 15;
    pub const CREATE_CONTAINER: i32 = 19;
    pub const CREATE_TTL: i32 = 21;
    /// Every kind of create (the C client sends CREATE2 for zoo_create2).
    pub const CREATES: &[i32] = &[CREATE, CREATE2, CREATE_CONTAINER, CREATE_TTL, MULTI];
}

/// What happens once the armed request went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// A partition: everything swallowed from now on, new connections too (until `heal`).
    Partition,
    /// This connection is closed (the client reconnects at once, to any server it knows);
    /// later connections pass.
    Close,
}

struct Rule {
    ops: Vec<i32>,
    marker: Vec<u8>,
    how: After,
}

#[derive(Default)]
struct State {
    cut: AtomicBool,
    rule: Mutex<Option<Rule>>,
    fired: AtomicU32,
    accepted: AtomicU32,
}

pub struct Proxy {
    pub addr: String,
    state: Arc<State>,
}

impl Proxy {
    pub fn to(upstream: &str) -> Proxy {
        let listener = t!(TcpListener::bind("127.0.0.1:0"));
        let addr = t!(listener.local_addr()).to_string();
        let state = Arc::new(State::default());
        let upstream = upstream.split(',').next().unwrap().split('/').next().unwrap().to_string();
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                st.accepted.fetch_add(1, Ordering::SeqCst);
                let closed = Arc::new(AtomicBool::new(false));
                let (c2, s2) = (t!(client.try_clone()), t!(server.try_clone()));
                let (st1, st2, cl1, cl2) = (st.clone(), st.clone(), closed.clone(), closed);
                std::thread::spawn(move || requests(client, server, &st1, &cl1));
                std::thread::spawn(move || replies(s2, c2, &st2, &cl2));
            }
        });
        Proxy { addr, state }
    }

    /// A partition from now on.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
    }

    /// Ends a partition: new connections pass again (the old ones stay dead).
    pub fn heal(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Arms the fault: after the next request of one of `ops` whose bytes contain `marker`.
    pub fn cut_after(&self, ops: &[i32], marker: &str, how: After) {
        *self.state.rule.lock().unwrap() = Some(Rule { ops: ops.to_vec(), marker: marker.as_bytes().to_vec(), how });
    }

    /// How many connections the proxy accepted so far.
    pub fn accepted(&self) -> u32 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// How many times an armed fault went off (at most once per arming).
    pub fn fired(&self) -> u32 {
        self.state.fired.load(Ordering::SeqCst)
    }
}

/// Client to server, frame by frame (4-byte length, then xid and opcode after the first,
/// the connect request), so a rule can fire right after one request.
fn requests(mut from: TcpStream, mut to: TcpStream, st: &State, closed: &AtomicBool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut first = true;
    while let Ok(n @ 1..) = from.read(&mut chunk) {
        buf.extend_from_slice(&chunk[..n]);
        while buf.len() >= 4 {
            let len = i32::from_be_bytes(buf[..4].try_into().unwrap()).max(0) as usize;
            if buf.len() < 4 + len {
                break;
            }
            let frame: Vec<u8> = buf.drain(..4 + len).collect();
            if st.cut.load(Ordering::SeqCst) || closed.load(Ordering::SeqCst) {
                continue; // swallowed
            }
            let opcode = (!first && frame.len() >= 12).then(|| i32::from_be_bytes(frame[8..12].try_into().unwrap()));
            first = false;
            let hit = {
                let mut rule = st.rule.lock().unwrap();
                let hit = rule.as_ref().is_some_and(|r| {
                    opcode.is_some_and(|o| r.ops.contains(&o)) && frame.windows(r.marker.len()).any(|w| w == r.marker)
                });
                if hit { rule.take().map(|r| r.how) } else { None }
            };
            // The fault is in place before the request leaves: its reply never gets through.
            match hit {
                Some(After::Partition) => st.cut.store(true, Ordering::SeqCst),
                Some(After::Close) => closed.store(true, Ordering::SeqCst),
                None => {}
            }
            if to.write_all(&frame).is_err() {
                return;
            }
            if let Some(how) = hit {
                st.fired.fetch_add(1, Ordering::SeqCst);
                if how == After::Close {
                    let _ = from.shutdown(Shutdown::Both);
                    // the server reads the request before the end of the stream
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }
    // keep `to` open: a partition closes nothing
    std::mem::forget(to);
}

/// Server to client, swallowed once cut (or this connection closed).
fn replies(mut from: TcpStream, mut to: TcpStream, st: &State, closed: &AtomicBool) {
    let mut chunk = [0u8; 16384];
    while let Ok(n @ 1..) = from.read(&mut chunk) {
        if st.cut.load(Ordering::SeqCst) || closed.load(Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    if closed.load(Ordering::SeqCst) {
        let _ = to.shutdown(Shutdown::Both);
    } else {
        std::mem::forget(to);
    }
}
