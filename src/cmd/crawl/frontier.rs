//! The frontier: level-synchronous breadth-first. Every URL of depth d is fetched before
//! any of depth d+1 starts, so a URL is always claimed at its smallest depth (claims happen
//! on discovery; fetching a deeper page first could claim a URL too deep and cut its links).
//! Without a hold, the crawl ends when no thread has work and both levels are empty. With a
//! hold (`--dedupe zookeeper`), it then says it is idle and waits: the crawl's coordinator
//! may add adopted URLs, or release it once the whole crawl (every crawler) is done.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use url::Url;

/// A URL to fetch.
#[derive(Debug, Clone)]
pub struct Item {
    pub url: Url,
    pub depth: u32,
    /// Redirects followed to reach it (a chain of distinct URLs is cut at a limit).
    pub hops: u32,
}

struct State {
    depth: u32,
    current: VecDeque<Item>,
    next: Vec<Item>,
    busy: usize,
    stopped: bool,
    /// Someone may still add work: do not end when out of work; say so on `idle` instead.
    held: bool,
    /// `idle` was told since work last arrived.
    told_idle: bool,
}

pub struct Frontier {
    state: Mutex<State>,
    cv: Condvar,
    idle: Option<crossbeam_channel::Sender<()>>,
}

impl Frontier {
    pub fn new(start: Vec<Item>) -> Frontier {
        Frontier::with_hold(start, None)
    }

    /// A frontier held open: out of work, it sends on `idle` (once per idle spell) and waits
    /// for `add`, `release` or `stop`.
    pub fn held(start: Vec<Item>, idle: crossbeam_channel::Sender<()>) -> Frontier {
        Frontier::with_hold(start, Some(idle))
    }

    fn with_hold(start: Vec<Item>, idle: Option<crossbeam_channel::Sender<()>>) -> Frontier {
        let state = State {
            depth: 0,
            current: start.into(),
            next: Vec::new(),
            busy: 0,
            stopped: false,
            held: idle.is_some(),
            told_idle: false,
        };
        Frontier { state: Mutex::new(state), cv: Condvar::new(), idle }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next URL to fetch, blocking while other threads may still add to this level;
    /// None when the crawl is over (or stopped). Each Some must be answered by `done`.
    pub fn pop(&self) -> Option<Item> {
        let mut s = self.lock();
        loop {
            if s.stopped {
                return None;
            }
            if let Some(item) = s.current.pop_front() {
                s.busy += 1;
                return Some(item);
            }
            if s.busy == 0 {
                if s.next.is_empty() && s.held {
                    if !s.told_idle {
                        s.told_idle = true;
                        if let Some(tx) = &self.idle {
                            let _ = tx.try_send(());
                        }
                    }
                    s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                if s.next.is_empty() {
                    s.stopped = true;
                    self.cv.notify_all();
                    return None;
                }
                let next = std::mem::take(&mut s.next);
                s.current = next.into();
                s.depth += 1;
                continue;
            }
            s = self.cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The fetch of a popped item is over; `found` are the URLs it claimed (links of the next
    /// level, or a redirect target of this one).
    pub fn done(&self, found: Vec<Item>) {
        let mut s = self.lock();
        for item in found {
            if item.depth <= s.depth {
                s.current.push_back(item);
            } else {
                s.next.push(item);
            }
        }
        s.busy -= 1;
        self.cv.notify_all();
    }

    /// Adds URLs from elsewhere (adopted), not the answer to a pop.
    pub fn add(&self, items: Vec<Item>) {
        let mut s = self.lock();
        for item in items {
            if item.depth <= s.depth {
                s.current.push_back(item);
            } else {
                s.next.push(item);
            }
        }
        s.told_idle = false;
        self.cv.notify_all();
    }

    /// No more work will be added: once out of work, the crawl ends.
    pub fn release(&self) {
        self.lock().held = false;
        self.cv.notify_all();
    }

    /// Out of work: nothing queued, no thread busy.
    pub fn is_idle(&self) -> bool {
        let s = self.lock();
        s.current.is_empty() && s.next.is_empty() && s.busy == 0
    }

    /// Ends the crawl: pop returns None from now on (threads finish what they hold).
    pub fn stop(&self) {
        self.lock().stopped = true;
        self.cv.notify_all();
    }

    /// URLs waiting (both levels).
    pub fn queued(&self) -> usize {
        let s = self.lock();
        s.current.len() + s.next.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(p: &str, depth: u32) -> Item {
        Item { url: Url::parse(&format!("http://h/{p}")).unwrap(), depth, hops: 0 }
    }

    #[test]
    fn a_held_frontier_says_idle_takes_adopted_work_and_ends_on_release() {
        let (tx, idle) = crossbeam_channel::bounded(1);
        let f = Frontier::held(vec![item("a", 0)], tx);
        let a = f.pop().unwrap();
        f.done(vec![]);
        assert_eq!(a.url.path(), "/a");
        std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let b = f.pop();
                f.done(vec![]);
                (b, f.pop())
            });
            idle.recv_timeout(std::time::Duration::from_secs(5)).expect("told idle");
            assert!(f.is_idle());
            f.add(vec![item("b", 4)]);
            idle.recv_timeout(std::time::Duration::from_secs(5)).expect("told idle again");
            f.release();
            let (b, end) = worker.join().unwrap();
            assert_eq!(b.map(|b| b.url.path().to_string()), Some("/b".into()));
            assert!(end.is_none());
        });
    }

    #[test]
    fn levels_in_order_and_termination() {
        let f = Frontier::new(vec![item("a", 0)]);
        let a = f.pop().unwrap();
        assert_eq!(a.depth, 0);
        f.done(vec![item("b", 1), item("c", 1)]);
        let b = f.pop().unwrap();
        // a redirect target of the current level goes before the next level
        f.done(vec![item("b2", 1), item("d", 2)]);
        let c = f.pop().unwrap();
        let b2 = f.pop().unwrap();
        assert_eq!((b.url.path(), c.url.path(), b2.url.path()), ("/b", "/c", "/b2"));
        f.done(vec![]);
        f.done(vec![]);
        let d = f.pop().unwrap();
        assert_eq!(d.depth, 2);
        f.done(vec![]);
        assert!(f.pop().is_none());
    }
}
