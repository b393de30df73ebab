//! Connections between servers (replication streams and forwarded writes): RESP arrays on
//! the client port, opened by `PEER` and a challenge-response.
//!
//! Authentication: the accepting server sends a random nonce; the connecting one answers
//! HMAC-SHA256(secret, nonce), checked in constant time. The secret never crosses the wire,
//! and a recorded answer is useless for the next nonce. Without `--secret-file`, peers are
//! accepted only from loopback addresses (and any answer passes).

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::protocol::{Frame, FrameError, read_frame, write_array};

type HmacSha256 = Hmac<Sha256>;

const CONTEXT: &[u8] = b"zkutil-kv-peer-v1";

/// The shared secret, if any.
#[derive(Clone, Default)]
pub struct Secret(Option<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Secret(set)" } else { "Secret(none)" })
    }
}

impl Secret {
    pub fn new(s: Option<Vec<u8>>) -> Secret {
        Secret(s)
    }

    fn mac(&self, nonce: &[u8]) -> Option<HmacSha256> {
        let key = self.0.as_ref()?;
        let mut m = HmacSha256::new_from_slice(key).ok()?; // HMAC takes keys of any length
        m.update(CONTEXT);
        m.update(nonce);
        Some(m)
    }

    fn answer(&self, nonce: &[u8]) -> Vec<u8> {
        self.mac(nonce).map(|m| hex(&m.finalize().into_bytes())).unwrap_or_default()
    }

    /// Constant-time check of an answer.
    fn check(&self, nonce: &[u8], answer: &[u8]) -> bool {
        let Some(m) = self.mac(nonce) else { return true };
        let Some(bytes) = unhex(answer) else { return false };
        m.verify_slice(&bytes).is_ok()
    }

    /// May a peer connect from `addr` at all?
    pub fn allows(&self, addr: &SocketAddr) -> bool {
        self.0.is_some() || addr.ip().is_loopback()
    }
}

fn hex(b: &[u8]) -> Vec<u8> {
    b.iter().flat_map(|x| format!("{x:02x}").into_bytes()).collect()
}

fn unhex(s: &[u8]) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks(2).map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok()).collect()
}

fn nonce() -> io::Result<Vec<u8>> {
    let mut n = vec![0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut n)?;
    Ok(hex(&n))
}

/// A connection to another server, authenticated.
pub struct Peer {
    pub r: BufReader<TcpStream>,
    pub w: BufWriter<TcpStream>,
}

/// Why a peer call failed.
#[derive(Debug)]
pub enum PeerError {
    Io(io::Error),
    /// The other side refused (its `ERR` text) or spoke nonsense.
    Refused(String),
}

impl std::fmt::Display for PeerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerError::Io(e) => e.fmt(f),
            PeerError::Refused(m) => f.write_str(m),
        }
    }
}

impl From<io::Error> for PeerError {
    fn from(e: io::Error) -> PeerError {
        PeerError::Io(e)
    }
}

impl From<FrameError> for PeerError {
    fn from(e: FrameError) -> PeerError {
        match e {
            FrameError::Io(e) => PeerError::Io(e),
            FrameError::Protocol(m) => PeerError::Refused(m),
        }
    }
}

impl Peer {
    /// Connects to `addr` and authenticates.
    pub fn connect(addr: &str, secret: &Secret, timeout: Duration) -> Result<Peer, PeerError> {
        let sa = addr.to_socket_addrs()?.next().ok_or_else(|| PeerError::Refused(format!("{addr}: no address")))?;
        let s = TcpStream::connect_timeout(&sa, timeout)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(timeout))?;
        let mut p =
            Peer { r: BufReader::with_capacity(64 * 1024, s.try_clone()?), w: BufWriter::with_capacity(64 * 1024, s) };
        let nonce = p.call(&[b"PEER"])?;
        match nonce.first().map(|v| &v[..]) {
            Some(b"CHALLENGE") if nonce.len() == 2 => {}
            _ => return Err(refusal(&nonce)),
        }
        let ok = p.call(&[b"AUTH", &secret.answer(&nonce[1])])?;
        if ok.first().map(|v| &v[..]) != Some(b"OK") {
            return Err(refusal(&ok));
        }
        p.r.get_ref().set_read_timeout(None)?;
        Ok(p)
    }

    /// Sends one array and reads one array back.
    pub fn call(&mut self, msg: &[&[u8]]) -> Result<Vec<Vec<u8>>, PeerError> {
        write_array(&mut self.w, msg)?;
        self.w.flush()?;
        self.recv()
    }

    pub fn recv(&mut self) -> Result<Vec<Vec<u8>>, PeerError> {
        match read_frame(&mut self.r)? {
            Frame::Resp(v) => Ok(v),
            Frame::Eof => Err(PeerError::Io(io::ErrorKind::UnexpectedEof.into())),
            other => Err(PeerError::Refused(format!("unexpected reply {other:?}"))),
        }
    }

    pub fn shutdown(&self) {
        let _ = self.w.get_ref().shutdown(std::net::Shutdown::Both);
    }
}

/// The refusal text of an `[ERR, reason]` reply.
pub fn refusal(msg: &[Vec<u8>]) -> PeerError {
    match msg {
        [e, why] if e == b"ERR" => PeerError::Refused(String::from_utf8_lossy(why).into_owned()),
        _ => PeerError::Refused(format!(
            "unexpected reply {:?}",
            msg.iter().map(|m| String::from_utf8_lossy(m).into_owned()).collect::<Vec<_>>()
        )),
    }
}

/// Accepting side, after a client sent `PEER`: challenge, check the answer. Returns false
/// (after telling the other side why) when the peer is refused.
pub fn accept(
    r: &mut impl io::BufRead,
    w: &mut BufWriter<TcpStream>,
    from: &SocketAddr,
    secret: &Secret,
) -> io::Result<bool> {
    if !secret.allows(from) {
        write_array(w, &[b"ERR", b"peers are accepted only from loopback without --secret-file"])?;
        w.flush()?;
        return Ok(false);
    }
    let n = nonce()?;
    write_array(w, &[b"CHALLENGE", &n])?;
    w.flush()?;
    let ok = match read_frame(r) {
        Ok(Frame::Resp(a)) => a.len() == 2 && a[0] == b"AUTH" && secret.check(&n, &a[1]),
        _ => false,
    };
    if ok {
        write_array(w, &[b"OK"])?;
    } else {
        write_array(w, &[b"ERR", b"authentication failed"])?;
    }
    w.flush()?;
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_answers() {
        let s = Secret::new(Some(b"s3cret".to_vec()));
        let a = s.answer(b"abc");
        assert!(s.check(b"abc", &a));
        assert!(!s.check(b"abd", &a));
        assert!(!s.check(b"abc", b"zz"));
        assert!(!Secret::new(Some(b"other".to_vec())).check(b"abc", &a));
        assert!(Secret::default().check(b"abc", b""));
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
    }
}
