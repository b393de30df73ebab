//! Recipes across hosts: three network-namespace hosts (tests/it/support/rig.rs, driven by
//! tools/rig.sh), one ZooKeeper member per host, zkutil processes inside the hosts, and a
//! host cut off from the others (its link down) while it holds something. These tests need
//! root and `ip netns`; where those are missing they print `SKIPPED ...` and pass.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use zkutil::zk::{CreateMode, ZooKeeper};

use crate::support::rig::{HOSTS, Rig};
use crate::support::wait_until;
use crate::t;

/// A shell loop in its own process group, SIGKILLed (the whole group) on drop.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0.id() as i32), Signal::SIGKILL);
        let _ = self.0.wait();
    }
}

fn now_ns() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos()
}

/// One run of the CMD: which host, first and last stamp, whether it wrote its `end`.
#[derive(Debug, Clone)]
struct Run {
    host: usize,
    start: u128,
    last: u128,
    ended: bool,
}

/// The runs in the shared file (`<host>-<pid> start|tick|end <ns>` lines), in the order
/// they started.
fn runs(file: &Path) -> Vec<Run> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut order = Vec::new();
    let mut by_id: BTreeMap<String, Run> = BTreeMap::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        let (Some(id), Some(kind), Some(Ok(ts))) = (w.first(), w.get(1), w.get(2).map(|t| t.parse::<u128>())) else {
            continue; // a line being written
        };
        let host: usize = id.split('-').next().unwrap().parse().unwrap();
        let r = by_id.entry(id.to_string()).or_insert_with(|| {
            order.push(id.to_string());
            Run { host, start: ts, last: ts, ended: false }
        });
        r.last = r.last.max(ts);
        r.ended |= *kind == "end";
    }
    order.iter().map(|id| by_id[id].clone()).collect()
}

/// The CMD each contender runs under the lock: stamps its start, a tick every 50 ms while
/// fewer than `$DIR/ticks` ticks were written, then its end; all into `$DIR/holds`. The
/// stamps are CLOCK_REALTIME of the one machine, common to every host.
const CMD: &str = r#"f="$DIR/holds"; id="$HOST-$$"; echo "$id start $(date +%s%N)" >> "$f"
i=0; while [ "$i" -lt "$(cat "$DIR/ticks")" ]; do sleep 0.05; echo "$id tick $(date +%s%N)" >> "$f"; i=$((i+1)); done
echo "$id end $(date +%s%N)" >> "$f""#;

/// How many runs in the shared file wrote their `end`, and how many times the lock went
/// from one host to another (runs in start order, each next to the one before).
fn progress(file: &Path) -> (usize, usize) {
    let mut r = runs(file);
    r.sort_by_key(|r| r.start);
    (r.iter().filter(|r| r.ended).count(), r.windows(2).filter(|w| w[0].host != w[1].host).count())
}

/// The lesser of [`progress`]'s two counts: the lock test goes on until both reach
/// `LOCK_HOLDS`.
fn done(file: &Path) -> usize {
    let (completed, handoffs) = progress(file);
    completed.min(handoffs)
}

/// Completed CMD runs and handoffs between hosts the lock test needs, and how many of them
/// apart its cuts are (drawn from the seeded RNG).
const LOCK_HOLDS: usize = 200;
const LOCK_CUT_EVERY: std::ops::RangeInclusive<usize> = 20..=30;

/// A xorshift64 generator: the test's random choices, replayable from the printed seed
/// (`ZKUTIL_TEST_SEED=<seed>`).
struct Rng(u64);

impl Rng {
    fn seeded() -> (Rng, u64) {
        let seed = std::env::var("ZKUTIL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| (now_ns() as u64) | 1);
        (Rng(seed.max(1)), seed)
    }

    fn in_range(&mut self, r: std::ops::RangeInclusive<usize>) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        r.start() + (self.0 % (r.end() - r.start() + 1) as u64) as usize
    }
}

/// Pairs of runs whose [start, last stamp] intervals overlap (a sweep over the runs in
/// start order, so a long run overlapping several later ones counts for each).
fn overlaps(runs: &[Run]) -> Vec<(Run, Run)> {
    let mut sorted = runs.to_vec();
    sorted.sort_by_key(|r| r.start);
    let mut found = Vec::new();
    let mut latest: Option<&Run> = None; // the run that ends last among those started so far
    for r in &sorted {
        if let Some(l) = latest
            && l.last >= r.start
        {
            found.push((l.clone(), r.clone()));
        }
        if latest.is_none_or(|l| r.last > l.last) {
            latest = Some(r);
        }
    }
    found
}

