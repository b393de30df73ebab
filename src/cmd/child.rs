//! Running a user's CMD beside a recipe: CMD runs in its own process group, is waited for on
//! its own thread (so the caller can `select!` on its exit, a stop signal and session
//! events), and is stopped as a whole: every stop signals the group, SIGTERM (or SIGINT for
//! Ctrl-C) first, SIGKILL once the holder's margin has passed. A CMD that exits leaving
//! children behind in its group has them stopped the same way before the caller goes on,
//! so a lock (lease, leadership, claim) is never released while any of CMD's work runs.
//!
//! A CMD must never outlive the zkutil that holds the lock it runs under, even when zkutil
//! is SIGKILLed and cannot clean up: otherwise the next holder's CMD would run beside it
//! once the session times out. So the guard exists before CMD does:
//!
//! 1. the guard, a tiny `sh`, starts first; its stdin is a pipe whose only write end we hold.
//!    When we die for any reason the kernel closes it and the guard signals CMD's group
//!    (SIGTERM, SIGKILL after the margin). It ignores the terminal's signals.
//! 2. CMD's process starts in a new process group (`process_group(0)`: its pid is the group
//!    id) as `sh`, which waits for a `go` line on a second pipe before it execs CMD.
//! 3. we tell the guard the group id, then send `go`.
//!
//! If we die before 3 the `sh` reads EOF instead of `go` and exits without running CMD; from
//! 3 on, the guard has the group id. PR_SET_PDEATHSIG would do it in the child itself, but
//! needs `unsafe` (pre_exec), which lives in src/zk alone. The `sh` reads `go` through
//! `/proc/<our pid>/fd/<n>` (our end of the pipe, close-on-exec, so CMD inherits nothing):
//! dash cannot name a descriptor above 9, and std can only hand over 0, 1 and 2.

