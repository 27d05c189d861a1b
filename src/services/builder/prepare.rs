//! Everything before the build container starts: the stack image, the build user, the app's lock,
//! the app at its exact revision, the buildpacks at theirs, and the build's private dirs, ending in
//! the [`JobSpec`] of the container. The same preparation serves `build` and `shell`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use super::locks::{self, FileLock};
use super::output::Output;
use super::vcs::Repo;
use super::{package, release, script, step, BuildWatch, Builder, BuilderError, Step};
use super::{BUILD_MEMORY, BUILD_PIDS, BUILD_USER, SMALL_FILE};
use crate::host::container::passwd::UserIds;
use crate::host::container::plan::{Bind, StdioPlan};
use crate::model::build_data::{BuildData, BuildpackRef, RepoType};
use crate::model::limits::Limits;
use crate::services::runner::job::{JobRoot, JobSpec};

/// Which buildpacks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The first one whose `bin/detect` passes (build.yaml's list).
    Detect,
    /// All of them in order (the app's `.buildpacks`).
    All,
}

/// A buildpack checked out for this build.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// Its URL, without fragment.
    pub url: String,
    /// The exact revision.
    pub commit: String,
}

impl Fetched {
    /// `url#commit`.
    pub fn pinned(&self) -> String {
        format!("{}#{}", self.url, self.commit)
    }
}

/// A prepared build: its private dirs (removed on drop), what was checked out, and the container.
pub struct Prepared {
    /// The build's private dir: app/, buildpacks/<n>/, env/, meta/, layer/. Always `Some` until
    /// drop, which removes it off the caller's path.
    work: Option<tempfile::TempDir>,
    /// The exact app revision.
    pub app_commit: String,
    /// When the app commit was made (unix seconds), if the repository says.
    pub commit_time: Option<u64>,
    /// The buildpacks, in order; buildpack `n` (from 1) is at `/buildpacks/<n>`.
    pub buildpacks: Vec<Fetched>,
    /// Which of them run.
    pub mode: Mode,
    /// The container, but for argv and stdio.
    pub job: JobSpec,
    /// The stack image has /bin/bash.
    has_bash: bool,
    /// The app's lock, held for the whole build.
    _app_lock: FileLock,
}

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> BuilderError {
    BuilderError::Io(format!("failed to {what} {}: {e}", path.display()))
}

