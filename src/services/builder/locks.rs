//! The builder's locks: flock(2) on files under `builder/locks/`, so they hold between threads of
//! one vrd (each lock opens its own file description) and between processes alike. Velociraptor
//! failed at once when an app's lock was taken; vr waits, and tells the caller what it waits for.

use std::fs::{self, File, OpenOptions};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::output::Output;
use super::BuilderError;

/// A held lock; released when dropped.
pub struct FileLock {
    _lock: Flock<File>,
}

/// How often a waiting build looks at the lock (and whether its caller went away).
const POLL: Duration = Duration::from_millis(100);

/// Takes the exclusive lock at `path`. If another build holds it, says so on `out` (naming
/// `what` the lock guards) and waits for it, until `cancelled` is set.
pub fn lock(path: &Path, what: &str, out: &Output, cancelled: &AtomicBool) -> Result<FileLock, BuilderError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)
            .map_err(|e| BuilderError::Io(format!("failed to create {}: {e}", dir.display())))?;
    }
    let mut said = false;
    loop {
        let file =
            OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| {
                BuilderError::Io(format!("failed to open the lock file {}: {e}", path.display()))
            })?;
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => {
                if said {
                    out.line(&format!("vr: the other build is done; going on with {what}"));
                }
                return Ok(FileLock { _lock: lock });
            }
            Err((_, Errno::EWOULDBLOCK)) => {}
            Err((_, e)) => {
                return Err(BuilderError::Io(format!("failed to lock {}: {e}", path.display())));
            }
        }
        if !said {
            out.line(&format!(
                "vr: waiting for another build that holds {what} (lock {}); this build goes on when it ends",
                path.display()
            ));
            said = true;
        }
        if cancelled.load(Ordering::SeqCst) {
            return Err(BuilderError::Cancelled);
        }
        std::thread::sleep(POLL);
    }
}
