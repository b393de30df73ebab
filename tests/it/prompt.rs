//! `zkutil shell`: scripts on stdin and `-c` (one session, relative paths, the first
//! failure's exit code), and at a real terminal (tmux) for completion, history and Ctrl-C.

use std::io::Write;
use std::process::{Output, Stdio};

use crate::inspect::{Tmux, sh_quote};
use crate::support::*;
use crate::t;
use zkutil::zk::CreateMode;

fn shell_stdin(script: &str) -> Output {
    let mut child =
        zkutil(&["shell"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn shell_runs_a_script_from_stdin_over_one_session_with_relative_paths() {
    let root = unique_root("shell");
    let zk = connect();
    let script = format!(
        "cd {root}\n\
         pwd\n\
         create -e eph x\n\
         create -p a/b/c 'two words'\n\
         ls a/b   # relative to {root}\n\
         stat eph; cd a/b\n\
         ls\n\
         cd ..; pwd\n\
         ls\n\
         cd -\n\
         pwd\n\
         stat ../../eph\n"
    );
    let o = shell_stdin(&script);
    let out = stdout(&o);
    assert!(o.status.success(), "{o:?}\n{out}\n{}", stderr(&o));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], root);
    assert_eq!(lines[1], format!("{root}/eph"));
    assert_eq!(lines[2], format!("{root}/a/b/c"));
    assert_eq!(lines[3], "c");
    // the ephemeral node made two lines earlier is still there: one session for the script
    assert!(lines[4].starts_with("cZxid = 0x"), "{out}");
    let owner = lines.iter().find(|l| l.starts_with("ephemeralOwner = ")).unwrap();
    assert_ne!(*owner, "ephemeralOwner = 0x0");
    let rest: Vec<String> =
        lines.iter().skip_while(|l| !l.starts_with("numChildren")).skip(1).take(5).map(|l| l.to_string()).collect();
    assert_eq!(rest[..4], ["c".to_string(), format!("{root}/a"), "b".into(), format!("{root}/a/b")]);
    assert!(rest[4].starts_with("cZxid = "), "{out}");
    assert_eq!(out.matches(owner).count(), 2, "stat at the end shows the same owner: {out}");
    // the session closed with the shell: its ephemeral node went with it
    assert!(t!(zk.exists(&format!("{root}/eph"))).is_none());
    assert_eq!(t!(zk.get(&format!("{root}/a/b/c"))).0, b"two words");
}

#[test]
fn shell_stops_at_the_first_failure_with_its_exit_code() {
    let root = unique_root("shell-fail");
    let zk = connect();
    // runtime failure: exit 1, one error line, the rest not run
    let o = run(&["shell", "-c", &format!("create {root}/x; get {root}/missing; create {root}/y")]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert_eq!(stderr(&o), format!("zkutil: {root}/missing: node does not exist\n"));
    assert!(t!(zk.exists(&format!("{root}/x"))).is_some());
    assert!(t!(zk.exists(&format!("{root}/y"))).is_none());
    // usage error: clap's message and exit 2
    let o = run(&["shell", "-c", &format!("ls --bogus; create {root}/z")]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("unexpected argument '--bogus'"), "{}", stderr(&o));
    assert!(t!(zk.exists(&format!("{root}/z"))).is_none());
    // a usage error a command finds itself: exit 2, as outside the shell
    let o = run(&["shell", "-c", &format!("election run --id '' {root}/e -- true; create {root}/q")]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--id must not be empty"), "{}", stderr(&o));
    assert!(t!(zk.exists(&format!("{root}/q"))).is_none());
    // on stdin too; cd to a missing node fails
    let o = shell_stdin(&format!("cd {root}/nope\ncreate {root}/w\n"));
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), format!("zkutil: cd: {root}/nope: node does not exist\n"));
    assert!(t!(zk.exists(&format!("{root}/w"))).is_none());
    // `exit N` ends a script with N; a shell inside a shell is refused
    assert_eq!(run(&["shell", "-c", "exit 3; ls /"]).status.code(), Some(3));
    let o = run(&["shell", "-c", "shell"]);
    assert_eq!((o.status.code(), stderr(&o).as_str()), (Some(2), "zkutil: shell: already in a shell\n"));
    // an unterminated quote is a usage error of the shell
    let o = run(&["shell", "-c", "get 'oops"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unterminated ' quote"));
}

#[test]
fn shell_reads_data_from_the_rest_of_stdin_and_keeps_globals() {
    let root = unique_root("shell-stdin");
    let zk = connect();
    // `create PATH -` reads its data from stdin: in a script, the lines after it (as sh does)
    let o = shell_stdin(&format!("create {root}/n -\nline one\nline two\n"));
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), format!("{root}/n\n"));
    assert_eq!(t!(zk.get(&format!("{root}/n"))).0, b"line one\nline two\n");
    // a line may name other hosts; the shell's own flags otherwise
    let o = run(&["shell", "-c", "ls --hosts 127.0.0.1:1 --connect-timeout 300ms /"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("127.0.0.1:1"), "{}", stderr(&o));
    t!(zk.create(&format!("{root}/k"), b"", CreateMode::Persistent));
    assert_eq!(ok(&["--connect-timeout", "5s", "shell", "-c", &format!("ls {root}")]), "k\nn\n");
}

#[test]
fn shell_at_a_terminal_completes_remembers_and_survives_ctrl_c() {
    let root = unique_root("shell-tty");
    let zk = connect();
    t!(zk.create(&format!("{root}/alpha"), b"", CreateMode::Persistent));
    t!(zk.create(&format!("{root}/alpha/kid"), b"", CreateMode::Persistent));
    t!(zk.create(&format!("{root}/beta"), b"B-DATA", CreateMode::Persistent));
    let state = t!(tempfile::tempdir());
    let exe = env!("CARGO_BIN_EXE_zkutil");
    let cmd = format!(
        "env ZK_HOSTS={} XDG_STATE_HOME={} {} shell",
        sh_quote(&hosts()),
        sh_quote(&state.path().display().to_string()),
        sh_quote(exe)
    );
    let Some(tmux) = Tmux::start("shell", &cmd) else { return };
    // capture-pane drops the blank that ends the prompt
    let prompt = format!("zk {} [connected] />", hosts());
    tmux.wait_for(&[&prompt]);

    // a command name, then a znode path, completed with Tab
    tmux.text("crea");
    tmux.keys(&["Tab"]);
    tmux.wait_for(&[&format!("{prompt} create")]);
    tmux.keys(&["C-u"]);
    tmux.text(&format!("ls {root}/al"));
    tmux.keys(&["Tab"]);
    tmux.wait_for(&[&format!("{prompt} ls {root}/alpha")]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["\nkid\n"]);

    // relative to the current node
    tmux.text(&format!("cd {root}"));
    tmux.keys(&["Enter"]);
    let here = format!("zk {} [connected] {root}>", hosts());
    tmux.wait_for(&[&here]);
    tmux.text("get be");
    tmux.keys(&["Tab"]);
    tmux.wait_for(&[&format!("{here} get beta")]);
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["\nB-DATA\n"]);

    // Ctrl-C stops a running command (watch waits forever), not the shell
    tmux.text("watch alpha");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&[&format!("\n{root}/alpha:\n")]);
    tmux.keys(&["C-c"]);
    let s = tmux.wait_for(&[&format!("{here}\n")]);
    assert!(!s.contains("EXITED"), "{s}");
    tmux.text("pwd");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&[&format!("\n{root}\n")]);

    // history: Up brings back earlier lines; Ctrl-D leaves
    tmux.keys(&["Up", "Up"]);
    tmux.wait_for(&[&format!("{here} watch alpha")]);
    tmux.keys(&["C-u", "C-d"]);
    tmux.wait_for(&["EXITED 0"]);
    drop(tmux);
    let history = t!(std::fs::read_to_string(state.path().join("zkutil/history")));
    assert!(history.contains("get beta") && history.contains(&format!("cd {root}")), "{history}");

    // ... and a new shell has them
    let Some(tmux) = Tmux::start("shell2", &cmd) else { return };
    tmux.wait_for(&[&prompt]);
    tmux.keys(&["Up"]);
    tmux.wait_for(&[&format!("{prompt} pwd")]);
    tmux.keys(&["Up"]);
    tmux.wait_for(&[&format!("{prompt} watch alpha")]);
    tmux.keys(&["C-u"]);
    tmux.text("exit 4");
    tmux.keys(&["Enter"]);
    tmux.wait_for(&["EXITED 4"]);
}