fn make_dir(path: &Path, mode: u32, owner: Option<UserIds>) -> Result<(), BuilderError> {
    fs::create_dir_all(path).map_err(|e| io_err("create", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_err("chmod", path, e))?;
    if let Some(ids) = owner {
        std::os::unix::fs::chown(path, Some(ids.uid), Some(ids.gid)).map_err(|e| io_err("chown", path, e))?;
    }
    Ok(())
}

/// Applies `f` to `dir` and everything under it, never following symlinks.
fn walk(
    dir: &Path,
    f: &mut dyn FnMut(&Path, &fs::Metadata) -> std::io::Result<()>,
) -> Result<(), BuilderError> {
    let meta = fs::symlink_metadata(dir).map_err(|e| io_err("read", dir, e))?;
    f(dir, &meta).map_err(|e| io_err("update", dir, e))?;
    if meta.is_dir() {
        for entry in fs::read_dir(dir).map_err(|e| io_err("read", dir, e))? {
            let entry = entry.map_err(|e| io_err("read", dir, e))?;
            walk(&entry.path(), f)?;
        }
    }
    Ok(())
}

/// Gives a tree to the build user (lchown: symlinks themselves, never their targets).
fn chown_tree(dir: &Path, ids: UserIds) -> Result<(), BuilderError> {
    walk(dir, &mut |p, _| std::os::unix::fs::lchown(p, Some(ids.uid), Some(ids.gid)))
}

/// ENV_DIR: one file per variable (name = variable, contents = value, no newline added), as
/// Heroku writes an app's config vars; read-only to the build. The variables are build.yaml's
/// `build_env` (a vr extension; swarms fill it from the app's `build_env`).
pub fn write_env_dir(dir: &Path, vars: &[(String, String)]) -> Result<(), BuilderError> {
    make_dir(dir, 0o755, None)?;
    for (name, value) in vars {
        if !crate::model::yaml::is_var_name(name) {
            return Err(BuilderError::Invalid(format!(
                "config var '{name}' is not a valid variable name (letters, digits, '_'): rename it"
            )));
        }
        let path = dir.join(name);
        fs::write(&path, value).map_err(|e| io_err("write", &path, e))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .map_err(|e| io_err("chmod", &path, e))?;
    }
    Ok(())
}

/// git, unless the buildpack is a local Mercurial repository.
fn buildpack_kind(url: &str) -> RepoType {
    let local = url.strip_prefix("file://").unwrap_or(url);
    if Path::new(local).join(".hg").is_dir() {
        RepoType::Hg
    } else {
        RepoType::Git
    }
}

/// An app's `.buildpacks` (heroku-buildpack-multi): one URL per line, `#` comments. An entry with no
/// revision takes the one build.yaml pins for the same URL, so build_result.yaml rebuilds the same.
fn buildpacks_file(text: &str, pins: &[BuildpackRef]) -> Result<Vec<BuildpackRef>, BuilderError> {
    let mut refs = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut r = BuildpackRef::parse(line);
        if r.url.starts_with('-') || line.contains(char::is_whitespace) {
            return Err(BuilderError::Invalid(format!(
                "the app's .buildpacks line '{line}' is not a URL: write one buildpack URL (optionally #rev) per line"
            )));
        }
        if r.rev.is_none() {
            r.rev = pins.iter().find(|p| p.url == r.url).and_then(|p| p.rev.clone());
        }
        refs.push(r);
    }
    Ok(refs)
}

impl Builder {
    /// The buildpacks of this build and how they run: a pinned `buildpack_url` (the app or
    /// build.yaml names its buildpack) runs alone and the app's `.buildpacks` is ignored, as on
    /// Heroku and VR, where only heroku-buildpack-multi read that file; otherwise `.buildpacks`
    /// (all of them, in order) when the app has one, else build.yaml's list (the first that
    /// detects the app). The build output says which list was used.
    fn buildpack_list(
        &self,
        data: &BuildData,
        app_dir: &Path,
        out: &Output,
    ) -> Result<(Mode, Vec<BuildpackRef>), BuilderError> {
        let dot_buildpacks = package::read_small(app_dir, ".buildpacks", SMALL_FILE);
        if data.buildpack_url.is_some() {
            let ignored =
                if dot_buildpacks.is_some() { "; the app's .buildpacks file is ignored" } else { "" };
            out.step(&format!("Using the pinned buildpack (build.yaml's buildpack_url){ignored}"));
            return Ok((Mode::Detect, data.buildpacks()));
        }
        let (mode, refs) = match dot_buildpacks {
            Some(text) => {
                out.step("Using the app's .buildpacks file: every buildpack in it runs, in order");
                (Mode::All, buildpacks_file(&text, &data.pins())?)
            }
            None => {
                out.step(
                    "Using build.yaml's buildpack_urls: the first whose bin/detect passes builds the app",
                );
                (Mode::Detect, data.buildpacks())
            }
        };
        if refs.is_empty() {
            return Err(BuilderError::Invalid(match mode {
                Mode::All => "the app's .buildpacks file names no buildpack: add one URL per line".into(),
                Mode::Detect => "build.yaml has neither buildpack_url nor buildpack_urls, and the app has no .buildpacks file: name at least one buildpack".into(),
            }));
        }
        Ok((mode, refs))
    }

