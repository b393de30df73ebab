//! Apache Curator, for the interop tests: tests/java/CuratorPeer.java compiled once (plain
//! `javac` against Debian's jars in /usr/share/java, installed by vendor/setup.sh) and run as
//! one JVM per test, driven line by line on stdin (see the Java file for its commands).
//! Without a JDK or the jars, [`Peer::start`] says why on stderr and returns None: the test
//! then does nothing.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::{hosts, wait_until};

/// Debian's jars (libcurator-recipes-java, libcurator-discovery-java); their manifests name
/// the rest (framework, client, ZooKeeper, Guava, Jackson). slf4j-nop keeps the JVM quiet.
const JARS: [&str; 3] =
    ["/usr/share/java/curator-recipes.jar", "/usr/share/java/curator-x-discovery.jar", "/usr/share/java/slf4j-nop.jar"];
const SOURCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/java/CuratorPeer.java");

/// The classpath to run the peer with, or why it cannot run. Compiled once per test run
/// (and reused across runs while the class is newer than the source).
fn classpath() -> Result<&'static str, &'static str> {
    static CP: OnceLock<Result<String, String>> = OnceLock::new();
    CP.get_or_init(compile).as_deref().map_err(|e| e.as_str())
}

fn compile() -> Result<String, String> {
    if let Some(jar) = JARS[..2].iter().find(|j| !Path::new(j).exists()) {
        return Err(format!("{jar} is missing (vendor/setup.sh installs libcurator-*-java)"));
    }
    let jars = JARS.iter().filter(|j| Path::new(j).exists()).copied().collect::<Vec<_>>().join(":");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("curator-peer");
    let class = dir.join("CuratorPeer.class");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if mtime(&class).is_none() || mtime(&class) < mtime(Path::new(SOURCE)) {
        // into a directory of our own, then renamed: another test process may be compiling too
        let tmp = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let out = Command::new("javac")
            .args(["-nowarn", "-Xlint:-path", "-d"])
            .arg(&tmp)
            .args(["-cp", &jars, SOURCE])
            .output()
            .map_err(|e| format!("javac: {e} (vendor/setup.sh installs default-jdk-headless)"))?;
        // with the JDK and the jars there, a source that does not compile is a failure, not a skip
        assert!(
            out.status.success(),
            "javac tests/java/CuratorPeer.java failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::rename(&tmp, &dir).is_err() && !class.exists() {
            return Ok(format!("{}:{jars}", tmp.display()));
        }
    }
    Ok(format!("{}:{jars}", dir.display()))
}

/// A running CuratorPeer: one Curator client (one session) and its recipes.
pub struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<String>>,
}

impl Peer {
    /// A peer on the shared server, connected; None (after saying why) when Java or Curator
    /// is missing.
    pub fn start() -> Option<Peer> {
        Peer::start_on(&hosts())
    }

    pub fn start_on(hosts: &str) -> Option<Peer> {
        let cp = match classpath() {
            Ok(cp) => cp,
            Err(why) => {
                eprintln!("SKIPPED: Curator interop not tested: {why}");
                return None;
            }
        };
        let mut child = Command::new("java")
            // a short-lived client: skip the optimising compiler, the smallest collector
            .args([
                "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC",
                "-Xshare:auto",
                "-Xmx256m",
                "-cp",
                cp,
                "CuratorPeer",
                hosts,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn java (vendor/setup.sh installs default-jdk-headless)");
        let (out, mut errp) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let lines = Arc::new(Mutex::new(Vec::new()));
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().unwrap().push(line);
            }
        });
        let err = Arc::new(Mutex::new(String::new()));
        let e = err.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = errp.read(&mut buf) {
                e.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdin = child.stdin.take();
        let p = Peer { child, stdin, lines, err };
        assert!(
            wait_until(Duration::from_secs(60), || p.lines().iter().any(|l| l == "ready")),
            "CuratorPeer did not connect: {}",
            p.err.lock().unwrap()
        );
        Some(p)
    }

    /// Sends one command line (`TAG COMMAND ARGS...`).
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("peer closed");
        writeln!(stdin, "{line}").and_then(|()| stdin.flush()).expect("write to CuratorPeer");
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The replies for `tag`, without the tag.
    pub fn replies(&self, tag: &str) -> Vec<String> {
        let head = format!("{tag} ");
        self.lines().into_iter().filter_map(|l| l.strip_prefix(&head).map(str::to_string)).collect()
    }

    /// Waits (up to `timeout`) for the reply of `tag` that starts with one of `words`; returns
    /// it (without the tag), or None. A `TAG error ...` reply fails the test.
    pub fn wait_for(&self, tag: &str, words: &[&str], timeout: Duration) -> Option<String> {
        let mut found = None;
        wait_until(timeout, || {
            for r in self.replies(tag) {
                assert!(!r.starts_with("error"), "CuratorPeer {tag}: {r}\n{}", self.err.lock().unwrap());
                if words.iter().any(|w| r.split([' ', '\t']).next() == Some(w)) {
                    found = Some(r);
                    return true;
                }
            }
            false
        });
        found
    }

    /// Waits (60 s at most) for `tag`'s next reply among `words`, and fails the test if none came.
    #[track_caller]
    pub fn expect(&self, tag: &str, words: &[&str]) -> String {
        match self.wait_for(tag, words, Duration::from_secs(60)) {
            Some(r) => r,
            None => panic!("CuratorPeer {tag}: no {words:?} within 60s; got {:?}", self.replies(tag)),
        }
    }

    /// Ends the peer: stdin closed, so it closes its client (its ephemeral nodes go at once).
    pub fn close(mut self) {
        drop(self.stdin.take());
        let done = wait_until(Duration::from_secs(30), || self.child.try_wait().unwrap().is_some());
        assert!(done, "CuratorPeer did not exit after stdin closed");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
