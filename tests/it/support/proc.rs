//! A running zkutil whose stdout lines are collected as they come (by a reader thread), for
//! tests that wait on what a long-running command prints and then check how it ended.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use zkutil::util::send_signal;

use super::{wait_until, zkutil};

/// A spawned zkutil (stdout and stderr piped); SIGKILLed and reaped on drop.
pub struct Proc {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Proc {
    /// zkutil `args` against the shared server, stdin null.
    pub fn start(args: &[&str]) -> Proc {
        Proc::spawn(&mut zkutil(args))
    }

    /// zkutil `args` against `hosts`, stdin null.
    pub fn start_on(hosts: &str, args: &[&str]) -> Proc {
        Proc::spawn(zkutil(args).env("ZK_HOSTS", hosts))
    }

    /// zkutil `args` against the shared server, stdin piped (`child.stdin` to write or drop).
    pub fn start_piped(args: &[&str]) -> Proc {
        Proc::spawn(zkutil(args).stdin(Stdio::piped()))
    }

    /// Spawns `cmd` with stdout and stderr piped and starts collecting its stdout lines.
    pub fn spawn(cmd: &mut Command) -> Proc {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn zkutil");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        Proc { child, lines, reader: Some(reader) }
    }

    /// The stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// True if some stdout line so far is exactly `line`.
    pub fn has_line(&self, line: &str) -> bool {
        self.lines().iter().any(|l| l == line)
    }

    /// Waits (up to `timeout`) for a line containing `needle`; returns it.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            found = self.lines().into_iter().find(|l| l.contains(needle));
            found.is_some()
        });
        found
    }

    pub fn signal(&self, sig: Signal) {
        crate::t!(send_signal(self.child.id(), sig));
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// SIGKILL, and reap it (so its CMD sees its parent gone).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for exit (up to a generous 60 s deadline); returns the code, stdout lines and stderr.
    pub fn finish(self) -> (Option<i32>, Vec<String>, String) {
        self.finish_within(Duration::from_secs(60))
    }

    /// Waits for exit up to `timeout` (SIGKILL and fail the test after it); returns the code,
    /// stdout lines and stderr.
    pub fn finish_within(mut self, timeout: Duration) -> (Option<i32>, Vec<String>, String) {
        let done = wait_until(timeout, || self.child.try_wait().unwrap().is_some());
        if !done {
            let _ = self.child.kill();
        }
        let status = self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        let mut err = String::new();
        std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(done, "zkutil did not exit in time; stdout: {:?}", self.lines());
        (status.code(), self.lines(), err)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
