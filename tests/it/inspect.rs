//! `zkutil inspect` as a person uses it: in a real terminal (tmux), keys sent, the screen
//! read back, while another process changes the tree; an edit goes through a scripted
//! $EDITOR. Skipped, with a message, where tmux is not installed.

use std::path::Path;
use std::time::Duration;

use crate::support::*;
use crate::t;
use zkutil::zk::CreateMode;

/// A tmux server of its own (`-L`), one 120x40 window running a command; killed on drop.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// None (after saying why) when tmux is missing.
    pub fn start(name: &str, command: &str) -> Option<Tmux> {
        if std::process::Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("SKIPPED: tmux is not installed (vendor/setup.sh installs it)");
            return None;
        }
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let socket = format!("zkutil-it-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let tmux = Tmux { socket };
        // the shell keeps the pane open after zkutil exits, to show its exit code; it
        // outlives a Ctrl-C sent to zkutil (a trap, unlike an ignored signal, is not inherited)
        let wrapped = format!("trap true INT; {command}; echo \"EXITED $?\"; sleep 60");
        tmux.run(&["new-session", "-d", "-x", "120", "-y", "40", "-s", "t", "sh", "-c", &wrapped]);
        // accept OSC 52 from the program into a paste buffer (for `y`, copy)
        tmux.run(&["set-option", "-s", "set-clipboard", "on"]);
        Some(tmux)
    }

    fn run(&self, args: &[&str]) -> String {
        let o = std::process::Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("-f")
            .arg("/dev/null")
            .args(args)
            .env_remove("TMUX")
            .output()
            .expect("run tmux");
        assert!(o.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Keys as tmux names them (`Down`, `Enter`, `C-c`) or literal text with `-l`.
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    pub fn text(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
    }

    /// The latest paste buffer (what the program copied through OSC 52).
    pub fn clipboard(&self) -> String {
        let o = std::process::Command::new("tmux").args(["-L", &self.socket, "show-buffer"]).output();
        o.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default() // none yet: ""
    }

    pub fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// Waits (generously) until the screen shows every one of `parts`; panics with the screen.
    #[track_caller]
    pub fn wait_for(&self, parts: &[&str]) -> String {
        let mut last = String::new();
        let ok = wait_until(Duration::from_secs(20), || {
            last = self.screen();
            parts.iter().all(|p| last.contains(p))
        });
        assert!(ok, "screen never showed {parts:?}:\n{last}");
        last
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

/// Single-quoted for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    t!(std::fs::write(path, format!("#!/bin/sh\n{body}\n")));
    t!(std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)));
}

