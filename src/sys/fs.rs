//! Extended attributes on an open file (`fsetxattr(2)`, `fgetxattr(2)`), which nix 0.32 does not
//! wrap. Working on a descriptor rather than a path means the caller decides how the path was
//! resolved (e.g. with `openat2(RESOLVE_IN_ROOT)`).

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;

/// Sets extended attribute `name` to `value` on the file behind `fd` (creating or replacing it).
pub fn fsetxattr(fd: impl AsFd, name: &CStr, value: &[u8]) -> nix::Result<()> {
    // SAFETY: `fd` is borrowed, so the descriptor stays open for the call; `name` is a valid
    // NUL-terminated string and `value`'s pointer and length describe one live slice, which the
    // kernel only reads.
    let rc = unsafe {
        libc::fsetxattr(fd.as_fd().as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0)
    };
    Errno::result(rc).map(drop)
}

/// Reads extended attribute `name` of the file behind `fd`.
pub fn fgetxattr(fd: impl AsFd, name: &CStr) -> nix::Result<Vec<u8>> {
    let fd = fd.as_fd();
    loop {
        // SAFETY: a null buffer with size 0 asks the kernel for the value's size only.
        let size = unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), std::ptr::null_mut(), 0) };
        let size = usize::try_from(Errno::result(size)?).unwrap_or(0);
        let mut value = vec![0u8; size];
        // SAFETY: `value` is a live, writable buffer of exactly `value.len()` bytes, and the
        // descriptor is borrowed for the duration of the call.
        let got =
            unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        match Errno::result(got) {
            Ok(got) => {
                value.truncate(usize::try_from(got).unwrap_or(0));
                return Ok(value);
            }
            // The value grew between the two calls; ask again.
            Err(Errno::ERANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Starts writing `len` bytes of `fd` from `offset` back to disk without waiting
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`): a large file written in pieces is then mostly on
/// disk when its final `fsync` comes, instead of all of it being written then.
pub fn start_writeback(fd: impl AsFd, offset: u64, len: u64) -> nix::Result<()> {
    let (offset, len) =
        (i64::try_from(offset).map_err(|_| Errno::EINVAL)?, i64::try_from(len).map_err(|_| Errno::EINVAL)?);
    // SAFETY: sync_file_range reads no memory of ours; the descriptor is borrowed for the call.
    let rc =
        unsafe { libc::sync_file_range(fd.as_fd().as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    Errno::result(rc).map(drop)
}

/// Whether `path` is a namespace file bound there (nsfs), as the kept mount and network
/// namespaces of a proc are.
pub fn is_nsfs_bound(path: &std::path::Path) -> bool {
    use nix::sys::statfs::{statfs, NSFS_MAGIC};
    statfs(path).is_ok_and(|s| s.filesystem_type() == NSFS_MAGIC)
}
