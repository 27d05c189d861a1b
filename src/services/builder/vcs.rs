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
use std::path::Path;
use std::process::{Command, Output, Stdio};

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
            // The cache is vrd's own; repositories owned by other users may be cloned from.
            c.args(["-c", "safe.directory=*", "-c", "core.symlinks=true"]);
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
    program(kind).args(args).output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!(
                "{name} is not installed on this host: install it (apt-get install {})",
                debian_package(kind)
            )
        }
        _ => format!("failed to run {name}: {e}"),
    })
}

fn debian_package(kind: RepoType) -> &'static str {
    match kind {
        RepoType::Git => "git",
        RepoType::Hg => "mercurial",
    }
}

/// The last lines of a failed command's stderr, for the message.
fn tail(out: &Output) -> String {
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
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
        let args: Vec<&OsStr> = match self.kind {
            RepoType::Git => {
                vec![
                    "--git-dir".as_ref(),
                    dir,
                    "fetch".as_ref(),
                    "--quiet".as_ref(),
                    "--prune".as_ref(),
                    "origin".as_ref(),
                ]
            }
            RepoType::Hg => vec!["-R".as_ref(), dir, "pull".as_ref(), "--quiet".as_ref()],
        };
        checked(self.kind, &args, &format!("failed to update {} from {}", self.dir.display(), self.url))
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
            RepoType::Git => os(&["clone", "--mirror", "--quiet", "--"]),
            RepoType::Hg => os(&["clone", "--noupdate", "--quiet", "--"]),
        };
        args.push(self.url.into());
        args.push(target.clone().into());
        let refs: Vec<&OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        checked(self.kind, &refs, &format!("failed to clone {}", self.url))?;
        fs::rename(&target, self.dir)
            .map_err(|e| BuilderError::Io(format!("failed to move a clone to {}: {e}", self.dir.display())))
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