/// The overlap sweep itself (no rig needed): a run overlapping a later, non-adjacent one is
/// found; back-to-back runs are not.
#[test]
fn lock_overlap_sweep() {
    let run = |host, start, last| Run { host, start, last, ended: true };
    assert!(overlaps(&[run(1, 0, 10), run(2, 11, 20), run(3, 21, 30)]).is_empty());
    let found = overlaps(&[run(2, 11, 12), run(1, 0, 25), run(3, 13, 14), run(2, 30, 40)]);
    let pairs: Vec<(usize, usize)> = found.iter().map(|(a, b)| (a.host, b.host)).collect();
    assert_eq!(pairs, [(1, 2), (1, 3)]);
}

/// `zkutil lock -- CMD` in a loop on every host, short CMDs (~60 ms), until 200 CMD runs
/// completed and the lock went 200 times from one host to another; every 20-30 of them (seeded RNG, seed printed) the holder's host is cut off
/// while its CMD runs: that CMD is stopped (no `end`, its last stamp) before any other
/// host's CMD starts, and the host is healed once another took over. Over all holds no two
/// CMDs overlap (their stamps, on the machine's one clock). A cut costs a session timeout
/// (4 s) or more (when the cut host had the ZooKeeper leader, an election first), so the
/// cuts are few: ~8, and the test takes ~1.5 min.
#[test]
fn lock_across_hosts() {
    let Some(rig) = Rig::start("across_hosts::lock_across_hosts") else { return };
    let t0 = Instant::now();
    let (mut rng, seed) = Rng::seeded();
    eprintln!("lock across hosts: seed {seed} (replay: ZKUTIL_TEST_SEED={seed})");
    let ens = rig.ensemble();
    let hosts = ens.connect_string();
    let zk = t!(ZooKeeper::connect(&hosts, Duration::from_secs(10)));
    let root = format!("/t-across-lock-{}", std::process::id());
    t!(zk.create(&root, b"", CreateMode::Persistent));
    let lock = format!("{root}/lock");
    let dir = t!(tempfile::tempdir());
    let (holds, ticks) = (dir.path().join("holds"), dir.path().join("ticks"));
    // Renamed into place: a CMD never reads a half-written count.
    let set_ticks = |n: u32| {
        let tmp = dir.path().join("ticks.new");
        t!(std::fs::write(&tmp, format!("{n}\n")));
        t!(std::fs::rename(&tmp, &ticks));
    };
    set_ticks(1);
    // Session timeout 4 s: the holder stops its CMD by ~5T/6 of silence, the server
    // expires the session at T.
    let contenders: Vec<Group> = HOSTS
        .iter()
        .map(|&h| {
            let script = r#"while :; do "$ZKUTIL" -q --session-timeout 4s --connect-timeout 3s lock "$LOCK" -- sh -c "$CMD"; sleep 0.1; done"#;
            let mut c = Rig::exec(h, "sh");
            c.args(["-c", script])
                .env("ZKUTIL", env!("CARGO_BIN_EXE_zkutil"))
                .env("ZK_HOSTS", &hosts)
                .env("LOCK", &lock)
                .env("CMD", CMD)
                .env("DIR", dir.path())
                .env("HOST", h.to_string())
                .env_remove("RUST_LOG")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0);
            Group(t!(c.spawn()))
        })
        .collect();

    let mut cut_report = Vec::new();
    let mut next_cut = rng.in_range(LOCK_CUT_EVERY);
    loop {
        let want = next_cut.min(LOCK_HOLDS);
        assert!(
            wait_until(Duration::from_secs(60), || done(&holds) >= want),
            "seed {seed}: stuck at {:?} (completed runs, handoffs between hosts), waiting for {want}",
            progress(&holds)
        );
        if want == LOCK_HOLDS {
            break;
        }
        // Make the holds long, and cut the holder's host off while its CMD runs: a run
        // stamped after the change reads the new count at its next check.
        let changed = now_ns();
        set_ticks(400);
        let mut holder = None;
        assert!(
            wait_until(Duration::from_secs(60), || {
                holder = runs(&holds).into_iter().find(|r| r.last > changed && !r.ended);
                holder.is_some()
            }),
            "seed {seed}: no long hold"
        );
        let held = holder.unwrap();
        let h = held.host;
        let zk_leader = ens.leader().map(|m| m + 1); // member i runs on host i + 1
        let (cut_at, cut_ns) = (Instant::now(), now_ns());
        rig.cut(h);
        let mut next = None;
        let took_over = wait_until(Duration::from_secs(60), || {
            next = runs(&holds).into_iter().find(|r| r.start > held.start && r.host != h);
            next.is_some()
        });
        let latency = cut_at.elapsed();
        set_ticks(1);
        rig.heal(h);
        assert!(took_over, "seed {seed}: no other host took the lock over after host {h} was cut off");
        let next = next.unwrap();
        let cut_run = runs(&holds).into_iter().find(|r| r.start == held.start && r.host == h).unwrap();
        assert!(!cut_run.ended, "seed {seed}: host {h}'s CMD ran to its end while cut off: {cut_run:?}");
        assert!(
            cut_run.last < next.start,
            "seed {seed}: host {h}'s CMD (last stamp {}) still ran when host {}'s started ({})",
            cut_run.last,
            next.host,
            next.start
        );
        cut_report.push(format!(
            "hold {:>3}: cut host {h}{}: its CMD stopped {:.1} s after the cut, host {} took over after {:.1} s",
            runs(&holds).iter().position(|r| r.start == held.start).unwrap_or(0) + 1,
            if zk_leader == Some(h) { " (the ZooKeeper leader's)" } else { "" },
            cut_run.last.saturating_sub(cut_ns) as f64 / 1e9,
            next.host,
            latency.as_secs_f64()
        ));
        next_cut = done(&holds) + rng.in_range(LOCK_CUT_EVERY);
    }
    // Every host holds again after the heals.
    let since = now_ns();
    assert!(
        wait_until(Duration::from_secs(60), || {
            let r = runs(&holds);
            HOSTS.iter().all(|&h| r.iter().any(|x| x.host == h && x.start > since && x.ended))
        }),
        "seed {seed}: a healed host never held the lock again: {:?}",
        runs(&holds)
    );
    set_ticks(0);
    drop(contenders);

    let all = runs(&holds);
    let bad = overlaps(&all);
    let (completed, handoffs) = progress(&holds);
    eprintln!(
        "lock across hosts: seed {seed}: {} holds ({completed} CMD runs completed), {handoffs} handoffs between \
         hosts, {} cuts, {} overlaps, {:.0} s",
        all.len(),
        cut_report.len(),
        bad.len(),
        t0.elapsed().as_secs_f64()
    );
    for line in &cut_report {
        eprintln!("  {line}");
    }
    assert!(bad.is_empty(), "seed {seed}: overlapping holds: {bad:?}");
    assert!(completed >= LOCK_HOLDS, "seed {seed}: only {completed} CMD runs completed");
    assert!(handoffs >= LOCK_HOLDS, "seed {seed}: only {handoffs} handoffs between hosts");
}

