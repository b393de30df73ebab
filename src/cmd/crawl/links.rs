//! URL normalization (what gets hashed and claimed) and link extraction with a real HTML
//! parser (html5ever through scraper), honouring `<base href>`.

use scraper::{Html, Selector};
use url::Url;

/// Why a URL is not crawlable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Not a URL at all (the parser's reason).
    Invalid(String),
    /// A scheme other than http/https (mailto:, javascript:, data:, ftp:, ...).
    Scheme(String),
}

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejected::Invalid(why) => write!(f, "not a valid URL ({why})"),
            Rejected::Scheme(s) => write!(f, "unsupported scheme {s:?} (only http and https are crawled)"),
        }
    }
}

/// Parses `href` against `base` and normalizes it: the url crate already lowercases scheme
/// and host, drops default ports, turns an empty path into `/` and resolves `.`/`..`; this
/// adds: no fragment, http(s) only, percent-encoding in one form (escapes of unreserved
/// characters decoded, the other escapes' hex digits uppercased), no userinfo.
pub fn normalize(href: &str, base: Option<&Url>) -> Result<Url, Rejected> {
    let href = href.trim();
    let mut u = Url::options().base_url(base).parse(href).map_err(|e| Rejected::Invalid(e.to_string()))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(Rejected::Scheme(u.scheme().to_string()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(Rejected::Invalid("no host".into()));
    }
    u.set_fragment(None);
    let _ = u.set_username("");
    let _ = u.set_password(None);
    let path = normalize_escapes(u.path());
    if path != u.path() {
        u.set_path(&path);
    }
    if let Some(q) = u.query() {
        let q = normalize_escapes(q);
        u.set_query(if q.is_empty() { None } else { Some(&q) });
    }
    Ok(u)
}

/// `%41` -> `A` for unreserved characters (RFC 3986 2.3), `%2f` -> `%2F` for the others.
fn normalize_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            let c = h * 16 + l;
            if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                out.push(c as char);
            } else {
                out.push('%');
                out.push(b[i + 1].to_ascii_uppercase() as char);
                out.push(b[i + 2].to_ascii_uppercase() as char);
            }
            i += 3;
            continue;
        }
        // the url crate already percent-encoded everything else; copy char by char
        let ch = s[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

/// The links of an HTML page: `<a href>` and `<area href>`, resolved against the page's URL
/// or its first `<base href>`, normalized. Invalid and non-HTTP links are counted, not
/// returned. Duplicates within the page are removed (first occurrence kept).
pub fn extract(html: &str, page: &Url) -> (Vec<Url>, usize) {
    let doc = Html::parse_document(html);
    let base_sel = Selector::parse("base[href]").expect("static selector");
    let link_sel = Selector::parse("a[href], area[href]").expect("static selector");
    let base = doc
        .select(&base_sel)
        .next()
        .and_then(|b| b.value().attr("href"))
        .and_then(|h| Url::options().base_url(Some(page)).parse(h.trim()).ok())
        .unwrap_or_else(|| page.clone());
    let mut seen = std::collections::HashSet::new();
    let mut links = Vec::new();
    let mut skipped = 0;
    for a in doc.select(&link_sel) {
        let href = a.value().attr("href").unwrap_or_default();
        match normalize(href, Some(&base)) {
            Ok(u) => {
                if seen.insert(u.as_str().to_string()) {
                    links.push(u);
                }
            }
            Err(_) => skipped += 1,
        }
    }
    (links, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        normalize(s, None).map(|u| u.to_string()).unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn normalization() {
        assert_eq!(n("HTTP://Example.COM:80"), "http://example.com/");
        assert_eq!(n("https://example.com:443/a#frag"), "https://example.com/a");
        assert_eq!(n("http://example.com:8080/a/./b/../c"), "http://example.com:8080/a/c");
        assert_eq!(n("http://example.com/%7euser/%41%2f%3a"), "http://example.com/~user/A%2F%3A");
        assert_eq!(n("http://example.com/a b"), "http://example.com/a%20b");
        assert_eq!(n("http://example.com/?q=%61&x=1"), "http://example.com/?q=a&x=1");
        assert_eq!(n("http://example.com/?"), "http://example.com/");
        assert_eq!(n("http://u:p@example.com/"), "http://example.com/");
        assert!(n("mailto:a@example.com").starts_with("ERR unsupported scheme"));
        assert!(n("javascript:void(0)").starts_with("ERR unsupported scheme"));
        assert!(n("data:text/html,hi").starts_with("ERR unsupported scheme"));
        assert!(n("ftp://example.com/").starts_with("ERR unsupported scheme"));
        assert!(n("not a url").starts_with("ERR not a valid URL"));
    }

    #[test]
    fn extraction_with_base_and_fragments() {
        let page = Url::parse("http://h/dir/page.html").unwrap();
        let html = r#"<html><head><base href="/other/"></head><body>
            <a href="x.html">x</a> <a href="x.html#top">again</a> <a href="/abs">abs</a>
            <a href="mailto:a@b">m</a> <a href="http://other.host/">o</a>
            <area href="../up"> <a name="no-href">n</a> <a href="">self</a><p><b>broken <a href="?q=1">q</a>"#;
        let (links, skipped) = extract(html, &page);
        let got: Vec<&str> = links.iter().map(Url::as_str).collect();
        assert_eq!(
            got,
            [
                "http://h/other/x.html",
                "http://h/abs",
                "http://other.host/",
                "http://h/up",
                "http://h/other/",
                "http://h/other/?q=1"
            ]
        );
        assert_eq!(skipped, 1);
    }
}
