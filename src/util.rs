//! Small shared helpers: durations on the command line, safe printing of node data,
//! timestamps, and the process-wide shutdown signal.

use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, Sender};

/// The longest duration the command line takes: 100 years. Anything longer is a usage
/// error, so `Instant::now() + d` (and small multiples of `d`) can never overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000); // humantime's 100y

/// Parses a duration written with a unit (`300ms`, `2s`, `1m`); a bare number is refused,
/// and so is anything above [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("{s:?} has no unit: write it like 300ms, 2s or 1m"));
    }
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}): write it like 300ms, 2s or 1m"))?;
    if d > MAX_DURATION {
        return Err(format!("{s:?} is too long: at most 100 years"));
    }
    Ok(d)
}

/// The session timeouts the C client can ask for: from 2 ms (it pings every third of the
/// timeout, in whole ms) to below 2^30 ms (it computes with the timeout in int ms).
pub const SESSION_TIMEOUT_RANGE: std::ops::Range<Duration> = Duration::from_millis(2)..Duration::from_millis(1 << 30);

/// `--session-timeout`: a duration in [`SESSION_TIMEOUT_RANGE`]. (The server then clamps
/// what it grants to 2..20 of its ticks: 4s..40s with the default tickTime.)
pub fn parse_session_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if !SESSION_TIMEOUT_RANGE.contains(&d) {
        return Err(format!("{s:?} is not a session timeout the client can use: from 2ms to below 12d"));
    }
    Ok(d)
}

/// `Instant::now() + d`, saturating far in the future instead of panicking on overflow.
pub fn deadline_after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + MAX_DURATION)
}

/// Node data for a terminal: UTF-8 text as is (newlines and tabs kept, backslashes too),
/// every other control character and every invalid byte escaped as `\xNN`, so binary data
/// never garbles the terminal. Only for terminals and one-line displays: `get` through a
/// pipe writes the bytes unchanged.
pub fn escape_data(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len());
    for chunk in data.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\n' | '\t' => out.push(c),
                c if c.is_control() => {
                    let _ = write!(out, "\\x{:02x}", c as u32);
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// A ZooKeeper timestamp (ms since the epoch) in RFC 3339, UTC.
pub fn format_millis(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// Now, in ms since the epoch.
pub fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
}

struct ShutdownState {
    // (sender, receiver): dropping the sender wakes every receiver; `reset_shutdown` swaps
    // in a fresh pair so one process (`zkutil shell`) can stop one command after another.
    chan: Mutex<(Option<Sender<()>>, Receiver<()>)>,
    which: Mutex<Option<Stop>>,
}

static SHUTDOWN: OnceLock<ShutdownState> = OnceLock::new();

fn shutdown_state() -> &'static ShutdownState {
    SHUTDOWN.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::bounded(0);
        let state = ShutdownState { chan: Mutex::new((Some(tx), rx)), which: Mutex::new(None) };
        match signal_hook::iterator::Signals::new([signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM]) {
            Ok(mut signals) => {
                std::thread::Builder::new()
                    .name("signals".into())
                    .spawn(move || {
                        for sig in signals.forever() {
                            let s = shutdown_state();
                            let mut which = s.which.lock().unwrap_or_else(|e| e.into_inner());
                            if which.is_some() {
                                // a second signal while stopping: the default action (die)
                                let _ = signal_hook::low_level::emulate_default_handler(sig);
                                continue;
                            }
                            *which = Some(if sig == signal_hook::consts::SIGINT {
                                Stop::Interrupt
                            } else {
                                Stop::Terminate
                            });
                            // Dropping the only Sender wakes every receiver at once.
                            s.chan.lock().unwrap_or_else(|e| e.into_inner()).0.take();
                        }
                    })
                    .expect("spawn signal thread");
            }
            Err(e) => log::warn!("cannot install signal handlers: {e}"),
        }
        state
    })
}

/// A receiver that disconnects when SIGINT or SIGTERM arrives: `select!` on it with
/// `recv(shutdown) -> _`. The first call installs the handlers (Ctrl-C then no longer kills
/// the process outright: the command stops cleanly and closes its session; a second
/// signal while stopping does).
pub fn shutdown() -> Receiver<()> {
    shutdown_state().chan.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
}

/// The shutdown receiver if a command armed it with [`shutdown`] (None: a signal still
/// kills the process outright).
pub fn shutdown_if_armed() -> Option<Receiver<()>> {
    SHUTDOWN.get().map(|s| s.chan.lock().unwrap_or_else(|e| e.into_inner()).1.clone())
}

/// Forgets a signal that stopped a command, so the next one runs (`zkutil shell` after
/// Ctrl-C stopped a line). Receivers handed out before stay disconnected.
pub fn reset_shutdown() {
    let Some(s) = SHUTDOWN.get() else { return };
    let mut which = s.which.lock().unwrap_or_else(|e| e.into_inner());
    if which.take().is_some() {
        let (tx, rx) = crossbeam_channel::bounded(0);
        *s.chan.lock().unwrap_or_else(|e| e.into_inner()) = (Some(tx), rx);
    }
}

/// The signal that stopped us, if any.
pub fn stopped_by() -> Option<Stop> {
    *shutdown_state().which.lock().unwrap_or_else(|e| e.into_inner())
}

/// True once a stop was requested.
pub fn stop_requested() -> bool {
    stopped_by().is_some()
}

/// Sends `sig` to process `pid` (a child we started). Errors when it is already gone. The
/// one way zkutil signals a process (kill(2) through nix; nothing shells out to `kill`).
pub fn send_signal(pid: u32, sig: nix::sys::signal::Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other(format!("pid {pid} out of range")))?;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).map_err(std::io::Error::from)
}

/// Sends `sig` to every process of process group `pgid` (a CMD started as the leader of
/// its own group: `pgid` is its pid). Errors when the group is gone.
pub fn signal_group(pgid: u32, sig: nix::sys::signal::Signal) -> std::io::Result<()> {
    let pgid = i32::try_from(pgid).map_err(|_| std::io::Error::other(format!("pgid {pgid} out of range")))?;
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), sig).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("18446744073709551615s").is_err());
        assert!(parse_duration("9223372036854775807s").unwrap_err().contains("too long"));
        assert_eq!(parse_duration("100y").unwrap(), MAX_DURATION);
        assert!(parse_duration("101y").is_err());
        assert!(deadline_after(MAX_DURATION) > Instant::now());
    }

    #[test]
    fn session_timeouts_the_client_can_use() {
        assert!(parse_session_timeout("0s").is_err());
        assert!(parse_session_timeout("1ms").is_err());
        assert_eq!(parse_session_timeout("2ms").unwrap(), Duration::from_millis(2));
        assert!(parse_session_timeout("30d").is_err());
        assert!(parse_session_timeout("12d").is_ok());
    }

    #[test]
    fn escapes_binary() {
        assert_eq!(escape_data(b"hello\nworld"), "hello\nworld");
        assert_eq!(escape_data(b"\x1b[31m"), "\\x1b[31m");
        assert_eq!(escape_data(&[0xff, b'a', 0]), "\\xffa\\x00");
        assert_eq!(escape_data("héllo".as_bytes()), "héllo");
        assert_eq!(escape_data(br#"{"path":"C:\tmp"}"#), r#"{"path":"C:\tmp"}"#);
    }
}
