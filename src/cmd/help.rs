//! `zkutil completions bash|zsh|fish` and `zkutil man`: generated from the clap definitions,
//! so they never fall behind the commands.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Command, CommandFactory};
use std::path::Path;

use crate::cli::{Cli, CompletionShell};

/// Writes the completion script for `shell` on stdout.
pub fn completions(shell: CompletionShell) -> Result<ExitCode> {
    use clap_complete::Shell;
    let shell = match shell {
        CompletionShell::Bash => Shell::Bash,
        CompletionShell::Zsh => Shell::Zsh,
        CompletionShell::Fish => Shell::Fish,
    };
    // into a buffer first: clap_complete panics on a write error (a closed pipe)
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "zkutil", &mut buf);
    io::stdout().lock().write_all(&buf)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes zkutil(1) in roff on stdout; with `dir`, writes zkutil.1 and one page per
/// (sub)command, `zkutil-queue-consume.1`, as git does.
pub fn man(dir: Option<&Path>) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    cmd.build();
    let Some(dir) = dir else {
        clap_mangen::Man::new(cmd).render(&mut io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = 0;
    write_pages(&cmd, "zkutil", dir, &mut written)?;
    crate::status!("{written} man pages written to {}", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn write_pages(cmd: &Command, name: &str, dir: &Path, written: &mut usize) -> Result<()> {
    let page = dir.join(format!("{name}.1"));
    let mut buf = Vec::new();
    clap_mangen::Man::new(cmd.clone()).title(name).render(&mut buf)?;
    std::fs::write(&page, buf).with_context(|| format!("writing {}", page.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}
