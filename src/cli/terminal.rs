//! The client's side of `run` and `shell`: lend the terminal to vrd (with the request, or through an
//! attach socket), and put it in raw mode for a shell.

use std::os::fd::AsFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use anyhow::Context;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// A listening attach socket in a private temp dir; vrd connects once and receives our stdio.
pub struct AttachSocket {
    dir: tempfile::TempDir,
    listener: UnixListener,
}

impl AttachSocket {
    /// Creates the socket.
    pub fn new() -> anyhow::Result<AttachSocket> {
        let dir = tempfile::Builder::new()
            .prefix("vr-attach-")
            .tempdir()
            .context("failed to create a temp dir for the attach socket")?;
        let listener = UnixListener::bind(dir.path().join("attach.sock"))
            .context("failed to create the attach socket")?;
        Ok(AttachSocket { dir, listener })
    }

    /// The socket's path, for the daemon.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("attach.sock")
    }

    /// In the background, hands stdin, stdout and stderr to the first (and only) connection.
    pub fn serve(self) {
        match own_stdio() {
            Ok(fds) => self.serve_fds(fds),
            Err(_) => drop(self),
        }
    }

    /// In the background, hands `fds` (in order) to the first (and only) connection.
    pub fn serve_fds(self, fds: Vec<std::os::fd::OwnedFd>) {
        std::thread::spawn(move || {
            if let Ok((stream, _)) = self.listener.accept() {
                let borrowed: Vec<_> = fds.iter().map(|fd| fd.as_fd()).collect();
                let _ = crate::sys::send_fds(&stream, &borrowed);
            }
            drop(self.dir);
        });
    }
}

/// Copies of our stdin, stdout and stderr, in that order, to lend to vrd.
pub fn own_stdio() -> anyhow::Result<Vec<std::os::fd::OwnedFd>> {
    [std::io::stdin().as_fd(), std::io::stdout().as_fd(), std::io::stderr().as_fd()]
        .map(|fd| fd.try_clone_to_owned())
        .into_iter()
        .collect::<std::io::Result<Vec<_>>>()
        .context("failed to duplicate stdin, stdout or stderr")
}

/// Raw mode on stdin while alive, when stdin is a terminal; restores it on drop.
pub struct RawMode(Option<Termios>);

impl RawMode {
    /// Enters raw mode if stdin is a terminal.
    pub fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(saved) = tcgetattr(stdin.as_fd()) else { return RawMode(None) };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        if tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).is_err() {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}
