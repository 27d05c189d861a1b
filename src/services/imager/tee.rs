//! The script's output on its way to the caller and to `<new_image_name>.log`, as VR tee'd it:
//! one pipe for stdout and one for stderr, each copied by a thread to the caller's matching fd
//! and to the log, raw and as it happens.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::thread::JoinHandle;

use nix::fcntl::OFlag;
use nix::unistd::pipe2;

use super::ImagerError;
use crate::services::runner::CallerStdio;

/// The copying threads; [`Tee::finish`] waits until both pipes are drained.
pub(super) struct Tee {
    threads: Vec<JoinHandle<()>>,
}

/// Starts the copies; returns the container's stdio (stdin is /dev/null) and the threads.
pub(super) fn start(stdout: OwnedFd, stderr: OwnedFd, log: File) -> Result<(CallerStdio, Tee), ImagerError> {
    let pipe = || {
        pipe2(OFlag::O_CLOEXEC)
            .map_err(|e| ImagerError::io("create a pipe for", "the script's output", e.into()))
    };
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let stdin = File::open("/dev/null").map_err(|e| ImagerError::io("open", "/dev/null", e))?;
    let log = Arc::new(log);
    let threads = vec![
        spawn(File::from(out_r), File::from(stdout), Arc::clone(&log)),
        spawn(File::from(err_r), File::from(stderr), log),
    ];
    Ok((CallerStdio { stdin: stdin.into(), stdout: out_w, stderr: err_w }, Tee { threads }))
}

impl Tee {
    /// Waits for both copies to reach the end of their pipes (every writer has exited).
    pub fn finish(self) {
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

fn spawn(from: File, caller: File, log: Arc<File>) -> JoinHandle<()> {
    std::thread::spawn(move || copy_to_both(from, caller, &log))
}

/// Copies until end of file. A caller that went away stops getting output; the log keeps it.
fn copy_to_both(mut from: impl Read, mut caller: impl Write, log: &File) {
    let mut log: &File = log;
    let mut caller_ok = true;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                tracing::warn!(error = %e, "failed to read the provisioning script's output");
                return;
            }
        };
        if caller_ok {
            caller_ok = caller.write_all(&buf[..n]).is_ok();
        }
        if let Err(e) = log.write_all(&buf[..n]) {
            tracing::warn!(error = %e, "failed to write the image build log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_reaches_the_caller_and_the_log_even_after_the_caller_left() {
        let dir = tempfile::tempdir().unwrap();
        let log = File::create(dir.path().join("log")).unwrap();
        let caller = File::create(dir.path().join("caller")).unwrap();
        copy_to_both(&b"one\ntwo\n"[..], caller, &log);
        assert_eq!(std::fs::read_to_string(dir.path().join("log")).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(dir.path().join("caller")).unwrap(), "one\ntwo\n");
        struct Gone;
        impl Write for Gone {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        copy_to_both(&b"three\n"[..], Gone, &log);
        assert_eq!(std::fs::read_to_string(dir.path().join("log")).unwrap(), "one\ntwo\nthree\n");
    }
}