/// `bench election --hosts-rig` once (a smoke test, not a measurement): a kv server per
/// host, 50 ms added each way between them and ZooKeeper by the bench's proxy; both
/// handovers are timed, and the SIGTERM one shows the delay (the new leader hears of the
/// old one's end through the proxy and reads ZooKeeper through it before it leads: at
/// least 100 ms).
#[test]
fn bench_election_hosts_rig_smoke() {
    let Some(_rig) = Rig::start("across_hosts::bench_election_hosts_rig_smoke") else { return };
    let out = t!(std::process::Command::new(env!("CARGO_BIN_EXE_zkutil"))
        .args(["bench", "election", "--hosts-rig", "--rig-only", "--runs", "1", "--rig-delay", "50ms"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}");
    assert!(out.status.success(), "bench election --hosts-rig: {:?}\n{stdout}\n{stderr}", out.status);
    assert!(stdout.contains("rig +50 ms"), "{stdout}");
    let median = |sig: &str| -> f64 {
        let line = stdout.lines().find(|l| l.contains(&format!("SIG{sig}"))).unwrap_or_else(|| panic!("{stdout}"));
        let after = line.split("median").nth(1).unwrap_or_else(|| panic!("{line}"));
        t!(after.split_whitespace().next().unwrap_or_default().parse::<f64>())
    };
    assert!(median("TERM") >= 100.0, "SIGTERM handover below one round trip through the proxy: {stdout}");
    assert!(median("KILL") > 0.0, "{stdout}");
}

/// One request to the kv server of host `h` from the root namespace (reaches every host not
/// cut off); `None` if it cannot be had within the timeouts.
fn kv_req(h: usize, line: &str) -> Option<String> {
    use std::io::{BufRead, BufReader, Write};
    let addr: std::net::SocketAddr = format!("{}:7001", Rig::addr(h)).parse().unwrap();
    let s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    (&s).write_all(format!("{line}\n").as_bytes()).ok()?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer).ok()?;
    Some(answer.trim_end().to_string())
}

/// One request to the kv server of host `h` from inside host `h` (works while it is cut off).
fn kv_req_inside(h: usize, line: &str) -> String {
    let script = r#"exec 3<>"/dev/tcp/$ADDR/7001" || exit 1; printf '%s\n' "$LINE" >&3; timeout 20 head -n1 <&3"#;
    let out = t!(Rig::exec(h, "bash").args(["-c", script]).env("ADDR", Rig::addr(h)).env("LINE", line).output());
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// The host whose server leads, once the given hosts agree on one (the leader answers
/// `ROLE` with exactly `leader`, the others with `follower <its address>`).
fn agreed_leader(among: &[usize]) -> Option<usize> {
    let roles: Vec<(usize, String)> = among.iter().map(|&h| (h, kv_req(h, "ROLE").unwrap_or_default())).collect();
    let leaders: Vec<usize> = roles.iter().filter(|(_, r)| r == "leader").map(|(h, _)| *h).collect();
    let [l] = leaders[..] else { return None };
    let follow = format!("follower {}:7001", Rig::addr(l));
    roles.iter().all(|(h, r)| *h == l || *r == follow).then_some(l)
}

/// A kv server per host (`--listen` its host address, a shared `--secret-file`); the
/// leader's host is cut off: the majority side elects a new leader, the cut-off server
/// does not acknowledge a write, and after the heal it follows the new leader and holds
/// every acknowledged write (0 lost).
#[test]
fn kv_across_hosts() {
    let Some(rig) = Rig::start("across_hosts::kv_across_hosts") else { return };
    let t0 = Instant::now();
    let ens = rig.ensemble();
    let hosts = ens.connect_string();
    let dir = t!(tempfile::tempdir());
    let secret = dir.path().join("secret");
    t!(std::fs::write(&secret, format!("across-hosts-{}-{}\n", std::process::id(), now_ns())));
    let cluster = format!("across-{}", std::process::id());
    let _servers: Vec<Group> = HOSTS
        .iter()
        .map(|&h| {
            let listen = format!("{}:7001", Rig::addr(h));
            let log = t!(std::fs::File::create(dir.path().join(format!("kv{h}.log"))));
            let mut c = Rig::zkutil(
                h,
                &hosts,
                &["--session-timeout", "4s", "--connect-timeout", "3s", "kv", "serve", "--listen", &listen],
            );
            c.args(["--cluster", &cluster, "--secret-file"])
                .arg(&secret)
                .stdout(Stdio::null())
                .stderr(log)
                .process_group(0);
            Group(t!(c.spawn()))
        })
        .collect();
    let mut leader = None;
    assert!(wait_until(Duration::from_secs(60), || {
        leader = agreed_leader(&HOSTS);
        leader.is_some()
    }));
    let old = leader.unwrap();

    // Writes through every host; only `OK` counts as acknowledged.
    let mut acked: Vec<(String, String)> = Vec::new();
    let mut n = 0;
    let mut write_through = |via: &[usize], count: usize, acked: &mut Vec<(String, String)>| {
        for _ in 0..count {
            let (k, v) = (format!("k{n}"), format!("v{n}"));
            let h = via[n % via.len()];
            n += 1;
            if kv_req(h, &format!("PUT {k} {v}")).as_deref() == Some("OK") {
                acked.push((k, v));
            }
        }
    };
    write_through(&HOSTS, 9, &mut acked);
    assert_eq!(acked.len(), 9, "writes before the cut: {acked:?}");

    rig.cut(old);
    let cut_at = Instant::now();
    let majority: Vec<usize> = HOSTS.iter().copied().filter(|&h| h != old).collect();
    let mut new = None;
    assert!(
        wait_until(Duration::from_secs(60), || {
            new = agreed_leader(&majority);
            new.is_some()
        }),
        "no leader on the majority side after host {old} was cut off"
    );
    let failover = cut_at.elapsed();
    let new = new.unwrap();
    // The cut-off server, once the other side has its leader, acknowledges no write.
    let refused = kv_req_inside(old, "PUT cutoff from-the-cut-off-host");
    assert_ne!(refused, "OK", "the cut-off host {old} acknowledged a write while host {new} leads");
    let before = acked.len();
    write_through(&majority, 9, &mut acked);
    assert!(acked.len() - before >= 8, "writes on the majority side after the failover: {acked:?}");

    rig.heal(old);
    let heal_at = Instant::now();
    let follow = format!("follower {}:7001", Rig::addr(new));
    assert!(
        wait_until(Duration::from_secs(60), || kv_req(old, "ROLE").as_deref() == Some(follow.as_str())),
        "host {old} did not rejoin as a follower of host {new}: {:?}",
        kv_req(old, "ROLE")
    );
    let rejoin = heal_at.elapsed();
    // Every acknowledged write readable on every host (0 lost), once converged.
    let missing =
        |h: usize| acked.iter().filter(|(k, v)| kv_req(h, &format!("GET {k}")) != Some(format!("VALUE {v}"))).count();
    let converged = wait_until(Duration::from_secs(30), || HOSTS.iter().all(|&h| missing(h) == 0));
    let lost: Vec<usize> = HOSTS.iter().map(|&h| missing(h)).collect();
    eprintln!(
        "kv across hosts: leader host {old} cut off; host {new} leads after {:.1} s; the cut-off server \
         answered {refused:?}; rejoined {:.1} s after the heal; {} acknowledged writes, missing per host {lost:?}; {:.0} s",
        failover.as_secs_f64(),
        rejoin.as_secs_f64(),
        acked.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(converged, "acknowledged writes missing per host: {lost:?}");
}

/// `--bind` without namespaces (no root needed): members on 127.0.0.1-3, the connect
/// string and the state file name those addresses; a count that does not match `--nodes`
/// is a usage error.
#[test]
fn server_start_bind_places_members() {
    use crate::support::{ok, usage_fails};
    let err = usage_fails(&["server", "start", "--nodes", "3", "--bind", "127.0.0.1,127.0.0.2"]);
    assert!(err.contains("--bind names 2 value(s) for --nodes 3"), "{err}");
    usage_fails(&["server", "start", "--netns", "a,b,c", "--nodes", "3"]);
    let dir = t!(tempfile::tempdir());
    let state = dir.path().join("state");
    let state = state.to_str().unwrap();
    let out = ok(&[
        "server",
        "start",
        "--nodes",
        "3",
        "--port",
        "0",
        "--bind",
        "127.0.0.1,127.0.0.2,127.0.0.3",
        "--state-file",
        state,
    ]);
    let stop = || ok(&["server", "stop", "--state-file", state]);
    let hosts = out.trim().strip_prefix("export ZK_HOSTS=").unwrap_or_else(|| panic!("{out}")).to_string();
    let addrs: Vec<&str> = hosts.split(',').map(|a| a.rsplit_once(':').unwrap().0).collect();
    let status = ok(&["server", "status", "--state-file", state]);
    stop();
    assert_eq!(addrs, ["127.0.0.1", "127.0.0.2", "127.0.0.3"], "{hosts}");
    let lines: Vec<&str> = status.lines().collect();
    assert_eq!(lines.len(), 3, "{status}");
    for (line, addr) in lines.iter().zip(&addrs) {
        assert!(
            line.starts_with(&format!("{addr}:")) && (line.ends_with("leader") || line.ends_with("follower")),
            "{status}"
        );
    }
}

/// `queue consume --follow -- CMD` on every host, items produced on host 1; a consumer's
/// host is cut off while its CMD works on an item: every item is still done (at least
/// once), the one in flight on the cut-off host by a live host.
#[test]
fn queue_across_hosts() {
    let Some(rig) = Rig::start("across_hosts::queue_across_hosts") else { return };
    let t0 = Instant::now();
    let ens = rig.ensemble();
    let hosts = ens.connect_string();
    let dir = t!(tempfile::tempdir());
    let log = dir.path().join("done");
    let queue = format!("/t-across-queue-{}", std::process::id());
    const ITEMS: usize = 30;
    let items: Vec<String> = (0..ITEMS).map(|i| format!("item-{i}")).collect();
    let mut produce = Rig::zkutil(1, &hosts, &["queue", "produce", &queue]);
    produce.args(&items);
    let out = t!(produce.output());
    assert!(out.status.success(), "produce: {}", String::from_utf8_lossy(&out.stderr));
    // CMD: `<host> begin|done <item>` around 0.6 s of work.
    let cmd = r#"x=$(cat); echo "$HOST begin $x" >> "$LOG"; sleep 0.6; echo "$HOST done $x" >> "$LOG""#;
    let _consumers: Vec<Group> = HOSTS
        .iter()
        .map(|&h| {
            let mut c = Rig::zkutil(
                h,
                &hosts,
                &["-q", "--session-timeout", "4s", "--connect-timeout", "3s", "queue", "consume", "--follow", &queue],
            );
            c.args(["--", "sh", "-c", cmd])
                .env("HOST", h.to_string())
                .env("LOG", &log)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0);
            Group(t!(c.spawn()))
        })
        .collect();
    let lines = || -> Vec<(usize, String, String)> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut w = l.splitn(3, ' ');
                Some((w.next()?.parse().ok()?, w.next()?.to_string(), w.next()?.to_string()))
            })
            .collect()
    };
    // Cut host 3 while its CMD works on an item (begun, not done).
    let cut_host = 3;
    let mut in_flight = None;
    assert!(wait_until(Duration::from_secs(60), || {
        let l = lines();
        in_flight = l
            .iter()
            .filter(|(h, k, _)| *h == cut_host && k == "begin")
            .map(|(_, _, item)| item.clone())
            .find(|item| !l.iter().any(|(h, k, i)| *h == cut_host && k == "done" && i == item));
        in_flight.is_some()
    }));
    rig.cut(cut_host);
    let item = in_flight.unwrap();
    let done_by_live =
        |l: &[(usize, String, String)], it: &str| l.iter().any(|(h, k, i)| *h != cut_host && k == "done" && i == it);
    let all_done = wait_until(Duration::from_secs(60), || {
        let l = lines();
        items.iter().all(|it| l.iter().any(|(_, k, i)| k == "done" && i == it)) && done_by_live(&l, &item)
    });
    rig.heal(cut_host);
    let l = lines();
    let missing: Vec<&String> = items.iter().filter(|it| !l.iter().any(|(_, k, i)| k == "done" && i == *it)).collect();
    let done = l.iter().filter(|(_, k, _)| k == "done").count();
    eprintln!(
        "queue across hosts: {ITEMS} items, host {cut_host} cut off working on {item}; {done} CMD runs done, \
         {} duplicates, missing {missing:?}; {item} redone by a live host: {}; {:.0} s",
        done.saturating_sub(ITEMS - missing.len()),
        done_by_live(&l, &item),
        t0.elapsed().as_secs_f64()
    );
    assert!(all_done && missing.is_empty(), "items not done: {missing:?}; in flight on the cut host: {item}");
}

