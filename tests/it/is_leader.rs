//! `zkutil election is-leader PATH --id ID`: 0 for the leading candidate's id, 1 for any
//! other (a follower, nobody campaigning); after the leader is SIGKILLed, the answer moves to
//! the next candidate once its session is gone.

use std::time::Duration;

use crate::support::*;
use crate::t;

fn is_leader(path: &str, id: &str) -> Option<i32> {
    let o = run(&["election", "is-leader", path, "--id", id]);
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    o.status.code()
}

#[test]
fn the_leader_is_told_apart_and_the_answer_moves_when_it_dies() {
    let path = format!("{}/election", unique_root("is-leader"));
    assert_eq!(is_leader(&path, "a"), Some(1), "nobody campaigns (and the node is missing)");
    let a = Proc::start(&["--session-timeout", "2s", "election", "run", "--id", "a", &path, "--", "sleep", "60"]);
    let zk = connect();
    assert!(wait_until(Duration::from_secs(20), || zk.children(&path).map(|c| c.len()).unwrap_or(0) == 1));
    let _b = Proc::start(&["election", "run", "--id", "b", &path, "--", "sleep", "60"]);
    assert!(wait_until(Duration::from_secs(20), || zk.children(&path).map(|c| c.len()).unwrap_or(0) == 2));
    assert_eq!(is_leader(&path, "a"), Some(0));
    assert_eq!(is_leader(&path, "b"), Some(1));
    assert_eq!(is_leader(&path, "c"), Some(1));
    a.kill(); // its node stays until the 2s session expires
    assert!(wait_until(Duration::from_secs(30), || is_leader(&path, "b") == Some(0)), "b never led");
    assert_eq!(is_leader(&path, "a"), Some(1));
    t!(zk.exists(&path));
}

#[test]
fn bad_path_is_one_error_line() {
    let err = fails(&["election", "is-leader", "no-slash", "--id", "a"]);
    assert!(err.contains("no-slash"), "{err}");
}
