//! The work dir of one build or shell, under the data dir: a fresh writable copy of the base in
//! `root/` with the script copied in, removed (with everything in it) when dropped.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::ImagerError;
use crate::host::image::{fetch, unpack_with_helper, UnpackOptions};
use crate::model::image_data::ImageData;
use crate::services::runner::layout::CacheDir;
use crate::services::runner::Runner;
use crate::sys;

/// Bases are operator images: bounded as the runner bounds images (64 GiB, 4 million entries).
const BASE_LIMITS: (u64, u64) = (64 << 30, 4_000_000);

/// Host files the launcher binds into every container; it creates an empty mount point when the
/// image has none, which should not end up in the new image.
const MOUNT_POINT_FILES: &[&str] = &["etc/resolv.conf", "etc/hosts"];

/// One build's work dir.
pub(super) struct Workspace {
    dir: tempfile::TempDir,
    root: PathBuf,
    /// The script's file name; it is `/<script>` in the image.
    pub script: String,
    /// Which of [`MOUNT_POINT_FILES`] the base lacked.
    missing: Vec<&'static str>,
}

impl Workspace {
    /// Fetches the base into the shared cache, unpacks a fresh copy, and copies the script in.
    pub fn prepare(runner: &Runner, image: &ImageData) -> Result<Workspace, ImagerError> {
        let parent = runner.layout.data_dir.join("imager");
        fs::create_dir_all(&parent).map_err(|e| ImagerError::io("create", &parent, e))?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}-", image.new_image_name))
            .tempdir_in(&parent)
            .map_err(|e| ImagerError::io("create a work dir in", &parent, e))?;
        let script = image.script_name().map_err(|e| ImagerError::Invalid(e.to_string()))?;
        let root = dir.path().join("root");
        let mut ws = Workspace { dir, root, script, missing: Vec::new() };
        fs::create_dir(ws.root()).map_err(|e| ImagerError::io("create", ws.root(), e))?;
        // A `docker export` tarball has no `./` entry to give the root its mode.
        fs::set_permissions(ws.root(), fs::Permissions::from_mode(0o755))
            .map_err(|e| ImagerError::io("chmod", ws.root(), e))?;
        ws.unpack_base(runner, image)?;
        ws.missing = MOUNT_POINT_FILES.iter().copied().filter(|f| !ws.exists(f)).collect();
        ws.install_script(image)?;
        Ok(ws)
    }

    /// The image's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The script as the container runs it.
    pub fn script_path(&self) -> String {
        format!("/{}", self.script)
    }

    /// The shell `shell` starts: bash when the image has it, as VR did, else sh.
    pub fn shell(&self) -> String {
        if self.exists("bin/bash") { "/bin/bash" } else { "/bin/sh" }.to_string()
    }

    fn exists(&self, rel: &str) -> bool {
        sys::open_in_root(self.root(), Path::new(rel)).is_ok()
    }

    fn unpack_base(&self, runner: &Runner, image: &ImageData) -> Result<(), ImagerError> {
        let base = |cause| ImagerError::Base { name: image.base_image_name.clone(), cause };
        // Held through the unpack, so a concurrent re-fetch cannot swap the archive meanwhile.
        let _lock = runner.locks.artifact(&format!("image:{}", image.base_image_name));
        let cache = runner.layout.make_cache_dir(CacheDir::Image, &image.base_image_name)?;
        let archive = fetch(&image.base_image_url, &cache, image.base_image_md5.as_deref()).map_err(base)?;
        let opts = UnpackOptions {
            untrusted: false,
            owner: None,
            max_bytes: BASE_LIMITS.0,
            max_entries: BASE_LIMITS.1,
        };
        unpack_with_helper(&runner.exe, &archive, self.root(), &opts).map_err(base)?;
        Ok(())
    }

    /// Copies the script to `/<script>`, mode 0755, refusing to replace anything of the base.
    fn install_script(&self, image: &ImageData) -> Result<(), ImagerError> {
        let fetched = self.dir.path().join("script");
        let source = fetch(&image.script_url, &fetched, None).map_err(ImagerError::Script)?;
        let target = self.root().join(&self.script);
        if fs::symlink_metadata(&target).is_ok() {
            return Err(ImagerError::ScriptInTheWay(self.script.clone()));
        }
        let mut from = File::open(&source).map_err(|e| ImagerError::io("open", &source, e))?;
        let mut to = OpenOptions::new()
            .write(true)
            // O_CREAT|O_EXCL: fails on anything already there, a symlink included.
            .create_new(true)
            .open(&target)
            .map_err(|e| ImagerError::io("create", &target, e))?;
        io::copy(&mut from, &mut to).map_err(|e| ImagerError::io("write", &target, e))?;
        to.set_permissions(fs::Permissions::from_mode(0o755))
            .map_err(|e| ImagerError::io("chmod", &target, e))
    }

    /// After a successful run: removes the script (VR's inverted condition kept it) and the empty
    /// mount points the launcher made for host files the base did not have.
    pub fn finish(&self) -> Result<(), ImagerError> {
        remove_if_present(&self.root().join(&self.script))?;
        for rel in &self.missing {
            let path = self.root().join(rel);
            if fs::symlink_metadata(&path).is_ok_and(|m| m.is_file() && m.len() == 0) {
                remove_if_present(&path)?;
            }
        }
        Ok(())
    }
}

fn remove_if_present(path: &Path) -> Result<(), ImagerError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ImagerError::io("remove", path, e)),
        _ => Ok(()),
    }
}