// ---- crawl across hosts (issue 16, scenario 3) ----

/// A site served from inside host `h`: a thread enters the host's network namespace and
/// binds there (the sockets it makes stay in that namespace; the test process does not).
fn crawl_site_in_host(
    h: usize,
    handler: impl Fn(&str) -> zkutil::cmd::crawl::site::Response + Send + Sync + 'static,
) -> zkutil::cmd::crawl::site::Server {
    use nix::sched::{CloneFlags, setns};
    let server = std::thread::spawn(move || -> Result<_, String> {
        let ns = std::fs::File::open(format!("/run/netns/zkrig{h}")).map_err(|e| format!("open netns: {e}"))?;
        setns(&ns, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
        zkutil::cmd::crawl::site::Server::start_on(&format!("{}:0", Rig::addr(h)), handler)
            .map_err(|e| format!("bind: {e}"))
    });
    t!(server.join().unwrap())
}

/// The (status, url) lines of a crawl output file (missing: none).
fn crawl_lines(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "bad line {l:?} in {}", path.display());
            (f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// Three crawlers of one `--name`, one per host, crawl a site served from host 1 (each
/// from its own start page; the start pages answer once all three were asked, so all
/// start together). Host 3 is cut off for good mid-crawl, with URLs claimed and not
/// written. Its crawler stops writing (nothing once its session could have expired) and
/// exits 1 when it cannot reach ZooKeeper again; the two others adopt what it owed once its
/// session expired, and complete: their outputs plus what host 3 wrote are the site (a 200
/// line for every URL), and neither live crawler fetched a URL the other did (or twice).
#[test]
fn crawl_across_hosts() {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Condvar, Mutex};
    use zkutil::cmd::crawl::site::{self, Response};

    let Some(rig) = Rig::start("across_hosts::crawl_across_hosts") else { return };
    let t0 = Instant::now();
    let ens = rig.ensemble();
    let hosts = ens.connect_string();
    let zk = t!(ZooKeeper::connect(&hosts, Duration::from_secs(10)));
    let pages = 300;
    let gate = Arc::new((Mutex::new(0u32), Condvar::new()));
    let generated = site::generated(pages, 6);
    let server = crawl_site_in_host(1, move |path| {
        if let Some(h) = path.strip_prefix("/start-").and_then(|p| p.strip_suffix(".html")) {
            let (m, cv) = &*gate;
            let mut n = m.lock().unwrap();
            *n += 1;
            cv.notify_all();
            let _ = cv.wait_timeout_while(n, Duration::from_secs(20), |n| *n < 3).unwrap();
            let first = h.parse::<u32>().unwrap_or(1) * 90;
            return Response::html(format!(r#"<a href="/p/{first}.html">in</a> <a href="/p/0.html">zero</a>"#));
        }
        if path != "/robots.txt" {
            std::thread::sleep(Duration::from_millis(60)); // a crawl of several seconds
        }
        generated(path)
    });
    let base = server.base(&Rig::addr(1));
    let dir = t!(tempfile::tempdir());
    let name = format!("across-crawl-{}", std::process::id());
    let out = |h: usize| dir.path().join(format!("out{h}.txt"));
    let err = |h: usize| dir.path().join(format!("err{h}.txt"));
    let mut crawlers: Vec<Group> = HOSTS
        .iter()
        .map(|&h| {
            let start = format!("{base}/start-{h}.html");
            // 6 s: a live crawler whose own member is the cut one keeps its session through
            // the failover (it notices at 4 s and has 6 s more to reconnect)
            let args = ["--session-timeout", "6s", "--connect-timeout", "3s", "crawl", &start, "--name", &name];
            let mut c = Rig::zkutil(h, &hosts, &args);
            c.args(["--depth", "50", "--threads", "2", "--timeout", "3s", "--out"])
                .arg(out(h))
                .stdout(Stdio::null())
                .stderr(t!(std::fs::File::create(err(h))))
                .process_group(0);
            Group(t!(c.spawn()))
        })
        .collect();
    let cut_host = 3;
    let x_pid = crawlers[cut_host - 1].0.id();
    let live = format!("/crawler/{name}/live");
    let x_owner = || -> Option<String> {
        zk.children(&live).ok()?.into_iter().find(|o| {
            zk.get(&format!("{live}/{o}"))
                .is_ok_and(|(d, _)| String::from_utf8_lossy(&d).starts_with(&format!("{x_pid}@")))
        })
    };
    // Cut host 3 once it has written some lines and owes URLs it has not written.
    let mut owner = None;
    let mut owed = 0;
    assert!(
        wait_until(Duration::from_secs(60), || {
            owner = x_owner();
            owed = owner
                .as_ref()
                .and_then(|o| zk.children(&format!("/crawler/{name}/owned/{o}")).ok())
                .map_or(0, |c| c.len());
            crawl_lines(&out(cut_host)).len() >= 15 && owed > 0
        }),
        "host {cut_host} never owed anything: {:?}",
        std::fs::read_to_string(err(cut_host))
    );
    let x = owner.unwrap();
    rig.cut(cut_host);
    let cut_at = Instant::now();
    let written_at_cut = crawl_lines(&out(cut_host)).len();
    // Its session expires on the majority side: from then on the others may adopt.
    let x_live = format!("{live}/{x}");
    assert!(
        wait_until(Duration::from_secs(60), || zk.exists(&x_live).is_ok_and(|s| s.is_none())),
        "host {cut_host}'s session never expired"
    );
    let expired_after = cut_at.elapsed();
    let x_at_expiry = crawl_lines(&out(cut_host));
    // The two live crawlers complete; the cut-off one gives up.
    let mut exits = Vec::new();
    for (i, g) in crawlers.iter_mut().enumerate() {
        let mut status = None;
        wait_until(Duration::from_secs(90), || {
            status = g.0.try_wait().ok().flatten();
            status.is_some()
        });
        exits.push((i + 1, status, std::fs::read_to_string(err(i + 1)).unwrap_or_default()));
    }
    let done_after = cut_at.elapsed();
    rig.heal(cut_host);
    for (h, status, stderr) in &exits {
        if *h == cut_host {
            assert!(status.is_some_and(|s| s.code() == Some(1)), "host {h}: {status:?}: {stderr}");
            assert!(stderr.contains("lost the ZooKeeper session"), "host {h}: {stderr}");
        } else {
            assert!(status.is_some_and(|s| s.success()), "host {h}: {status:?}: {stderr}");
        }
    }
    // What host 3 wrote: only before its session could expire.
    let x_lines = crawl_lines(&out(cut_host));
    assert_eq!(x_lines, x_at_expiry, "host {cut_host} wrote lines after its session expired");
    let mut by_live: BTreeMap<String, usize> = BTreeMap::new();
    for h in HOSTS.iter().filter(|&&h| h != cut_host) {
        let l = crawl_lines(&out(*h));
        assert!(l.iter().all(|(s, _)| s == "200"), "host {h}: {l:?}");
        for (_, u) in l {
            *by_live.entry(u).or_default() += 1;
        }
    }
    let twice: Vec<&String> = by_live.iter().filter(|(_, n)| **n > 1).map(|(u, _)| u).collect();
    assert!(twice.is_empty(), "fetched twice by live crawlers: {twice:?}");
    // A fetch the cut broke before host 3 noticed (its client notices 2T/3 after it last
    // heard from ZooKeeper) is an error line there; that URL was still owed: a live host
    // fetched it. Every URL of the site has a 200 line somewhere.
    let x_errors: Vec<&String> = x_lines.iter().filter(|(s, _)| s != "200").map(|(_, u)| u).collect();
    assert!(x_errors.iter().all(|u| by_live.contains_key(*u)), "only an error line: {x_errors:?}");
    let x_set: BTreeSet<String> = x_lines.iter().map(|(_, u)| u.clone()).collect();
    let x_ok = x_lines.iter().filter(|(s, _)| s == "200").map(|(_, u)| u.clone());
    let all: BTreeSet<String> = by_live.keys().cloned().chain(x_ok).collect();
    let mut want: BTreeSet<String> = (0..pages).map(|i| format!("{base}{}", site::page_path(i))).collect();
    want.extend(HOSTS.iter().map(|h| format!("{base}/start-{h}.html")));
    assert_eq!(all, want, "missing: {:?}", want.difference(&all).collect::<Vec<_>>());
    let again = x_set.iter().filter(|u| by_live.contains_key(*u)).count();
    let adopted: Vec<String> = exits
        .iter()
        .filter_map(|(h, _, e)| e.lines().find(|l| l.contains("pages fetched")).map(|l| format!("host {h}: {l}")))
        .collect();
    assert!(t!(zk.children(&format!("/crawler/{name}/owned"))).is_empty(), "URLs still owed at the end");
    eprintln!(
        "crawl across hosts: {} URLs; host {cut_host} cut off having written {written_at_cut} lines and owing {owed}; \
         its session expired {:.1} s after the cut, the crawl completed {:.1} s after it; {} written by host \
         {cut_host} were fetched again by a live host (written, not yet marked done; {} of them error lines); {:.0} s",
        want.len(),
        expired_after.as_secs_f64(),
        done_after.as_secs_f64(),
        again,
        x_errors.len(),
        t0.elapsed().as_secs_f64()
    );
    for line in adopted {
        eprintln!("  {line}");
    }
    drop(crawlers);
    drop(server);
}
