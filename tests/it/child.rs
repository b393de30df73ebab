//! A CMD is stopped as a whole (its process group), and is guarded from before it runs: a
//! witness file shows whether two holders' CMDs ever overlap.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use zkutil::server::{Ensemble, Options};
use zkutil::util::send_signal;

use crate::support::{Proc, hosts, unique_root, wait_until};
use crate::t;

/// The lines of the witness file (empty when it does not exist yet).
fn witness(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file).unwrap_or_default().lines().map(str::to_string).collect()
}

/// A's lines written after B's first line: the overlap of two holders.
fn overlap(lines: &[String]) -> Vec<String> {
    match lines.iter().position(|l| l == "B") {
        Some(b) => lines[b..].iter().filter(|l| *l == "A").cloned().collect(),
        None => Vec::new(),
    }
}

/// Pids of live processes whose command line contains `marker`.
fn with_marker(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if String::from_utf8_lossy(&cmdline).contains(marker) && crate::support::alive(pid) {
            found.push(pid);
        }
    }
    found
}

/// Children of `parent` whose command line contains `marker`.
fn children_with(parent: u32, marker: &str) -> Vec<u32> {
    with_marker(marker)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                s.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1).map(|p| p == parent.to_string()))
                    == Some(true)
            })
        })
        .collect()
}

/// The holder's CMD: a subshell that appends `A` to `file` every 0.3 s, forever (the
/// issue's repro: the outer `sh` waits for it; SIGTERM to the outer `sh` alone left it).
fn loop_cmd(file: &Path, marker: &str) -> String {
    format!("(while true; do echo A >> {}; sleep 0.3; done); true # {marker}", file.display())
}

/// The waiter's CMD: `B`, a second of watching, `C`.
fn witness_cmd(file: &Path) -> String {
    format!("echo B >> {0}; sleep 1; echo C >> {0}", file.display())
}

