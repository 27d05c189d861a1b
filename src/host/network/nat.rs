//! Outbound traffic of private procs: the host forwards IPv4 and masquerades the subnet behind
//! whatever interface a packet leaves by, as Docker and Podman do for their bridges. The rules
//! are one nftables table per bridge (`ip vr_<bridge>`), replaced whole in one transaction by
//! `nft -f -`, so two launchers setting it up at once leave it the same.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::model::network::Subnet;

/// Where `nft` is looked for (the launcher runs with no PATH of its own to trust).
const NFT: &[&str] = &["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"];

/// Turns on IPv4 forwarding and (re)writes the bridge's masquerade table.
pub fn ensure(bridge: &str, subnet: Subnet) -> Result<(), String> {
    enable_forwarding()?;
    let nft = NFT.iter().find(|p| Path::new(p).exists()).ok_or(
        "network: private needs nftables for the proc's outbound traffic, and nft was not found: \
         install it (apt-get install nftables, dnf install nftables)",
    )?;
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("failed to run {nft}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(ruleset(bridge, subnet).as_bytes())
            .map_err(|e| format!("failed to feed {nft}: {e}"))?;
    }
    let out = child.wait_with_output().map_err(|e| format!("failed to wait for {nft}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft refused the masquerade rules of bridge {bridge} ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The bridge's table: declared, emptied, filled, in one transaction.
fn ruleset(bridge: &str, subnet: Subnet) -> String {
    let table = table_name(bridge);
    format!(
        "table ip {table} {{}}\n\
         flush table ip {table}\n\
         table ip {table} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {subnet} oifname != \"{bridge}\" masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// The nftables table of `bridge` (names allow letters, digits and '_').
pub fn table_name(bridge: &str) -> String {
    format!("vr_{}", bridge.replace(['-', '.'], "_"))
}

fn enable_forwarding() -> Result<(), String> {
    let path = "/proc/sys/net/ipv4/ip_forward";
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, "1").map_err(|e| format!("failed to turn on IPv4 forwarding ({path}): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_masquerades_the_subnet_leaving_by_any_other_interface() {
        let rules = ruleset("vr-t.1", "10.9.0.0/24".parse().unwrap());
        assert!(rules.starts_with("table ip vr_vr_t_1 {}\nflush table ip vr_vr_t_1\n"), "{rules}");
        assert!(rules.contains("ip saddr 10.9.0.0/24 oifname != \"vr-t.1\" masquerade"), "{rules}");
    }
}
