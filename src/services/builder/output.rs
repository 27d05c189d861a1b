//! Where a build's words go: vr's own progress lines and the container's output reach the caller's
//! stdout and stderr as they happen, and every byte of both also lands in the caller's compile.log
//! and in the copy vrd keeps.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// A shared file written by several threads, one chunk at a time.
type Shared = Arc<Mutex<File>>;

fn write_to(file: &Shared, bytes: &[u8]) {
    let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
    // The caller's terminal or file may be gone; the build goes on regardless.
    let _ = f.write_all(bytes);
}

/// The caller's output streams and, for builds, compile.log.
#[derive(Clone)]
pub struct Output {
    stdout: Shared,
    stderr: Shared,
    /// compile.log: the caller's, and the one vrd keeps; none for a shell.
    logs: Vec<Shared>,
    /// Line end for vr's own lines: `\r\n` when the caller's terminal is in raw mode (a shell).
    newline: &'static str,
}

impl Output {
    /// Output for a build: lines go to stderr and to every compile.log in `logs`.
    pub fn build(stdout: OwnedFd, stderr: OwnedFd, logs: Vec<OwnedFd>) -> Output {
        let shared = |fd: OwnedFd| Arc::new(Mutex::new(File::from(fd)));
        let logs = logs.into_iter().map(shared).collect();
        Output { stdout: shared(stdout), stderr: shared(stderr), logs, newline: "\n" }
    }

    /// Output for a shell, whose terminal is in raw mode: lines go to stderr only.
    pub fn shell(stdout: OwnedFd, stderr: OwnedFd) -> Output {
        let shared = |fd: OwnedFd| Arc::new(Mutex::new(File::from(fd)));
        Output { stdout: shared(stdout), stderr: shared(stderr), logs: Vec::new(), newline: "\r\n" }
    }

    /// Prints one of vr's own lines (`-----> text`, the buildpack convention for steps).
    pub fn step(&self, text: &str) {
        self.line(&format!("-----> {text}"));
    }

    /// Prints one line as it is.
    pub fn line(&self, text: &str) {
        let bytes = format!("{text}{}", self.newline);
        write_to(&self.stderr, bytes.as_bytes());
        for log in &self.logs {
            write_to(log, format!("{text}\n").as_bytes());
        }
    }

    /// Writes one line to compile.log only (for what the caller prints itself, such as the error).
    pub fn log_only(&self, text: &str) {
        for log in &self.logs {
            write_to(log, format!("{text}\n").as_bytes());
        }
    }

    /// Copies everything read from `pipe` to the caller's stdout (or stderr) and to compile.log,
    /// on a thread of its own, until the pipe's writers are gone.
    pub fn tee(&self, pipe: OwnedFd, to_stderr: bool) -> JoinHandle<()> {
        let target = if to_stderr { Arc::clone(&self.stderr) } else { Arc::clone(&self.stdout) };
        let logs = self.logs.clone();
        std::thread::spawn(move || {
            let mut pipe = File::from(pipe);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        write_to(&target, &buf[..n]);
                        for log in &logs {
                            write_to(log, &buf[..n]);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        })
    }
}
