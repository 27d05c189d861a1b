//! Taking over a caller's terminal: vrd connects to the Unix socket the client listens on, checks
//! that the process there belongs to the caller, and receives its stdin, stdout and stderr.

use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::server::Caller;
use crate::services::runner::CallerStdio;

/// Connects to `socket`, verifies its owner, and returns the three fds it sends.
pub fn receive_stdio(socket: &str, caller: Caller) -> Result<CallerStdio, String> {
    let mut fds = receive_fds(socket, caller, 3)?.into_iter();
    match (fds.next(), fds.next(), fds.next()) {
        (Some(stdin), Some(stdout), Some(stderr)) => Ok(CallerStdio { stdin, stdout, stderr }),
        _ => Err(format!("the client at {socket} sent fewer than 3 fds (stdin, stdout, stderr)")),
    }
}

/// Connects to `socket`, verifies its owner, and returns exactly `count` fds it sends (stdio, or
/// output files the client opened in its own directory, such as a build's build.tar.gz).
pub fn receive_fds(socket: &str, caller: Caller, count: usize) -> Result<Vec<std::os::fd::OwnedFd>, String> {
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
    let fds = crate::sys::recv_fds(&stream, count)
        .map_err(|e| format!("failed to receive the client's files from {socket}: {e}"))?;
    if fds.len() != count {
        return Err(format!("the client at {socket} sent {} fds, expected {count}", fds.len()));
    }
    Ok(fds)
}