use std::io::{self, PipeReader, PipeWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossbeam_channel::Receiver;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::zk::ZooKeeper;

/// The margin of a holder on `zk`: a sixth of the session timeout. A hold is given up T/6
/// after the client noticed silence (2T/3), and the server may expire the session at T, so
/// T/6 is what is left to stop CMD; the guard of a SIGKILLed zkutil uses the same margin.
pub fn margin(zk: &ZooKeeper) -> Duration {
    zk.session_timeout() / 6
}

/// How often a stop looks whether the group is gone.
const POLL: Duration = Duration::from_millis(20);

/// The guard: learns the group id, waits for EOF, then stops the group. `$1`: the margin in
/// ticks of 50 ms.
const GUARD: &str = "trap '' INT TERM HUP QUIT PIPE TSTP; read pg || exit 0; read _; \
     kill -TERM -$pg 2>/dev/null || exit 0; i=0; \
     while [ $i -lt $1 ] && kill -0 -$pg 2>/dev/null; do sleep 0.05; i=$((i+1)); done; \
     kill -KILL -$pg 2>/dev/null; exit 0";

/// CMD's process before it becomes CMD: waits for `go` on our pipe (`$1`: our pid, `$2`: the
/// descriptor), then execs CMD (`$3...`).
const LAUNCH: &str = "IFS= read -r go </proc/$1/fd/$2 2>/dev/null; [ \"$go\" = go ] || exit 125; shift 2; exec \"$@\"";

/// A CMD we started.
pub struct Child {
    /// CMD's pid, which is its process group's id.
    pgid: Pid,
    margin: Duration,
    done: Receiver<io::Result<ExitStatus>>,
    exited: Option<ExitStatus>,
    guard: Option<std::process::Child>,
    /// Our end of the guard's pipe: closing it (or dying) fires the guard.
    _armed: PipeWriter,
    /// CMD's group has the terminal (ours to take back once the group is gone).
    terminal: bool,
}

impl Child {
    /// Starts `argv` (non-empty) with stdin, stdout and stderr inherited; `margin` is how
    /// long a stopped CMD gets between SIGTERM and SIGKILL (see [`margin`]).
    pub fn spawn(argv: &[String], margin: Duration) -> Result<Child> {
        Child::start(argv, None, margin)
    }

    /// Starts `argv` (non-empty) with `input` on its stdin (written from a thread, so a CMD
    /// that does not read it all cannot block us), stdout and stderr inherited.
    pub fn spawn_fed(argv: &[String], input: Vec<u8>, margin: Duration) -> Result<Child> {
        Child::start(argv, Some(input), margin)
    }

    fn start(argv: &[String], input: Option<Vec<u8>>, margin: Duration) -> Result<Child> {
        let (prog, _) = argv.split_first().context("no command given")?;
        // CMD's process is a `sh` that execs it, so its own spawn would not tell
        super::exit::check_runnable(argv)?;
        // 1. the guard
        let (armed_r, mut armed) = io::pipe().context("making the guard's pipe")?;
        let ticks = (margin.as_millis() / 50).max(1).to_string();
        let mut guard = Command::new("/bin/sh")
            .args(["-c", GUARD, "zkutil-guard", &ticks])
            .stdin(armed_r)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting the guard of {prog} (/bin/sh)"))?;
        let retire = |guard: &mut std::process::Child| {
            let _ = guard.kill();
            let _ = guard.wait();
        };
        // 2. CMD's process, in its own group, waiting for `go`
        let (go_r, mut go): (PipeReader, PipeWriter) = match io::pipe() {
            Ok(p) => p,
            Err(e) => {
                retire(&mut guard);
                return Err(anyhow::Error::new(e).context("making CMD's start pipe"));
            }
        };
        let (me, fd) = (std::process::id().to_string(), go_r.as_raw_fd().to_string());
        if let Err(e) = std::fs::metadata(format!("/proc/{me}/fd/{fd}")) {
            retire(&mut guard);
            return Err(anyhow::Error::new(e).context(format!("starting {prog}: /proc/{me}/fd is not readable")));
        }
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", LAUNCH, "zkutil-cmd", &me, &fd]).args(argv).process_group(0);
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                retire(&mut guard);
                return Err(anyhow::Error::new(e).context(format!("starting {prog}")));
            }
        };
        let pgid = Pid::from_raw(child.id() as i32);
        // A CMD on our terminal gets it (it would stop on its first read in the background);
        // then Ctrl-C reaches CMD's group from the terminal itself.
        let terminal = input.is_none() && hand_terminal(pgid);
        // 3. arm the guard, then let CMD run
        if let Err(e) = armed.write_all(format!("{pgid}\n").as_bytes()).and_then(|()| go.write_all(b"go\n")) {
            let _ = signal(pgid, Signal::SIGKILL);
            let _ = child.wait();
            retire(&mut guard);
            if terminal {
                take_terminal();
            }
            return Err(anyhow::Error::new(e).context(format!("arming the guard of {prog}")));
        }
        if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
            std::thread::Builder::new()
                .name("child-stdin".into())
                .spawn(move || {
                    let _ = stdin.write_all(&input); // EPIPE: CMD did not want it all
                })
                .context("spawning the thread that feeds CMD")?;
        }
        let (tx, done) = crossbeam_channel::bounded(1);
        std::thread::Builder::new()
            .name("child-wait".into())
            .spawn(move || {
                let status = child.wait();
                drop((go_r, go)); // read (or never to be read) by now
                let _ = tx.send(status);
            })
            .context("spawning the thread that waits for CMD")?;
        Ok(Child { pgid, margin, done, exited: None, guard: Some(guard), _armed: armed, terminal })
    }

    /// Fires (once) when CMD's process exits: `select!` on it, then call [`Child::reaped`].
    pub fn done(&self) -> &Receiver<io::Result<ExitStatus>> {
        &self.done
    }

    /// Records what `done` delivered, and stops whatever CMD left running in its group
    /// (SIGTERM, SIGKILL after the margin) before it returns.
    pub fn reaped(
        &mut self,
        status: Result<io::Result<ExitStatus>, crossbeam_channel::RecvError>,
    ) -> Result<ExitStatus> {
        let status = status.context("lost track of CMD")?.context("waiting for CMD")?;
        self.exited = Some(status);
        self.settle(Signal::SIGTERM);
        Ok(status)
    }

    /// SIGTERM to CMD's group, SIGKILL after the margin; returns how CMD ended once the
    /// whole group is gone.
    pub fn terminate(&mut self) -> Result<ExitStatus> {
        self.stop(Signal::SIGTERM)
    }

    /// Passes on the signal that stopped zkutil (SIGINT for Ctrl-C, else SIGTERM) to CMD's
    /// group, then SIGKILL after the margin; returns how CMD ended once the group is gone.
    pub fn forward_stop(&mut self) -> Result<ExitStatus> {
        match crate::util::stopped_by() {
            Some(crate::util::Stop::Interrupt) => self.stop(Signal::SIGINT),
            _ => self.stop(Signal::SIGTERM),
        }
    }

    /// `sig` to the group, then SIGKILL after the margin; returns how CMD ended.
    fn stop(&mut self, sig: Signal) -> Result<ExitStatus> {
        if let Some(s) = self.exited {
            self.settle(sig);
            return Ok(s);
        }
        let until = Instant::now() + self.margin;
        let _ = signal(self.pgid, sig);
        let r = match self.done.recv_deadline(until) {
            Ok(r) => r,
            Err(_) => {
                log::warn!("CMD (group {}) ignored {sig} for {:?}: killing it", self.pgid, self.margin);
                let _ = signal(self.pgid, Signal::SIGKILL);
                self.done.recv().context("lost track of CMD")?
            }
        };
        let status = r.context("waiting for CMD")?;
        self.exited = Some(status);
        // The rest of the group got `sig` with CMD; what is left gets the rest of the margin.
        self.finish(until);
        Ok(status)
    }

    /// After CMD's process exited: the rest of its group gets `sig` and the margin to go,
    /// then SIGKILL; then the guard is retired.
    fn settle(&mut self, sig: Signal) {
        if self.guard.is_none() {
            return;
        }
        if group_alive(self.pgid) {
            log::info!("CMD left processes in its group {}: sending {sig}", self.pgid);
            let _ = signal(self.pgid, sig);
        }
        self.finish(Instant::now() + self.margin);
    }

    /// Waits until the group is gone, SIGKILLs it at `until`, then retires the guard.
    fn finish(&mut self, until: Instant) {
        if !wait_gone(self.pgid, until) {
            log::warn!("processes of CMD's group {} outlived the margin: killing them", self.pgid);
            let _ = signal(self.pgid, Signal::SIGKILL);
            if !wait_gone(self.pgid, Instant::now() + Duration::from_secs(1)) {
                log::warn!("processes of CMD's group {} survive SIGKILL", self.pgid);
            }
        }
        // The group is gone: retire the guard (our child, so its pid cannot be reused
        // before we reap it) before its group id could be reused.
        if let Some(mut g) = self.guard.take() {
            let _ = g.kill();
            let _ = g.wait();
        }
        if std::mem::take(&mut self.terminal) {
            take_terminal();
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // never leave a CMD running behind us (an error path returned early)
        let _ = self.terminate();
    }
}

