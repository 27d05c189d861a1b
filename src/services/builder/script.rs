//! The builder script: the Heroku classic buildpack API, run as the build user inside the build
//! container (Velociraptor's `builder.sh`, extended). It is POSIX sh, run by bash where the stack
//! image has it (as Heroku runs buildpacks, so `export` files in bash syntax load) and by sh
//! otherwise. It sits in a read-only layer of its own; what it learns for vrd (the step it is on,
//! each buildpack's release YAML) goes to the meta dir.
//!
//! Container paths: the app at `/build/<app_name>`, buildpacks at `/buildpacks/<n>` (the build's
//! own writable copies, where buildpacks write their `export` files), the cache at `/cache`
//! (CACHE_DIR is `/cache/buildpack_cache`, as in VR), build env read-only at `/env` (ENV_DIR, one
//! file per variable).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::BuilderError;

/// Where the script is, inside the container.
pub const SCRIPT: &str = "/.vr-build/build.sh";
/// Where the meta dir is mounted, inside the container.
pub const META: &str = "/.vr-build/meta";
/// Where buildpack `n` is mounted: `/buildpacks/<n>`.
pub const BUILDPACKS: &str = "/buildpacks";
/// The app cache's mount point.
pub const CACHE: &str = "/cache";
/// ENV_DIR.
pub const ENV_DIR: &str = "/env";

/// The script. `VR_MODE=detect` runs the first buildpack whose `bin/detect` passes; `all` runs every
/// buildpack in order (an app's `.buildpacks`), each of which must detect the app. After each
/// buildpack its `export` file, if it wrote one, is sourced with `set -e`, so a line that fails
/// (bash syntax under sh, a failing command) fails the build at step `export N` instead of being
/// skipped. A `bin/detect` or `bin/compile` that is not executable stops with status 126 at its
/// step. Exit status: 0 built; otherwise the failing program's status, with the step in
/// `$VR_META/step`.
const TEXT: &str = r#"# vr's builder: the Heroku classic buildpack API. Written by vrd; see
# src/services/builder/script.rs. Runs as the build user in the build container.
app=$VR_APP_DIR
cache=/cache/buildpack_cache
meta=$VR_META
step() { printf '%s\n' "$1" > "$meta/step"; }
step setup
mkdir -p "$cache" || exit 1
cd "$app" || exit 1
chosen=
if [ "$VR_MODE" = all ]; then
  chosen=$VR_BUILDPACKS
else
  for bp in $VR_BUILDPACKS; do
    step "detect ${bp##*/}"
    if [ -x "$bp/bin/detect" ] && "$bp/bin/detect" "$app" > "$meta/detect-${bp##*/}"; then
      chosen=$bp
      break
    fi
  done
  if [ -z "$chosen" ]; then
    step detect
    exit 1
  fi
fi
for bp in $chosen; do
  n=${bp##*/}
  if [ "$VR_MODE" = all ]; then
    step "detect $n"
    [ -x "$bp/bin/detect" ] || exit 126
    "$bp/bin/detect" "$app" > "$meta/detect-$n" || exit 1
  fi
  name=$(head -n 1 "$meta/detect-$n")
  echo "-----> ${name:-Buildpack $n} app detected"
  step "compile $n"
  [ -x "$bp/bin/compile" ] || exit 126
  "$bp/bin/compile" "$app" "$cache" /env || exit $?
  step "release $n"
  if [ -e "$bp/bin/release" ]; then
    "$bp/bin/release" "$app" > "$meta/release-$n.yml" || exit $?
  fi
  printf '%s\n' "$n" >> "$meta/used"
  if [ -f "$bp/export" ]; then
    step "export $n"
    set -e
    . "$bp/export"
    set +e
  fi
done
step done
"#;

/// Writes the script's layer (`.vr-build/build.sh`, root-owned, read-only to the build) into `layer`.
pub fn write_layer(layer: &Path) -> Result<(), BuilderError> {
    let dir = layer.join(".vr-build");
    let io = |what: &str, p: &Path, e: std::io::Error| {
        BuilderError::Io(format!("failed to {what} {}: {e}", p.display()))
    };
    fs::create_dir_all(&dir).map_err(|e| io("create", &dir, e))?;
    for d in [layer, dir.as_path()] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(|e| io("chmod", d, e))?;
    }
    let script = dir.join("build.sh");
    fs::write(&script, TEXT).map_err(|e| io("write", &script, e))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).map_err(|e| io("chmod", &script, e))
}

/// Where the script stopped, read back from the meta dir's `step` file (`compile 1`, `detect`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// Before any buildpack ran (setting up the cache or the app dir).
    Setup,
    /// No buildpack detected the app.
    NoneDetected,
    /// In a step of buildpack `n`.
    Step {
        /// detect, compile, release or export.
        step: String,
        /// The buildpack's index.
        n: usize,
    },
    /// All done.
    Done,
    /// The file says something else (or nothing).
    Unknown,
}

/// Parses the `step` file.
pub fn stopped(text: &str) -> Stopped {
    let line = text.lines().next().unwrap_or("").trim();
    match line.split_once(' ') {
        None if line == "setup" => Stopped::Setup,
        None if line == "detect" => Stopped::NoneDetected,
        None if line == "done" => Stopped::Done,
        Some((step, n)) if ["detect", "compile", "release", "export"].contains(&step) => match n.parse() {
            Ok(n) => Stopped::Step { step: step.to_string(), n },
            Err(_) => Stopped::Unknown,
        },
        _ => Stopped::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_read_back() {
        assert_eq!(stopped("compile 2\n"), Stopped::Step { step: "compile".into(), n: 2 });
        assert_eq!(stopped("export 1\n"), Stopped::Step { step: "export".into(), n: 1 });
        assert_eq!(stopped("detect\n"), Stopped::NoneDetected);
        assert_eq!(stopped("done\n"), Stopped::Done);
        assert_eq!(stopped("setup\n"), Stopped::Setup);
        assert_eq!(stopped(""), Stopped::Unknown);
        assert_eq!(stopped("rm -rf 1"), Stopped::Unknown);
    }
}
