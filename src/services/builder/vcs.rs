//! Real git and real hg, run as programs: keep a cached copy of a repository up to date, resolve a
//! tag, branch or revision to its full hash, and export the tree at that hash (without `.git` or
//! `.hg`) into a fresh directory.
//!
//! git caches are mirrors (`clone --mirror`), so every branch and tag is a local ref after a fetch;
//! the tree is exported with a throwaway index (`read-tree` + `checkout-index`), which honours the
//! repository's filters as a checkout would but never touches the cache. hg caches are clones
//! without a working copy; the tree is exported with `hg archive`. A revision that is already a
//! full hash present in the cache is built without asking the remote.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::BuilderError;
use crate::model::build_data::RepoType;

/// One repository: its kind, its URL (for messages) and its cached copy.
#[derive(Debug, Clone, Copy)]
pub struct Repo<'a> {
    /// git or hg.
    pub kind: RepoType,
    /// Where it comes from.
    pub url: &'a str,
    /// The cache dir.
    pub dir: &'a Path,
}

fn program(kind: RepoType) -> Command {
    let mut cmd = match kind {
        RepoType::Git => {
            let mut c = Command::new("git");
            // No safe.directory exception: the caches are vrd's own, and a local repository of
            // another user is read as that user (see `upload_pack_as`).
            c.args(["-c", "core.symlinks=true"]);
            c.env("GIT_TERMINAL_PROMPT", "0");
            c
        }
        RepoType::Hg => {
            let mut c = Command::new("hg");
            // Plain output, and no host-wide configuration (extensions, hooks) in the way.
            c.env("HGPLAIN", "1").env("HGRCPATH", "");
            c
        }
    };
    cmd.stdin(Stdio::null()).env("LC_ALL", "C");
    cmd
}

fn run<I, S>(kind: RepoType, args: I) -> Result<Output, String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let name = kind.as_str();
    let mut cmd = program(kind);
    cmd.args(args);
    output_within(cmd, CHECKOUT_TIMEOUT).map_err(|e| match e.kind() {
        std::io::ErrorKind::TimedOut => {
            // Not the arguments: a URL may carry a token.
            format!("{name}: {e}; check that the repository's server answers, or try again")
        }
        std::io::ErrorKind::NotFound => {
            format!(
                "{name} is not installed on this host: install it (apt-get install {})",
                debian_package(kind)
            )
        }
        _ => format!("failed to run {name}: {e}"),
    })
}

/// How long one git or hg command (a clone, a fetch, an export) may take: a server that stops
/// answering must not hold a build, its lock and a thread forever.
const CHECKOUT_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `cmd` (its stdout and stderr collected) in a process group of its own; after `limit` the
/// whole group (git's remote helpers and ssh too) is killed and the error is `TimedOut`.
fn output_within(mut cmd: Command, limit: Duration) -> std::io::Result<Output> {
    let child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).spawn()?;
    let group = nix::unistd::Pid::from_raw(child.id() as i32);
    let (done, finished) = std::sync::mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match finished.recv_timeout(limit) {
        Ok(output) => output,
        Err(_) => {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            let _ = waiter.join();
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("stopped after {} s without finishing", limit.as_secs()),
            ))
        }
    }
}

fn debian_package(kind: RepoType) -> &'static str {
    match kind {
        RepoType::Git => "git",
        RepoType::Hg => "mercurial",
    }
}

/// The lines of a failed command's stderr that say why: every `fatal:`, `error:` and `abort:` line
/// (git's first fatal line is the reason, its last a generic "could not read"), else the last three.
fn tail(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let says_why = |l: &&str| {
        let l = l.strip_prefix("remote: ").unwrap_or(l);
        ["fatal:", "error:", "abort:"].iter().any(|p| l.starts_with(p))
    };
    let why: Vec<&str> = lines.iter().copied().filter(says_why).take(10).collect();
    if why.is_empty() {
        lines[lines.len().saturating_sub(3)..].join("; ")
    } else {
        why.join("; ")
    }
}

/// The owner of a local repository (a path or a `file://` URL) when it is not vrd's own user.
/// git refuses to read such a repository as root ("detected dubious ownership"), and rightly: its
/// config could run programs. vrd then reads it as its owner (see [`upload_pack_as`]).
fn foreign_owner(url: &str) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    let path = Path::new(url.strip_prefix("file://").unwrap_or(url));
    if !path.is_absolute() {
        return None;
    }
    let meta = fs::metadata(path).ok()?;
    (meta.uid() != nix::unistd::geteuid().as_raw()).then_some((meta.uid(), meta.gid()))
}

