//! The view model driven by keys and replies, rendered with ratatui's TestBackend.

use std::time::{Duration, Instant};

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::model::*;
use super::view;
use crate::zk::{Acl, CreateMode, EventKind, SessionEvent, Stat};

fn screen(app: &mut App) -> String {
    let mut term = Terminal::new(TestBackend::new(120, 40)).unwrap();
    term.draw(|f| view::render(f, app)).unwrap();
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    app.on_key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn typed(app: &mut App, text: &str) {
    for c in text.chars() {
        assert!(key(app, KeyCode::Char(c)).is_empty());
    }
}

fn stat(kids: i32, len: i32, version: i32) -> Stat {
    Stat { num_children: kids, data_length: len, version, ..Stat::default() }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// An app on /app with children a, b, c listed and connected.
fn started() -> App {
    let (mut app, fx) = App::new("127.0.0.1:2181", "/app", false);
    assert_eq!(fx, vec![Effect::Send(Request::List("/app".into()))]);
    app.on_reply(Reply::NewSession { id: 0x42 });
    app.on_reply(Reply::Listed { path: "/app".into(), children: names(&["c", "a", "b"]), stat: stat(3, 0, 0) });
    app
}

#[test]
fn lists_lazily_and_asks_stats_of_visible_rows_only() {
    let mut app = started();
    assert_eq!(app.rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/app", "/app/a", "/app/b", "/app/c"]);
    let s = screen(&mut app);
    assert!(s.contains("● connected, session 0x42"), "{s}");
    let fx = app.wants();
    assert_eq!(
        fx,
        vec![
            Effect::Send(Request::Stats(names(&["/app/a", "/app/b", "/app/c"]))),
            Effect::Send(Request::Detail("/app".into()))
        ]
    );
    assert!(app.wants().is_empty(), "nothing asked twice while in flight");
    app.on_reply(Reply::Stats(vec![("/app/a".into(), Some(stat(2, 1536, 0))), ("/app/b".into(), Some(stat(0, 5, 0)))]));
    let s = screen(&mut app);
    assert!(s.contains("▸ a") && s.contains("1.5 KiB") && s.contains("  b ") && s.contains("5 B"), "{s}");
}

#[test]
fn hundred_thousand_children_open_with_one_listing_and_a_screenful_of_stats() {
    let mut app = started();
    key(&mut app, KeyCode::Down); // a
    app.on_reply(Reply::Stats(vec![("/app/a".into(), Some(stat(100_000, 0, 0)))]));
    assert_eq!(key(&mut app, KeyCode::Right), vec![Effect::Send(Request::List("/app/a".into()))]);
    let kids: Vec<String> = (0..100_000).map(|i| format!("n{i:06}")).collect();
    let t = Instant::now();
    app.on_reply(Reply::Listed { path: "/app/a".into(), children: kids, stat: stat(100_000, 0, 0) });
    let s = screen(&mut app);
    let took = t.elapsed();
    assert_eq!(app.rows.len(), 100_004);
    assert!(s.contains("n000000") && !s.contains("n000099"), "{s}");
    let fx = app.wants();
    let Some(Effect::Send(Request::Stats(asked))) = fx.first() else { panic!("{fx:?}") };
    assert!(asked.len() <= app.height, "only the visible rows: {}", asked.len());
    key(&mut app, KeyCode::End);
    let s = screen(&mut app);
    assert!(s.contains("n099999") && s.contains("100004/100004"), "{s}");
    // generous: a debug build on a loaded machine; a release build takes a few ms
    assert!(took < Duration::from_secs(5), "listing + first frame took {took:?}");
}

#[test]
fn watches_mark_added_changed_and_removed_nodes() {
    let mut app = started();
    app.on_reply(Reply::Stats(vec![("/app/a".into(), Some(stat(0, 1, 0)))]));
    // someone changes a's data
    assert!(app.on_watch(WatchKey::Node("/app/a".into()), EventKind::DataChanged).is_empty());
    assert!(
        app.wants().iter().any(|e| matches!(e, Effect::Send(Request::Stats(p)) if p.contains(&"/app/a".to_string())))
    );
    // someone adds d and removes b
    let fx = app.on_watch(WatchKey::Children("/app".into()), EventKind::ChildrenChanged);
    assert_eq!(fx, vec![Effect::Send(Request::List("/app".into()))]);
    app.on_reply(Reply::Listed { path: "/app".into(), children: names(&["a", "c", "d"]), stat: stat(3, 0, 0) });
    let s = screen(&mut app);
    assert!(s.contains("a [changed]") && s.contains("b [removed]") && s.contains("d [new]"), "{s}");
    // marks run out; the removed node goes
    app.tick(Instant::now() + MARK_FOR + Duration::from_secs(1));
    let s = screen(&mut app);
    assert!(!s.contains("[changed]") && !s.contains("[new]") && !s.contains("  b "), "{s}");
    assert_eq!(app.rows.len(), 4);
}

#[test]
fn delete_counts_first_and_asks() {
    let mut app = started();
    key(&mut app, KeyCode::Down);
    assert_eq!(key(&mut app, KeyCode::Char('d')), vec![Effect::Send(Request::Count("/app/a".into()))]);
    app.on_reply(Reply::Counted { path: "/app/a".into(), nodes: 5 });
    let s = screen(&mut app);
    assert!(s.contains("Delete /app/a and the 4 nodes under it (5 nodes in all)? [y/N]"), "{s}");
    assert!(key(&mut app, KeyCode::Char('x')).is_empty(), "other keys do not answer");
    assert_eq!(
        key(&mut app, KeyCode::Char('y')),
        vec![Effect::Send(Request::Delete { path: "/app/a".into(), recursive: true })]
    );
    // and `n` cancels
    key(&mut app, KeyCode::Char('d'));
    app.on_reply(Reply::Counted { path: "/app/a".into(), nodes: 1 });
    assert!(key(&mut app, KeyCode::Char('n')).is_empty());
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn create_a_ttl_child_through_the_dialogs() {
    let mut app = started();
    key(&mut app, KeyCode::Char('c'));
    typed(&mut app, "job");
    key(&mut app, KeyCode::Enter);
    assert!(screen(&mut app).contains("[p] persistent  [s] sequential  [c] container  [t] TTL"));
    key(&mut app, KeyCode::Char('t'));
    typed(&mut app, "10m");
    key(&mut app, KeyCode::Enter);
    typed(&mut app, "payload");
    key(&mut app, KeyCode::Enter);
    let s = screen(&mut app);
    assert!(s.contains("Create /app/job (TTL 10m, 7 bytes of data)? [y/N]"), "{s}");
    let fx = key(&mut app, KeyCode::Char('y'));
    let mode = CreateMode::PersistentWithTtl { ttl_ms: 600_000 };
    assert_eq!(fx, vec![Effect::Send(Request::Create { path: "/app/job".into(), data: b"payload".to_vec(), mode })]);
    // the created node is selected once its parent is listed again
    let fx = app.on_reply(Reply::Created("/app/job".into()));
    assert_eq!(fx, vec![Effect::Send(Request::List("/app".into()))]);
    app.on_reply(Reply::Listed { path: "/app".into(), children: names(&["a", "b", "c", "job"]), stat: stat(4, 0, 0) });
    assert_eq!(app.selected(), Some("/app/job"));
    // a bad name is refused on the spot
    key(&mut app, KeyCode::Char('c'));
    typed(&mut app, "a/b");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.mode, Mode::Normal);
    assert!(app.status.as_ref().is_some_and(|s| s.error));
}

#[test]
fn read_only_refuses_changes() {
    let (mut app, _) = App::new("h:1", "/", true);
    app.on_reply(Reply::Listed { path: "/".into(), children: names(&["x"]), stat: stat(1, 0, 0) });
    for k in ['c', 'e', 'd'] {
        assert!(key(&mut app, KeyCode::Char(k)).is_empty());
        assert!(app.status.as_ref().unwrap().text.starts_with("read-only"));
    }
    let s = screen(&mut app);
    assert!(s.contains("[read-only]") && !s.contains("c create"), "{s}");
}

#[test]
fn edit_saves_with_compare_and_set_and_shows_a_conflict() {
    let mut app = started();
    key(&mut app, KeyCode::Down);
    let d = Detail { path: "/app/a".into(), data: b"v1".to_vec(), stat: stat(0, 2, 7), acl: Acl::open() };
    app.wants();
    app.on_reply(Reply::Detail(d));
    let s = screen(&mut app);
    assert!(
        s.contains("Data · 2 B · text") && s.contains("dataVersion = 7") && s.contains("world:anyone:cdrwa"),
        "{s}"
    );
    let fx = key(&mut app, KeyCode::Char('e'));
    assert_eq!(fx, vec![Effect::Edit { path: "/app/a".into(), data: b"v1".to_vec(), version: 7 }]);
    app.edited("/app/a".into(), b"v1", b"v1".to_vec(), 7);
    assert_eq!(app.mode, Mode::Normal, "no change, nothing to save");
    app.edited("/app/a".into(), b"v1", b"mine".to_vec(), 7);
    assert!(screen(&mut app).contains("Save 4 bytes to /app/a (only if still at dataVersion 7)? [y/N]"));
    let fx = key(&mut app, KeyCode::Char('y'));
    assert_eq!(fx, vec![Effect::Send(Request::Set { path: "/app/a".into(), data: b"mine".to_vec(), version: 7 })]);
    let c = Conflict { path: "/app/a".into(), mine: b"mine".to_vec(), theirs: b"theirs".to_vec(), stat: stat(0, 6, 8) };
    app.on_reply(Reply::Conflict(c));
    let s = screen(&mut app);
    assert!(s.contains("theirs (dataVersion 8)") && s.contains("mine") && s.contains("[o] overwrite theirs"), "{s}");
    let fx = key(&mut app, KeyCode::Char('o'));
    assert_eq!(fx, vec![Effect::Send(Request::Set { path: "/app/a".into(), data: b"mine".to_vec(), version: 8 })]);
}

#[test]
fn filter_and_go_to() {
    let mut app = started();
    key(&mut app, KeyCode::Down);
    key(&mut app, KeyCode::Char('/'));
    typed(&mut app, "B");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.rows.iter().map(|r| r.path.as_str()).collect::<Vec<_>>(), ["/app", "/app/b"]);
    assert!(screen(&mut app).contains("(filter \"B\")"));
    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.rows.len(), 4);
    // go to a relative path from /app/b
    key(&mut app, KeyCode::Char('g'));
    typed(&mut app, "../c/x");
    let fx = key(&mut app, KeyCode::Enter);
    assert_eq!(fx, vec![Effect::Send(Request::Jump { root: "/app".into(), path: "/app/c/x".into() })]);
    app.on_reply(Reply::Listed { path: "/app/c".into(), children: names(&["x"]), stat: stat(1, 0, 0) });
    app.on_reply(Reply::Jumped { path: "/app/c/x".into(), found: true });
    assert_eq!(app.selected(), Some("/app/c/x"));
    key(&mut app, KeyCode::Char('g'));
    typed(&mut app, "/elsewhere");
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "outside the tree");
    assert_eq!(resolve("/a/b", ".."), "/a");
    assert_eq!(resolve("/a/b", "../../.."), "/");
    assert_eq!(resolve("/", "x/./y"), "/x/y");
}