#[test]
fn sigterm_stops_the_whole_group_before_the_next_holder_runs() {
    let root = unique_root("child-group");
    let dir = t!(tempfile::tempdir());
    for (i, recipe) in [["lock"].as_slice(), ["semaphore", "-n", "1"].as_slice()].into_iter().enumerate() {
        let file = dir.path().join(format!("w{i}"));
        let path = format!("{root}/{}", recipe[0]);
        let marker = format!("zkutil-test-group-{}-{i}", std::process::id());
        let a_cmd = loop_cmd(&file, &marker);
        let b_cmd = witness_cmd(&file);
        let args = |cmd: &str| -> Vec<String> {
            recipe
                .iter()
                .map(|s| s.to_string())
                .chain([path.clone(), "--".into(), "sh".into(), "-c".into(), cmd.into()])
                .collect()
        };
        let a_args = args(&a_cmd);
        let a = Proc::start(&a_args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(wait_until(Duration::from_secs(20), || witness(&file).contains(&"A".to_string())), "A never ran");
        let b_args = args(&b_cmd);
        let b = Proc::start(&b_args.iter().map(String::as_str).collect::<Vec<_>>());
        // b queued behind a (its node is there), then a is told to stop
        let zk = crate::support::connect();
        let queued = || {
            let nodes = |p: &str| zk.children(p).map(|c| c.len()).unwrap_or(0);
            nodes(&path) >= 2 || nodes(&format!("{path}/locks")) >= 2
        };
        assert!(wait_until(Duration::from_secs(20), queued), "b never queued");
        a.signal(Signal::SIGTERM);
        let (code, _, err) = a.finish();
        assert_eq!(code, Some(143), "{err}");
        let (code, _, err) = b.finish();
        assert_eq!(code, Some(0), "{err}");
        let lines = witness(&file);
        assert!(lines.ends_with(&["B".to_string(), "C".to_string()]), "{lines:?}");
        assert_eq!(overlap(&lines), Vec::<String>::new(), "{} CMDs overlapped: {lines:?}", recipe[0]);
        assert!(with_marker(&marker).is_empty(), "A's loop survived");
    }
}

/// The probe of the issue: SIGKILL `zkutil lock` (`semaphore`, `election run`) the moment
/// its CMD appears as its child (the guard must already be there): A's loop must be gone
/// within the guard's margin, long before the session expires and a second holder (B) runs.
/// Half the tries kill at the first sight of CMD's process, half once it has exec'd CMD.
#[test]
fn sigkill_at_spawn_leaves_no_unguarded_cmd() {
    let root = unique_root("child-probe");
    let dir = t!(tempfile::tempdir());
    let mut overlaps = 0;
    let mut tries = 0;
    let recipes: [(&[&str], usize); 3] = [(&["lock"], 4), (&["semaphore", "-n", "1"], 2), (&["election", "run"], 2)];
    for (recipe, n) in recipes {
        let path = format!("{root}/{}", recipe[0]);
        for i in 0..n {
            tries += 1;
            let file = dir.path().join(format!("w{tries}"));
            let marker = format!("zkutil-test-probe-{}-{tries}", std::process::id());
            let a_cmd = format!("while true; do echo A >> {}; sleep 0.1; done # {marker}", file.display());
            let args = |cmd: &str| -> Vec<String> {
                recipe
                    .iter()
                    .map(|s| s.to_string())
                    .chain([path.clone(), "--".into(), "sh".into(), "-c".into(), cmd.into()])
                    .collect()
            };
            let mut a_args = vec!["--session-timeout".to_string(), "2s".to_string()];
            a_args.extend(args(&a_cmd));
            let mut a = Proc::start(&a_args.iter().map(String::as_str).collect::<Vec<_>>());
            let pid = a.child.id();
            let deadline = Instant::now() + Duration::from_secs(20);
            let exec_d = i % 2 == 1;
            loop {
                let kids = children_with(pid, &marker);
                let ready = kids.iter().any(|k| {
                    !exec_d
                        || std::fs::read(format!("/proc/{k}/cmdline"))
                            .is_ok_and(|c| !String::from_utf8_lossy(&c).contains("zkutil-cmd"))
                });
                if ready {
                    break;
                }
                assert!(Instant::now() < deadline && a.running(), "{}: CMD never appeared", recipe[0]);
            }
            t!(send_signal(pid, Signal::SIGKILL));
            let _ = a.child.wait();
            // the guard stops the group within its margin (T/6), long before the session expires
            let gone = wait_until(Duration::from_secs(10), || with_marker(&marker).is_empty());
            assert!(gone, "{}: CMD outlived zkutil", recipe[0]);
            let b_args = args(&witness_cmd(&file));
            let b = Proc::start(&b_args.iter().map(String::as_str).collect::<Vec<_>>());
            let (code, _, err) = b.finish();
            assert_eq!(code, Some(0), "{err}");
            if !overlap(&witness(&file)).is_empty() {
                overlaps += 1;
            }
            drop(a);
        }
    }
    assert_eq!(overlaps, 0, "CMDs overlapped in {overlaps} of {tries} tries");
}

/// After a loss (the server frozen: silence past T/6 after the client notices it at 2T/3),
/// CMD's group gets SIGTERM, and SIGKILL T/6 later if it ignores it; zkutil exits once the
/// group is gone. Prints the timeline the README shows.
#[test]
fn a_lost_hold_stops_the_group_within_the_margin() {
    let server = t!(Ensemble::start(Options::for_tests(1)));
    let hosts = server.connect_string();
    let dir = t!(tempfile::tempdir());
    let file = dir.path().join("w");
    let marker = format!("zkutil-test-loss-{}", std::process::id());
    // ignores SIGTERM (notes it), and so does its child: only SIGKILL ends them
    let cmd = format!(
        "trap 'echo TERM >> {0}' TERM; (trap '' TERM; while true; do sleep 0.05; done) & \
         echo up >> {0}; while true; do sleep 0.05; done # {marker}",
        file.display()
    );
    let a = Proc::start_on(&hosts, &["--session-timeout", "3s", "lock", "/l", "--", "sh", "-c", &cmd]);
    assert!(wait_until(Duration::from_secs(20), || witness(&file).contains(&"up".to_string())));
    let jvm = server.pids()[0].expect("server pid");
    let t0 = Instant::now();
    t!(send_signal(jvm, Signal::SIGSTOP));
    let mut term = None;
    let mut gone = None;
    let ok = wait_until(Duration::from_secs(20), || {
        if term.is_none() && witness(&file).contains(&"TERM".to_string()) {
            term = Some(t0.elapsed());
        }
        if gone.is_none() && with_marker(&marker).is_empty() {
            gone = Some(t0.elapsed());
        }
        gone.is_some()
    });
    let exited = t0.elapsed();
    t!(send_signal(jvm, Signal::SIGCONT));
    assert!(ok, "CMD's group survived");
    let (code, _, err) = a.finish();
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("lost the lock /l"), "{err}");
    let (term, gone) = (term.expect("CMD never got SIGTERM"), gone.unwrap());

    eprintln!(
        "timeline (T = 3s, server frozen at 0): SIGTERM seen by CMD at {:.2}s, group gone (SIGKILL) at {:.2}s, \
         zkutil done by {:.2}s; {}",
        term.as_secs_f64(),
        gone.as_secs_f64(),
        exited.as_secs_f64(),
        err.trim()
    );
    // SIGKILL comes the margin (T/6 = 0.5 s) after SIGTERM; generous bound for a loaded machine
    assert!(gone >= term, "{term:?} {gone:?}");
    assert!(gone - term < Duration::from_secs(3), "{term:?} {gone:?}");
    drop(server);
    let _ = hosts;
}

