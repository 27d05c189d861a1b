//! `setup`: fetch and unpack the image and the build into the shared caches, resolve the run-as
//! user in the image, and prepare the proc dir (VR ImageRunner order, §3.3).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::caches::{self, Layers};
use super::layout::{CacheDir, ProcDir};
use super::scripts::{env_sh, proc_sh};
use super::{Runner, RunnerError};
use crate::host::container::passwd::{self, UserIds};
use crate::host::image::{fetch, md5_file, unpack_with_helper, UnpackOptions};
use crate::model::proc_data::{Artifact, ProcSpec};
use crate::model::procfile;
use crate::sys;

/// Images are trusted (operators make them) but still bounded: 64 GiB and 4 million entries.
const IMAGE_LIMITS: (u64, u64) = (64 << 30, 4_000_000);
/// Builds come from app repos: 16 GiB and 2 million entries.
const BUILD_LIMITS: (u64, u64) = (16 << 30, 2_000_000);

fn io_err(what: &str, path: &Path, e: impl std::fmt::Display) -> RunnerError {
    RunnerError::Io(format!("failed to {what} {}: {e}", path.display()))
}

/// Unpacks `archive` into `dest` unless it is already there: into a temp dir beside it, renamed
/// into place when complete, so a crash never leaves a half-unpacked cache entry in use.
fn unpack_once(
    runner: &Runner,
    archive: &Path,
    dest: &Path,
    opts: &UnpackOptions,
    inner: &str,
) -> Result<(), RunnerError> {
    if dest.exists() {
        return Ok(());
    }
    let parent = dest.parent().ok_or_else(|| io_err("find the parent of", dest, "none"))?;
    fs::create_dir_all(parent).map_err(|e| io_err("create", parent, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(parent)
        .map_err(|e| io_err("create a temp dir in", parent, e))?;
    let target = tmp.path().join(inner);
    fs::create_dir_all(&target).map_err(|e| io_err("create", &target, e))?;
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| io_err("chmod", tmp.path(), e))?;
    unpack_with_helper(&runner.exe, archive, &target, opts)
        .map_err(|e| RunnerError::Artifact(e.to_string()))?;
    let done = tmp.keep();
    fs::rename(&done, dest).map_err(|e| io_err("move into place", dest, e))
}

/// A fetched archive and the md5 of its content: the key of the trees unpacked from it.
struct Fetched {
    archive: PathBuf,
    md5: String,
}

/// Fetches an artifact (VR's md5 rules); its content md5 is the one it was checked against, or,
/// when the artifact names none, computed from the file.
fn fetch_artifact(artifact: &Artifact, dir: &Path) -> Result<Fetched, RunnerError> {
    let artifact_err = |e: crate::host::image::ImageError| RunnerError::Artifact(e.to_string());
    fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
    let archive = fetch(&artifact.url, dir, artifact.md5.as_deref()).map_err(artifact_err)?;
    let md5 = match &artifact.md5 {
        Some(md5) => md5.trim().to_ascii_lowercase(),
        None => md5_file(&archive).map_err(artifact_err)?,
    };
    Ok(Fetched { archive, md5 })
}

/// Fetches and unpacks the OS image; returns its contents dir.
pub fn prepare_image(runner: &Runner, spec: &ProcSpec) -> Result<PathBuf, RunnerError> {
    prepare_artifact_image(runner, &spec.image)
}

/// Fetches and unpacks an OS image once; returns its contents dir.
pub fn prepare_artifact_image(runner: &Runner, image: &Artifact) -> Result<PathBuf, RunnerError> {
    let _lock = runner.locks.artifact(&format!("image:{}", image.name));
    let fetched = fetch_artifact(image, &runner.layout.make_cache_dir(CacheDir::Image, &image.name)?)?;
    let contents = runner.layout.image_contents(&image.name, &fetched.md5);
    let opts = UnpackOptions {
        untrusted: false,
        owner: None,
        max_bytes: IMAGE_LIMITS.0,
        max_entries: IMAGE_LIMITS.1,
    };
    unpack_once(runner, &fetched.archive, &contents, &opts, "")?;
    caches::mark_used(&contents);
    Ok(contents)
}

/// A file of an image (or any root), read as if the root were `/`; empty when missing.
pub fn read_in_image(contents: &Path, file: &str) -> String {
    let mut text = String::new();
    if let Ok(mut f) = sys::open_in_root(contents, Path::new(file)) {
        let _ = std::io::Read::read_to_string(&mut f, &mut text);
    }
    text
}

/// The run-as user and group, from the image's own /etc/passwd and /etc/group.
pub fn resolve_user(contents: &Path, spec: &ProcSpec) -> Result<UserIds, RunnerError> {
    let passwd_text = read_in_image(contents, "/etc/passwd");
    let group_text = read_in_image(contents, "/etc/group");
    let ids =
        passwd::resolve(&passwd_text, &group_text, &spec.user, &spec.group).map_err(RunnerError::User)?;
    no_hidden_root(&spec.user, ids.uid)?;
    Ok(ids)
}

/// uid 0 only when asked for by name (`root`, or the number 0): an image whose /etc/passwd gives
/// another name uid 0 is refused, for everyone. The operations layer lets only admins ask for
/// root, and it looks at the name; an image built by anyone cannot turn "app" into root behind
/// that check.
fn no_hidden_root(user: &str, uid: u32) -> Result<(), RunnerError> {
    let asked_for_root = user == "root" || (!user.is_empty() && user.bytes().all(|b| b == b'0'));
    if uid == 0 && !asked_for_root {
        return Err(RunnerError::Invalid(format!(
            "user '{user}' is uid 0 in the image's /etc/passwd: a proc runs as root only when its \
             proc.yaml or swarm says user root (and an admin asks); give '{user}' its own uid in the image"
        )));
    }
    Ok(())
}

/// Fetches the build and unpacks it once for this user; returns the layer dir (holding `app/`).
pub fn prepare_build(
    runner: &Runner,
    spec: &ProcSpec,
    user: UserIds,
) -> Result<Option<PathBuf>, RunnerError> {
    let Some(build) = &spec.build else { return Ok(None) };
    let _lock = runner.locks.artifact(&format!("build:{}", build.name));
    let fetched = fetch_artifact(build, &runner.layout.make_cache_dir(CacheDir::Build, &build.name)?)?;
    let layer = runner.layout.build_layer(&build.name, &fetched.md5, user);
    let opts = UnpackOptions {
        untrusted: true,
        owner: Some((user.uid, user.gid)),
        max_bytes: BUILD_LIMITS.0,
        max_entries: BUILD_LIMITS.1,
    };
    unpack_once(runner, &fetched.archive, &layer, &opts, "app")?;
    caches::mark_used(&layer);
    let app = layer.join("app");
    std::os::unix::fs::chown(&app, Some(user.uid), Some(user.gid)).map_err(|e| io_err("chown", &app, e))?;
    Ok(Some(layer))
}

/// The command: proc.yaml `cmd`, else the build's Procfile entry for the proc type.
pub fn command(spec: &ProcSpec, layer: Option<&Path>) -> Result<String, RunnerError> {
    if let Some(cmd) = &spec.cmd {
        return Ok(cmd.clone());
    }
    let Some(layer) = layer else {
        return Err(RunnerError::Invalid(format!(
            "proc.yaml has neither cmd nor build_url, so there is no Procfile to find '{}' in: set one of them",
            spec.name.proc
        )));
    };
    let mut text = String::new();
    match sys::open_in_root(layer, Path::new("/app/Procfile")) {
        Ok(mut f) => std::io::Read::read_to_string(&mut f, &mut text)
            .map_err(|e| io_err("read", &layer.join("app/Procfile"), e))?,
        Err(_) => {
            return Err(RunnerError::Invalid(
                "the build has no Procfile: add one with a `web: <command>` line, or set cmd in proc.yaml"
                    .into(),
            ))
        }
    };
    procfile::command(&text, &spec.name.proc).map_err(|e| RunnerError::Invalid(e.to_string()))
}

fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), RunnerError> {
    fs::write(path, text).map_err(|e| io_err("write", path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_err("chmod", path, e))
}

/// Writes the meta layer (the top lower of the root): /proc.sh, /env.sh, /settings.yaml.
pub fn write_meta(meta: &Path, spec: &ProcSpec, command: &str) -> Result<(), RunnerError> {
    fs::create_dir_all(meta).map_err(|e| io_err("create", meta, e))?;
    fs::set_permissions(meta, fs::Permissions::from_mode(0o755)).map_err(|e| io_err("chmod", meta, e))?;
    write_file(&meta.join("proc.sh"), &proc_sh(command, spec.name.port), 0o755)?;
    write_file(&meta.join("env.sh"), &env_sh(&spec.env), 0o644)?;
    let settings = match &spec.settings {
        serde_yaml_ng::Value::Null => "{}\n".to_string(),
        other => serde_yaml_ng::to_string(other)
            .map_err(|e| RunnerError::Invalid(format!("settings can't be written as YAML: {e}")))?,
    };
    write_file(&meta.join("settings.yaml"), &settings, 0o644)
}

/// Makes a fresh container dir (upper, work, rootfs) under `dir`.
pub fn make_container_dirs(dir: &Path) -> Result<(), RunnerError> {
    for sub in ["upper", "work", "rootfs"] {
        let p = dir.join(sub);
        fs::create_dir_all(&p).map_err(|e| io_err("create", &p, e))?;
    }
    Ok(())
}

/// The whole of `setup`.
pub fn setup(runner: &Runner, spec: &ProcSpec, yaml: &str) -> Result<ProcDir, RunnerError> {
    let contents = prepare_image(runner, spec)?;
    let user = resolve_user(&contents, spec)?;
    let layer = prepare_build(runner, spec, user)?;
    let cmd = command(spec, layer.as_deref())?;
    let dir = ProcDir(runner.layout.proc_dir(&spec.name));
    fs::create_dir_all(dir.path()).map_err(|e| io_err("create", dir.path(), e))?;
    // The next run mounts the root again, on the layers written below.
    dir.release_root()?;
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700))
        .map_err(|e| io_err("chmod", dir.path(), e))?;
    write_file(&dir.join("proc.yaml"), yaml, 0o600)?;
    Layers { image: contents, build: layer }.write(&dir)?;
    write_meta(&dir.join("meta"), spec, &cmd)?;
    make_container_dirs(dir.path())?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_run_only_when_named_and_never_behind_another_name() {
        no_hidden_root("root", 0).unwrap();
        no_hidden_root("0", 0).unwrap();
        no_hidden_root("app", 1000).unwrap();
        let hidden = no_hidden_root("app", 0).unwrap_err().to_string();
        assert!(hidden.contains("user 'app' is uid 0") && hidden.contains("own uid"), "{hidden}");
    }
}
