//! The `vrd unpack` helper process: its command line, its entry point and the daemon's side.
//!
//! The daemon is a multi-threaded tokio process, which must not fork or chroot itself. It runs
//! `<vrd> unpack --archive A --dest D ...` with `std::process::Command` instead; the helper
//! chroots into the destination, unpacks (`unpack_in_chroot`), prints one line of JSON
//! (`UnpackStats`) on stdout and exits 0, or prints the error on stderr and exits 1 (2 for bad
//! arguments).

use std::error::Error;
use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::unpack::{unpack_in_chroot, UnpackOptions, UnpackStats};
use super::ImageError;

/// Unpacks `archive` into `dest` by running `<vrd_exe> unpack ...` and reading its result.
///
/// `vrd_exe` is normally the daemon's own binary (`/proc/self/exe`). Blocks until the helper
/// exits; from async code call it on a blocking thread.
pub fn unpack_with_helper(
    vrd_exe: &Path,
    archive: &Path,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, ImageError> {
    let output = Command::new(vrd_exe)
        .arg("unpack")
        .args(helper_args(archive, dest, opts))
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::HelperSpawn { exe: vrd_exe.to_path_buf(), source })?;
    if !output.status.success() {
        return Err(ImageError::Helper {
            archive: archive.to_path_buf(),
            status: output.status.to_string(),
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    serde_json::from_str(line).map_err(|source| ImageError::HelperOutput {
        exe: vrd_exe.to_path_buf(),
        output: stdout.to_string(),
        source,
    })
}

/// The helper's arguments after the `unpack` word.
fn helper_args(archive: &Path, dest: &Path, opts: &UnpackOptions) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--archive".into(),
        archive.into(),
        "--dest".into(),
        dest.into(),
        "--max-bytes".into(),
        opts.max_bytes.to_string().into(),
        "--max-entries".into(),
        opts.max_entries.to_string().into(),
    ];
    if opts.untrusted {
        args.push("--untrusted".into());
    }
    if let Some((uid, gid)) = opts.owner {
        args.push("--owner".into());
        args.push(format!("{uid}:{gid}").into());
    }
    args
}

/// What `vrd unpack` was asked to do.
#[derive(Debug, PartialEq, Eq)]
struct HelperArgs {
    archive: PathBuf,
    dest: PathBuf,
    opts: UnpackOptions,
}

/// Parses `--archive A --dest D [--untrusted] [--owner U:G] [--max-bytes N] [--max-entries N]`.
/// A leading `unpack` (the subcommand itself) is ignored; absent limits mean no limit.
fn parse_args(args: &[String]) -> Result<HelperArgs, ImageError> {
    let mut args = args.iter().map(String::as_str).peekable();
    if args.peek() == Some(&"unpack") {
        args.next();
    }
    let (mut archive, mut dest) = (None, None);
    let mut opts =
        UnpackOptions { untrusted: false, owner: None, max_bytes: u64::MAX, max_entries: u64::MAX };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value)),
            None => (arg, None),
        };
        if flag == "--untrusted" && inline.is_none() {
            opts.untrusted = true;
            continue;
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| ImageError::Usage(format!("{flag} needs a value")))?;
        match flag {
            "--archive" => archive = Some(PathBuf::from(value)),
            "--dest" => dest = Some(PathBuf::from(value)),
            "--owner" => opts.owner = Some(parse_owner(value)?),
            "--max-bytes" => opts.max_bytes = parse_number(flag, value)?,
            "--max-entries" => opts.max_entries = parse_number(flag, value)?,
            _ => return Err(ImageError::Usage(format!("unknown argument '{arg}'"))),
        }
    }
    Ok(HelperArgs {
        archive: archive.ok_or_else(|| ImageError::Usage("--archive is required".into()))?,
        dest: dest.ok_or_else(|| ImageError::Usage("--dest is required".into()))?,
        opts,
    })
}

fn parse_owner(value: &str) -> Result<(u32, u32), ImageError> {
    let bad = || ImageError::Usage(format!("--owner '{value}' is not UID:GID (numbers)"));
    let (uid, gid) = value.split_once(':').ok_or_else(bad)?;
    Ok((uid.parse().map_err(|_| bad())?, gid.parse().map_err(|_| bad())?))
}

fn parse_number(flag: &str, value: &str) -> Result<u64, ImageError> {
    value.parse().map_err(|_| ImageError::Usage(format!("{flag} '{value}' is not a whole number")))
}

/// The body of `vrd unpack`: `args` are the words after `vrd` (a leading `unpack` is skipped).
///
/// Returns the process exit code: 0 after printing the `UnpackStats` JSON line on stdout, 1 after
/// printing an unpack error on stderr, 2 for bad arguments.
pub fn unpack_main(args: &[String]) -> i32 {
    let parsed = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            report(&e);
            return 2;
        }
    };
    let stats = match unpack_in_chroot(&parsed.archive, &parsed.dest, &parsed.opts) {
        Ok(stats) => stats,
        Err(e) => {
            report(&e);
            return 1;
        }
    };
    let line = match serde_json::to_string(&stats) {
        Ok(line) => line,
        Err(e) => {
            report(&e);
            return 1;
        }
    };
    match writeln!(io::stdout().lock(), "{line}") {
        Ok(()) => 0,
        Err(e) => {
            report(&e);
            1
        }
    }
}

/// Prints an error and its causes on one line of stderr.
fn report(error: &dyn Error) {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    // Nothing sensible is left to do if stderr itself is gone.
    let _ = writeln!(io::stderr().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn arguments_round_trip() {
        let opts = UnpackOptions { untrusted: true, owner: Some((1000, 100)), max_bytes: 5, max_entries: 7 };
        let args: Vec<String> = helper_args(Path::new("/a.tgz"), Path::new("/d"), &opts)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let mut with_word = strings(&["unpack"]);
        with_word.extend(args);
        let parsed = parse_args(&with_word).unwrap();
        assert_eq!(parsed, HelperArgs { archive: "/a.tgz".into(), dest: "/d".into(), opts });
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for bad in [
            &["--dest", "/d"][..],
            &["--archive", "/a"],
            &["--archive", "/a", "--dest", "/d", "--owner", "me"],
            &["--archive", "/a", "--dest", "/d", "--max-bytes", "1G"],
            &["--archive", "/a", "--dest", "/d", "--frobnicate"],
            &["--archive"],
        ] {
            let err = parse_args(&strings(bad)).unwrap_err();
            assert!(matches!(err, ImageError::Usage(_)), "{bad:?}: {err}");
            assert!(err.to_string().contains("usage: vrd unpack"), "{err}");
        }
        let parsed = parse_args(&strings(&["--archive=/a", "--dest=/d"])).unwrap();
        assert_eq!(parsed.opts.max_bytes, u64::MAX);
    }
}
