//! What a command prints and where: `-o text|json` for results on stdout, `-q` for the
//! status messages on stderr.
//!
//! - A command that prints structured results checks [`Global::json`] and, for `-o json`,
//!   prints ONE JSON document with [`print_json`]; streams print one event per line
//!   ([`Ndjson`], each event built with [`event`]: `type`, `path`, `time`, ...).
//! - Status lines (`entered`, `joined`, `elected`, ...) go through [`status!`](crate::status)
//!   to stderr, never to stdout, and `-q` silences them. Errors are not status: they still
//!   reach stderr as `zkutil: ...` lines.
//! - JSON field names of a Stat follow ZooKeeper's Stat (`czxid`, `mzxid`, `ctime`, ...);
//!   data is a UTF-8 string when valid, else base64, with `encoding` saying which.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::cli::{Global, OutputFormat};
use crate::zk::{Acl, Stat};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Set once by `main` from `-q/--quiet`.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// True when `-q` asked for no status messages.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Prints a status line on stderr unless `-q` was given: `status!("entered {path}")`.
#[macro_export]
macro_rules! status {
    ($($arg:tt)*) => {
        if !$crate::cmd::output::quiet() {
            eprintln!($($arg)*);
        }
    };
}

impl Global {
    /// True for `-o json`.
    pub fn json(&self) -> bool {
        self.output == OutputFormat::Json
    }
}

/// Prints one JSON document (one line) on stdout.
pub fn print_json(value: &Value) -> io::Result<()> {
    let mut out = io::stdout().lock();
    write_json(&mut out, value)
}

/// Writes one JSON document as one line and flushes (also what each NDJSON event is).
pub fn write_json(out: &mut impl Write, value: &Value) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// A stream of NDJSON events on stdout, one line each, flushed as written.
pub struct Ndjson<W: Write = io::Stdout> {
    out: W,
}

impl Ndjson {
    /// NDJSON on stdout.
    pub fn stdout() -> Self {
        Ndjson { out: io::stdout() }
    }
}

impl<W: Write> Ndjson<W> {
    /// NDJSON on any writer.
    pub fn new(out: W) -> Self {
        Ndjson { out }
    }

    /// Writes one event line.
    pub fn emit(&mut self, event: &Value) -> io::Result<()> {
        write_json(&mut self.out, event)
    }
}

/// One stream event: `{"type": kind, "path": path, "time": RFC 3339 now, ...fields}`.
pub fn event(kind: &str, path: &str, fields: Value) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), kind.into());
    m.insert("path".into(), path.into());
    m.insert("time".into(), now_rfc3339().into());
    if let Value::Object(extra) = fields {
        m.extend(extra);
    }
    Value::Object(m)
}

/// Now, RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

/// A Stat with ZooKeeper's field names (times in ms since the epoch, as the server keeps them).
pub fn stat_json(s: &Stat) -> Value {
    json!({
        "czxid": s.czxid,
        "mzxid": s.mzxid,
        "ctime": s.ctime,
        "mtime": s.mtime,
        "version": s.version,
        "cversion": s.cversion,
        "aversion": s.aversion,
        "ephemeralOwner": s.ephemeral_owner,
        "dataLength": s.data_length,
        "numChildren": s.num_children,
        "pzxid": s.pzxid,
    })
}

/// Node data as two fields: `data` (the text when valid UTF-8, else base64) and `encoding`
/// (`utf-8` or `base64`).
pub fn data_fields(data: &[u8]) -> Map<String, Value> {
    let mut m = Map::new();
    match std::str::from_utf8(data) {
        Ok(s) => {
            m.insert("data".into(), s.into());
            m.insert("encoding".into(), "utf-8".into());
        }
        Err(_) => {
            m.insert("data".into(), base64::engine::general_purpose::STANDARD.encode(data).into());
            m.insert("encoding".into(), "base64".into());
        }
    }
    m
}

/// An ACL entry: `{"scheme", "id", "perms"}` (perms in zkCli's `cdrwa` letters).
pub fn acl_json(a: &Acl) -> Value {
    json!({ "scheme": a.scheme, "id": a.id, "perms": a.perms_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_text_or_base64() {
        let m = data_fields(b"C:\\tmp");
        assert_eq!(m["data"], "C:\\tmp");
        assert_eq!(m["encoding"], "utf-8");
        let m = data_fields(&[0xff, 0]);
        assert_eq!(m["data"], "/wA=");
        assert_eq!(m["encoding"], "base64");
    }

    #[test]
    fn events_carry_type_path_time() {
        let e = event("NodeCreated", "/a", json!({"data": "x"}));
        assert_eq!(e["type"], "NodeCreated");
        assert_eq!(e["path"], "/a");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(e["data"], "x");
    }
}
