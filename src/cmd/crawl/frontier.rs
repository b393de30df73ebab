//! The frontier: level-synchronous breadth-first. Every URL of depth d is fetched before
//! any of depth d+1 starts, so a URL is always claimed at its smallest depth (claims happen
//! on discovery; fetching a deeper page first could claim a URL too deep and cut its links).
//! The crawl ends when no thread has work and both levels are empty.

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
}

pub struct Frontier {
    state: Mutex<State>,
    cv: Condvar,
}

impl Frontier {
    pub fn new(start: Vec<Item>) -> Frontier {
        Frontier {
            state: Mutex::new(State { depth: 0, current: start.into(), next: Vec::new(), busy: 0, stopped: false }),
            cv: Condvar::new(),
        }
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