#[test]
fn connection_state_is_shown_and_a_new_session_rereads() {
    let mut app = started();
    app.on_session(SessionEvent::Connecting);
    assert!(screen(&mut app).contains("disconnected: reconnecting"));
    app.on_session(SessionEvent::Connected);
    assert!(screen(&mut app).contains("● connected, session 0x42"));
    app.on_reply(Reply::Expired);
    assert!(screen(&mut app).contains("session expired: opening a new session"));
    let fx = app.on_reply(Reply::NewSession { id: 0x43 });
    assert_eq!(fx, vec![Effect::Send(Request::List("/app".into()))]);
    assert!(screen(&mut app).contains("● connected, new session 0x43"));
}

#[test]
fn help_and_quit() {
    let mut app = started();
    key(&mut app, KeyCode::Char('?'));
    let s = screen(&mut app);
    assert!(s.contains("edit the data in $EDITOR (compare-and-set)") && s.contains("q Ctrl-C"), "{s}");
    assert!(key(&mut app, KeyCode::Char('x')).is_empty());
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(key(&mut app, KeyCode::Char('q')), vec![Effect::Quit]);
    assert_eq!(app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), vec![Effect::Quit]);
}

#[test]
fn nothing_is_read_while_reconnecting_and_everything_after() {
    let mut app = started();
    app.on_session(SessionEvent::Connecting);
    assert!(app.wants().is_empty(), "no requests into a dead link");
    let fx = app.on_session(SessionEvent::Connected);
    assert_eq!(fx, vec![Effect::Send(Request::List("/app".into()))]);
    assert!(app.wants().iter().any(|e| matches!(e, Effect::Send(Request::Stats(_)))));
}
