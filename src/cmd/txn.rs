//! `zkutil txn`: operations from stdin, one per line, applied as one multi (all or nothing).
//!
//! ```text
//! create PATH [DATA]
//! set PATH DATA [VERSION]
//! delete PATH [VERSION]
//! check PATH VERSION
//! ```
//! Words are separated by blanks; quote a word with '...' (taken literally) or "..." (with
//! \\ \" \n \t escapes) to put blanks in it. Blank lines and lines starting with # are skipped.
//! A VERSION of -1 matches any version.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use super::Run;
use super::output::{print_json, stat_json};
use crate::cli::{Global, TxnArgs};
use crate::zk::{self, Code, CreateMode, Op, OpResult};
use serde_json::json;

/// A parse error, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub why: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.why)
    }
}

impl std::error::Error for ParseError {}

/// Splits a line into words (shell-like quoting, no expansion).
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            match c {
                '\'' => loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                },
                '"' => loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('n') => word.push('\n'),
                            Some('t') => word.push('\t'),
                            Some(c) => word.push(c),
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => word.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                },
                '\\' => match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("a trailing \\ escapes nothing".into()),
                },
                c => word.push(c),
            }
        }
        out.push(word);
    }
}

fn version(word: &str) -> Result<i32, String> {
    match word.parse::<i32>() {
        Ok(v) if v >= -1 => Ok(v),
        _ => Err(format!("{word:?} is not a version (an integer, -1 for any)")),
    }
}

fn path(word: &str) -> Result<String, String> {
    zk::validate_path(word, false).map_err(|e| e.to_string())?;
    Ok(word.to_string())
}

/// Parses one line; `Ok(None)` for blank and comment lines.
fn parse_line(line: &str) -> Result<Option<Op>, String> {
    if line.trim_start().starts_with('#') {
        return Ok(None);
    }
    let w = words(line)?;
    let Some((verb, args)) = w.split_first() else { return Ok(None) };
    let usage = |u: &str| Err(format!("{verb}: expected `{u}`, got {} argument(s)", args.len()));
    let any = |v: i32| (v != -1).then_some(v);
    Ok(Some(match (verb.as_str(), args) {
        ("create", [p]) => Op::Create { path: path(p)?, data: Vec::new(), mode: CreateMode::Persistent },
        ("create", [p, d]) => Op::Create { path: path(p)?, data: d.as_bytes().to_vec(), mode: CreateMode::Persistent },
        ("create", _) => return usage("create PATH [DATA]"),
        ("set", [p, d]) => Op::Set { path: path(p)?, data: d.as_bytes().to_vec(), version: None },
        ("set", [p, d, v]) => Op::Set { path: path(p)?, data: d.as_bytes().to_vec(), version: any(version(v)?) },
        ("set", _) => return usage("set PATH DATA [VERSION]"),
        ("delete", [p]) => Op::Delete { path: path(p)?, version: None },
        ("delete", [p, v]) => Op::Delete { path: path(p)?, version: any(version(v)?) },
        ("delete", _) => return usage("delete PATH [VERSION]"),
        ("check", [p, v]) => Op::Check { path: path(p)?, version: version(v)? },
        ("check", _) => return usage("check PATH VERSION"),
        (other, _) => return Err(format!("unknown operation {other:?} (expected create, set, delete or check)")),
    }))
}

/// Parses the whole input; the first bad line is the error.
pub fn parse(input: impl BufRead) -> Result<Vec<Op>> {
    let mut ops = Vec::new();
    for (i, line) in input.lines().enumerate() {
        let line = line.context("reading operations from stdin")?;
        match parse_line(&line) {
            Ok(Some(op)) => ops.push(op),
            Ok(None) => {}
            Err(why) => return Err(ParseError { line: i + 1, why }.into()),
        }
    }
    Ok(ops)
}

fn describe(op: &Op) -> String {
    let v = |v: &Option<i32>| v.map_or(String::new(), |v| format!(" (version {v})"));
    match op {
        Op::Create { path, .. } => format!("create {path}"),
        Op::Set { path, version, .. } => format!("set {path}{}", v(version)),
        Op::Delete { path, version } => format!("delete {path}{}", v(version)),
        Op::Check { path, version } => format!("check {path} (version {version})"),
    }
}

