//! systemd integration: the API socket handed over by `vrd.socket` (socket activation,
//! sd_listen_fds(3)) and the readiness and stopping notices for `Type=notify` (sd_notify(3)).
//!
//! Both are optional: without `LISTEN_PID`/`LISTEN_FDS` vrd binds its own socket, and without
//! `NOTIFY_SOCKET` the notices do nothing, so the daemon runs the same under systemd, under another
//! supervisor, or from a shell.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixListener;

use nix::sys::socket::{
    getsockname, getsockopt, sockopt, AddressFamily, SockType, SockaddrLike, SockaddrStorage,
};
use sd_notify::NotifyState;

/// Why the socket systemd passed cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// `LISTEN_PID`/`LISTEN_FDS` are malformed, or a passed fd is not open.
    #[error(
        "failed to take the sockets systemd passed (LISTEN_PID={pid}, LISTEN_FDS={fds}): {cause}; \
         start vrd through vrd.socket, or unset LISTEN_PID and LISTEN_FDS so vrd binds its own socket"
    )]
    Take {
        /// The `LISTEN_PID` value seen.
        pid: String,
        /// The `LISTEN_FDS` value seen.
        fds: String,
        /// The cause.
        cause: io::Error,
    },
    /// fd 3 is a socket of the wrong kind, or not a socket at all.
    #[error(
        "failed to use fd 3 passed by systemd as the API socket: it is {found}, not a listening Unix \
         stream socket; set `ListenStream=/run/vrd/vrd.sock` (a path) in vrd.socket and restart vrd.socket"
    )]
    WrongKind {
        /// What fd 3 turned out to be, with its address when it has one.
        found: String,
    },
    /// fd 3 could not be inspected or made non-blocking.
    #[error(
        "failed to {what} the API socket {path} passed by systemd on fd 3: {cause}; \
         restart vrd.socket and vrd.service"
    )]
    Io {
        /// What was being done.
        what: &'static str,
        /// The socket's address, as far as it is known.
        path: String,
        /// The cause.
        cause: io::Error,
    },
}

/// The API socket systemd passed on fd 3, checked to be a listening Unix stream socket and set
/// non-blocking (ready for `tokio::net::UnixListener::from_std`); `None` when vrd was not
/// socket-activated and should bind the socket itself.
///
/// Only the first call in a process can return the socket. Further sockets (a second
/// `ListenStream=`) are closed with a warning: vrd serves one.
pub fn systemd_listener() -> Result<Option<UnixListener>, ActivationError> {
    let fds = crate::sys::take_listen_fds().map_err(|cause| ActivationError::Take {
        pid: std::env::var("LISTEN_PID").unwrap_or_default(),
        fds: std::env::var("LISTEN_FDS").unwrap_or_default(),
        cause,
    })?;
    let mut fds = fds.into_iter();
    let Some(fd) = fds.next() else {
        return Ok(None);
    };
    if fds.len() > 0 {
        tracing::warn!(
            extra = fds.len(),
            "systemd passed more than one socket; vrd serves only the first (fd 3) and closes the rest: \
             keep one ListenStream= in vrd.socket"
        );
    }
    drop(fds);
    let path = check_listening_unix_stream(fd.as_fd())?;
    let listener = UnixListener::from(fd);
    listener.set_nonblocking(true).map_err(|cause| ActivationError::Io {
        what: "make non-blocking",
        path,
        cause,
    })?;
    Ok(Some(listener))
}

/// Checks that `fd` is a Unix stream socket in the listening state; returns its address for
/// messages.
fn check_listening_unix_stream(fd: BorrowedFd<'_>) -> Result<String, ActivationError> {
    let addr = match getsockname::<SockaddrStorage>(fd.as_raw_fd()) {
        Ok(addr) => addr,
        Err(nix::errno::Errno::ENOTSOCK) => {
            return Err(ActivationError::WrongKind { found: "not a socket".into() });
        }
        Err(errno) => {
            return Err(ActivationError::Io {
                what: "inspect",
                path: "(unknown)".into(),
                cause: errno.into(),
            })
        }
    };
    let path = match addr.as_unix_addr() {
        Some(unix) => describe_unix(unix),
        None => {
            let found = match addr.family() {
                Some(AddressFamily::Inet) => "an IPv4 socket".to_string(),
                Some(AddressFamily::Inet6) => "an IPv6 socket".to_string(),
                other => format!("a socket of family {other:?}"),
            };
            return Err(ActivationError::WrongKind { found });
        }
    };
    let inspect = |cause: nix::errno::Errno| ActivationError::Io {
        what: "inspect",
        path: path.clone(),
        cause: cause.into(),
    };
    let kind = getsockopt(&fd, sockopt::SockType).map_err(inspect)?;
    if kind != SockType::Stream {
        let kind = match kind {
            SockType::Datagram => "datagram".to_string(),
            SockType::SeqPacket => "seqpacket".to_string(),
            other => format!("{other:?}"),
        };
        return Err(ActivationError::WrongKind { found: format!("a Unix {kind} socket at {path}") });
    }
    if !getsockopt(&fd, sockopt::AcceptConn).map_err(inspect)? {
        return Err(ActivationError::WrongKind {
            found: format!("a Unix stream socket at {path} that is not listening"),
        });
    }
    Ok(path)
}

/// A Unix socket address as a person would write it.
fn describe_unix(addr: &nix::sys::socket::UnixAddr) -> String {
    if let Some(path) = addr.path() {
        path.display().to_string()
    } else if let Some(name) = addr.as_abstract() {
        format!("@{}", String::from_utf8_lossy(name))
    } else {
        "(unnamed)".to_string()
    }
}

/// Tells systemd the daemon is ready (`READY=1`) with a one-line status for `systemctl status`.
/// Call it once the database is open and the API socket is being served. Does nothing when
/// `NOTIFY_SOCKET` is unset; a failure to send is logged, not returned, since vrd serves either way.
pub fn notify_ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)], "ready");
}

/// Tells systemd the daemon is stopping (`STOPPING=1`), so `systemctl status` shows it while
/// in-flight requests finish. Does nothing when `NOTIFY_SOCKET` is unset.
pub fn notify_stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping; procs keep running")], "stopping");
}

fn notify(state: &[NotifyState<'_>], what: &str) {
    if let Err(cause) = sd_notify::notify(state) {
        let socket = std::env::var("NOTIFY_SOCKET").unwrap_or_default();
        tracing::warn!(
            %cause,
            %socket,
            "failed to tell systemd that vrd is {what} through NOTIFY_SOCKET {socket}; \
             check NotifyAccess=main in vrd.service (systemd times out a start it never hears of)"
        );
    }
}

#[cfg(test)]
mod tests;