/// Makes group `pgid` the foreground of our terminal, when stdin is one and we are its
/// foreground; true when done.
fn hand_terminal(pgid: Pid) -> bool {
    let tty = io::stdin();
    std::io::IsTerminal::is_terminal(&tty)
        && nix::unistd::tcgetpgrp(&tty).is_ok_and(|fg| fg == nix::unistd::getpgrp())
        && nix::unistd::tcsetpgrp(&tty, pgid).is_ok()
}

/// Makes our group the terminal's foreground again. We are in the background by then, so
/// SIGTTOU is blocked in this thread for the call (blocked, the kernel allows it).
fn take_terminal() {
    use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old)).is_ok() {
        if let Err(e) = nix::unistd::tcsetpgrp(io::stdin(), nix::unistd::getpgrp()) {
            log::warn!("taking the terminal back from CMD: {e}");
        }
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}

/// Sends `sig` to group `pgid` (through the one `util::signal_group`).
fn signal(pgid: Pid, sig: Signal) -> io::Result<()> {
    crate::util::signal_group(pgid.as_raw() as u32, sig)
}

/// True while a process of group `pgid` runs (zombies do not count: nothing may reap them).
fn group_alive(pgid: Pid) -> bool {
    match killpg(pgid, None) {
        // signal 0: a probe, nothing is sent
        Err(Errno::ESRCH) => false,
        Err(_) => true,
        Ok(()) => live_member(pgid),
    }
}

/// True when /proc shows a process of group `pgid` that is not a zombie (or /proc cannot
/// tell).
fn live_member(pgid: Pid) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else { return true };
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit())) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // pid (comm) state ppid pgrp ...: comm may hold anything, so parse after the last ')'
        let mut fields = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default().split_whitespace();
        let (state, pgrp) = (fields.next(), fields.nth(1));
        if pgrp == Some(&pgid.to_string()) && !matches!(state, Some("Z" | "X")) {
            return true;
        }
    }
    false
}

/// Polls until group `pgid` is gone or `until`; true when gone.
fn wait_gone(pgid: Pid, until: Instant) -> bool {
    loop {
        if !group_alive(pgid) {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
    }
}

/// The exit code a shell would report for `status`: the code, or 128 + the signal.
pub fn exit_code(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => ExitCode::from(c as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        _ => ExitCode::FAILURE,
    }
}