/// An operation in JSON: `{"op": "create", "path": ...}` (plus `version` when it has one).
fn op_json(op: &Op) -> serde_json::Value {
    let (name, version) = match op {
        Op::Create { .. } => ("create", None),
        Op::Set { version, .. } => ("set", *version),
        Op::Delete { version, .. } => ("delete", *version),
        Op::Check { version, .. } => ("check", Some(*version)),
    };
    let mut v = json!({ "op": name, "path": op.path() });
    if let Some(version) = version {
        v["version"] = version.into();
    }
    v
}

impl Run for TxnArgs {
    fn run(&self, g: &Global) -> Result<ExitCode> {
        let ops = parse(io::stdin().lock()).context("txn")?;
        if ops.is_empty() {
            bail!("txn: no operations on stdin (one per line: create, set, delete, check)");
        }
        let mut out = io::stdout().lock();
        if self.dry_run && g.json() {
            print_json(&json!({ "dry_run": true, "ops": ops.iter().map(op_json).collect::<Vec<_>>() }))?;
            return Ok(ExitCode::SUCCESS);
        }
        if self.dry_run {
            for op in &ops {
                writeln!(out, "{}", describe(op))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        let zk = g.connect()?;
        match zk.multi(&ops) {
            Ok(results) if g.json() => {
                let list: Vec<_> = ops
                    .iter()
                    .zip(results)
                    .map(|(op, r)| {
                        let mut v = op_json(op);
                        v["result"] = "ok".into();
                        match r {
                            OpResult::Created(p) => v["created"] = p.into(),
                            OpResult::Set(st) => v["stat"] = stat_json(&st),
                            OpResult::Deleted | OpResult::Checked => {}
                        }
                        v
                    })
                    .collect();
                print_json(&json!({ "committed": true, "results": list }))?;
                Ok(ExitCode::SUCCESS)
            }
            Ok(results) => {
                for (op, r) in ops.iter().zip(results) {
                    match (op, r) {
                        (_, OpResult::Created(p)) => writeln!(out, "created {p}")?,
                        (_, OpResult::Set(st)) => writeln!(out, "set {} (now version {})", op.path(), st.version)?,
                        (_, OpResult::Deleted) => writeln!(out, "deleted {}", op.path())?,
                        (Op::Check { version, .. }, _) => writeln!(out, "checked {} (version {version})", op.path())?,
                        (_, OpResult::Checked) => writeln!(out, "checked {}", op.path())?,
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(e @ zk::Error::Multi { .. }) => {
                let zk::Error::Multi { results, .. } = &e else { unreachable!() };
                let mut list = Vec::new();
                for (i, (op, code)) in ops.iter().zip(results).enumerate() {
                    let what = match code {
                        Code::Ok => "ok, rolled back".to_string(),
                        Code::RuntimeInconsistency => "not applied".to_string(),
                        c => c.to_string(),
                    };
                    if g.json() {
                        let mut v = op_json(op);
                        v["result"] = what.into();
                        list.push(v);
                    } else {
                        writeln!(out, "{} {}: {what}", i + 1, describe(op))?;
                    }
                }
                if g.json() {
                    drop(out);
                    print_json(&json!({ "committed": false, "results": list }))?;
                }
                Err(e.into())
            }
            Err(e) => Err(e).context("txn"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_words_with_quotes() {
        assert_eq!(words("set /a 'hello world' 3").unwrap(), ["set", "/a", "hello world", "3"]);
        assert_eq!(words(r#"create /b "a\"b\nc" "#).unwrap(), ["create", "/b", "a\"b\nc"]);
        assert_eq!(words(r"create /c a\ b").unwrap(), ["create", "/c", "a b"]);
        assert_eq!(words("create /d ''").unwrap(), ["create", "/d", ""]);
        assert!(words("create /e 'oops").is_err());
    }

    #[test]
    fn parses_and_names_the_bad_line() {
        let ops = parse("# comment\n\ncreate /a x\nset /a y 0\ndelete /a -1\ncheck /b 2\n".as_bytes()).unwrap();
        assert_eq!(ops.len(), 4);
        assert_eq!(ops[2], Op::Delete { path: "/a".into(), version: None });
        let err = |s: &str| parse(s.as_bytes()).unwrap_err().to_string();
        assert_eq!(
            err("create /a\nfrobnicate /b\n"),
            "line 2: unknown operation \"frobnicate\" (expected create, set, delete or check)"
        );
        assert!(err("check /a\n").starts_with("line 1: check: expected `check PATH VERSION`"));
        assert!(err("\nset /a x y\n").starts_with("line 2: \"y\" is not a version"));
        assert!(err("delete a\n").starts_with("line 1: invalid path \"a\""));
        assert!(err("create /a x y\n").starts_with("line 1: create: expected"));
    }
}
