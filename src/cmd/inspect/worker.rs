//! The inspector's ZooKeeper thread: runs the model's requests one by one, so the screen
//! never waits on the network, and hands back replies, armed watches and the session's
//! events. After the session expires it opens a new one (and says so).

use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, select, unbounded};

use super::model::{Conflict, Detail, Reply, Request, WatchKey};
use crate::cmd::Session;
use crate::zk::{self, Code, ConnectOptions, SessionEvent, WatchEvent, ZooKeeper};

/// What the worker sends to the screen's loop.
pub enum Msg {
    Reply(Reply),
    /// A watch armed by the last request; the loop polls it.
    Watch(WatchKey, Receiver<WatchEvent>),
    /// The events of the (new) session.
    Session(Receiver<SessionEvent>),
}

pub struct Worker {
    pub tx: Sender<Request>,
    pub rx: Receiver<Msg>,
    // Not joined: dropping `tx` ends the thread once its current call returns, and a call
    // stuck on a dead link must not hold the terminal hostage (the process exits anyway).
    _thread: JoinHandle<()>,
}

impl Worker {
    pub fn start(zk: Session, opts: ConnectOptions) -> std::io::Result<Worker> {
        let (tx, requests) = unbounded();
        let (out, rx) = unbounded();
        let thread =
            std::thread::Builder::new().name("inspect-zk".into()).spawn(move || run(zk, &opts, &requests, &out))?;
        Ok(Worker { tx, rx, _thread: thread })
    }
}

fn run(mut zk: Session, opts: &ConnectOptions, requests: &Receiver<Request>, out: &Sender<Msg>) {
    loop {
        let events = zk.session_events();
        let mine = zk.session_events();
        if out.send(Msg::Session(events)).is_err()
            || out.send(Msg::Reply(Reply::NewSession { id: zk.session_id() })).is_err()
        {
            return;
        }
        // serve this session until it expires
        loop {
            select! {
                recv(requests) -> r => match r {
                    Ok(r) => {
                        if !handle(&zk, r, out) {
                            break;
                        }
                    }
                    Err(_) => return,
                },
                recv(mine) -> ev => match ev {
                    Ok(ev) if ev.is_terminal() => break,
                    Ok(_) => {}
                    Err(_) => break,
                },
            }
            if zk.is_dead() {
                break;
            }
        }
        let _ = out.send(Msg::Reply(Reply::Expired));
        drop(zk);
        zk = loop {
            match ZooKeeper::connect_with(opts) {
                Ok(z) => break Session::Owned(z),
                Err(e) => {
                    let req = Request::List("/".into());
                    let _ =
                        out.send(Msg::Reply(Reply::Failed { req, error: format!("reconnecting: {e}"), gone: false }));
                    // requests made meanwhile are dropped: a new session re-reads everything
                    match requests.recv_timeout(Duration::from_secs(1)) {
                        Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
                        _ => continue,
                    }
                }
            }
        };
    }
}

fn send(out: &Sender<Msg>, m: Msg) {
    let _ = out.send(m);
}

/// Runs one request; false when the session is gone (the caller opens a new one).
fn handle(zk: &ZooKeeper, req: Request, out: &Sender<Msg>) -> bool {
    let result = serve(zk, &req, out);
    match result {
        Ok(reply) => {
            send(out, Msg::Reply(reply));
            true
        }
        Err(e) => {
            let gone = e.code() == Some(Code::NoNode);
            let lost = e.code().is_some_and(|c| c == Code::SessionExpired) || zk.is_dead();
            let what = match &req {
                Request::List(p) | Request::Detail(p) | Request::Count(p) => format!("{p}: {e}"),
                Request::Create { path, .. } => format!("creating {path}: {e}"),
                Request::Delete { path, .. } => format!("deleting {path}: {e}"),
                Request::Set { path, .. } => format!("saving {path}: {e}"),
                Request::Jump { path, .. } => format!("going to {path}: {e}"),
                Request::Stats(_) => format!("reading Stats: {e}"),
            };
            send(out, Msg::Reply(Reply::Failed { req, error: what, gone }));
            !lost
        }
    }
}

fn serve(zk: &ZooKeeper, req: &Request, out: &Sender<Msg>) -> zk::Result<Reply> {
    Ok(match req {
        Request::List(p) => {
            let (children, stat, w) = zk.children_w(p)?;
            send(out, Msg::Watch(WatchKey::Children(p.clone()), w));
            Reply::Listed { path: p.clone(), children, stat }
        }
        Request::Stats(paths) => {
            let mut stats = Vec::with_capacity(paths.len());
            for p in paths {
                let (stat, w) = zk.exists_w(p)?;
                send(out, Msg::Watch(WatchKey::Node(p.clone()), w));
                stats.push((p.clone(), stat));
            }
            Reply::Stats(stats)
        }
        Request::Detail(p) => {
            let (data, stat, w) = zk.get_w(p)?;
            send(out, Msg::Watch(WatchKey::Node(p.clone()), w));
            let (acl, _) = zk.get_acl(p)?;
            Reply::Detail(Detail { path: p.clone(), data, stat, acl })
        }
        Request::Count(p) => Reply::Counted { path: p.clone(), nodes: count(zk, p)? },
        Request::Create { path, data, mode } => Reply::Created(zk.create(path, data, *mode)?),
        Request::Delete { path, recursive } => {
            let nodes = if *recursive {
                let n = count(zk, path)?;
                zk.delete_tree(path)?;
                n
            } else {
                zk.delete(path, None)?;
                1
            };
            Reply::Deleted { path: path.clone(), nodes }
        }
        Request::Set { path, data, version } => match zk.set(path, data, Some(*version)) {
            Ok(stat) => Reply::Saved { path: path.clone(), stat },
            Err(e) if e.code() == Some(Code::BadVersion) => {
                let (theirs, stat) = zk.get(path)?;
                Reply::Conflict(Conflict { path: path.clone(), mine: data.clone(), theirs, stat })
            }
            Err(e) => return Err(e),
        },
        Request::Jump { root, path } => {
            let mut chain = Vec::new();
            let mut p = path.as_str();
            while let Some(parent) = zk::parent(p) {
                chain.push(parent.to_string());
                if parent == root || parent == "/" {
                    break;
                }
                p = parent;
            }
            for a in chain.iter().rev() {
                match zk.children_w(a) {
                    Ok((children, stat, w)) => {
                        send(out, Msg::Watch(WatchKey::Children(a.clone()), w));
                        send(out, Msg::Reply(Reply::Listed { path: a.clone(), children, stat }));
                    }
                    Err(e) if e.code() == Some(Code::NoNode) => {
                        return Ok(Reply::Jumped { path: path.clone(), found: false });
                    }
                    Err(e) => return Err(e),
                }
            }
            Reply::Jumped { path: path.clone(), found: zk.exists(path)?.is_some() }
        }
    })
}

/// Nodes in the subtree at `path`, itself included (NoNode if it is gone).
fn count(zk: &ZooKeeper, path: &str) -> zk::Result<u64> {
    let mut n = 0;
    let mut stack = vec![path.to_string()];
    while let Some(p) = stack.pop() {
        match zk.children(&p) {
            Ok(kids) => {
                n += 1;
                stack.extend(kids.iter().map(|k| zk::join(&p, k)));
            }
            Err(e) if e.code() == Some(Code::NoNode) && p != path => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
