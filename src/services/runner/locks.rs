//! In-daemon locks: a proc name is busy while a setup, run or teardown of it is in progress (a second
//! one fails at once, as VR's flock did), and an artifact is unpacked by one caller while the others
//! wait for it.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// The runner's locks.
#[derive(Debug, Default)]
pub struct Locks {
    busy: Mutex<HashSet<String>>,
    artifacts: Mutex<HashSet<String>>,
    artifact_freed: Condvar,
}

/// Held while a proc is busy; frees the name when dropped. It owns its share of the locks, so a
/// foreground run can hand it to the task that waits for the container's end.
pub struct BusyGuard {
    locks: Arc<Locks>,
    name: String,
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.locks.busy.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.name);
    }
}

/// Held while one artifact is fetched or unpacked.
pub struct ArtifactGuard<'a> {
    locks: &'a Locks,
    key: String,
}

impl Drop for ArtifactGuard<'_> {
    fn drop(&mut self) {
        self.locks.artifacts.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
        self.locks.artifact_freed.notify_all();
    }
}

impl Locks {
    /// Marks `name` busy, or returns `None` if it already is.
    pub fn try_busy(self: &Arc<Self>, name: &str) -> Option<BusyGuard> {
        let mut busy = self.busy.lock().unwrap_or_else(PoisonError::into_inner);
        busy.insert(name.to_string()).then(|| BusyGuard { locks: Arc::clone(self), name: name.to_string() })
    }

    /// The names busy now.
    pub fn busy_names(&self) -> Vec<String> {
        self.busy.lock().unwrap_or_else(PoisonError::into_inner).iter().cloned().collect()
    }

    /// Waits for and takes the lock of one artifact.
    pub fn artifact(&self, key: &str) -> ArtifactGuard<'_> {
        let mut held = self.artifacts.lock().unwrap_or_else(PoisonError::into_inner);
        while held.contains(key) {
            held = self.artifact_freed.wait(held).unwrap_or_else(PoisonError::into_inner);
        }
        held.insert(key.to_string());
        ArtifactGuard { locks: self, key: key.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_proc_refuses_a_second_caller_until_released() {
        let locks = Arc::new(Locks::default());
        let first = locks.try_busy("a").unwrap();
        assert!(locks.try_busy("a").is_none());
        assert!(locks.try_busy("b").is_some());
        drop(first);
        assert!(locks.try_busy("a").is_some());
    }
}