#[test]
fn inspect_follows_changes_by_others_and_edits_creates_deletes() {
    let root = unique_root("inspect");
    let zk = connect();
    t!(zk.create(&format!("{root}/a"), b"1", CreateMode::Persistent));
    t!(zk.create(&format!("{root}/b"), br#"{"k":[1,2]}"#, CreateMode::Persistent));
    t!(zk.create(&format!("{root}/c"), b"", CreateMode::Persistent));
    t!(zk.create(&format!("{root}/c/x"), b"", CreateMode::Persistent));
    let dir = t!(tempfile::tempdir());
    // $EDITOR runs whatever the test put in step.sh for this edit
    let editor = dir.path().join("editor");
    let step = dir.path().join("step.sh");
    write_script(&editor, &format!(". {}", sh_quote(&step.display().to_string())));
    let exe = env!("CARGO_BIN_EXE_zkutil");
    let cmd = format!(
        "env ZK_HOSTS={} EDITOR={} {} inspect {}",
        sh_quote(&hosts()),
        sh_quote(&editor.display().to_string()),
        sh_quote(exe),
        sh_quote(&root)
    );
    let Some(tmux) = Tmux::start("inspect", &cmd) else { return };
    let s = tmux.wait_for(&["● connected", "▸ c", "  b "]);
    assert!(s.contains("  a ") && s.contains("q quit"), "{s}");
    // JSON data is pretty-printed
    tmux.keys(&["g"]);
    tmux.text("b");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["Data · 11 B · JSON", "  \"k\": [", "numChildren = 0"]);
    tmux.keys(&["Home"]);

    // another process changes the tree: the screen follows through watches
    ok(&["create", &format!("{root}/d"), "new"]);
    ok(&["set", &format!("{root}/a"), "changed"]);
    ok(&["delete", &format!("{root}/b")]);
    tmux.wait_for(&["d [new]", "a [changed]", "b [removed]"]);

    // the node pane: go to a, see its data and Stat
    tmux.keys(&["g"]);
    tmux.text("a");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&[&format!(" {root}/a "), "Data · 7 B · text", "dataVersion = 1", "world:anyone:cdrwa"]);

    // edit through $EDITOR, saved with compare-and-set after a confirmation
    t!(std::fs::write(&step, "printf 'edited by inspect' > \"$1\"\n"));
    tmux.keys(&["e"]);
    tmux.wait_for(&[&format!("Save 17 bytes to {root}/a (only if still at dataVersion 1)? [y/N]")]);
    tmux.keys(&["y"]);
    assert!(wait_until(Duration::from_secs(20), || t!(zk.get(&format!("{root}/a"))).0 == b"edited by inspect"));

    // an edit that races another writer: the conflict shows both; `o` overwrites theirs
    tmux.wait_for(&["dataVersion = 2"]);
    let theirs = format!("{} set {} theirs\n", sh_quote(exe), sh_quote(&format!("{root}/a")));
    t!(std::fs::write(&step, format!("ZK_HOSTS={} {theirs}printf 'mine' > \"$1\"\n", sh_quote(&hosts()))));
    tmux.keys(&["e"]);
    tmux.wait_for(&["(only if still at dataVersion 2)? [y/N]"]);
    tmux.keys(&["y"]);
    let s = tmux.wait_for(&["was changed by someone else while you edited it", "theirs (dataVersion 3)"]);
    assert!(s.contains("mine") && s.contains("[o] overwrite theirs with yours"), "{s}");
    assert_eq!(t!(zk.get(&format!("{root}/a"))).0, b"theirs");
    tmux.keys(&["o"]);
    assert!(wait_until(Duration::from_secs(20), || t!(zk.get(&format!("{root}/a"))).0 == b"mine"));

    // delete a subtree: counted first, then confirmed
    tmux.keys(&["g"]);
    tmux.text(&format!("{root}/c"));
    tmux.keys(&["Enter"]);
    tmux.wait_for(&[&format!(" {root}/c ")]);
    tmux.keys(&["d"]);
    tmux.wait_for(&[&format!("Delete {root}/c and the 1 nodes under it (2 nodes in all)? [y/N]")]);
    tmux.keys(&["y"]);
    assert!(wait_until(Duration::from_secs(20), || t!(zk.exists(&format!("{root}/c"))).is_none()));
    tmux.wait_for(&["c [removed]"]);

    // create a child of the root
    tmux.keys(&["Home", "c"]);
    tmux.text("made");
    tmux.keys(&["Enter", "p"]);
    tmux.text("hi");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&[&format!("Create {root}/made (persistent, 2 bytes of data)? [y/N]")]);
    tmux.keys(&["y"]);
    assert!(wait_until(Duration::from_secs(20), || t!(zk.exists(&format!("{root}/made"))).is_some()));
    assert_eq!(t!(zk.get(&format!("{root}/made"))).0, b"hi");
    tmux.wait_for(&[&format!("created {root}/made")]);

    tmux.keys(&["q"]);
    tmux.wait_for(&["EXITED 0"]);
}

