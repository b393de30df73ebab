//! Connections between servers (replication streams, probes, fetches and forwarded
//! writes): RESP arrays on the client port, opened by `PEER` and a mutual
//! challenge-response.
//!
//! Authentication, both ways: the connecting server sends `PEER cnonce`; the accepting one
//! answers `CHALLENGE snonce proof`, proof = HMAC-SHA256(secret, "server" context, cnonce),
//! which the connecting one checks before it says anything else; it then answers
//! `AUTH HMAC-SHA256(secret, "client" context, snonce)`, checked in constant time. The
//! two contexts differ, so a proof cannot be reflected back; the secret never crosses the
//! wire, and a recorded answer is useless for the next nonce. A server without the secret
//! learns nothing (it never gets a snapshot or a write) and cannot pose as a replica or a
//! leader. Without `--secret-file`, peers are accepted only from loopback addresses (and
//! any answer passes).

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::protocol::{Frame, FrameError, read_frame, write_array};

type HmacSha256 = Hmac<Sha256>;

const CLIENT: &[u8] = b"zkutil-kv-peer-v2 client";
const SERVER: &[u8] = b"zkutil-kv-peer-v2 server";

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

    fn mac(&self, ctx: &[u8], nonce: &[u8]) -> Option<HmacSha256> {
        let key = self.0.as_ref()?;
        let mut m = HmacSha256::new_from_slice(key).ok()?; // HMAC takes keys of any length
        m.update(ctx);
        m.update(nonce);
        Some(m)
    }

    fn answer(&self, ctx: &[u8], nonce: &[u8]) -> Vec<u8> {
        self.mac(ctx, nonce).map(|m| hex(&m.finalize().into_bytes())).unwrap_or_default()
    }

    /// Constant-time check of an answer.
    fn check(&self, ctx: &[u8], nonce: &[u8], answer: &[u8]) -> bool {
        let Some(m) = self.mac(ctx, nonce) else { return true };
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
    /// Connects to `addr` and authenticates both ways. The socket keeps `timeout` as its
    /// read and write timeout (see [`Peer::set_timeouts`]).
    pub fn connect(addr: &str, secret: &Secret, timeout: Duration) -> Result<Peer, PeerError> {
        let sa = addr.to_socket_addrs()?.next().ok_or_else(|| PeerError::Refused(format!("{addr}: no address")))?;
        let s = TcpStream::connect_timeout(&sa, timeout)?;
        s.set_nodelay(true)?;
        let mut p =
            Peer { r: BufReader::with_capacity(64 * 1024, s.try_clone()?), w: BufWriter::with_capacity(64 * 1024, s) };
        p.set_timeouts(timeout)?;
        let mine = nonce()?;
        let ch = p.call(&[b"PEER", &mine])?;
        match &ch[..] {
            [c, theirs, proof] if c == b"CHALLENGE" => {
                if !secret.check(SERVER, &mine, proof) {
                    return Err(PeerError::Refused(format!(
                        "{addr}: authentication failed (it does not know our secret)"
                    )));
                }
                let ok = p.call(&[b"AUTH", &secret.answer(CLIENT, theirs)])?;
                if ok.first().map(|v| &v[..]) != Some(b"OK") {
                    return Err(refusal(&ok));
                }
            }
            _ => return Err(refusal(&ch)),
        }
        Ok(p)
    }

    /// Read and write timeout of the socket (a frozen peer must not pin a thread).
    pub fn set_timeouts(&self, d: Duration) -> io::Result<()> {
        self.w.get_ref().set_read_timeout(Some(d))?;
        self.w.get_ref().set_write_timeout(Some(d))
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

/// Accepting side, after a client sent `PEER cnonce`: prove we know the secret, challenge,
/// check the answer. Returns false (after telling the other side why) when the peer is
/// refused.
pub fn accept(
    r: &mut impl io::BufRead,
    w: &mut BufWriter<TcpStream>,
    from: &SocketAddr,
    secret: &Secret,
    theirs: &[u8],
) -> io::Result<bool> {
    if !secret.allows(from) {
        write_array(w, &[b"ERR", b"peers are accepted only from loopback without --secret-file"])?;
        w.flush()?;
        return Ok(false);
    }
    let n = nonce()?;
    write_array(w, &[b"CHALLENGE", &n, &secret.answer(SERVER, theirs)])?;
    w.flush()?;
    let ok = match read_frame(r) {
        Ok(Frame::Resp(a)) => a.len() == 2 && a[0] == b"AUTH" && secret.check(CLIENT, &n, &a[1]),
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
        let a = s.answer(CLIENT, b"abc");
        assert!(s.check(CLIENT, b"abc", &a));
        assert!(!s.check(SERVER, b"abc", &a), "a proof is not valid the other way round");
        assert!(!s.check(CLIENT, b"abd", &a));
        assert!(!s.check(CLIENT, b"abc", b"zz"));
        assert!(!Secret::new(Some(b"other".to_vec())).check(CLIENT, b"abc", &a));
        assert!(Secret::default().check(CLIENT, b"abc", b""));
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
    }
}
