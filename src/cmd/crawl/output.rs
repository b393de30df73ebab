//! The output file (one line per fetched URL, written and flushed as soon as the fetch is
//! over, so a stopped crawl leaves whole lines only) and the progress bar (stderr, only
//! when it is a terminal).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use url::Url;

use crate::cli::CrawlFormat;

pub struct Output {
    file: Mutex<Box<dyn Write + Send>>,
    format: CrawlFormat,
}

impl Output {
    /// Opens `path` for appending (created if missing), so a crawl with nothing new to
    /// fetch never loses an earlier crawl's lines and crawlers of one name may share the
    /// file (each line is one O_APPEND write); `truncate` (for `--reset`) empties it first.
    /// `-` is stdout.
    pub fn open(path: &Path, format: CrawlFormat, truncate: bool) -> io::Result<Output> {
        let file: Box<dyn Write + Send> = if path == Path::new("-") {
            Box::new(io::stdout())
        } else if truncate {
            Box::new(File::create(path)?)
        } else {
            Box::new(std::fs::OpenOptions::new().append(true).create(true).open(path)?)
        };
        Ok(Output { file: Mutex::new(file), format })
    }

    /// `depth<TAB>status<TAB>url` (or the URL alone), in one write so lines never interleave.
    pub fn write(&self, depth: u32, status: &str, url: &Url) -> io::Result<()> {
        let line = match self.format {
            CrawlFormat::Tsv => format!("{depth}\t{status}\t{url}\n"),
            CrawlFormat::Plain => format!("{url}\n"),
        };
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(line.as_bytes())?;
        f.flush() // stdout is line-buffered only on a terminal
    }

    /// Flushes (each line is already one unbuffered write; this is for the record).
    pub fn finish(&self) -> io::Result<()> {
        self.file.lock().unwrap_or_else(|e| e.into_inner()).flush()
    }
}

/// A spinner with counts, or nothing when stderr is not a terminal (or `--quiet`).
pub fn progress(show: bool) -> ProgressBar {
    use std::io::IsTerminal;
    if !show || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} {pos} pages fetched [{elapsed}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}