/// git's `--upload-pack` program that serves a local repository as its owner: the repository's
/// own config and hooks then run with its owner's rights, never root's, and vrd only receives
/// the objects. (setpriv is util-linux's, present wherever git is.)
fn upload_pack_as((uid, gid): (u32, u32)) -> String {
    format!("setpriv --reuid={uid} --regid={gid} --clear-groups --reset-env git-upload-pack")
}

fn checked(kind: RepoType, args: &[&OsStr], what: &str) -> Result<Output, BuilderError> {
    let out = run(kind, args).map_err(BuilderError::Checkout)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(BuilderError::Checkout(format!("{what}: {} ({})", tail(&out), out.status)))
    }
}

fn os(items: &[&str]) -> Vec<std::ffi::OsString> {
    items.iter().map(|s| s.into()).collect()
}

fn is_full_hash(rev: &str) -> bool {
    (rev.len() == 40 || rev.len() == 64) && rev.chars().all(|c| c.is_ascii_hexdigit())
}

impl Repo<'_> {
    /// Makes the cache hold `rev`: clones it when missing (into a temp dir renamed into place, so
    /// an interrupted clone leaves nothing), else fetches, unless `rev` is a full hash it has.
    pub fn sync(&self, rev: Option<&str>) -> Result<(), BuilderError> {
        if !self.dir.exists() {
            return self.clone_fresh();
        }
        if rev.is_some_and(|r| is_full_hash(r) && self.resolve_local(r).is_some()) {
            return Ok(());
        }
        let dir = self.dir.as_os_str();
        let mut args: Vec<std::ffi::OsString> = match self.kind {
            RepoType::Git => {
                os(&["--git-dir"]).into_iter().chain([dir.into()]).chain(os(&["fetch"])).collect()
            }
            RepoType::Hg => {
                os(&["-R"]).into_iter().chain([dir.into()]).chain(os(&["pull", "--quiet"])).collect()
            }
        };
        if self.kind == RepoType::Git {
            if let Some(owner) = self.foreign_git_owner() {
                args.extend(os(&["--upload-pack", &upload_pack_as(owner)]));
            }
            args.extend(os(&["--quiet", "--prune", "origin"]));
        }
        let refs: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        checked(self.kind, &refs, &format!("failed to update {} from {}", self.dir.display(), self.url))
            .map(|_| ())
    }

    fn clone_fresh(&self) -> Result<(), BuilderError> {
        let parent = self.dir.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(parent)
            .map_err(|e| BuilderError::Io(format!("failed to create {}: {e}", parent.display())))?;
        let tmp = tempfile::Builder::new().prefix(".clone-").tempdir_in(parent).map_err(|e| {
            BuilderError::Io(format!("failed to create a temp dir in {}: {e}", parent.display()))
        })?;
        let target = tmp.path().join("repo");
        let mut args = match self.kind {
            RepoType::Git => os(&["clone", "--mirror", "--quiet"]),
            RepoType::Hg => os(&["clone", "--noupdate", "--quiet"]),
        };
        if let Some(owner) = self.foreign_git_owner() {
            // Not the local shortcut (hardlinks, read by root): a real transfer from the owner.
            args.extend(os(&["--no-local", "--upload-pack", &upload_pack_as(owner)]));
        }
        args.push("--".into());
        args.push(self.url.into());
        args.push(target.clone().into());
        let refs: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        checked(self.kind, &refs, &format!("failed to clone {}", self.url))?;
        fs::rename(&target, self.dir)
            .map_err(|e| BuilderError::Io(format!("failed to move a clone to {}: {e}", self.dir.display())))
    }

    /// The owner of a local git repository that is not vrd's user (hg reads such repositories
    /// safely itself: it ignores an untrusted repository's hgrc).
    fn foreign_git_owner(&self) -> Option<(u32, u32)> {
        (self.kind == RepoType::Git).then(|| foreign_owner(self.url)).flatten()
    }

    /// The full hash `candidate` names in the cache, if it names one.
    fn resolve_local(&self, candidate: &str) -> Option<String> {
        let dir = self.dir.display().to_string();
        let out = match self.kind {
            RepoType::Git => {
                let spec = format!("{candidate}^{{commit}}");
                run(
                    self.kind,
                    ["--git-dir", &dir, "rev-parse", "--verify", "--quiet", "--end-of-options", &spec],
                )
            }
            RepoType::Hg => {
                run(self.kind, ["-R", &dir, "log", "-l", "1", "--template", "{node}", "-r", candidate])
            }
        }
        .ok()?;
        let hash = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && is_full_hash(&hash)).then_some(hash)
    }

    /// The full hash of `rev` (a branch, a tag or a revision; `None`: the remote's default branch
    /// for git, `tip` for hg, as VR did). A name that is both a branch and a tag is the branch.
    pub fn resolve(&self, rev: Option<&str>) -> Result<String, BuilderError> {
        let candidates: Vec<String> = match (self.kind, rev) {
            (RepoType::Git, None) => vec!["HEAD".into()],
            (RepoType::Git, Some(r)) => vec![format!("refs/heads/{r}"), format!("refs/tags/{r}"), r.into()],
            (RepoType::Hg, None) => vec!["tip".into()],
            (RepoType::Hg, Some(r)) => vec![r.into()],
        };
        candidates.iter().find_map(|c| self.resolve_local(c)).ok_or_else(|| {
            BuilderError::Checkout(format!(
                "revision '{}' is not in {}: no branch, tag or revision has that name (the cached copy is {})",
                rev.unwrap_or(if self.kind == RepoType::Git { "HEAD" } else { "tip" }),
                self.url,
                self.dir.display()
            ))
        })
    }

    /// When `commit` was made, in unix seconds (slug mtimes are clamped to it, so rebuilding a
    /// commit gives the same bytes).
    pub fn commit_time(&self, commit: &str) -> Option<u64> {
        let dir = self.dir.display().to_string();
        let out = match self.kind {
            RepoType::Git => run(self.kind, ["--git-dir", &dir, "log", "-1", "--format=%ct", commit]),
            RepoType::Hg => run(self.kind, ["-R", &dir, "log", "-r", commit, "--template", "{date|hgdate}"]),
        }
        .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        out.status.success().then(|| text.split_whitespace().next()?.parse().ok()).flatten()
    }

    /// Writes the tree at `commit` into `dest` (which must not exist yet), without the metadata dir.
    pub fn export(&self, commit: &str, dest: &Path) -> Result<(), BuilderError> {
        let what = format!("failed to export {commit} of {} to {}", self.url, dest.display());
        match self.kind {
            RepoType::Git => {
                fs::create_dir_all(dest)
                    .map_err(|e| BuilderError::Io(format!("failed to create {}: {e}", dest.display())))?;
                let index = tempfile::NamedTempFile::new_in(dest.parent().unwrap_or(dest))
                    .map_err(|e| BuilderError::Io(format!("failed to create a temp index: {e}")))?;
                let git = |args: &[&OsStr]| -> Result<(), BuilderError> {
                    let mut cmd = program(RepoType::Git);
                    cmd.env("GIT_INDEX_FILE", index.path()).args(args);
                    let out = cmd.output().map_err(|e| BuilderError::Checkout(format!("{what}: {e}")))?;
                    if out.status.success() {
                        Ok(())
                    } else {
                        Err(BuilderError::Checkout(format!("{what}: {}", tail(&out))))
                    }
                };
                let dir = self.dir.as_os_str();
                git(&["--git-dir".as_ref(), dir, "read-tree".as_ref(), commit.as_ref()])?;
                let tree = dest.as_os_str();
                git(&[
                    "--git-dir".as_ref(),
                    dir,
                    "--work-tree".as_ref(),
                    tree,
                    "checkout-index".as_ref(),
                    "--all".as_ref(),
                    "--force".as_ref(),
                ])
            }
            RepoType::Hg => {
                let dir = self.dir.as_os_str();
                let args: Vec<&OsStr> = vec![
                    "-R".as_ref(),
                    dir,
                    "--config".as_ref(),
                    "ui.archivemeta=false".as_ref(),
                    "archive".as_ref(),
                    "--quiet".as_ref(),
                    "--type".as_ref(),
                    "files".as_ref(),
                    "-r".as_ref(),
                    commit.as_ref(),
                    "--".as_ref(),
                    dest.as_os_str(),
                ];
                checked(RepoType::Hg, &args, &what).map(|_| ())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_its_limit_is_killed_with_its_children_and_says_so() {
        let mut cmd = Command::new("sh");
        // The child sleeps on after its shell: killing only the shell would leave it behind.
        cmd.args(["-c", "sleep 30 & echo $! > /dev/stderr; wait"]);
        let started = std::time::Instant::now();
        let err = output_within(cmd, Duration::from_millis(300)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut, "{err}");
        assert!(err.to_string().contains("stopped after"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20), "it did not wait for the sleep");
        let mut quick = Command::new("echo");
        quick.arg("fine");
        let out = output_within(quick, Duration::from_secs(30)).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "fine\n");
    }
}
