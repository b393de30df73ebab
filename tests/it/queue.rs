//! `zkutil queue`: the recipe end to end through the built binary, outcomes checked with the
//! client.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use crate::t;
use zkutil::recipes::queue;
use zkutil::zk::{Answer, Code, CreateMode};

fn produce_stdin(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = zkutil(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    w.join().unwrap();
    out
}

fn spawn_piped(args: &[&str]) -> Child {
    zkutil(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn pipelined_get_reads_what_the_delete_removes() {
    let root = unique_root("q-pget");
    let zk = connect();
    let a = format!("{root}/a");
    t!(zk.create(&a, b"data-a", CreateMode::Persistent));
    let mut p = zk.requests();
    t!(p.get(0, &a));
    t!(p.delete(1, &a, None));
    t!(p.get(2, &a));
    let (tag, r) = p.recv().unwrap();
    let Ok(Answer::Data(d, _)) = r else { panic!("{r:?}") };
    assert_eq!((tag, d), (0, b"data-a".to_vec()));
    assert_eq!(p.recv(), Some((1, Ok(Answer::Done))));
    assert_eq!(p.recv(), Some((2, Err(Code::NoNode))));
    assert!(p.recv().is_none());
}

#[test]
fn order_priorities_len_and_peek() {
    let q = format!("{}/q", unique_root("q-order"));
    assert_eq!(ok(&["queue", "produce", &q, "a", "b", "c"]), format!("queued 3 items to {q}\n"));
    let out = produce_stdin(&["queue", "produce", "--priority", "5", &q], b"urgent-1\nurgent-2\n");
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&["queue", "produce", "-p", "999", &q, "last"]);
    // kazoo's names: entry-<priority:03>-<seq:010>, data = the raw item
    let zk = connect();
    let mut kids = t!(zk.children(&q));
    kids.sort();
    assert_eq!(kids[0], "entry-005-0000000003");
    assert_eq!(t!(zk.get(&format!("{q}/entry-100-0000000000"))).0, b"a");
    assert_eq!(ok(&["queue", "len", &q]), "6\n");
    assert_eq!(ok(&["queue", "peek", "-n", "3", &q]), "urgent-1\nurgent-2\na\n");
    assert_eq!(ok(&["queue", "consume", "-n", "2", &q]), "urgent-1\nurgent-2\n");
    assert_eq!(ok(&["queue", "consume", &q]), "a\nb\nc\nlast\n");
    assert_eq!(ok(&["queue", "len", &q]), "0\n");
    // an empty queue: consume prints nothing and succeeds
    assert_eq!(ok(&["queue", "consume", &q]), "");
}

#[test]
fn three_producers_three_consumers_exactly_once() {
    let q = format!("{}/q", unique_root("q-mpmc"));
    ok(&["queue", "produce", &q, "start"]);
    let consumers: Vec<Child> =
        (0..3).map(|_| spawn_piped(&["queue", "consume", "--follow", "--timeout", "3s", &q])).collect();
    let producers: Vec<_> = (0..3)
        .map(|p| {
            let q = q.clone();
            std::thread::spawn(move || {
                let input: String = (0..2000).map(|i| format!("p{p}-{i}\n")).collect();
                produce_stdin(&["queue", "produce", &q], input.as_bytes())
            })
        })
        .collect();
    for p in producers {
        let out = p.join().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("queued 2000 items to {q}\n"));
    }
    let mut all = Vec::new();
    for c in consumers {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
        // each consumer sees each producer's items in order
        for p in 0..3 {
            let prefix = format!("p{p}-");
            let seq: Vec<u32> = lines.iter().filter_map(|l| l.strip_prefix(&prefix)?.parse().ok()).collect();
            assert!(seq.windows(2).all(|w| w[0] < w[1]), "producer {p} out of order");
        }
        all.extend(lines);
    }
    assert_eq!(all.len(), 6001, "items delivered more than once or lost");
    let set: HashSet<&str> = all.iter().map(String::as_str).collect();
    assert_eq!(set.len(), 6001);
    for p in 0..3 {
        for i in 0..2000 {
            assert!(set.contains(format!("p{p}-{i}").as_str()));
        }
    }
    assert_eq!(t!(connect().children(&q)).len(), 0);
}

#[test]
fn follow_receives_new_items_within_a_second() {
    let q = format!("{}/q", unique_root("q-follow"));
    ok(&["queue", "produce", &q, "first"]);
    let mut c = spawn_piped(&["queue", "consume", "--follow", "-n", "2", &q]);
    let (tx, rx) = crossbeam_channel::unbounded();
    let out = BufReader::new(c.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), "first");
    // the consumer is now past its first item: anything produced from here is "new"
    let zk = connect();
    let t0 = Instant::now();
    t!(zk.create(&format!("{q}/entry-100-"), b"second", CreateMode::PersistentSequential));
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let waited = t0.elapsed();
    assert_eq!(got, "second");
    assert!(waited < Duration::from_secs(1), "took {waited:?}");
    assert!(c.wait().unwrap().success());
}

