//! A tokio Unix stream that carries fds along with its bytes (SCM_RIGHTS): the client sends its
//! stdin, stdout and stderr with the first bytes of an API request, and vrd collects whatever fds
//! arrive on a connection for the call that asks for them. This replaces a second socket that vrd
//! had to connect back to, and its round trip.
//!
//! Unix stream sockets attach the fds to the first byte of the data they were sent with, so a
//! reader that has read a request has also received the fds sent with it.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{ready, Context, Poll};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::UnixStream;

/// At most this many received fds are held per connection; more are closed at once, so a peer
/// cannot make vrd hold fds without bound.
pub const MAX_HELD_FDS: usize = 16;

/// The fds received on one connection and not yet taken, shared with whoever serves its calls.
#[derive(Debug, Clone, Default)]
pub struct ReceivedFds(Arc<Mutex<Vec<OwnedFd>>>);

impl ReceivedFds {
    /// Takes every fd received so far, in the order they arrived.
    pub fn take_all(&self) -> Vec<OwnedFd> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn keep(&self, fds: Vec<OwnedFd>) {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let room = MAX_HELD_FDS.saturating_sub(held.len());
        held.extend(fds.into_iter().take(room));
    }
}

/// A connected Unix stream: reads collect received fds into [`ReceivedFds`]; the first write
/// sends the fds given to [`FdStream::send_with_first_write`].
#[derive(Debug)]
pub struct FdStream {
    inner: UnixStream,
    outgoing: Vec<OwnedFd>,
    received: ReceivedFds,
}

impl FdStream {
    /// Wraps a connected stream.
    pub fn new(inner: UnixStream) -> FdStream {
        FdStream { inner, outgoing: Vec::new(), received: ReceivedFds::default() }
    }

    /// The fds this stream has received and not yet handed out.
    pub fn received(&self) -> ReceivedFds {
        self.received.clone()
    }

    /// Sends `fds` (in order) with the next bytes written.
    pub fn send_with_first_write(&mut self, fds: Vec<OwnedFd>) {
        self.outgoing = fds;
    }

    /// The peer's credentials (SO_PEERCRED).
    pub fn peer_cred(&self) -> io::Result<tokio::net::unix::UCred> {
        self.inner.peer_cred()
    }

    /// The peer's supplementary groups as the kernel recorded them when it connected.
    pub fn peer_groups(&self) -> io::Result<Vec<u32>> {
        peer_groups(self.inner.as_fd())
    }
}

/// `SO_PEERGROUPS` (Linux 4.13; `asm-generic/socket.h`), which the libc crate does not export on
/// every architecture.
const SO_PEERGROUPS: libc::c_int = 59;

/// The supplementary groups of a connected Unix socket's peer, from the kernel (`SO_PEERGROUPS`):
/// the groups the peer had at connect time, which no later change of its own can alter.
pub fn peer_groups(fd: BorrowedFd<'_>) -> io::Result<Vec<u32>> {
    let mut groups = vec![0u32; 32];
    loop {
        let mut len = (groups.len() * std::mem::size_of::<u32>()) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `groups`, which holds that many, and
        // sets `len` to what it wrote (or, with ERANGE, to what it needs).
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let count = len as usize / std::mem::size_of::<u32>();
        if rc == 0 {
            groups.truncate(count);
            return Ok(groups);
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::ERANGE) && count > groups.len() {
            groups.resize(count, 0);
            continue;
        }
        return Err(error);
    }
}

impl AsyncRead for FdStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            ready!(this.inner.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let fd = this.inner.as_fd();
            match this.inner.try_io(Interest::READABLE, || recv_with_fds(fd, unfilled)) {
                Ok((n, fds)) => {
                    if !fds.is_empty() {
                        this.received.keep(fds);
                    }
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }
}

impl AsyncWrite for FdStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outgoing.is_empty() || buf.is_empty() {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        loop {
            ready!(this.inner.poll_write_ready(cx))?;
            let fd = this.inner.as_fd();
            let fds: Vec<BorrowedFd<'_>> = this.outgoing.iter().map(|f| f.as_fd()).collect();
            match this.inner.try_io(Interest::WRITABLE, || send_with_fds(fd, buf, &fds)) {
                Ok(n) => {
                    // The peer holds its own copies now.
                    this.outgoing.clear();
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Sends `buf` with `fds` attached to its first byte; returns how many bytes went. Blocking or
/// not as the socket is.
pub fn send_with_fds(socket: BorrowedFd<'_>, buf: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(|fd| fd.as_raw_fd()).collect();
    let cmsg = [ControlMessage::ScmRights(&raw)];
    let iov = [io::IoSlice::new(buf)];
    Ok(sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None)?)
}

/// Reads into `buf`; returns the byte count and the fds that came with the bytes (close-on-exec).
/// Fds beyond the control buffer's room are closed by the kernel (MSG_CTRUNC), never leaked.
pub fn recv_with_fds(socket: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Vec<OwnedFd>)> {
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; MAX_HELD_FDS]);
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fds = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(raw) = cmsg {
            // SAFETY: SCM_RIGHTS installed these fds in our table for us alone; each is owned once.
            fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok((msg.bytes, fds))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn fds_sent_with_the_first_write_arrive_with_the_bytes_in_order() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut sender, mut receiver) = (FdStream::new(a), FdStream::new(b));
        let mut pipes = Vec::new();
        for _ in 0..3 {
            pipes.push(nix::unistd::pipe().unwrap());
        }
        sender.send_with_first_write(pipes.iter().map(|(_, w)| w.try_clone().unwrap()).collect());
        sender.write_all(b"hello").await.unwrap();
        sender.write_all(b" again").await.unwrap();
        let mut got = [0u8; 11];
        receiver.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello again");
        let fds = receiver.received().take_all();
        assert_eq!(fds.len(), 3);
        for (i, (fd, (r, _))) in fds.into_iter().zip(&pipes).enumerate() {
            std::fs::File::from(fd).write_all(&[b'0' + i as u8]).unwrap();
            let mut byte = [0u8; 1];
            std::fs::File::from(r.try_clone().unwrap()).read_exact(&mut byte).unwrap();
            assert_eq!(byte[0], b'0' + i as u8, "fd {i} is the {i}th pipe");
        }
        assert!(receiver.received().take_all().is_empty(), "taken fds are gone");
    }

    #[test]
    fn a_connection_holds_a_bounded_number_of_fds() {
        let held = ReceivedFds::default();
        let many = (0..MAX_HELD_FDS + 4).map(|_| nix::unistd::pipe().unwrap().0).collect();
        held.keep(many);
        assert_eq!(held.take_all().len(), MAX_HELD_FDS);
    }

    #[tokio::test]
    async fn a_peers_groups_are_this_process_groups() {
        let (a, _b) = UnixStream::pair().unwrap();
        let mut got = FdStream::new(a).peer_groups().unwrap();
        let mut mine: Vec<u32> = nix::unistd::getgroups().unwrap().iter().map(|g| g.as_raw()).collect();
        got.sort_unstable();
        mine.sort_unstable();
        assert_eq!(got, mine);
    }
}
