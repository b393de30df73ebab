//! Tab completion for the prompt: command and subcommand names and flags from the same
//! clap definitions the commands are parsed with, and znode paths (the children of the
//! node being typed, listed when Tab is pressed).

use std::sync::{Arc, Mutex};

use clap::CommandFactory;
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use super::line::resolve;
use crate::cli::Cli;
use crate::zk::ZooKeeper;

/// Words the shell itself understands.
pub const BUILTINS: &[&str] = &["cd", "pwd", "exit", "quit", "help"];

pub struct Completion {
    pub zk: Arc<Mutex<Arc<ZooKeeper>>>,
    pub cwd: Arc<Mutex<String>>,
    cli: clap::Command,
}

impl Completion {
    pub fn new(zk: Arc<Mutex<Arc<ZooKeeper>>>, cwd: Arc<Mutex<String>>) -> Completion {
        Completion { zk, cwd, cli: Cli::command() }
    }

    /// Candidates for `word`, the last (partial) word, after the complete words `before`.
    pub fn candidates(&self, before: &[&str], word: &str) -> Vec<String> {
        command_words(&self.cli, before, word).unwrap_or_else(|| self.paths(word))
    }

    /// The children of the node `word` is in, as `word` would continue.
    fn paths(&self, word: &str) -> Vec<String> {
        let (dir, _) = match word.rfind('/') {
            Some(i) => (&word[..=i], &word[i + 1..]),
            None => ("", word),
        };
        let cwd = self.cwd.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let parent = resolve(&cwd, if dir.is_empty() { "." } else { dir });
        let zk = self.zk.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Ok(kids) = zk.children(&parent) else { return Vec::new() };
        sorted_matches(kids.into_iter().map(|k| format!("{dir}{k}")).collect(), word)
    }
}

/// Command names, subcommand names or flags for `word`; None where a znode path goes.
fn command_words(cli: &clap::Command, before: &[&str], word: &str) -> Option<Vec<String>> {
    if before.is_empty() {
        let mut names: Vec<String> = cli.get_subcommands().map(|c| c.get_name().to_string()).collect();
        names.extend(BUILTINS.iter().map(|b| b.to_string()));
        return Some(sorted_matches(names, word));
    }
    let mut cmd = cli;
    for w in before {
        if let Some(sub) = cmd.find_subcommand(w) {
            cmd = sub;
        }
    }
    if word.starts_with('-') {
        let mut flags = vec!["--help".to_string()];
        for a in cmd.get_arguments().chain(cli.get_arguments()) {
            if a.is_hide_set() {
                continue;
            }
            if let Some(l) = a.get_long() {
                flags.push(format!("--{l}"));
            }
            if let Some(s) = a.get_short() {
                flags.push(format!("-{s}"));
            }
        }
        return Some(sorted_matches(flags, word));
    }
    if cmd.has_subcommands() {
        let names: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
        let found = sorted_matches(names, word);
        if !found.is_empty() {
            return Some(found);
        }
    }
    None
}

fn sorted_matches(mut all: Vec<String>, word: &str) -> Vec<String> {
    all.retain(|c| c.starts_with(word));
    all.sort();
    all.dedup();
    all
}

impl Completer for Completion {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let head = &line[..pos];
        // the current command is what follows the last `;`
        let cmd_start = head.rfind(';').map_or(0, |i| i + 1);
        let start = head.rfind(char::is_whitespace).map_or(0, |i| i + 1).max(cmd_start);
        let before: Vec<&str> = head[cmd_start..start].split_whitespace().collect();
        let word = &head[start..];
        let pairs = self
            .candidates(&before, word)
            .into_iter()
            .map(|c| {
                let display = c.rsplit_once('/').map_or(c.as_str(), |(_, last)| last).to_string();
                let display = if display.is_empty() { c.clone() } else { display };
                Pair { display, replacement: c }
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for Completion {
    type Hint = String;
}

impl Highlighter for Completion {}

impl Validator for Completion {}

impl Helper for Completion {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_subcommands_and_flags_come_from_the_clap_definitions() {
        let cli = Cli::command();
        let w = |before: &[&str], word: &str| command_words(&cli, before, word);
        assert_eq!(w(&[], "cr").unwrap(), ["crawl", "create"]);
        assert!(w(&[], "c").unwrap().contains(&"cd".to_string()));
        assert_eq!(w(&["queue"], "p").unwrap(), ["peek", "produce"]);
        let flags = w(&["get"], "-").unwrap();
        assert!(flags.contains(&"-s".into()) && flags.contains(&"--raw".into()) && flags.contains(&"--hosts".into()));
        assert_eq!(w(&["create"], "--t").unwrap(), ["--ttl"]);
        assert_eq!(w(&["get"], "/ap"), None, "a path");
        assert_eq!(w(&["queue", "len"], "q"), None, "a path after the subcommand");
    }
}
