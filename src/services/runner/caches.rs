//! The runner's shared caches of unpacked images and builds: which trees a proc uses
//! (`layers.json`, written by setup, read by every run) and collecting the trees no proc uses.
//!
//! Trees are keyed by content (see [`super::layout`]), so a new archive under an old name gets a
//! tree of its own and the old one stays until nothing names it. The scooper then removes a tree
//! when no proc dir's `layers.json` names it and nothing has used it for [`UNUSED_FOR`] (each
//! setup, build or image build that uses a tree touches it, so one being set up or built on is
//! never taken).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::layout::{Layout, ProcDir};
use super::RunnerError;
use crate::model::proc_data::ProcSpec;

/// A tree nobody names is kept this long after its last use.
pub const UNUSED_FOR: Duration = Duration::from_secs(24 * 3600);

/// The file in a proc dir that names its trees.
const FILE: &str = "layers.json";

/// The unpacked trees one proc runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layers {
    /// The image's root.
    pub image: PathBuf,
    /// The build's layer (holding `app/`), if the proc has a build.
    pub build: Option<PathBuf>,
}

impl Layers {
    /// Records the trees in the proc dir.
    pub fn write(&self, dir: &ProcDir) -> Result<(), RunnerError> {
        let path = dir.join(FILE);
        let text = serde_json::to_string(self).map_err(|e| RunnerError::Io(e.to_string()))?;
        fs::write(&path, text)
            .map_err(|e| RunnerError::Io(format!("failed to write {}: {e}", path.display())))
    }

    /// The trees the proc's setup chose; for a proc set up by a vrd before content keys, the
    /// name-keyed trees it used.
    pub fn of(layout: &Layout, dir: &ProcDir, spec: &ProcSpec) -> Result<Layers, RunnerError> {
        let not_set_up = || RunnerError::NotSetUp(spec.name.to_string());
        let layers = match fs::read(dir.join(FILE)) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|_| not_set_up())?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => legacy(layout, spec)?,
            Err(e) => {
                return Err(RunnerError::Io(format!("failed to read {}: {e}", dir.join(FILE).display())))
            }
        };
        if !layers.image.exists() || layers.build.as_ref().is_some_and(|b| !b.exists()) {
            return Err(not_set_up());
        }
        Ok(layers)
    }
}

fn legacy(layout: &Layout, spec: &ProcSpec) -> Result<Layers, RunnerError> {
    let image = layout.legacy_image_contents(&spec.image.name);
    if !image.exists() {
        return Err(RunnerError::NotSetUp(spec.name.to_string()));
    }
    let build = match &spec.build {
        Some(b) => Some(layout.legacy_build_layer(&b.name, super::setup::resolve_user(&image, spec)?)),
        None => None,
    };
    Ok(Layers { image, build })
}

/// Marks a tree used now (its content-key dir's mtime), so the collector leaves it alone.
pub fn mark_used(tree: &Path) {
    if let Some(key_dir) = key_dir_of(tree) {
        let _ = fs::File::open(&key_dir).and_then(|f| f.set_modified(SystemTime::now()));
    }
}

fn is_md5(name: &str) -> bool {
    name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The content-key dir (`.../<md5>`) a tree lives in, if it is content-keyed.
fn key_dir_of(tree: &Path) -> Option<PathBuf> {
    tree.ancestors()
        .find(|a| a.file_name().and_then(|n| n.to_str()).is_some_and(is_md5))
        .map(Path::to_path_buf)
}

/// A cached tree the collector may remove: a content-key dir, or a pre-content-key tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The dir to remove.
    pub path: PathBuf,
    /// How long since it was last used.
    pub unused: Duration,
}

/// The collector's decision: the candidates no proc names (a proc names a dir when one of its
/// trees is in it) that nothing used for [`UNUSED_FOR`].
pub fn doomed(candidates: &[Candidate], named: &[PathBuf]) -> Vec<PathBuf> {
    candidates
        .iter()
        .filter(|c| c.unused >= UNUSED_FOR && !named.iter().any(|n| n.starts_with(&c.path)))
        .map(|c| c.path.clone())
        .collect()
}

fn subdirs(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect()
}

fn unused_for(path: &Path) -> Duration {
    let modified = fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::now());
    SystemTime::now().duration_since(modified).unwrap_or_default()
}

