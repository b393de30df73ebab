//! The acceptor and the per-connection threads: frame a request (line or RESP), run it,
//! answer. Replies are buffered and flushed once no further *whole* request waits in the
//! input buffer, so pipelined clients (redis-benchmark -P) get one write per burst, and a
//! partial next request never holds back the replies to the complete ones before it.
//!
//! No lock is held while writing to a socket: a client that never reads only blocks its
//! own thread (for up to the write timeout), never a writer or the replication.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use log::{debug, warn};

use super::Node;
use super::protocol::{
    Frame, FrameError, MAX_LINE, Request, check_key, complete_frame, parse_line, read_frame, write_array, write_bulk,
    write_error, write_int, write_simple,
};
use super::store::{Op, Role};
use super::{forward, peer, replication};

/// How long a reply may wait for a client that does not read.
const WRITE_TIME: Duration = Duration::from_secs(30);
/// Connections beyond `--max-clients` still get this long to show they are a peer
/// (replication and forwarding must not be locked out by clients) ...
const PROBATION_TIME: Duration = Duration::from_secs(2);
/// ... this many at a time; the rest are refused at once.
const PROBATION: usize = 64;

/// One place in a bounded set of connections, given back on drop.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        if count.fetch_add(1, Ordering::SeqCst) >= max {
            count.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Slot(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Accepts connections, one thread each. At most `max_clients` clients at a time; the next
/// ones are told `ERR too many clients` (in RESP if they spoke it) and closed. Peers
/// (replication, forwarded writes) do not count and are never refused for that reason.
///
/// `request_time`: how long a request may take to arrive once its first byte did (a slow or
/// stalled client must not hold its thread forever); idle connections between requests
/// may wait as long as they like.
pub fn spawn_acceptor(
    node: Arc<Node>,
    listener: TcpListener,
    max_clients: usize,
    request_time: Duration,
) -> io::Result<()> {
    let clients = Arc::new(AtomicUsize::new(0));
    let probation = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("acceptor".into()).spawn(move || {
        for conn in listener.incoming() {
            let mut s = match conn {
                Ok(s) => s,
                Err(e) => {
                    debug!("accept: {e}");
                    continue;
                }
            };
            let (slot, over) = match Slot::take(&clients, max_clients) {
                Some(slot) => (slot, false),
                None => match Slot::take(&probation, PROBATION) {
                    Some(slot) => (slot, true),
                    None => {
                        let _ = s.write_all(b"ERR too many clients\n");
                        continue;
                    }
                },
            };
            let node = node.clone();
            let spawned = std::thread::Builder::new().name("conn".into()).spawn(move || {
                let limit = if over { PROBATION_TIME } else { request_time };
                if let Err(e) = handle(&node, s, slot, over, limit) {
                    debug!("connection: {e}");
                }
            });
            if let Err(e) = spawned {
                warn!("cannot start a connection thread: {e}");
            }
        }
    })?;
    Ok(())
}

/// A socket whose reads fail with `TimedOut` once `deadline` passes; without a deadline,
/// once a read waited `idle` (none: reads block).
pub struct Timed {
    s: TcpStream,
    pub deadline: Option<Instant>,
    pub idle: Option<Duration>,
    armed: Option<Duration>,
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let t = match self.deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                Some(left)
            }
            None => self.idle,
        };
        if t != self.armed {
            self.s.set_read_timeout(t)?;
            self.armed = t;
        }
        self.s.read(buf)
    }
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock)
}

