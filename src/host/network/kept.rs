//! A proc's kept network namespace: made once, bound at `<proc dir>/netns`, entered by each run.
//! Its address and the lease directory are noted in `netns.address` beside it.

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use super::links::Netlink;
use super::{leases, nat, PrivatePlan};
use crate::sys;

/// A proc's namespace, opened for its container to enter, and the address it has there.
pub struct Attached {
    /// The namespace.
    pub netns: File,
    /// The container's address on the bridge.
    pub address: Ipv4Addr,
}

/// The current thread's network namespace (the launcher is single-threaded while it uses this).
const OWN_NETNS: &str = "/proc/thread-self/ns/net";

fn note_path(netns: &Path) -> PathBuf {
    netns.with_extension("address")
}

/// The address of the proc whose namespace is bound at `netns`, if it has one.
pub fn address_of(netns: &Path) -> Option<Ipv4Addr> {
    let note = fs::read_to_string(note_path(netns)).ok()?;
    note.lines().next()?.parse().ok()
}

/// The proc's namespace, built first if it is not bound (the first run, or after a setup).
/// Never inlined: the netlink futures it builds are large, and inlined into the launcher's frame
/// they would grow the stack every launcher touches, private network or not.
#[inline(never)]
pub fn ensure(plan: &PrivatePlan) -> Result<Attached, String> {
    if sys::fs::is_nsfs_bound(&plan.netns) {
        if let Some(address) = address_of(&plan.netns) {
            let netns = File::open(&plan.netns).map_err(|e| at("open", &plan.netns, e))?;
            return Ok(Attached { netns, address });
        }
    }
    release(&plan.netns)?;
    build(plan)
}

/// Unbinds the namespace at `netns` (its veth goes with it once no process is left in it) and
/// gives its address back. Nothing bound is no error.
pub fn release(netns: &Path) -> Result<(), String> {
    while sys::fs::is_nsfs_bound(netns) {
        umount2(netns, MntFlags::MNT_DETACH).map_err(|e| at("unmount", netns, e))?;
    }
    let note = note_path(netns);
    if let Ok(text) = fs::read_to_string(&note) {
        let mut lines = text.lines();
        if let (Some(Ok(address)), Some(dir)) = (lines.next().map(str::parse), lines.next()) {
            leases::give_back(Path::new(dir), address, owner(netns));
        }
    }
    for path in [note.as_path(), netns] {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(at("remove", path, e)),
            _ => {}
        }
    }
    Ok(())
}

fn owner(netns: &Path) -> &Path {
    netns.parent().unwrap_or(netns)
}

fn at(what: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("failed to {what} {}: {e}", path.display())
}

fn build(plan: &PrivatePlan) -> Result<Attached, String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("failed to start a runtime for netlink: {e}"))?;
    let host = Netlink::open(&rt)?;
    let bridge = host.ensure_bridge(&plan.bridge, plan.subnet.gateway(), plan.subnet.prefix)?;
    nat::ensure(&plan.bridge, plan.subnet)?;
    let address = leases::take(&plan.leases, plan.subnet, owner(&plan.netns))?;
    let wired = (|| -> Result<File, String> {
        let netns = bind_new_namespace(&plan.netns)?;
        let hex = format!("{:08x}", u32::from(address));
        let (outside, inside) = (format!("vr{hex}"), format!("vp{hex}"));
        host.veth_into(&outside, &inside, bridge, netns.as_fd())?;
        in_namespace(&netns, || {
            Netlink::open(&rt)?.configure_inside(&inside, address, plan.subnet.prefix, plan.subnet.gateway())
        })?;
        let note = format!("{address}\n{}\n", plan.leases.display());
        fs::write(note_path(&plan.netns), note).map_err(|e| at("write", &note_path(&plan.netns), e))?;
        Ok(netns)
    })();
    match wired {
        Ok(netns) => Ok(Attached { netns, address }),
        Err(e) => {
            let _ = release(&plan.netns);
            leases::give_back(&plan.leases, address, owner(&plan.netns));
            Err(format!("failed to give the proc its private network: {e}"))
        }
    }
}

/// A new network namespace, bound at `path`; the thread is back in its own namespace after,
/// whatever happened.
fn bind_new_namespace(path: &Path) -> Result<File, String> {
    File::create(path).map_err(|e| at("create", path, e))?;
    let home = File::open(OWN_NETNS).map_err(|e| at("open", Path::new(OWN_NETNS), e))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("failed to create a network namespace: {e}"))?;
    let made = mount(Some(OWN_NETNS), path, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| at("bind the network namespace at", path, e))
        .and_then(|_| File::open(OWN_NETNS).map_err(|e| at("open", Path::new(OWN_NETNS), e)));
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("failed to return to the host's network namespace: {e}"))?;
    made
}

/// Runs `f` with the thread in `netns`, then returns it to its own namespace.
fn in_namespace<T>(netns: &File, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let home = File::open(OWN_NETNS).map_err(|e| at("open", Path::new(OWN_NETNS), e))?;
    setns(netns.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("failed to enter the proc's network namespace: {e}"))?;
    let result = f();
    setns(home.as_fd(), CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("failed to return to the host's network namespace: {e}"))?;
    result
}