    /// Prepares a build of `data` up to the container; holds the app's lock until dropped.
    pub(super) fn prepare(
        &self,
        data: &BuildData,
        out: &Output,
        watch: &BuildWatch,
    ) -> Result<Prepared, BuilderError> {
        let image = data.image();
        out.step(&format!("Preparing the stack image {}", image.name));
        let contents = self.runner.prepare_image_artifact(&image)?;
        let user = self.runner.resolve_ids(&contents, BUILD_USER, "nogroup")?;
        let cache = self.layout.cache(&data.app_name, &data.app_repo_url);
        let what = format!("the cache of {} ({})", data.app_name, cache.display());
        let app_lock = locks::lock(&self.layout.lock_for(&cache), &what, out, &watch.cancelled)?;
        let work_root = self.layout.work();
        make_dir(&work_root, 0o700, None)?;
        let work = tempfile::Builder::new()
            .prefix(&format!("{}-", data.app_name))
            .tempdir_in(&work_root)
            .map_err(|e| io_err("create a build dir in", &work_root, e))?;
        let app_dir = work.path().join("app");
        let (app_commit, commit_time) = self.checkout_app(data, &app_dir, out, watch)?;
        let (mode, refs) = self.buildpack_list(data, &app_dir, out)?;
        let mut buildpacks = Vec::new();
        for (i, r) in refs.iter().enumerate() {
            let dest = work.path().join("buildpacks").join((i + 1).to_string());
            buildpacks.push(self.checkout_buildpack(r, i + 1, &dest, out, watch)?);
            // The build's own copy, writable by the build user: buildpacks write their `export`
            // file there (Heroku's API); nothing goes back to the cached repository.
            chown_tree(&dest, user)?;
        }
        chown_tree(&app_dir, user)?;
        make_dir(&cache, 0o700, Some(user))?;
        if fs::metadata(&cache).map(|m| m.uid() != user.uid).unwrap_or(true) {
            chown_tree(&cache, user)?;
        }
        let build_env: Vec<(String, String)> = data.build_env.clone().into_iter().collect();
        write_env_dir(&work.path().join("env"), &build_env)?;
        if !build_env.is_empty() {
            let names: Vec<&str> = build_env.iter().map(|(k, _)| k.as_str()).collect();
            out.step(&format!("Build env in ENV_DIR: {}", names.join(", ")));
        }
        make_dir(&work.path().join("meta"), 0o700, Some(user))?;
        script::write_layer(&work.path().join("layer"))?;
        let job = job_spec(data, &app_commit, &work, &cache, buildpacks.len(), mode);
        let has_bash = crate::sys::open_in_root(&contents, Path::new("/bin/bash")).is_ok();
        let work = Some(work);
        Ok(Prepared { work, app_commit, commit_time, buildpacks, mode, job, has_bash, _app_lock: app_lock })
    }

    fn checkout_app(
        &self,
        data: &BuildData,
        dest: &Path,
        out: &Output,
        watch: &BuildWatch,
    ) -> Result<(String, Option<u64>), BuilderError> {
        let dir = self.layout.repo(&data.app_repo_url);
        let what = format!("the cached repository {}", dir.display());
        let _lock = locks::lock(&self.layout.lock_for(&dir), &what, out, &watch.cancelled)?;
        let repo = Repo { kind: data.app_repo_type, url: &data.app_repo_url, dir: &dir };
        out.step(&format!(
            "Fetching {} ({}) at {}",
            data.app_repo_url,
            data.app_repo_type.as_str(),
            data.revision()
        ));
        repo.sync(Some(data.revision()))?;
        let commit = repo.resolve(Some(data.revision()))?;
        repo.export(&commit, dest)?;
        out.step(&format!("{} is at {commit}", data.app_name));
        Ok((commit.clone(), repo.commit_time(&commit)))
    }

