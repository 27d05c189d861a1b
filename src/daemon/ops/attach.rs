//! Taking over a caller's terminal and files: the fds a call needs (stdin, stdout, stderr, or
//! output files the client opened in its own directory) come with the request on the API
//! connection (`Attach::inline`), or vrd connects to the Unix socket the client listens on, checks
//! that the process there belongs to the caller, and receives them there.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::access::Principal;
use crate::api::Attach;
use crate::services::runner::CallerStdio;
pub use crate::sys::fdstream::ReceivedFds;

/// Where one call's fds come from.
pub struct Handover {
    attach: Attach,
    passed: ReceivedFds,
    caller: Principal,
}

impl Handover {
    /// The handover a call asked for, with the caller and the fds of its connection.
    pub fn new(attach: Attach, passed: ReceivedFds, caller: &Principal) -> Handover {
        Handover { attach, passed, caller: caller.clone() }
    }

    /// Whether the fds came with the request (else vrd connects to the client's attach socket).
    pub fn inline(&self) -> bool {
        self.attach.inline
    }

    /// Exactly `count` fds, in the order the client sent them.
    pub fn fds(&self, count: usize) -> Result<Vec<OwnedFd>, String> {
        let fds = if self.attach.inline {
            self.passed.take_all()
        } else {
            receive_fds(&self.attach.socket, &self.caller, count)?
        };
        if fds.len() != count {
            return Err(format!("the client sent {} fds, expected {count}", fds.len()));
        }
        Ok(fds)
    }

    /// The caller's stdin, stdout and stderr.
    pub fn stdio(&self) -> Result<CallerStdio, String> {
        let mut fds = self.fds(3)?.into_iter();
        match (fds.next(), fds.next(), fds.next()) {
            (Some(stdin), Some(stdout), Some(stderr)) => Ok(CallerStdio { stdin, stdout, stderr }),
            _ => Err("the client sent fewer than 3 fds (stdin, stdout, stderr)".to_string()),
        }
    }
}

/// Connects to `socket`, verifies its owner, and returns the fds it sends.
fn receive_fds(socket: &str, caller: &Principal, count: usize) -> Result<Vec<OwnedFd>, String> {
    let stream = UnixStream::connect(socket)
        .map_err(|e| format!("failed to connect to the attach socket {socket}: {e}"))?;
    let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("failed to read the attach socket's credentials: {e}"))?;
    if caller.uid != 0 && peer.uid() != caller.uid {
        return Err(format!(
            "the attach socket {socket} belongs to uid {}, not to the caller (uid {})",
            peer.uid(),
            caller.uid
        ));
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    crate::sys::recv_fds(&stream, count)
        .map_err(|e| format!("failed to receive the client's files from {socket}: {e}"))
}
