//! Addresses of the private subnet, one lease file per address taken: named by the address and
//! holding its owner (a proc dir). Creating the file with O_EXCL is the allocation, so launchers
//! starting at once never share an address, and a lease whose owner is gone is taken back.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{ErrorKind, Write};
use std::net::Ipv4Addr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::model::network::Subnet;

/// Takes a free address of `subnet` for `owner` (its own, if it holds one already). The search
/// starts at a point given by the owner's path, so procs tend to keep their address.
pub fn take(dir: &Path, subnet: Subnet, owner: &Path) -> Result<Ipv4Addr, String> {
    fs::create_dir_all(dir).map_err(|e| format!("failed to create {}: {e}", dir.display()))?;
    let mut hasher = DefaultHasher::new();
    owner.hash(&mut hasher);
    let start = hasher.finish() as u32;
    for i in 0..subnet.proc_addresses() {
        let address = subnet.proc_address(start.wrapping_add(i));
        if try_take(dir, address, owner)? {
            return Ok(address);
        }
    }
    Err(format!(
        "every address of the private subnet {subnet} is taken ({} procs): give vrd a larger \
         private_subnet, or run fewer procs with network: private",
        subnet.proc_addresses()
    ))
}

/// Whether `address` is now `owner`'s: newly taken, already its own, or taken back from an owner
/// that no longer exists.
fn try_take(dir: &Path, address: Ipv4Addr, owner: &Path) -> Result<bool, String> {
    let path = dir.join(address.to_string());
    for _ in 0..2 {
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(mut file) => {
                let written = file.write_all(owner.as_os_str().as_bytes());
                return written.map(|_| true).map_err(|e| format!("failed to write {}: {e}", path.display()));
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                let holder = fs::read(&path).unwrap_or_default();
                if holder == owner.as_os_str().as_bytes() {
                    return Ok(true);
                }
                // A proc dir removed without its lease (a crash mid-teardown) frees the address.
                let gone = !holder.is_empty() && !Path::new(OsStr::from_bytes(&holder)).exists();
                if !gone {
                    return Ok(false);
                }
                let _ = fs::remove_file(&path);
            }
            Err(e) => return Err(format!("failed to create {}: {e}", path.display())),
        }
    }
    Ok(false)
}

/// Gives `address` back if `owner` holds it.
pub fn give_back(dir: &Path, address: Ipv4Addr, owner: &Path) {
    let path = dir.join(address.to_string());
    if fs::read(&path).is_ok_and(|holder| holder == owner.as_os_str().as_bytes()) {
        let _ = fs::remove_file(&path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_get_distinct_addresses_keep_their_own_and_a_gone_owner_frees_one() {
        let tmp = tempfile::tempdir().unwrap();
        let leases = tmp.path().join("leases");
        let subnet: Subnet = "10.9.0.0/28".parse().unwrap();
        let owners: Vec<_> = (0..13).map(|i| tmp.path().join(format!("proc{i}"))).collect();
        owners.iter().for_each(|o| fs::create_dir(o).unwrap());
        let mut taken: Vec<_> = owners.iter().map(|o| take(&leases, subnet, o).unwrap()).collect();
        assert_eq!(take(&leases, subnet, &owners[3]).unwrap(), taken[3], "an owner keeps its address");
        taken.sort();
        taken.dedup();
        assert_eq!(taken.len(), 13, "all distinct");
        assert!(taken.iter().all(|a| subnet.contains(*a) && *a != subnet.gateway()));
        let newcomer = tmp.path().join("proc13");
        let full = take(&leases, subnet, &newcomer).unwrap_err();
        assert!(full.contains("private_subnet"), "{full}");
        fs::remove_dir(&owners[5]).unwrap();
        let freed = take(&leases, subnet, &owners[5]).unwrap();
        give_back(&leases, freed, &owners[5]);
        assert!(take(&leases, subnet, &newcomer).is_ok(), "the gone owner's address is taken back");
    }
}