    fn checkout_buildpack(
        &self,
        r: &BuildpackRef,
        n: usize,
        dest: &Path,
        out: &Output,
        watch: &BuildWatch,
    ) -> Result<Fetched, BuilderError> {
        let dir = self.layout.buildpack(&r.url);
        let what = format!("the cached buildpack {}", dir.display());
        let _lock = locks::lock(&self.layout.lock_for(&dir), &what, out, &watch.cancelled)?;
        let repo = Repo { kind: buildpack_kind(&r.url), url: &r.url, dir: &dir };
        let context = |e: BuilderError| match e {
            BuilderError::Checkout(m) => {
                BuilderError::Checkout(format!("buildpack {n} ({}): {m}", r.to_text()))
            }
            other => other,
        };
        repo.sync(r.rev.as_deref()).map_err(context)?;
        let commit = repo.resolve(r.rev.as_deref()).map_err(context)?;
        if let Some(parent) = dest.parent() {
            make_dir(parent, 0o755, None)?;
        }
        repo.export(&commit, dest).map_err(context)?;
        let fetched = Fetched { url: r.url.clone(), commit };
        out.step(&format!("Buildpack {n}: {}", fetched.pinned()));
        Ok(fetched)
    }
}

/// The build container, but for argv and stdio.
fn job_spec(
    data: &BuildData,
    commit: &str,
    work: &tempfile::TempDir,
    cache: &Path,
    count: usize,
    mode: Mode,
) -> JobSpec {
    let app_inside = format!("/build/{}", data.app_name);
    let bind =
        |outside: PathBuf, inside: &str, read_only: bool| Bind { outside, inside: inside.into(), read_only };
    let mut volumes = vec![
        bind(work.path().join("app"), &app_inside, false),
        bind(cache.to_path_buf(), script::CACHE, false),
        bind(work.path().join("env"), script::ENV_DIR, true),
        bind(work.path().join("meta"), script::META, false),
    ];
    let dirs: Vec<String> = (1..=count).map(|n| format!("{}/{n}", script::BUILDPACKS)).collect();
    for (n, inside) in dirs.iter().enumerate() {
        volumes.push(bind(work.path().join("buildpacks").join((n + 1).to_string()), inside, false));
    }
    let env = [
        ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string()),
        ("HOME", "/tmp".into()),
        ("LANG", "C.UTF-8".into()),
        ("STACK", data.stack()),
        ("SOURCE_VERSION", commit.into()),
        ("VR_APP_DIR", app_inside.clone()),
        ("VR_BUILDPACKS", dirs.join(" ")),
        ("VR_MODE", if mode == Mode::All { "all" } else { "detect" }.into()),
        ("VR_META", script::META.into()),
    ];
    JobSpec {
        name: format!("{}-build", data.app_name),
        image: Some(data.image()),
        root: JobRoot::Layers(vec![work.path().join("layer")]),
        volumes,
        user: BUILD_USER.into(),
        group: "nogroup".into(),
        argv: Vec::new(),
        env: env.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        cwd: app_inside,
        limits: Limits { memory: Some(BUILD_MEMORY), pids_max: Some(BUILD_PIDS), ..Limits::default() },
        stdio: StdioPlan::Pipes { log: None },
    }
}

impl Drop for Prepared {
    /// Removing a build's tree can take seconds on a busy disk; the build's answer should not wait
    /// for it, so a thread removes it (each build has its own dir, so nothing waits on it).
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            let _ = std::thread::Builder::new().name("vrd-build-cleanup".into()).spawn(move || drop(work));
        }
    }
}

impl Prepared {
    fn work_dir(&self) -> &Path {
        self.work.as_ref().map(|w| w.path()).expect("the work dir lives until drop")
    }

    /// The app dir on the host.
    pub fn app_dir(&self) -> PathBuf {
        self.work_dir().join("app")
    }

    /// A small file the script left in the meta dir.
    pub fn meta_file(&self, name: &str) -> Option<String> {
        package::read_small(&self.work_dir().join("meta"), name, SMALL_FILE)
    }

    /// `buildpack 2 (url#commit)`, for messages.
    pub fn label(&self, n: usize) -> String {
        match n.checked_sub(1).and_then(|i| self.buildpacks.get(i)) {
            Some(b) => format!("buildpack {n} ({})", b.pinned()),
            None => format!("buildpack {n}"),
        }
    }

