//! How the right pane shows a node: its data as text, pretty-printed JSON or a hex dump;
//! its Stat in zkCli's layout with readable times; sizes. Pure functions, no terminal.

use std::fmt::Write as _;

use crate::util::{escape_data, format_millis};
use crate::zk::Stat;

/// What the data looked like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Empty,
    Text,
    Json,
    Binary,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Empty => "empty",
            Kind::Text => "text",
            Kind::Json => "JSON",
            Kind::Binary => "binary",
        }
    }
}

/// The data as lines for the pane: JSON objects and arrays pretty-printed, other UTF-8
/// text as is (control characters escaped), anything else as a hex dump.
pub fn show(data: &[u8]) -> (Kind, Vec<String>) {
    if data.is_empty() {
        return (Kind::Empty, Vec::new());
    }
    let Ok(text) = std::str::from_utf8(data) else { return (Kind::Binary, hex_dump(data)) };
    let trimmed = text.trim_start();
    if (trimmed.starts_with('{') || trimmed.starts_with('['))
        && let Ok(v) = serde_json::from_str::<serde_json::Value>(text)
        && let Ok(pretty) = serde_json::to_string_pretty(&v)
    {
        return (Kind::Json, pretty.lines().map(str::to_string).collect());
    }
    if text.chars().any(|c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')) {
        return (Kind::Binary, hex_dump(data));
    }
    (Kind::Text, escape_data(data).replace('\t', "    ").lines().map(str::to_string).collect())
}

/// `00000000  de ad be ef 00 01 02 03  04 05 06 07 08 09 0a 0b  |................|`
pub fn hex_dump(data: &[u8]) -> Vec<String> {
    data.chunks(16)
        .enumerate()
        .map(|(i, chunk)| {
            let mut line = format!("{:08x} ", i * 16);
            for j in 0..16 {
                if j == 8 {
                    line.push(' ');
                }
                match chunk.get(j) {
                    Some(b) => {
                        let _ = write!(line, " {b:02x}");
                    }
                    None => line.push_str("   "),
                }
            }
            line.push_str("  |");
            line.extend(chunk.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '.' }));
            line.push('|');
            line
        })
        .collect()
}

/// A byte count for a column: `0 B`, `512 B`, `1.5 KiB`, `2.0 MiB`.
pub fn size(n: i64) -> String {
    let n = n.max(0) as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    }
}

/// How long ago `ms` (since the epoch) was, from `now_ms`: `12s ago`, `5m ago`, `3h ago`, `2d ago`.
pub fn ago(ms: i64, now_ms: i64) -> String {
    let s = ((now_ms - ms) / 1000).max(0);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

/// zkCli's Stat layout (`cZxid = 0x...`), times as RFC 3339 with how long ago.
pub fn stat_lines(s: &Stat, now_ms: i64) -> Vec<String> {
    vec![
        format!("cZxid = {:#x}", s.czxid),
        format!("ctime = {} ({})", format_millis(s.ctime), ago(s.ctime, now_ms)),
        format!("mZxid = {:#x}", s.mzxid),
        format!("mtime = {} ({})", format_millis(s.mtime), ago(s.mtime, now_ms)),
        format!("pZxid = {:#x}", s.pzxid),
        format!("cversion = {}", s.cversion),
        format!("dataVersion = {}", s.version),
        format!("aclVersion = {}", s.aversion),
        format!("ephemeralOwner = {:#x}", s.ephemeral_owner),
        format!("dataLength = {}", s.data_length),
        format!("numChildren = {}", s.num_children),
    ]
}

/// Base64 (standard alphabet, padded), for the OSC 52 clipboard sequence.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            out.push(if i <= c.len() { A[(n >> shift & 63) as usize] as char } else { '=' });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(show(b"").0, Kind::Empty);
        assert_eq!(show(b"hello\nworld"), (Kind::Text, vec!["hello".into(), "world".into()]));
        let (k, lines) = show(br#"{"a":1,"b":[true]}"#);
        assert_eq!(k, Kind::Json);
        assert_eq!(lines, vec!["{", "  \"a\": 1,", "  \"b\": [", "    true", "  ]", "}"]);
        assert_eq!(show(b"{not json").0, Kind::Text);
        let (k, lines) = show(&[0xde, 0xad, 0xbe, 0xef, b'A']);
        assert_eq!(k, Kind::Binary);
        assert_eq!(lines[0], "00000000  de ad be ef 41                                    |....A|");
        assert_eq!(show(b"a\x01b").0, Kind::Binary);
    }

    #[test]
    fn sizes_times_base64() {
        assert_eq!(size(12), "12 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(ago(0, 90_000), "1m ago");
        assert_eq!(base64(b"/a/b"), "L2EvYg==");
        assert_eq!(base64(b"abc"), "YWJj");
        assert_eq!(base64(b"ab"), "YWI=");
    }
}
