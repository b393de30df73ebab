//! Wire formats: the netcat-friendly line protocol and RESP (Redis's), framed from one
//! buffered reader, so both can be spoken on one connection. Pure parsing and encoding, no
//! I/O policy: the server decides what to do with each frame.
//!
//! Framing never trusts the peer: a line is read at most [`MAX_LINE`] bytes into memory
//! (the rest of a longer line is discarded up to its newline, so the connection stays
//! usable), a RESP array holds at most [`MAX_ARGS`] bulk strings of at most [`MAX_BULK`]
//! bytes each. Anything malformed is an error value, never a panic.

use std::io::{self, BufRead, Read, Write};

/// Longest request line, newline excluded.
pub const MAX_LINE: usize = 64 * 1024;
/// Longest key, in bytes.
pub const MAX_KEY: usize = 250;
/// Most elements in one RESP array.
pub const MAX_ARGS: usize = 1024;
/// Longest RESP bulk string.
pub const MAX_BULK: usize = 1024 * 1024;
/// Most bytes of bulk strings in one RESP array (a SET of the largest value, with room to
/// spare): without it, 1024 bulk strings of 1 MiB would be a 1 GiB request.
pub const MAX_REQUEST: usize = 2 * MAX_BULK;

/// One framed request.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A line, without its `\n` / `\r\n`.
    Line(Vec<u8>),
    /// A line longer than [`MAX_LINE`]; it was discarded up to its newline.
    TooLong,
    /// A RESP array of bulk strings.
    Resp(Vec<Vec<u8>>),
    /// The peer closed the connection.
    Eof,
}

