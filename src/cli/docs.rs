//! Shell completions and man pages, generated from the clap definitions so they cannot drift from
//! the commands `vr` really accepts.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Writes the completion script for `shell` for the command `cmd` (e.g. `vr`) to `out`.
///
/// The script is rendered in memory first, so a closed pipe (`vr completions bash | head`) comes
/// back as an error instead of a panic inside the generator.
pub fn completions(cmd: clap::Command, shell: Shell, out: &mut dyn Write) -> io::Result<()> {
    let mut cmd = cmd;
    let name = cmd.get_name().to_string();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    out.write_all(&script)?;
    out.flush()
}

/// Writes one roff man page (section 1) per command into `dir`: `vr.1` for `cmd` itself, and
/// `vr-runner.1`, `vr-runner-setup.1`, … for each visible subcommand; returns the paths written,
/// parents first. Hidden subcommands and clap's `help` subcommand get no page.
pub fn man_pages(cmd: clap::Command, dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    // Building fills in the display names (`vr-runner`) the page titles and file names use.
    cmd.build();
    let source = format!("{} {}", cmd.get_name(), cmd.get_version().unwrap_or_default());
    let mut written = Vec::new();
    write_pages(&cmd, dir, source.trim(), &mut written)?;
    Ok(written)
}

fn write_pages(cmd: &clap::Command, dir: &Path, source: &str, written: &mut Vec<PathBuf>) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone()).source(source);
    let path = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render(&mut page)?;
    std::fs::write(&path, page).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "failed to write the man page {}: {e}; check that the directory exists and is writable",
                path.display()
            ),
        )
    })?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, source, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> clap::Command {
        clap::Command::new("tiny")
            .version("1.2.3")
            .about("A tiny tool.")
            .subcommand(clap::Command::new("runner").about("Runs things.").subcommand(
                clap::Command::new("setup").about("Sets up.").arg(clap::arg!(<FILE> "proc.yaml")),
            ))
            .subcommand(clap::Command::new("version").about("Shows the version."))
            .subcommand(clap::Command::new("secret").hide(true))
    }

    #[test]
    fn bash_completion_names_the_subcommands() {
        let mut out = Vec::new();
        completions(tiny(), Shell::Bash, &mut out).expect("render");
        let script = String::from_utf8(out).expect("utf-8");
        for word in ["tiny", "runner", "version", "setup"] {
            assert!(script.contains(word), "no {word} in:\n{script}");
        }
    }

    #[test]
    fn every_shell_renders() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
            let mut out = Vec::new();
            completions(tiny(), shell, &mut out).expect("render");
            assert!(!out.is_empty(), "{shell} completion is empty");
        }
    }

    #[test]
    fn a_page_per_visible_command() {
        let dir = tempfile::tempdir().expect("tempdir");
        let written = man_pages(tiny(), dir.path()).expect("write");
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["tiny.1", "tiny-runner.1", "tiny-runner-setup.1", "tiny-version.1"]);
        let page = std::fs::read_to_string(dir.path().join("tiny-runner.1")).expect("read");
        // clap_mangen puts a two-line groff/troff quote preamble (`.ie \n(.g …`) before the title.
        let title = page.lines().find(|l| !l.starts_with(".ie") && !l.starts_with(".el")).unwrap_or_default();
        assert!(title.starts_with(".TH tiny-runner 1"), "{page}");
        assert!(page.contains("tiny 1.2.3"), "every page names the program and version: {page}");
        assert!(page.contains("setup"), "the runner page lists its subcommands: {page}");
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("nope");
        let err = man_pages(tiny(), &missing).expect_err("no such directory");
        assert!(err.to_string().contains(&missing.display().to_string()), "{err}");
    }

    #[test]
    fn the_real_cli_documents_runner() {
        let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
        let mut out = Vec::new();
        completions(cmd.clone(), Shell::Bash, &mut out).expect("render");
        let script = String::from_utf8(out).expect("utf-8");
        assert!(script.contains("runner") && script.contains("--socket"), "{script}");
        let dir = tempfile::tempdir().expect("tempdir");
        let written = man_pages(cmd, dir.path()).expect("write");
        assert!(written.contains(&dir.path().join("vr.1")), "{written:?}");
        assert!(written.contains(&dir.path().join("vr-runner.1")), "{written:?}");
        assert!(!written.iter().any(|p| p.ends_with("vr-help.1")), "{written:?}");
    }
}
