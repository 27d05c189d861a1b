//! Where the builder keeps things under the data dir, named exactly as Velociraptor's builder named
//! them under its `$RAPTOR_HOME`:
//!
//! ```text
//! builder/repo/<basename>-<md5(url)>        app repositories (git mirrors, hg clones without a working copy)
//! builder/buildpacks/<basename>-<md5(url)>  buildpack repositories, the same way
//! builder/cache/<app_name>-<md5(repo url)>/ the app's cache, mounted at /cache; CACHE_DIR is
//!                                           /cache/buildpack_cache inside it, as in VR, so a
//!                                           buildpack may `rm -rf` its cache dir
//! builder/locks/<kind>-<name>.lock          flock(2) files guarding each of the above
//! builder/work/<app_name>-XXXXXX/           one build's files, removed when it ends
//! ```
//!
//! URLs are hashed without their `#rev` fragment, so every revision of a repository shares a cache.

use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// The builder's directories.
#[derive(Debug, Clone)]
pub struct BuilderLayout {
    /// `<data dir>/builder`.
    pub root: PathBuf,
}

/// The md5 of `text` in hex.
pub fn md5_hex(text: &str) -> String {
    Md5::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// A URL without its `#fragment`.
pub fn without_fragment(url: &str) -> &str {
    url.split('#').next().unwrap_or(url)
}

/// The last path segment of a URL (without fragment and trailing slashes), made safe as a file
/// name part.
pub fn basename(url: &str) -> String {
    let path = without_fragment(url).trim_end_matches('/');
    let base = path.rsplit(['/', ':']).next().unwrap_or(path);
    let safe: String =
        base.chars().map(|c| if c.is_control() || c == '/' { '_' } else { c }).take(100).collect();
    if safe.is_empty() || safe == "." || safe == ".." {
        "repo".into()
    } else {
        safe
    }
}

/// `<basename>-<md5(url sans fragment)>`, VR's cache name of a repository.
pub fn repo_name(url: &str) -> String {
    format!("{}-{}", basename(url), md5_hex(without_fragment(url)))
}

/// `<app_name>-<md5(repo url)>`, VR's cache name of an app's build cache.
pub fn cache_name(app: &str, repo_url: &str) -> String {
    format!("{app}-{}", md5_hex(without_fragment(repo_url)))
}

impl BuilderLayout {
    /// The cached clone of an app repository.
    pub fn repo(&self, url: &str) -> PathBuf {
        self.root.join("repo").join(repo_name(url))
    }

    /// The cached clone of a buildpack.
    pub fn buildpack(&self, url: &str) -> PathBuf {
        self.root.join("buildpacks").join(repo_name(url))
    }

    /// An app's build cache.
    pub fn cache(&self, app: &str, repo_url: &str) -> PathBuf {
        self.root.join("cache").join(cache_name(app, repo_url))
    }

    /// The lock file guarding the cache entry `dir` (one of the above).
    pub fn lock_for(&self, dir: &Path) -> PathBuf {
        let kind = dir.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or("misc");
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("unnamed");
        self.root.join("locks").join(format!("{kind}-{name}.lock"))
    }

    /// Where builds keep their private files.
    pub fn work(&self) -> PathBuf {
        self.root.join("work")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_velociraptors() {
        let url = "https://github.com/heroku/heroku-buildpack-python.git";
        assert_eq!(repo_name(url), format!("heroku-buildpack-python.git-{}", md5_hex(url)));
        assert_eq!(repo_name(&format!("{url}#v1")), repo_name(url), "the fragment is not hashed");
        assert_eq!(cache_name("hello", url), format!("hello-{}", md5_hex(url)));
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn basenames_are_safe_file_names() {
        assert_eq!(basename("/srv/repos/app/"), "app");
        assert_eq!(basename("git@host:app.git"), "app.git");
        assert_eq!(basename("https://host/.."), "repo");
        assert_eq!(basename("https://host/"), "host");
    }

    #[test]
    fn locks_are_named_after_what_they_guard() {
        let layout = BuilderLayout { root: "/d/builder".into() };
        let cache = layout.cache("hello", "https://x/hello.git");
        assert_eq!(
            layout.lock_for(&cache),
            PathBuf::from(format!("/d/builder/locks/cache-hello-{}.lock", md5_hex("https://x/hello.git")))
        );
    }
}