    /// The buildpacks that ran, as the script recorded them.
    pub fn used(&self) -> Result<Vec<usize>, BuilderError> {
        let text = self.meta_file("used").unwrap_or_default();
        let used: Vec<usize> = text
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|n| (1..=self.buildpacks.len()).contains(n))
            .collect();
        if used.is_empty() {
            return Err(step(
                Step::Compile,
                "the builder script ended without running a buildpack; see compile.log",
            ));
        }
        Ok(used)
    }

    /// The merged `bin/release` output of the buildpacks that ran.
    pub fn release(&self, used: &[usize]) -> Result<Value, BuilderError> {
        let outputs: Vec<(String, String)> = used
            .iter()
            .map(|n| (self.label(*n), self.meta_file(&format!("release-{n}.yml")).unwrap_or_default()))
            .collect();
        release::merge(&outputs).map_err(|e| step(Step::Release, e))
    }

    /// Sets build_result.yaml's buildpack keys so that it rebuilds with the same buildpacks at the
    /// same revisions: the one that detected the app, or (with `.buildpacks`) all of them.
    pub fn record_buildpacks(&self, data: &BuildData, record: &mut BuildData, used: &[usize]) {
        let pinned = |n: usize| self.buildpacks[n - 1].pinned();
        match self.mode {
            Mode::Detect => {
                let chosen = used[0];
                record.buildpack_url = Some(pinned(chosen));
                record.buildpack_version = Some(self.buildpacks[chosen - 1].commit.clone());
                if data.buildpack_url.is_none() {
                    record.buildpack_urls = (1..=self.buildpacks.len()).map(pinned).collect();
                }
            }
            Mode::All => {
                record.buildpack_url = None;
                record.buildpack_version = None;
                record.buildpack_urls = (1..=self.buildpacks.len()).map(pinned).collect();
            }
        }
    }

    /// Why buildpack `n`'s `program` (`bin/detect`, `bin/compile`) cannot run, when it cannot:
    /// missing, or not executable (third-party buildpacks are often committed as mode 644).
    pub fn not_runnable(&self, n: usize, program: &str) -> Option<String> {
        let path = self.work_dir().join("buildpacks").join(n.to_string()).join(program);
        match fs::symlink_metadata(&path) {
            Err(_) => Some(format!("it has no {program}: a Heroku buildpack needs bin/detect and bin/compile")),
            Ok(m) if m.is_file() && m.mode() & 0o111 == 0 => Some(format!(
                "{program} is not executable (mode {:o}); make it executable in the buildpack's repository (git update-index --chmod=+x bin/*) and commit",
                m.mode() & 0o7777
            )),
            Ok(_) => None,
        }
    }

    /// bash when the stack image has it, else sh.
    pub fn shell_program(&self) -> String {
        if self.has_bash { "/bin/bash" } else { "/bin/sh" }.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_dir_has_one_file_per_var() {
        let dir = tempfile::tempdir().unwrap();
        let env = dir.path().join("env");
        write_env_dir(&env, &[("DATABASE_URL".into(), "postgres://x".into())]).unwrap();
        assert_eq!(fs::read_to_string(env.join("DATABASE_URL")).unwrap(), "postgres://x");
        let err = write_env_dir(&env, &[("../evil".into(), "x".into())]).unwrap_err();
        assert!(err.to_string().contains("'../evil'"), "{err}");
    }

    #[test]
    fn buildpacks_files_take_pins_from_build_yaml() {
        let pins = vec![BuildpackRef { url: "https://x/a.git".into(), rev: Some("r1".into()) }];
        let refs = buildpacks_file("# multi\nhttps://x/a.git\n\nhttps://x/b.git#v2\n", &pins).unwrap();
        assert_eq!(
            refs,
            [
                BuildpackRef { url: "https://x/a.git".into(), rev: Some("r1".into()) },
                BuildpackRef { url: "https://x/b.git".into(), rev: Some("v2".into()) },
            ]
        );
        assert!(buildpacks_file("--upload-pack=x\n", &[]).is_err());
    }
}
