//! A TCP proxy that adds a fixed one-way latency, for `bench election --hosts-rig`: this
//! kernel has no netem qdisc (`tc qdisc ... netem` says "Specified qdisc kind is unknown"),
//! so the latency between hosts is added in user space, on the connections that go through
//! the proxy, and nowhere else.
//!
//! Every chunk read from one side is written to the other `delay` after it was read, in
//! order; the two directions are independent, so a round trip through the proxy costs
//! 2 x `delay` more than without it, and a stream of chunks is delayed, not slowed (a
//! reader thread stamps and queues, a writer thread waits for each chunk's time). What it
//! does not model: loss, reordering, jitter, bandwidth, or a slow TCP handshake (the client's
//! connect completes at once against the proxy; its first bytes then wait like any others).
//! Threads: one accepting, four per connection (a reader and a writer each way).

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};

/// A listening proxy to one upstream address; dropping it stops accepting and shuts down
/// the connections it carries.
pub struct DelayProxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl DelayProxy {
    /// Listens on `ip` (a free port) and forwards every connection to `upstream`, `delay`
    /// later in each direction.
    pub fn start(ip: IpAddr, upstream: SocketAddr, delay: Duration) -> io::Result<DelayProxy> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (st, cs) = (stop.clone(), conns.clone());
        std::thread::Builder::new().name("delay-accept".into()).spawn(move || {
            for client in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if let Err(e) = carry(client, upstream, delay, &cs) {
                    log::warn!("delay proxy to {upstream}: {e}");
                }
            }
        })?;
        Ok(DelayProxy { addr, stop, conns })
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)); // wakes `accept`
        for c in self.conns.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

/// Connects to `upstream` and starts the four threads of one connection.
fn carry(client: TcpStream, upstream: SocketAddr, delay: Duration, conns: &Mutex<Vec<TcpStream>>) -> io::Result<()> {
    let server = TcpStream::connect_timeout(&upstream, Duration::from_secs(5))?;
    for s in [&client, &server] {
        s.set_nodelay(true)?; // a delayed chunk leaves at once, not after Nagle's wait
    }
    conns.lock().unwrap_or_else(PoisonError::into_inner).extend([client.try_clone()?, server.try_clone()?]);
    one_way(client.try_clone()?, server.try_clone()?, delay)?;
    one_way(server, client, delay)
}

/// A chunk read (`None`: the end of the stream) and when it is due on the other side.
type Chunk = (Instant, Option<Vec<u8>>);

/// `from` to `to`, each chunk `delay` after it was read; the end of `from` is passed on as
/// the end of `to`'s writing side, just as late.
fn one_way(from: TcpStream, to: TcpStream, delay: Duration) -> io::Result<()> {
    let (tx, rx): (Sender<Chunk>, Receiver<Chunk>) = unbounded();
    std::thread::Builder::new().name("delay-read".into()).spawn(move || {
        let mut from = from;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let chunk = match from.read(&mut buf) {
                Ok(0) | Err(_) => None,
                Ok(n) => Some(buf[..n].to_vec()),
            };
            let end = chunk.is_none();
            if tx.send((Instant::now() + delay, chunk)).is_err() || end {
                break;
            }
        }
    })?;
    std::thread::Builder::new().name("delay-write".into()).spawn(move || {
        let mut to = to;
        for (due, chunk) in rx {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            match chunk {
                Some(c) => {
                    if to.write_all(&c).is_err() {
                        let _ = to.shutdown(Shutdown::Both);
                        break;
                    }
                }
                None => {
                    let _ = to.shutdown(Shutdown::Write);
                    break;
                }
            }
        }
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server behind a 40 ms proxy: a round trip takes at least 80 ms, the bytes
    /// arrive whole and in order, and the end of the stream passes through.
    #[test]
    fn delays_each_way_and_passes_the_end() {
        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = echo.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = echo.accept().unwrap();
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = s.read(&mut buf) {
                s.write_all(&buf[..n]).unwrap();
            }
        });
        let p = DelayProxy::start("127.0.0.1".parse().unwrap(), upstream, Duration::from_millis(40)).unwrap();
        let mut c = TcpStream::connect(p.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let t = Instant::now();
        c.write_all(b"hello").unwrap();
        let mut got = [0u8; 5];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        assert!(t.elapsed() >= Duration::from_millis(80), "{:?}", t.elapsed());
        c.shutdown(Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap(); // the echo server's end, passed back
        assert!(rest.is_empty());
    }
}