/// Why a frame could not be read.
#[derive(Debug)]
pub enum FrameError {
    Io(io::Error),
    /// Broken RESP: the stream cannot be re-framed, the connection must close.
    Protocol(String),
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> FrameError {
        FrameError::Io(e)
    }
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => e.fmt(f),
            FrameError::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

/// Reads the next request: RESP when it starts with `*`, a line otherwise.
///
/// `EINTR` is retried: a read blocked on a socket with a timeout (every peer socket has
/// one) fails with it when the process is stopped and continued (signal(7): such calls
/// are never restarted after a stop signal). Without the retry a server thawed after a
/// SIGSTOP dropped its replication streams and reported a forwarded write whose `OK` sat
/// in its socket as `ERR outcome unknown`.
pub fn read_frame(r: &mut impl BufRead) -> Result<Frame, FrameError> {
    let first = loop {
        match r.fill_buf() {
            Ok([]) => return Ok(Frame::Eof),
            Ok([b, ..]) => break *b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    };
    if first == b'*' {
        read_resp(r)
    } else {
        Ok(match read_line(r, MAX_LINE)? {
            Line::Eof => Frame::Eof,
            Line::TooLong => Frame::TooLong,
            Line::Ok(l) => Frame::Line(l),
        })
    }
}

enum Line {
    Ok(Vec<u8>),
    TooLong,
    Eof,
}

/// Reads up to `\n` (dropping it and a `\r` before it), keeping at most `max` bytes.
/// A final line without a newline still counts as a line.
fn read_line(r: &mut impl BufRead, max: usize) -> io::Result<Line> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut seen_any = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            if !seen_any {
                return Ok(Line::Eof);
            }
            break;
        }
        seen_any = true;
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > max + 1 {
                // +1: a `\r` that will be stripped may sit right at the limit
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        r.consume(used);
        if done.is_some() {
            break;
        }
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if too_long || line.len() > max {
        return Ok(Line::TooLong);
    }
    Ok(Line::Ok(line))
}

fn read_resp(r: &mut impl BufRead) -> Result<Frame, FrameError> {
    let n = header(r, b'*')?;
    if n > MAX_ARGS as i64 {
        return Err(FrameError::Protocol(format!("array of {n} elements (limit {MAX_ARGS})")));
    }
    let mut args = Vec::with_capacity(n.clamp(0, 64) as usize);
    let mut total = 0usize;
    for _ in 0..n.max(0) {
        let len = header(r, b'$')?;
        if !(0..=MAX_BULK as i64).contains(&len) {
            return Err(FrameError::Protocol(format!("bulk string of {len} bytes (limit {MAX_BULK})")));
        }
        total += len as usize;
        if total > MAX_REQUEST {
            return Err(FrameError::Protocol(format!("request of more than {MAX_REQUEST} bytes")));
        }
        // Memory grows with the bytes that actually arrive, not with the announced length.
        let mut v = Vec::with_capacity((len as usize + 2).min(64 * 1024));
        let want = len as u64 + 2;
        if r.by_ref().take(want).read_to_end(&mut v)? as u64 != want {
            return Err(FrameError::Protocol("connection closed inside a request".into()));
        }
        if &v[len as usize..] != b"\r\n" {
            return Err(FrameError::Protocol("bulk string not followed by CRLF".into()));
        }
        v.truncate(len as usize);
        args.push(v);
    }
    Ok(Frame::Resp(args))
}

/// True when `buf` starts with a whole request (so answering it needs no further read).
/// A malformed start counts as whole: reading it fails at once, without waiting.
pub fn complete_frame(buf: &[u8]) -> bool {
    fn number(buf: &[u8], at: usize) -> Option<Option<(i64, usize)>> {
        let rest = buf.get(at + 1..)?;
        let Some(nl) = rest.iter().position(|b| *b == b'\n') else { return (rest.len() <= 32).then_some(None) };
        let digits = std::str::from_utf8(&rest[..nl]).ok()?.trim_end_matches('\r');
        Some(Some((digits.parse().ok()?, at + 1 + nl + 1)))
    }
    match buf.first() {
        None => false,
        Some(b'*') => {
            let Some(h) = number(buf, 0) else { return true };
            let Some((n, mut i)) = h else { return false };
            for _ in 0..n.clamp(0, MAX_ARGS as i64 + 1) {
                match buf.get(i) {
                    None => return false,
                    Some(b'$') => {}
                    Some(_) => return true,
                }
                let Some(h) = number(buf, i) else { return true };
                let Some((len, j)) = h else { return false };
                if !(0..=MAX_BULK as i64).contains(&len) {
                    return true;
                }
                i = j + len as usize + 2;
                if i > buf.len() {
                    return false;
                }
            }
            true
        }
        Some(_) => buf.contains(&b'\n'),
    }
}

/// Reads `<kind><integer>\r\n`.
fn header(r: &mut impl BufRead, kind: u8) -> Result<i64, FrameError> {
    let line = match read_line(r, 32)? {
        Line::Ok(l) => l,
        Line::TooLong => return Err(FrameError::Protocol("header line too long".into())),
        Line::Eof => return Err(FrameError::Protocol("connection closed inside a request".into())),
    };
    if line.first() != Some(&kind) {
        return Err(FrameError::Protocol(format!(
            "expected '{}', got {:?}",
            kind as char,
            String::from_utf8_lossy(&line)
        )));
    }
    std::str::from_utf8(&line[1..])
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or_else(|| FrameError::Protocol(format!("bad length {:?}", String::from_utf8_lossy(&line[1..]))))
}

/// A parsed request of the line protocol.
#[derive(Debug, PartialEq, Eq)]
pub enum Request {
    Put { key: Vec<u8>, value: Vec<u8> },
    Get { key: Vec<u8> },
    Del { key: Vec<u8> },
    Leader,
    Role,
    Ping,
    Quit,
}

/// Parses one line. `Err` is the reason for an `ERR <reason>` reply.
///
/// `PUT key value`: exactly one space after the command and after the key; the value is
/// the rest of the line, spaces included, possibly empty (`PUT key ` stores ""), but
/// `PUT key` with no separator is a missing argument.
pub fn parse_line(line: &[u8]) -> Result<Request, String> {
    if line.is_empty() {
        return Err("empty request".into());
    }
    let (cmd, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    let cmd = cmd.to_ascii_uppercase();
    let no_args = |name: &str, req: Request| match rest {
        None => Ok(req),
        Some(_) => Err(format!("{name} takes no argument")),
    };
    match &cmd[..] {
        b"PUT" | b"SET" => {
            let rest = rest.ok_or("PUT needs a key and a value")?;
            let Some(i) = rest.iter().position(|&b| b == b' ') else {
                return Err(
                    "PUT needs a key and a value (an empty value is written `PUT key ` with a trailing space)".into()
                );
            };
            let key = check_key(&rest[..i])?;
            Ok(Request::Put { key, value: rest[i + 1..].to_vec() })
        }
        b"GET" => Ok(Request::Get { key: check_key(rest.ok_or("GET needs a key")?)? }),
        b"DEL" => Ok(Request::Del { key: check_key(rest.ok_or("DEL needs a key")?)? }),
        b"LEADER" => no_args("LEADER", Request::Leader),
        b"ROLE" => no_args("ROLE", Request::Role),
        b"PING" => no_args("PING", Request::Ping),
        b"QUIT" => no_args("QUIT", Request::Quit),
        _ => Err(format!("unknown command {:?}", String::from_utf8_lossy(&cmd[..cmd.len().min(32)]))),
    }
}

/// A key: 1 to [`MAX_KEY`] bytes, no whitespace or control characters.
pub fn check_key(key: &[u8]) -> Result<Vec<u8>, String> {
    if key.is_empty() {
        return Err("empty key".into());
    }
    if key.len() > MAX_KEY {
        return Err(format!("key longer than {MAX_KEY} bytes"));
    }
    if key.iter().any(|b| b.is_ascii_whitespace() || b.is_ascii_control()) {
        return Err("key contains whitespace or a control character".into());
    }
    Ok(key.to_vec())
}

// ---- RESP encoding ----

/// `*N` then N bulk strings: requests and every peer message.
pub fn write_array<W: Write + ?Sized>(w: &mut W, items: &[&[u8]]) -> io::Result<()> {
    write!(w, "*{}\r\n", items.len())?;
    for it in items {
        write_bulk(w, Some(it))?;
    }
    Ok(())
}

/// `$len\r\nbytes\r\n`, or the null bulk string `$-1\r\n`.
pub fn write_bulk<W: Write + ?Sized>(w: &mut W, v: Option<&[u8]>) -> io::Result<()> {
    match v {
        Some(v) => {
            write!(w, "${}\r\n", v.len())?;
            w.write_all(v)?;
            w.write_all(b"\r\n")
        }
        None => w.write_all(b"$-1\r\n"),
    }
}

/// `+text\r\n`
pub fn write_simple<W: Write + ?Sized>(w: &mut W, s: &str) -> io::Result<()> {
    write!(w, "+{s}\r\n")
}

/// `-ERR text\r\n` (CR and LF in the text are replaced by spaces).
pub fn write_error<W: Write + ?Sized>(w: &mut W, s: &str) -> io::Result<()> {
    write!(w, "-ERR {}\r\n", s.replace(['\r', '\n'], " "))
}

/// `:n\r\n`
pub fn write_int<W: Write + ?Sized>(w: &mut W, n: i64) -> io::Result<()> {
    write!(w, ":{n}\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fails its first read with EINTR (what a SIGSTOP/SIGCONT does to a blocked read on
    /// a socket with a timeout), then serves `data`.
    struct Eintr<'a> {
        interrupted: bool,
        data: &'a [u8],
    }

    impl io::Read for Eintr<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if !self.interrupted {
                self.interrupted = true;
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.data.read(buf)
        }
    }

    #[test]
    fn an_interrupted_read_is_retried() {
        let mut r = io::BufReader::new(Eintr { interrupted: false, data: b"*2\r\n$2\r\nOK\r\n$1\r\n1\r\n" });
        assert!(matches!(read_frame(&mut r), Ok(Frame::Resp(a)) if a == [b"OK".to_vec(), b"1".to_vec()]));
        let mut r = io::BufReader::new(Eintr { interrupted: false, data: b"PING\n" });
        assert!(matches!(read_frame(&mut r), Ok(Frame::Line(l)) if l == b"PING"));
    }

    #[test]
    fn whole_requests_are_recognised() {
        assert!(!complete_frame(b""));
        assert!(!complete_frame(b"PI"));
        assert!(complete_frame(b"PING\nPI"));
        assert!(!complete_frame(b"*2\r\n$3\r\nGET\r\n$1\r\n"));
        assert!(!complete_frame(b"*2\r\n$3\r\nGE"));
        assert!(!complete_frame(b"*2\r"));
        assert!(complete_frame(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n"));
        assert!(complete_frame(b"*x\r\n"), "malformed: fails at once");
    }

    fn frames(input: &[u8]) -> Vec<Frame> {
        let mut r = io::BufReader::with_capacity(16, input);
        let mut out = Vec::new();
        loop {
            match read_frame(&mut r) {
                Ok(Frame::Eof) => return out,
                Ok(f) => out.push(f),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn lines_and_crlf() {
        assert_eq!(
            frames(b"PING\r\nGET a\nlast"),
            vec![Frame::Line(b"PING".to_vec()), Frame::Line(b"GET a".to_vec()), Frame::Line(b"last".to_vec())]
        );
    }

    #[test]
    fn long_line_is_discarded_up_to_newline() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nPING\n");
        assert_eq!(frames(&input), vec![Frame::TooLong, Frame::Line(b"PING".to_vec())]);
        let mut exact = vec![b'y'; MAX_LINE];
        exact.extend_from_slice(b"\r\n");
        assert_eq!(frames(&exact), vec![Frame::Line(vec![b'y'; MAX_LINE])]);
    }

    #[test]
    fn resp_arrays_and_mixing() {
        assert_eq!(
            frames(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\n*1\r\n$4\r\nPING\r\n"),
            vec![
                Frame::Resp(vec![b"GET".to_vec(), b"k".to_vec()]),
                Frame::Line(b"PING".to_vec()),
                Frame::Resp(vec![b"PING".to_vec()])
            ]
        );
        let huge =
            [b"*3\r\n".to_vec(), [b"$1048576\r\n".to_vec(), vec![b'v'; MAX_BULK], b"\r\n".to_vec()].concat().repeat(3)]
                .concat();
        for bad in [
            &b"*x\r\n"[..],
            b"*1\r\n:5\r\n",
            b"*1\r\n$3\r\nab",
            b"*1\r\n$2\r\nabcd\r\n",
            b"*99999\r\n",
            b"*1\r\n$999999999\r\n",
            b"*1\r\n$-1\r\n",
            b"*1\r\n*1\r\n$4\r\nPING\r\n",
            &huge,
        ] {
            let mut r = io::BufReader::new(bad);
            assert!(matches!(read_frame(&mut r), Err(FrameError::Protocol(_))), "{bad:?}");
        }
    }

    #[test]
    fn parses_requests() {
        let put = |k: &[u8], v: &[u8]| Request::Put { key: k.to_vec(), value: v.to_vec() };
        assert_eq!(parse_line(b"PUT k hello world"), Ok(put(b"k", b"hello world")));
        assert_eq!(parse_line(b"set k  two"), Ok(put(b"k", b" two")));
        assert_eq!(parse_line(b"PUT k "), Ok(put(b"k", b"")));
        assert_eq!(parse_line(b"GET k"), Ok(Request::Get { key: b"k".to_vec() }));
        assert_eq!(parse_line(b"del k"), Ok(Request::Del { key: b"k".to_vec() }));
        assert_eq!(parse_line(b"LEADER"), Ok(Request::Leader));
        assert_eq!(parse_line(b"ping"), Ok(Request::Ping));
        for bad in
            [&b""[..], b"PUT", b"PUT k", b"PUT  v", b"GET", b"GET a b", b"GET a\tb", b"PING x", b"FLY me", b"\xff\xfe"]
        {
            assert!(parse_line(bad).is_err(), "{bad:?}");
        }
        let long = [b"GET ".to_vec(), vec![b'k'; MAX_KEY + 1]].concat();
        assert!(parse_line(&long).unwrap_err().contains("250"));
        let ok = [b"GET ".to_vec(), vec![b'k'; MAX_KEY]].concat();
        assert!(parse_line(&ok).is_ok());
    }
}
