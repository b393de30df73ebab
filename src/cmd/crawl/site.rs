//! A tiny HTTP/1.1 server on 127.0.0.1 for sites the crawler is pointed at in the bench,
//! the demo and the tests: keep-alive, one thread per connection, a handler per path, and a
//! count of requests per path. Not a general web server: GET only, no request bodies.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn html(body: impl Into<String>) -> Response {
        Response::new(200, "text/html; charset=utf-8", body.into().into_bytes())
    }

    pub fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response { status, content_type: content_type.into(), body, headers: Vec::new() }
    }

    pub fn redirect(status: u16, location: &str) -> Response {
        let mut r = Response::new(status, "text/plain", Vec::new());
        r.headers.push(("Location".into(), location.into()));
        r
    }

    pub fn not_found() -> Response {
        Response::new(404, "text/html", b"<h1>not found</h1>".to_vec())
    }
}

type Handler = dyn Fn(&str) -> Response + Send + Sync;

/// A running server; dropping it stops accepting (open connections end at their next read).
pub struct Server {
    addr: SocketAddr,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `handler(path_and_query)` on a free port of 127.0.0.1.
    pub fn start(handler: impl Fn(&str) -> Response + Send + Sync + 'static) -> io::Result<Server> {
        Server::start_on("127.0.0.1:0", handler)
    }

    /// Serves `handler` on `addr` (`IP:PORT`, port 0: a free one), e.g. a rig host's address.
    pub fn start_on(addr: &str, handler: impl Fn(&str) -> Response + Send + Sync + 'static) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let counts = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let handler: Arc<Handler> = Arc::new(handler);
        let (c, st) = (counts.clone(), stop.clone());
        let accept = std::thread::Builder::new().name("site-accept".into()).spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (h, c, st) = (handler.clone(), c.clone(), st.clone());
                let _ = std::thread::Builder::new().name("site-conn".into()).spawn(move || {
                    let _ = serve(conn, &*h, &c, &st);
                });
            }
        })?;
        Ok(Server { addr, counts, stop, accept: Some(accept) })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://HOST:PORT` (HOST: 127.0.0.1 or localhost, both reach this server).
    pub fn base(&self, host: &str) -> String {
        format!("http://{host}:{}", self.port())
    }

    /// Requests so far, per path (with query).
    pub fn requests(&self) -> HashMap<String, usize> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// All requests so far.
    pub fn total(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).values().sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wake the accept loop
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    conn: TcpStream,
    handler: &Handler,
    counts: &Mutex<HashMap<String, usize>>,
    stop: &AtomicBool,
) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_millis(500)))?;
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut w = conn;
    loop {
        // request line (idle keep-alive connections wait here)
        let mut line = String::new();
        loop {
            match reader.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) => break,
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let mut close = line.ends_with("HTTP/1.0\r\n");
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            if h == "\r\n" || h == "\n" {
                break;
            }
            if h.to_ascii_lowercase().starts_with("connection:") && h.to_ascii_lowercase().contains("close") {
                close = true;
            }
        }
        *counts.lock().unwrap_or_else(|e| e.into_inner()).entry(target.clone()).or_default() += 1;
        let r = handler(&target);
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
            r.status,
            reason(r.status),
            r.content_type,
            r.body.len()
        );
        for (k, v) in &r.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        w.write_all(head.as_bytes())?;
        w.write_all(&r.body)?;
        w.flush()?;
        if close {
            return Ok(());
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Status",
    }
}

/// The path of page `i` of a generated site.
pub fn page_path(i: u32) -> String {
    format!("/p/{i}.html")
}

/// A generated site of `pages` pages of `links` links each: the first half of the links
/// make a tree (so every page is reachable within a few levels), the rest point at
/// pseudo-random pages (duplicates for the dedupe), some relative, some with a fragment.
pub fn generated(pages: u32, links: u32) -> impl Fn(&str) -> Response + Send + Sync + 'static {
    let fanout = (links / 2).max(1);
    move |path: &str| {
        let Some(i) =
            path.strip_prefix("/p/").and_then(|p| p.strip_suffix(".html")).and_then(|n| n.parse::<u32>().ok())
        else {
            return if path == "/" { Response::redirect(301, &page_path(0)) } else { Response::not_found() };
        };
        if i >= pages {
            return Response::not_found();
        }
        let mut body = format!("<!doctype html><html><head><title>page {i}</title></head><body><h1>page {i}</h1>\n");
        for j in 0..links {
            let target = if j < fanout {
                (i as u64 * fanout as u64 + 1 + j as u64).min(pages as u64 - 1) as u32
            } else {
                // xorshift-ish mix of (i, j): stable across runs
                let mut x = (i as u64) << 32 | j as u64;
                x ^= x >> 33;
                x = x.wrapping_mul(0xff51afd7ed558ccd);
                x ^= x >> 33;
                (x % pages as u64) as u32
            };
            let href = match j % 3 {
                0 => format!("{target}.html"),
                1 => format!("/p/{target}.html#s{j}"),
                _ => page_path(target),
            };
            body.push_str(&format!("<p><a href=\"{href}\">link {j}</a></p>\n"));
        }
        body.push_str("</body></html>\n");
        Response::html(body)
    }
}

/// The small site `zkutil demo` crawls: a blog with a `<base>`, a redirect, a 404, a PDF,
/// a robots.txt that keeps crawlers out of /admin/, and a link off the site (never fetched).
pub fn demo_site(path: &str) -> Response {
    let page = |title: &str, links: &str| {
        Response::html(format!("<!doctype html><html><head><title>{title}</title></head><body>{links}</body></html>"))
    };
    match path {
        "/robots.txt" => Response::new(200, "text/plain", b"User-agent: *\nDisallow: /admin/\n".to_vec()),
        "/" => page(
            "home",
            r##"<a href="about.html">About</a> <a href="/blog/">Blog</a> <a href="/old-about">old link</a>
               <a href="/admin/">Admin</a> <a href="manual.pdf">Manual</a> <a href="https://example.org/">elsewhere</a>
               <a href="mailto:team@example.org">mail us</a> <a href="#top">top</a>
               <a href="http://127.0.0.1:1/">a server that is down</a>"##,
        ),
        "/about.html" => page("about", r#"<a href="/">Home</a> <a href="team.html">Team</a>"#),
        "/team.html" => page("team", r#"<a href="/about.html#team">About</a>"#),
        "/blog/" => page(
            "blog",
            r#"<base href="/blog/posts/"><a href="1.html">first post</a> <a href="2.html?ref=blog">second post</a>
               <a href="/gone.html">a dead link</a>"#,
        ),
        "/blog/posts/1.html" => page("post 1", r#"<a href="../../">Home</a>"#),
        "/blog/posts/2.html?ref=blog" => page("post 2", r#"<a href="1.html">previous</a>"#),
        "/old-about" => Response::redirect(301, "/history.html"),
        "/history.html" => page("history", r#"<a href="/">Home</a>"#),
        "/manual.pdf" => Response::new(200, "application/pdf", b"%PDF-1.4".to_vec()),
        "/admin/" => page("admin", "secret"),
        _ => Response::not_found(),
    }
}