/// One connection. `over`: accepted beyond `--max-clients`, it may only become a peer.
fn handle(node: &Node, s: TcpStream, slot: Slot, over: bool, limit: Duration) -> io::Result<()> {
    s.set_nodelay(true)?;
    s.set_write_timeout(Some(WRITE_TIME))?;
    let from = s.peer_addr()?;
    let mut r =
        BufReader::with_capacity(64 * 1024, Timed { s: s.try_clone()?, deadline: None, idle: None, armed: None });
    let mut w = BufWriter::with_capacity(64 * 1024, s);
    loop {
        if r.buffer().is_empty() {
            // Idle between requests: no deadline (but a connection on probation has one).
            r.get_mut().deadline = over.then(|| Instant::now() + limit);
            match r.fill_buf() {
                Ok([]) => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue, // thawed (see read_frame)
                Err(e) if timed_out(&e) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        let resp = r.buffer().first() == Some(&b'*');
        r.get_mut().deadline = Some(Instant::now() + limit);
        let frame = read_frame(&mut r);
        let is_peer =
            matches!(&frame, Ok(Frame::Resp(a)) if a.first().is_some_and(|c| c.eq_ignore_ascii_case(b"PEER")));
        if over && !is_peer {
            // Beyond --max-clients, only a peer may stay.
            match resp {
                true => write_error(&mut w, "max number of clients reached")?,
                false => writeln!(w, "ERR too many clients")?,
            }
            return w.flush();
        }
        match frame {
            Ok(Frame::Eof) => return Ok(()),
            Ok(Frame::TooLong) => writeln!(w, "ERR line longer than {MAX_LINE} bytes")?,
            Ok(Frame::Line(l)) => match parse_line(&l) {
                Ok(Request::Quit) => {
                    w.flush()?;
                    return Ok(());
                }
                Ok(req) => line_reply(node, &mut w, req)?,
                Err(why) => writeln!(w, "ERR {why}")?,
            },
            Ok(Frame::Resp(args)) => {
                if is_peer {
                    drop(slot); // peers do not count as clients
                    w.flush()?;
                    return peer_conn(node, r, w, &from, &args);
                }
                if !resp_reply(node, &mut w, &args)? {
                    w.flush()?;
                    return Ok(());
                }
            }
            Err(FrameError::Protocol(m)) => {
                write_error(&mut w, &format!("Protocol error: {m}"))?;
                w.flush()?;
                return Ok(());
            }
            Err(FrameError::Io(e)) if timed_out(&e) => {
                let why = format!("request not complete after {:?}: closing", limit);
                match resp {
                    true => write_error(&mut w, &why)?,
                    false => writeln!(w, "ERR {why}")?,
                }
                return w.flush();
            }
            Err(FrameError::Io(e)) => return Err(e),
        }
        if !complete_frame(r.buffer()) {
            w.flush()?;
        }
    }
}

/// The answer to a write: PUT: existed (0/1), DEL: keys removed; or why not.
fn write_result(node: &Node, op: Op) -> Result<u64, String> {
    node.submit(op)
}

/// `ROLE`'s answer.
fn role_line(node: &Node) -> String {
    let st = node.store.st();
    let (role, lost, led) = (st.role.clone(), st.lost_history, st.led);
    drop(st);
    match role {
        Role::Leader { term } if led != Some(term) => "leader (syncing)".into(),
        Role::Leader { .. } if lost => {
            "leader (history incomplete: keys written before this leader may be missing)".into()
        }
        Role::Leader { .. } => "leader".into(),
        Role::Follower { addr, .. } => format!("follower {addr}"),
        Role::Stopping => "ERR shutting down".into(),
        Role::Electing => "ERR no leader elected yet".into(),
    }
}

fn line_reply(node: &Node, w: &mut impl Write, req: Request) -> io::Result<()> {
    match req {
        Request::Get { key } => {
            if !node.store.st().ready {
                return writeln!(w, "ERR catching up with the leader; try again");
            }
            match node.store.get(&key) {
                Some(v) if v.contains(&b'\n') || v.contains(&b'\r') => {
                    writeln!(w, "ERR the value contains a line break; read it with RESP (redis-cli)")
                }
                Some(v) => {
                    w.write_all(b"VALUE ")?;
                    w.write_all(&v)?;
                    w.write_all(b"\n")
                }
                None => writeln!(w, "NONE"),
            }
        }
        Request::Put { key, value } => match write_result(node, Op::Put(key, value.into())) {
            Ok(_) => writeln!(w, "OK"),
            Err(why) => writeln!(w, "ERR {why}"),
        },
        Request::Del { key } => match write_result(node, Op::Del(vec![key])) {
            Ok(n) if n > 0 => writeln!(w, "OK"),
            Ok(_) => writeln!(w, "NONE"),
            Err(why) => writeln!(w, "ERR {why}"),
        },
        Request::Leader => {
            let role = node.store.st().role.clone(); // the guard drops here: no lock across the write
            match role {
                Role::Leader { .. } => writeln!(w, "{}", node.addr),
                Role::Follower { addr, .. } => writeln!(w, "{addr}"),
                _ => writeln!(w, "ERR no leader elected yet"),
            }
        }
        Request::Role => writeln!(w, "{}", role_line(node)),
        Request::Ping => writeln!(w, "PONG"),
        Request::Quit => Ok(()),
    }
}

/// Answers one RESP command; false when the connection should close (QUIT).
fn resp_reply(node: &Node, w: &mut impl Write, args: &[Vec<u8>]) -> io::Result<bool> {
    let Some(cmd) = args.first() else {
        return write_error(w, "empty command").map(|_| true);
    };
    let cmd = cmd.to_ascii_uppercase();
    let n = args.len();
    let wrong = |w: &mut dyn Write| {
        write_error(
            w,
            &format!("wrong number of arguments for '{}' command", String::from_utf8_lossy(&cmd).to_lowercase()),
        )
    };
    match (&cmd[..], n) {
        (b"GET", 2) => match check_key(&args[1]) {
            Err(why) => write_error(w, &why)?,
            Ok(_) if !node.store.st().ready => write_error(w, "catching up with the leader; try again")?,
            Ok(k) => write_bulk(w, node.store.get(&k).as_deref())?,
        },
        (b"SET", 3) => match check_key(&args[1]) {
            Err(why) => write_error(w, &why)?,
            Ok(k) => match write_result(node, Op::Put(k, args[2][..].into())) {
                Ok(_) => write_simple(w, "OK")?,
                Err(why) => write_error(w, &why)?,
            },
        },
        (b"SET", n) if n > 3 => write_error(w, "syntax error (SET options are not supported)")?,
        // One write for all the keys: all of them are deleted, or none.
        (b"DEL", n) if n >= 2 => match args[1..].iter().map(|k| check_key(k)).collect::<Result<Vec<_>, _>>() {
            Err(why) => write_error(w, &why)?,
            Ok(keys) => match write_result(node, Op::Del(keys)) {
                Ok(count) => write_int(w, count as i64)?,
                Err(why) => write_error(w, &why)?,
            },
        },
        (b"PING", 1) => write_simple(w, "PONG")?,
        (b"PING", 2) | (b"ECHO", 2) => write_bulk(w, Some(&args[1]))?,
        (b"QUIT", _) => {
            write_simple(w, "OK")?;
            return Ok(false);
        }
        // What redis-cli and redis-benchmark ask on connect: empty answers keep them happy.
        (b"COMMAND", _) | (b"CONFIG", _) => w.write_all(b"*0\r\n")?,
        (b"SELECT", 2) | (b"CLIENT", _) => write_simple(w, "OK")?,
        (b"DBSIZE", 1) => write_int(w, node.store.len() as i64)?,
        (b"GET" | b"SET" | b"DEL" | b"PING" | b"ECHO" | b"SELECT" | b"DBSIZE", _) => wrong(w)?,
        _ => write_error(
            w,
            &format!("unknown command '{}'", String::from_utf8_lossy(&cmd[..cmd.len().min(32)]).to_lowercase()),
        )?,
    }
    Ok(true)
}

/// A peer connection: authenticate, then either a replication stream (`REPL`) or
/// forwarded writes.
fn peer_conn(
    node: &Node,
    mut r: BufReader<Timed>,
    mut w: BufWriter<TcpStream>,
    from: &SocketAddr,
    hello: &[Vec<u8>],
) -> io::Result<()> {
    let [_, theirs] = hello else {
        write_array(&mut w, &[b"ERR", b"PEER needs a nonce (a server of another version?)"])?;
        return w.flush();
    };
    r.get_mut().deadline = Some(Instant::now() + PROBATION_TIME); // the handshake
    if !peer::accept(&mut r, &mut w, from, &node.secret, theirs)? {
        warn!("refused a peer connection from {from}: authentication failed");
        return Ok(());
    }
    r.get_mut().deadline = None; // an idle forwarding connection is normal between peers
    w.get_ref().set_write_timeout(Some(replication::SILENCE))?;
    let first = match read_frame(&mut r) {
        Ok(Frame::Resp(a)) => a,
        _ => return Ok(()),
    };
    let num = |v: &[u8]| std::str::from_utf8(v).ok().and_then(|t| t.parse::<u64>().ok());
    match &first[..] {
        [c, term, leader, to] if c == b"REPL" => {
            let Some(term) = num(term) else { return Ok(()) };
            let leader = String::from_utf8_lossy(leader).into_owned();
            r.get_mut().idle = Some(replication::SILENCE); // the leader pings an idle stream
            replication::serve_stream(node, &mut r, &mut w, term, &leader, &String::from_utf8_lossy(to))
        }
        [c, term] if c == b"PROBE" => match num(term) {
            Some(term) => replication::serve_probe(node, &mut w, term),
            None => Ok(()),
        },
        [c, ..] if c == b"FETCH" => match replication::parse_fetch(&first) {
            Some((term, hello)) => replication::serve_fetch(node, &mut w, term, hello),
            None => Ok(()),
        },
        _ => forward::serve(node, &mut r, &mut w, first, from),
    }
}
