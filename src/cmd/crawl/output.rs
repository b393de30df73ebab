//! The output file (one line per fetched URL, written and flushed as soon as the fetch is
//! over, so a stopped crawl leaves whole lines only) and the progress bar (stderr, only
//! when it is a terminal).

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use url::Url;

use crate::cli::CrawlFormat;

pub struct Output {
    path: PathBuf,
    /// Opened at the first line: None until then.
    file: Mutex<Option<Box<dyn Write + Send>>>,
    format: CrawlFormat,
}

impl Output {
    /// Output to `path` (`-`: stdout), created (truncated) only when the first fetched page
    /// is written: a crawl with nothing new to fetch leaves an earlier file as it was. Checks
    /// now that the file can be written.
    pub fn open(path: &Path, format: CrawlFormat) -> io::Result<Output> {
        if path != Path::new("-") {
            // writable? (without truncating: append mode creates at most an empty file)
            let existed = path.exists();
            std::fs::OpenOptions::new().append(true).create(true).open(path)?;
            if !existed {
                let _ = std::fs::remove_file(path);
            }
        }
        Ok(Output { path: path.to_path_buf(), file: Mutex::new(None), format })
    }

    /// `depth<TAB>status<TAB>url` (or the URL alone), in one write so lines never interleave.
    pub fn write(&self, depth: u32, status: &str, url: &Url) -> io::Result<()> {
        let line = match self.format {
            CrawlFormat::Tsv => format!("{depth}\t{status}\t{url}\n"),
            CrawlFormat::Plain => format!("{url}\n"),
        };
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let f = match &mut *f {
            Some(f) => f,
            None => f.insert(if self.path == Path::new("-") {
                Box::new(io::stdout())
            } else {
                Box::new(File::create(&self.path)?)
            }),
        };
        f.write_all(line.as_bytes())?;
        f.flush() // stdout is block-buffered through a pipe
    }

    /// Flushes (each line is already one unbuffered write; this is for the record).
    pub fn finish(&self) -> io::Result<()> {
        match &mut *self.file.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(f) => f.flush(),
            None => Ok(()),
        }
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
