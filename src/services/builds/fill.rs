//! Filling a coordinator's store from the other coordinators of its model (issue 15): each keeps
//! its own copy of the artifacts, and one it lacks (built while another led) is fetched by sha256
//! the first time it is needed, verified, and kept like one built here.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use async_trait::async_trait;

/// Where a store gets an artifact it lacks.
#[async_trait]
pub trait StoreFill: Send + Sync {
    /// Writes the artifact with `sha256` to `dest` (a store path that does not exist yet),
    /// verified against its sha256; an interrupted fetch leaves nothing there. Returns where it
    /// came from.
    async fn fill(&self, sha256: &str, dest: &Path) -> Result<String, String>;
}

/// One fetch per artifact at a time in this vrd, whoever fetches (a joined host from its
/// coordinator, a coordinator from the others): a second asker waits for the first and finds
/// the file.
static FETCHING: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// Makes `path`, the store file of `sha256`, with `fetch` (given `path`, which it must write
/// whole or not at all) unless it exists. Whether it fetched.
pub async fn fetch_once<F, Fut>(sha256: &str, path: &Path, fetch: F) -> Result<bool, String>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let lock = {
        let mut fetching = FETCHING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(fetching.entry(sha256.to_string()).or_default())
    };
    let _one = lock.lock().await;
    if path.exists() {
        return Ok(false);
    }
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
    }
    fetch().await.map(|()| true)
}

/// The store's source, once the daemon set one (only coordinators sharing a model have one).
#[derive(Clone, Default)]
pub struct Fill {
    source: Arc<OnceLock<Arc<dyn StoreFill>>>,
}

impl std::fmt::Debug for Fill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fill").field("set", &self.source.get().is_some()).finish()
    }
}

impl Fill {
    /// Sets the source (once; a second call is ignored).
    pub fn set(&self, source: Arc<dyn StoreFill>) {
        let _ = self.source.set(source);
    }

    /// Whether a source was set.
    pub fn is_set(&self) -> bool {
        self.source.get().is_some()
    }

    /// Makes sure `path` (the store's file for `sha256`) exists: fetched from the source when
    /// missing. An error says why it is not there.
    pub async fn ensure(&self, sha256: &str, path: &Path) -> Result<PathBuf, String> {
        if path.exists() {
            return Ok(path.to_path_buf());
        }
        let Some(source) = self.source.get() else {
            return Err(format!("{} does not exist", path.display()));
        };
        let started = std::time::Instant::now();
        let mut from = None;
        let fetched = fetch_once(sha256, path, || async {
            from = Some(source.fill(sha256, path).await?);
            Ok(())
        })
        .await?;
        if fetched {
            let from = from.unwrap_or_default();
            tracing::info!(
                sha256,
                from,
                ms = started.elapsed().as_millis() as u64,
                "filled the store with an artifact of another coordinator"
            );
        }
        Ok(path.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counting {
        calls: std::sync::atomic::AtomicUsize,
    }

    #[async_trait]
    impl StoreFill for Counting {
        async fn fill(&self, sha256: &str, dest: &Path) -> Result<String, String> {
            self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if sha256 == "gone" {
                return Err("no coordinator has it".into());
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            std::fs::write(dest, sha256).map_err(|e| e.to_string())?;
            Ok("c2".into())
        }
    }

    #[tokio::test]
    async fn a_missing_artifact_is_fetched_once_however_many_ask() {
        let dir = tempfile::tempdir().unwrap();
        let fill = Fill::default();
        let path = dir.path().join("store").join("abc");
        let err = fill.ensure("abc", &path).await.unwrap_err();
        assert!(err.contains("does not exist"), "without a source nothing is fetched: {err}");
        let source = Arc::new(Counting { calls: Default::default() });
        fill.set(source.clone());
        let (a, b) = tokio::join!(fill.ensure("abc", &path), fill.ensure("abc", &path));
        assert_eq!((a.unwrap(), b.unwrap()), (path.clone(), path.clone()));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abc");
        assert_eq!(source.calls.load(std::sync::atomic::Ordering::SeqCst), 1, "one fetch for both");
        let err = fill.ensure("gone", &dir.path().join("store").join("gone")).await.unwrap_err();
        assert_eq!(err, "no coordinator has it");
    }
}