/// Every cached tree: content-key dirs always; the pre-content-key trees only with `legacy`
/// (when every proc dir says what it uses, so none can still need one unnamed).
fn candidates(layout: &Layout, legacy: bool) -> Vec<Candidate> {
    let mut found = Vec::new();
    for (_, image) in subdirs(&layout.data_dir.join("images")) {
        for (name, path) in subdirs(&image) {
            if is_md5(&name) || (legacy && name == "contents") {
                found.push(path);
            }
        }
    }
    for (archive, layers) in subdirs(&layout.builds_dir()) {
        if archive.ends_with(".layers") {
            for (name, path) in subdirs(&layers) {
                if is_md5(&name) || (legacy && name.contains('-')) {
                    found.push(path);
                }
            }
        }
    }
    found.into_iter().map(|path| Candidate { unused: unused_for(&path), path }).collect()
}

/// What the proc dirs name, and whether every one of them says.
fn named(layout: &Layout) -> (Vec<PathBuf>, bool) {
    let mut named = Vec::new();
    let mut all_say = true;
    for (_, dir) in subdirs(&layout.data_dir.join("procs")) {
        match fs::read(dir.join(FILE)).ok().and_then(|b| serde_json::from_slice::<Layers>(&b).ok()) {
            Some(l) => named.extend(std::iter::once(l.image).chain(l.build)),
            None if dir.join("proc.yaml").exists() => all_say = false,
            None => {}
        }
    }
    (named, all_say)
}

/// Removes the cached trees no proc uses (or, with `dry_run`, says which it would); one line
/// each. Runs on a blocking thread (the scooper's).
pub fn collect(layout: &Layout, dry_run: bool) -> Result<Vec<String>, RunnerError> {
    let (named, all_say) = named(layout);
    let mut done = Vec::new();
    for path in doomed(&candidates(layout, all_say), &named) {
        if !dry_run {
            fs::remove_dir_all(&path)
                .map_err(|e| RunnerError::Io(format!("failed to remove {}: {e}", path.display())))?;
        }
        done.push(format!("unpacked tree {}: no proc uses it", path.display()));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(path: &str, hours: u64) -> Candidate {
        Candidate { path: path.into(), unused: Duration::from_secs(hours * 3600) }
    }

    #[test]
    fn only_old_trees_no_proc_names_go() {
        let md5 = "0123456789abcdef0123456789abcdef";
        let other = "fedcba9876543210fedcba9876543210";
        let candidates = [
            candidate(&format!("/d/builds/build.tar.gz.layers/{md5}"), 48),
            candidate(&format!("/d/builds/build.tar.gz.layers/{other}"), 48),
            candidate(&format!("/d/images/busybox/{other}"), 1),
        ];
        let named = [PathBuf::from(format!("/d/builds/build.tar.gz.layers/{md5}/65534-65534"))];
        assert_eq!(
            doomed(&candidates, &named),
            [PathBuf::from(format!("/d/builds/build.tar.gz.layers/{other}"))]
        );
    }

    #[test]
    fn the_key_dir_of_a_tree_is_its_md5_ancestor() {
        let md5 = "0123456789abcdef0123456789abcdef";
        let tree = PathBuf::from(format!("/d/images/x/{md5}/contents"));
        assert_eq!(key_dir_of(&tree), Some(PathBuf::from(format!("/d/images/x/{md5}"))));
        assert_eq!(key_dir_of(Path::new("/d/images/x/contents")), None);
    }

    #[test]
    fn setup_records_and_runs_read_the_chosen_trees() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout { data_dir: tmp.path().to_path_buf() };
        let md5 = "0123456789abcdef0123456789abcdef";
        let image = layout.image_contents("busybox", md5);
        fs::create_dir_all(&image).unwrap();
        let dir = ProcDir(tmp.path().join("procs/p"));
        fs::create_dir_all(dir.path()).unwrap();
        fs::write(dir.join("proc.yaml"), "x").unwrap();
        let layers = Layers { image: image.clone(), build: None };
        layers.write(&dir).unwrap();
        let (named, all_say) = named(&layout);
        assert_eq!((named, all_say), (vec![image.clone()], true));
        let found = candidates(&layout, true);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, image.parent().unwrap());
        assert!(collect(&layout, false).unwrap().is_empty(), "a named tree stays");
    }
}