#[test]
fn inspect_opens_a_big_node_at_once_and_read_only_changes_nothing() {
    let root = unique_root("inspect-big");
    let zk = connect();
    let big = format!("{root}/big");
    t!(zk.create(&big, b"", CreateMode::Persistent));
    let paths: Vec<String> = (0..5_000).map(|i| format!("{big}/n{i:05}")).collect();
    for r in zk.create_many(paths.iter().map(|p| (p.as_str(), &b"x"[..], CreateMode::Persistent)), 100) {
        t!(r);
    }
    let exe = env!("CARGO_BIN_EXE_zkutil");
    let cmd = format!("env ZK_HOSTS={} {} inspect --read-only {}", sh_quote(&hosts()), sh_quote(exe), sh_quote(&root));
    let Some(tmux) = Tmux::start("inspect-big", &cmd) else { return };
    tmux.wait_for(&["● connected", "[read-only]", "▸ big", "5000"]);
    tmux.keys(&["Down", "Right"]);
    tmux.wait_for(&["n00000", "n00001", "2/5002"]);
    tmux.keys(&["End"]);
    tmux.wait_for(&["n04999", "5002/5002"]);
    tmux.keys(&["d"]);
    tmux.wait_for(&["read-only: delete is disabled"]);
    tmux.keys(&["y"]);
    tmux.wait_for(&[&format!("copied {big}/n04999 to the clipboard")]);
    assert!(wait_until(Duration::from_secs(10), || tmux.clipboard() == format!("{big}/n04999")));
    tmux.keys(&["/"]);
    tmux.text("n0499");
    tmux.keys(&["Enter"]);
    let s = tmux.wait_for(&["(filter \"n0499\")", "n04990", "n04999", "/12 "]);
    assert!(!s.contains("n04989"), "{s}");
    tmux.keys(&["q"]);
    tmux.wait_for(&["EXITED 0"]);
    assert_eq!(t!(zk.children(&big)).len(), 5_000);
}

#[test]
fn inspect_shows_reconnecting_and_rereads_in_a_new_session_after_expiry() {
    use zkutil::server::{Ensemble, Options};
    // Below the kernel's ephemeral range (32768-60999), so that no client connection takes
    // the launcher's ports while the server is down.
    let port = (0..200)
        .map(|i| 21_000 + ((std::process::id() as u16 % 2000) * 3 + i * 3) % 8_000)
        .find(|p| (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok()))
        .expect("three free ports");
    let first = t!(Ensemble::start(Options { base_port: Some(port), ..Options::for_tests(1) }));
    let hosts = first.connect_string();
    t!(connect_to(&hosts).create("/before", b"", CreateMode::Persistent));
    let exe = env!("CARGO_BIN_EXE_zkutil");
    let cmd = format!("env ZK_HOSTS={} {} inspect --session-timeout 2s /", sh_quote(&hosts), sh_quote(exe));
    let Some(tmux) = Tmux::start("inspect-expiry", &cmd) else { return };
    tmux.wait_for(&["● connected, session 0x", "before"]);
    // the server goes away: the inspector says it is reconnecting
    drop(first);
    tmux.wait_for(&["disconnected: reconnecting"]);
    // a new server (no memory of the session) on the same port: once it has seen as many
    // transactions as the client, it tells the client its session expired; the inspector
    // opens a new one and reads the tree again
    let second = t!(Ensemble::start(Options { base_port: Some(port), ..Options::for_tests(1) }));
    let zk = connect_to(&second.connect_string());
    t!(zk.create("/after", b"", CreateMode::Persistent));
    // the server refuses a client that has seen a later zxid than its own: move past it
    for i in 0..30 {
        t!(zk.create(&format!("/after/{i}"), b"", CreateMode::Persistent));
    }
    let s = tmux.wait_for(&["● connected, new session 0x", "after"]);
    assert!(s.contains("before [removed]") || !s.contains("before"), "{s}");
    tmux.keys(&["q"]);
    tmux.wait_for(&["EXITED 0"]);
}