#[test]
fn idle_timeout_ends_follow() {
    let q = format!("{}/q", unique_root("q-idle"));
    ok(&["queue", "produce", &q, "x"]);
    let t0 = Instant::now();
    assert_eq!(ok(&["queue", "consume", "--follow", "--timeout", "500ms", &q]), "x\n");
    assert!(t0.elapsed() < Duration::from_secs(10));
}

#[test]
fn cmd_failure_leaves_the_item() {
    let q = format!("{}/q", unique_root("q-cmd-fail"));
    ok(&["queue", "produce", &q, "good", "bad", "after"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let script = format!("read x; echo \"$x\" >> {}; [ \"$x\" != bad ]", log.display());
    let err = fails(&["queue", "consume", &q, "--", "sh", "-c", &script]);
    assert!(err.contains("exited with status 1") && err.contains("entry-100-0000000001"), "{err}");
    assert!(err.contains("stays in the queue"), "{err}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "good\nbad\n");
    // "bad" and "after" are still queued, and no claim is left behind
    let zk = connect();
    let mut kids = t!(zk.children(&q));
    kids.sort();
    assert_eq!(kids, ["entry-100-0000000001", "entry-100-0000000002"]);
    assert!(t!(zk.children(&format!("{q}/entry-100-0000000001"))).is_empty());
    assert_eq!(ok(&["queue", "consume", &q]), "bad\nafter\n");
}

#[test]
fn killed_cmd_consumer_item_goes_to_another_after_session_expiry() {
    let q = format!("{}/q", unique_root("q-kill"));
    ok(&["queue", "produce", &q, "precious"]);
    let item = format!("{q}/entry-100-0000000000");
    let dir = tempfile::tempdir().unwrap();
    let started = dir.path().join("started");
    let script = format!("cat > {}; sleep 20", started.display());
    let mut a = zkutil(&["--session-timeout", "2s", "queue", "consume", &q, "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || std::fs::read(&started).is_ok_and(|d| d == b"precious")));
    let zk = connect();
    let claim = t!(zk.exists(&format!("{item}/taken"))).expect("claimed");
    assert_ne!(claim.ephemeral_owner, 0);
    a.kill().unwrap(); // SIGKILL: no chance to release the claim
    a.wait().unwrap();
    // another consumer waits (the item is claimed), then gets it once the session expires
    let dir2 = tempfile::tempdir().unwrap();
    let got = dir2.path().join("got");
    let script = format!("cat > {}", got.display());
    let t0 = Instant::now();
    ok(&["queue", "consume", "--follow", "-n", "1", "--timeout", "30s", &q, "--", "sh", "-c", &script]);
    assert_eq!(std::fs::read(&got).unwrap(), b"precious");
    assert!(t0.elapsed() > Duration::from_millis(500), "taken before the claim expired");
    assert!(t!(zk.exists(&item)).is_none());
    assert!(t!(zk.children(&q)).is_empty());
}

#[test]
fn hundred_thousand_items() {
    let q = format!("{}/q", unique_root("q-100k"));
    assert_eq!(ok(&["queue", "produce", "--count", "100000", &q]), format!("queued 100000 items to {q}\n"));
    assert_eq!(ok(&["queue", "len", &q]), "100000\n");
    // the listing is over 2 MB: the C client and ZooKeeper 3.8 take it
    assert_eq!(ok(&["queue", "peek", &q]), "item-0\n");
    let out = ok(&["queue", "consume", &q]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 100000);
    assert!(lines.iter().enumerate().all(|(i, l)| *l == format!("item-{i}")));
    assert_eq!(ok(&["queue", "len", &q]), "0\n");
}

#[test]
fn oversized_item_queues_nothing() {
    let q = format!("{}/q", unique_root("q-big"));
    let mut input = b"small\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 1 << 20));
    input.extend(b"\nafter\n");
    let out = produce_stdin(&["queue", "produce", &q], &input);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("zkutil: ") && err.contains("item 2 is 1048576 bytes"), "{err}");
    assert!(err.contains("nothing was queued"), "{err}");
    assert!(t!(connect().exists(&q)).is_none());
}

#[test]
fn missing_queue_and_unreachable_zookeeper() {
    let q = format!("{}/nope", unique_root("q-missing"));
    // consuming a missing queue is consuming an empty one, with a note
    for args in [&["queue", "consume", &q][..], &["queue", "consume", &q, "--", "true"]] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert_eq!(stdout(&o), "");
        assert!(stderr(&o).contains("the queue does not exist; nothing to consume"), "{}", stderr(&o));
    }
    let err = fails(&["queue", "len", &q]);
    assert!(err.contains("does not exist"), "{err}");
    let o =
        zkutil(&["--hosts", "127.0.0.1:1", "--connect-timeout", "1s", "queue", "produce", "/q", "x"]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot reach ZooKeeper"), "{}", stderr(&o));
}

#[test]
fn sigterm_while_cmd_runs_stops_cmd_and_leaves_the_item() {
    let q = format!("{}/q", unique_root("q-cmd-term"));
    ok(&["queue", "produce", &q, "work"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let script = format!(
        "trap 'echo term >> {0}; exit 3' TERM; cat > /dev/null; echo started >> {0}; while :; do sleep 0.05; done",
        log.display()
    );
    let mut a = zkutil(&["queue", "consume", &q, "--", "sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || std::fs::read_to_string(&log).is_ok_and(|l| l == "started\n")));
    // zkutil alone (not its process group, as `kill PID` or a supervisor does)
    t!(zkutil::util::send_signal(a.id(), nix::sys::signal::Signal::SIGTERM));
    let done = wait_until(Duration::from_secs(10), || a.try_wait().unwrap().is_some());
    if !done {
        let _ = a.kill();
    }
    assert!(done, "zkutil waited for CMD instead of passing SIGTERM on");
    assert_eq!(a.wait().unwrap().code(), Some(143));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "started\nterm\n");
    // the item stays, unclaimed
    let zk = connect();
    assert_eq!(t!(zk.children(&q)), ["entry-100-0000000000"]);
    assert!(t!(zk.children(&format!("{q}/entry-100-0000000000"))).is_empty());
}

/// Plain `consume` (delete-as-claim) under a server crash: the server is SIGKILLed and
/// restarted while gets and deletes are in flight. Every item produced is consumed or still
/// queued (none lost); duplicates are reported.
#[test]
fn no_item_lost_when_the_server_is_killed_mid_consume() {
    const N: usize = 20_000;
    let mut server = t!(zkutil::server::Ensemble::start(zkutil::server::Options::for_tests(1)));
    let hosts = server.connect_string();
    let q = "/q";
    let o = zkutil(&["queue", "produce", "--count", &N.to_string(), q]).env("ZK_HOSTS", &hosts).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let c = Proc::start_on(&hosts, &["queue", "consume", q]);
    let mut kills = 0;
    for at in [N / 10, N / 3] {
        assert!(wait_until(Duration::from_secs(60), || c.lines().len() >= at), "consumed {}", c.lines().len());
        if c.lines().len() >= N - 1000 {
            break; // too late to be mid-consume
        }
        t!(server.kill(0));
        t!(server.restart(0));
        kills += 1;
    }
    let (code, lines, err) = c.finish_within(Duration::from_secs(120));
    assert_eq!(code, Some(0), "{err}");
    let zk = connect_to(&hosts);
    let left: HashSet<String> =
        t!(zk.children(q)).iter().map(|n| String::from_utf8(t!(zk.get(&format!("{q}/{n}"))).0).unwrap()).collect();
    let consumed: HashSet<&str> = lines.iter().map(String::as_str).collect();
    let duplicates = lines.len() - consumed.len();
    let lost: Vec<String> =
        (0..N).map(|i| format!("item-{i}")).filter(|i| !consumed.contains(i.as_str()) && !left.contains(i)).collect();
    eprintln!(
        "{kills} server kills: produced {N}, consumed {} ({duplicates} duplicates), left {}, lost {}; {err}",
        consumed.len(),
        left.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "{} items lost: {:?}", lost.len(), &lost[..lost.len().min(10)]);
    assert_eq!(consumed.len() + left.len(), N);
}

/// A CMD consumer fails and releases its claim: a `--follow` consumer that found the item
/// claimed (and waits) takes it.
#[test]
fn a_released_claim_wakes_a_follower() {
    let q = format!("{}/q", unique_root("q-release"));
    ok(&["queue", "produce", &q, "retry-me"]);
    let dir = tempfile::tempdir().unwrap();
    let (started, go) = (dir.path().join("started"), dir.path().join("go"));
    let script = format!(
        "cat > /dev/null; touch {}; while [ ! -e {} ]; do sleep 0.05; done; exit 1",
        started.display(),
        go.display()
    );
    let a = Proc::start(&["queue", "consume", &q, "--", "sh", "-c", &script]);
    assert!(wait_until(Duration::from_secs(20), || started.exists()));
    let b = Proc::start(&["queue", "consume", &q, "--follow", "--count", "1", "--timeout", "20s"]);
    // b finds the only item claimed and waits; give it the time to get there (either order
    // must end the same way)
    std::thread::sleep(Duration::from_millis(1500));
    assert!(b.lines().is_empty());
    std::fs::write(&go, b"").unwrap();
    let (code, _, err) = a.finish();
    assert_eq!(code, Some(1), "{err}");
    let (code, lines, err) = b.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines, ["retry-me"]);
    assert!(t!(connect().children(&q)).is_empty());
}

/// A consumer may start before any producer: `--follow` waits for the queue to exist.
#[test]
fn a_follower_waits_for_the_queue_to_exist() {
    let q = format!("{}/later/q", unique_root("q-before"));
    let dir = tempfile::tempdir().unwrap();
    let got = dir.path().join("got");
    let script = format!("cat >> {}; echo >> {}", got.display(), got.display());
    let (b_err, c_err) = (dir.path().join("b.err"), dir.path().join("c.err"));
    let spawn = |args: &[&str], err: &std::path::Path| {
        zkutil(args).stdout(Stdio::piped()).stderr(std::fs::File::create(err).unwrap()).spawn().unwrap()
    };
    let b = spawn(&["queue", "consume", &q, "--follow", "--count", "2", "--timeout", "30s"], &b_err);
    let c = spawn(
        &["queue", "consume", &q, "--follow", "--count", "1", "--timeout", "30s", "--", "sh", "-c", &script],
        &c_err,
    );
    // both say they wait before anything is produced
    let waiting = |f: &std::path::Path| {
        std::fs::read_to_string(f).is_ok_and(|e| e.contains("does not exist yet; waiting for it"))
    };
    assert!(wait_until(Duration::from_secs(20), || waiting(&b_err) && waiting(&c_err)));
    ok(&["queue", "produce", &q, "one", "two", "three"]);
    let b = b.wait_with_output().unwrap();
    assert_eq!(b.status.code(), Some(0), "{}", std::fs::read_to_string(&b_err).unwrap());
    let c = c.wait_with_output().unwrap();
    assert_eq!(c.status.code(), Some(0), "{}", std::fs::read_to_string(&c_err).unwrap());
    let mut all: Vec<String> = stdout(&b).lines().map(str::to_string).collect();
    all.extend(std::fs::read_to_string(&got).unwrap().lines().map(str::to_string));
    all.sort();
    assert_eq!(all, ["one", "three", "two"]);
}

/// `consume --follow` rides out a session expiry (frozen past its session timeout): it says
/// so on stderr and goes on with a new session.
#[test]
fn a_follower_rides_out_a_session_loss() {
    let q = format!("{}/q", unique_root("q-expire"));
    ok(&["queue", "produce", &q, "first"]);
    let b = Proc::start(&[
        "--session-timeout",
        "2s",
        "queue",
        "consume",
        &q,
        "--follow",
        "--count",
        "2",
        "--timeout",
        "60s",
    ]);
    assert!(b.wait_line("first", Duration::from_secs(20)).is_some());
    // frozen past the session timeout, the server expires the session (nothing to poll for:
    // the session has no node)
    b.signal(nix::sys::signal::Signal::SIGSTOP);
    std::thread::sleep(Duration::from_secs(5));
    b.signal(nix::sys::signal::Signal::SIGCONT);
    ok(&["queue", "produce", &q, "second"]);
    let (code, lines, err) = b.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines, ["first", "second"]);
    assert!(err.contains("session was lost; continuing with a new session"), "{err}");
}

/// The due time (epoch ms) of the only delayed item of `q`, read from its name.
fn due_of(zk: &zkutil::zk::ZooKeeper, q: &str) -> u64 {
    let dues: Vec<u64> = t!(zk.children(q))
        .iter()
        .filter_map(|n| queue::Position::parse(n))
        .filter(|p| p.due > 0)
        .map(|p| p.due)
        .collect();
    assert_eq!(dues.len(), 1, "{:?}", t!(zk.children(q)));
    dues[0]
}

/// `produce --delay`: the item is named with its due time (Curator's `|%08X|`), consumers
/// skip it until then, and a follower left with nothing but it wakes when it is due, with
/// no write to wake it. Undelayed items around it go first.
#[test]
fn delayed_items_are_taken_at_their_time_not_before() {
    let q = format!("{}/q", unique_root("q-delay"));
    let zk = connect();
    let before = queue::epoch_ms();
    let out = ok(&["queue", "produce", "--delay", "6s", &q, "later"]);
    let after = queue::epoch_ms();
    assert!(out.starts_with(&format!("queued 1 item to {q}, due 20")), "{out}");
    let due = due_of(&zk, &q);
    assert!(due >= before + 6000 && due <= after + 6000, "{before} {due} {after}");
    let name = format!("entry-100-|{due:X}|0000000000");
    assert_eq!(t!(zk.children(&q)), [name.as_str()]);
    ok(&["queue", "produce", &q, "now-1", "now-2"]);
    assert_eq!(ok(&["queue", "len", &q]), "3\n");
    let o = run(&["queue", "consume", &q]);
    let listed_by = queue::epoch_ms();
    assert!(o.status.success(), "{}", stderr(&o));
    if listed_by < due {
        assert_eq!(stdout(&o), "now-1\nnow-2\n");
        assert!(stderr(&o).contains("1 item is not due yet"), "{}", stderr(&o));
        assert_eq!(ok(&["queue", "peek", "-n", "5", &q]), "");
        assert_eq!(ok(&["queue", "peek", "--all", "-n", "5", &q]), "later\n");
    } else if stdout(&o).contains("later") {
        eprintln!("the machine is too slow to check that the item was not taken early");
        return;
    }
    // a follower: an undelayed item produced now comes at once, the delayed one at its time
    let c = Proc::start(&["queue", "consume", "--follow", "-n", "2", "--timeout", "60s", &q]);
    ok(&["queue", "produce", &q, "now-3"]);
    assert!(c.wait_line("now-3", Duration::from_secs(20)).is_some());
    let now3_at = queue::epoch_ms();
    // nothing is written from here on: only the timer can wake the follower
    assert!(c.wait_line("later", Duration::from_secs(40)).is_some(), "the follower did not wake at the due time");
    let later_at = queue::epoch_ms();
    assert!(later_at >= due, "taken {} ms early", due - later_at);
    if now3_at < due {
        assert_eq!(c.lines(), ["now-3", "later"]);
    }
    let (code, lines, err) = c.finish();
    assert_eq!(code, Some(0), "{err}");
    assert!(lines.ends_with(&["later".to_string()]), "{lines:?}");
    assert!(t!(zk.children(&q)).is_empty());
}

/// Due items go in (priority, due time, sequence) order, undelayed ones first in their
/// priority: kazoo's sort of the names. Items produced with `--at` a past time are due at once.
#[test]
fn due_items_order_by_priority_then_due_time() {
    let q = format!("{}/q", unique_root("q-delay-order"));
    let now = queue::epoch_ms();
    ok(&["queue", "produce", &q, "plain-1"]);
    ok(&["queue", "produce", "--at", &(now - 1000).to_string(), &q, "due-late"]);
    ok(&["queue", "produce", "--at", "2020-01-01T00:00:00Z", &q, "due-early"]);
    ok(&["queue", "produce", "--priority", "5", "--at", &(now - 1).to_string(), &q, "urgent"]);
    ok(&["queue", "produce", "--delay", "0s", &q, "plain-2"]); // no delay: a plain name
    ok(&["queue", "produce", "--delay", "1h", &q, "next-hour"]);
    let zk = connect();
    let mut names = t!(zk.children(&q));
    assert!(names.contains(&"entry-100-|16F5E66E800|0000000002".to_string()), "{names:?}"); // 2020-01-01
    names.sort(); // what a kazoo consumer does
    let data: Vec<String> =
        names.iter().map(|n| String::from_utf8(t!(zk.get(&format!("{q}/{n}"))).0).unwrap()).collect();
    assert_eq!(data, ["urgent", "plain-1", "plain-2", "due-early", "due-late", "next-hour"]);
    let peek = ok(&["-o", "json", "queue", "peek", "--all", "-n", "10", &q]);
    let v: serde_json::Value = serde_json::from_str(&peek).unwrap();
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(items[3]["due"], "2020-01-01T00:00:00.000Z");
    assert!(items[0].get("due").is_some() && items[1].get("due").is_none(), "{peek}");
    let o = run(&["queue", "consume", &q]);
    assert_eq!(stdout(&o), "urgent\nplain-1\nplain-2\ndue-early\ndue-late\n");
    assert!(stderr(&o).contains("1 item is not due yet"), "{}", stderr(&o));
    // the same for CMD consumers (the at-least-once claimer)
    ok(&["queue", "produce", "--at", &(now - 1000).to_string(), &q, "b"]);
    ok(&["queue", "produce", "--at", &(now - 2000).to_string(), &q, "a"]);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let script = format!("cat >> {0}; echo >> {0}", log.display());
    let o = run(&["queue", "consume", &q, "--", "sh", "-c", &script]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("1 item is not due yet"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "a\nb\n");
    assert_eq!(ok(&["queue", "peek", "--all", &q]), "next-hour\n");
}

/// At least once with a delay: a `-- CMD` follower waits for the item's time (riding out a
/// ZooKeeper restart meanwhile), claims it, and is SIGKILLed mid-CMD; the item goes to the
/// next consumer once the dead consumer's session expires.
#[test]
fn a_delayed_item_survives_a_zookeeper_restart_and_a_killed_consumer() {
    let mut server = t!(zkutil::server::Ensemble::start(zkutil::server::Options::for_tests(1)));
    let hosts = server.connect_string();
    let q = "/dq";
    let o = zkutil(&["queue", "produce", "--delay", "4s", q, "precious"]).env("ZK_HOSTS", &hosts).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let zk = connect_to(&hosts);
    let due = due_of(&zk, q);
    drop(zk);
    let dir = tempfile::tempdir().unwrap();
    let (pid, started) = (dir.path().join("pid"), dir.path().join("started"));
    let at = dir.path().join("at");
    let script =
        format!("echo $$ > {}; date +%s%3N > {}; cat > {}; sleep 30", pid.display(), at.display(), started.display());
    // the consumer's session is up (the C client's log says so) before the server goes down
    let a_err = dir.path().join("a.err");
    let mut a =
        zkutil(&["--session-timeout", "2s", "queue", "consume", "--follow", "-n", "1", q, "--", "sh", "-c", &script])
            .env("ZK_HOSTS", &hosts)
            .env("RUST_LOG", "zookeeper=info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&a_err).unwrap())
            .spawn()
            .unwrap();
    let a_log = || std::fs::read_to_string(&a_err).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(20), || a_log().contains("session establishment complete")), "{}", a_log());
    // the server goes down and comes back while the consumer waits (or, on a slow machine,
    // around the due time: either way the item must be taken once, when due)
    t!(server.kill(0));
    t!(server.restart(0));
    if !wait_until(Duration::from_secs(60), || std::fs::read(&started).is_ok_and(|d| d == b"precious")) {
        let _ = a.kill();
        panic!("CMD did not start: {}", a_log());
    }
    let started_ms: u64 = std::fs::read_to_string(&at).unwrap().trim().parse().unwrap();
    assert!(started_ms >= due, "CMD ran {} ms before the item was due", due - started_ms);
    let zk = connect_to(&hosts);
    let item = format!("{q}/{}", t!(zk.children(q))[0]);
    assert!(t!(zk.exists(&format!("{item}/taken"))).is_some(), "not claimed");
    a.kill().unwrap(); // SIGKILL: the claim goes only with the session
    a.wait().unwrap();
    let sh: i32 = std::fs::read_to_string(&pid).unwrap().trim().parse().unwrap();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(sh), nix::sys::signal::Signal::SIGKILL);
    let got = dir.path().join("got");
    let script = format!("cat > {}", got.display());
    let b = Proc::start_on(
        &hosts,
        &["queue", "consume", "--follow", "-n", "1", "--timeout", "60s", q, "--", "sh", "-c", &script],
    );
    let (code, _, err) = b.finish();
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read(&got).unwrap(), b"precious");
    assert!(t!(zk.children(q)).is_empty());
}

#[test]
fn bad_delay_is_a_usage_error() {
    let q = format!("{}/q", unique_root("q-delay-bad"));
    for (args, says) in [
        (&["--delay", "10"][..], "no unit"),
        (&["--delay", "ten minutes"], "not a duration"),
        (&["--delay", "101y"], "at most 100 years"),
        (&["--at", "tomorrow"], "not a time"),
        (&["--at", "0"], "after 1970"),
        (&["--at", "99999999999999999"], "at most 100 years"),
        (&["--delay", "1s", "--at", "1700000000000"], "cannot be used with"),
    ] {
        let mut a = vec!["queue", "produce"];
        a.extend_from_slice(args);
        a.extend([q.as_str(), "x"]);
        let err = usage_fails(&a);
        assert!(err.lines().next().unwrap().contains(says), "{args:?}: {err}");
    }
    assert!(t!(connect().exists(&q)).is_none());
}

/// kazoo's `Queue` knows nothing of due times: it takes a delayed item in its turn (the
/// documented weakness of mixing the two), and zkutil takes kazoo's items.
#[test]
fn kazoo_takes_delayed_items_early() {
    let ok_py = std::process::Command::new("python3").args(["-c", "import kazoo"]).output();
    if !ok_py.is_ok_and(|o| o.status.success()) {
        eprintln!("SKIPPED: kazoo is not importable by python3 (pip install kazoo): interop not tested");
        return;
    }
    let q = format!("{}/q", unique_root("q-delay-kazoo"));
    ok(&["queue", "produce", "--delay", "1h", &q, "not-yet"]);
    ok(&["queue", "produce", &q, "plain"]);
    let script = r#"
import sys
from kazoo.client import KazooClient
zk = KazooClient(hosts=sys.argv[1]); zk.start(timeout=20)
q = zk.Queue(sys.argv[2])
print(q.get().decode()); print(q.get().decode()); print(q.get())
q.put(b"from-kazoo", priority=7)
zk.stop()
"#;
    let o = std::process::Command::new("python3").args(["-c", script, &hosts(), &q]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "plain\nnot-yet\nNone\n");
    assert_eq!(ok(&["queue", "consume", &q]), "from-kazoo\n");
}

/// `produce --curator`: Curator's own names (`queue-<seq>`, `queue-|<due:08X>|<seq>`) and
/// ItemSerializer framing, byte for byte; zkutil's consumers leave those items alone.
/// (Curator's Java consumer taking them is checked by hand, see the README.)
#[test]
fn curator_flavour_writes_curators_format() {
    let q = format!("{}/q", unique_root("q-curator"));
    let before = queue::epoch_ms();
    ok(&["queue", "produce", "--curator", "--delay", "1h", &q, "later"]);
    ok(&["queue", "produce", "--curator", &q, "now"]);
    let zk = connect();
    let mut names = t!(zk.children(&q));
    names.sort();
    assert_eq!(names[0], "queue-0000000001");
    let hex = names[1].strip_prefix("queue-|").and_then(|r| r.strip_suffix("|0000000000")).expect(&names[1]);
    let due = u64::from_str_radix(hex, 16).unwrap();
    assert!(due >= before + 3_600_000 && due < queue::epoch_ms() + 3_600_000, "{hex}");
    assert_eq!(hex, format!("{due:08X}"));
    let (data, _) = t!(zk.get(&format!("{q}/queue-0000000001")));
    assert_eq!(data, [0, 1, 0, 1, 1, 0, 0, 0, 3, b'n', b'o', b'w', 2]);
    assert_eq!(queue::curator_unframe(&t!(zk.get(&format!("{q}/{}", names[1]))).0), Some(vec![b"later".to_vec()]));
    let o = run(&["queue", "consume", &q]);
    assert!(o.status.success() && stdout(&o).is_empty(), "{}", stderr(&o));
    assert_eq!(t!(zk.children(&q)).len(), 2);
    let err = usage_fails(&["queue", "produce", "--curator", "--priority", "5", &q, "x"]);
    assert!(err.contains("cannot be used with"), "{err}");
}