#[test]
fn a_cmd_that_cannot_run_is_an_error_and_leaves_no_node() {
    let root = unique_root("child-missing");
    let path = format!("{root}/lock");
    let o = crate::support::run(&["lock", &path, "--", "/nonexistent/zkutil-no-such-cmd"]);
    assert!(!o.status.success());
    let err = crate::support::stderr(&o);
    assert!(err.contains("zkutil-no-such-cmd"), "{err}");
    let zk = crate::support::connect();
    assert!(zk.children(&path).unwrap_or_default().is_empty());
    let _ = hosts();
}

/// A CMD on zkutil's terminal gets the terminal (in the background it would stop on its
/// first read): it reads a line typed there, and Ctrl-C typed there stops its whole group.
/// Needs util-linux's `script` for a pseudo-terminal (skipped without it).
#[test]
fn a_cmd_on_a_terminal_reads_it_and_ctrl_c_stops_it() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipped: no /usr/bin/script");
        return;
    }
    let root = unique_root("child-tty");
    let dir = t!(tempfile::tempdir());
    let zkutil = env!("CARGO_BIN_EXE_zkutil");
    // CMD touches `up` first; `typed` goes to the terminal once it did
    let run = |i: usize, cmd: &str, typed: &'static [u8]| -> String {
        let up = dir.path().join(format!("up{i}"));
        let line = format!("{zkutil} lock {root}/l -- sh -c 'touch {}; {cmd}'; echo rc=$?", up.display());
        let mut c = Command::new("/usr/bin/script")
            .args(["-qec", &line, "/dev/null"])
            .env("ZK_HOSTS", hosts())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        let out = c.stdout.take().unwrap();
        let reader = std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default());
        assert!(wait_until(Duration::from_secs(20), || up.exists()), "CMD never ran");
        let _ = stdin.write_all(typed);
        let done = wait_until(Duration::from_secs(20), || c.try_wait().unwrap().is_some());
        if !done {
            let _ = c.kill();
        }
        let _ = c.wait();
        drop(stdin);
        reader.join().unwrap().replace('\r', "")
    };
    let out = run(0, "read x; echo got $x; exit 4", b"hello\n");
    assert!(out.contains("got hello") && out.contains("rc=4"), "{out:?}");
    let marker = format!("zkutil-test-tty-{}", std::process::id());
    // the background sleep ignores SIGINT (sh's rule): zkutil stops it before it releases
    let nap = format!("sleep 60.{}", std::process::id());
    let out = run(1, &format!("{nap} & {nap} # {marker}"), b"\x03");
    assert!(out.contains("rc=130"), "{out:?}");
    let gone = || with_marker(&marker).is_empty() && with_marker(&nap).is_empty();
    assert!(wait_until(Duration::from_secs(10), gone), "CMD's group survived Ctrl-C");
    assert!(crate::support::connect().children(&format!("{root}/l")).unwrap_or_default().is_empty());
}
