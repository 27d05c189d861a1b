//! How a proc's container reaches the network: VR's host networking (the default), or a network
//! namespace of its own behind a host bridge, its port published by its launcher.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The network a proc's container gets (proc.yaml and swarm key `network`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Network {
    /// The host's network, as VR ran every proc: the app binds its port on the host itself.
    #[default]
    Host,
    /// A network namespace of its own: one interface on the host's private bridge, outbound
    /// traffic masqueraded, nothing of the host's sockets, interfaces or /proc/net visible; the
    /// proc's port is published on the host by its launcher.
    Private,
}

impl Network {
    /// Reads proc.yaml's text for the key; `None` or empty means the default.
    pub fn parse(text: Option<&str>) -> Result<Network, String> {
        match text.map(str::trim) {
            None | Some("") | Some("host") => Ok(Network::Host),
            Some("private") => Ok(Network::Private),
            Some(other) => Err(format!(
                "'{other}' is not a network: use host (the host's network, the default) or private (a \
                 network namespace of its own, its port published by vrd)"
            )),
        }
    }

    /// Whether this is the default (kept out of release hashes and proc.yaml when so).
    pub fn is_host(&self) -> bool {
        *self == Network::Host
    }
}

/// An IPv4 subnet in CIDR form, e.g. `10.77.0.0/16`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    /// The network address (host bits zero).
    pub base: Ipv4Addr,
    /// The prefix length.
    pub prefix: u8,
}

impl Subnet {
    /// The bridge's own address: the first in the subnet.
    pub fn gateway(&self) -> Ipv4Addr {
        self.nth(1)
    }

    /// How many addresses procs may get: all but the network address, the gateway and broadcast.
    pub fn proc_addresses(&self) -> u32 {
        (1u32 << (32 - self.prefix)) - 3
    }

    /// The `i`-th proc address (0-based), after the gateway.
    pub fn proc_address(&self, i: u32) -> Ipv4Addr {
        self.nth(2 + i % self.proc_addresses())
    }

    /// Whether `addr` lies in the subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.base)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix)
    }

    fn nth(&self, i: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + i)
    }
}

impl FromStr for Subnet {
    type Err = String;

    fn from_str(s: &str) -> Result<Subnet, String> {
        let usage = "write it as an IPv4 network in CIDR form, e.g. 10.77.0.0/16";
        let (addr, prefix) =
            s.trim().split_once('/').ok_or_else(|| format!("'{s}' has no /prefix: {usage}"))?;
        let base: Ipv4Addr = addr.parse().map_err(|_| format!("'{addr}' is not an IPv4 address: {usage}"))?;
        let prefix: u8 =
            prefix.parse().map_err(|_| format!("'/{prefix}' is not a prefix length: {usage}"))?;
        if !(8..=28).contains(&prefix) {
            return Err(format!("/{prefix} is outside /8../28 (a /28 holds 13 procs; a /16 65,533)"));
        }
        let subnet = Subnet { base, prefix };
        if u32::from(base) & !subnet.mask() != 0 {
            let network = Ipv4Addr::from(u32::from(base) & subnet.mask());
            return Err(format!("'{s}' has host bits set: the network is {network}/{prefix}"));
        }
        Ok(subnet)
    }
}

impl TryFrom<String> for Subnet {
    type Error = String;
    fn try_from(s: String) -> Result<Subnet, String> {
        s.parse()
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

/// The host's private network: the bridge procs with `network: private` hang off, and its subnet
/// (vrd's config keys `private_bridge` and `private_subnet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateNetwork {
    /// The bridge's interface name.
    pub bridge: String,
    /// The subnet; the bridge takes its first address.
    pub subnet: Subnet,
}

/// The bridge when the config names none.
pub const DEFAULT_BRIDGE: &str = "vr0";
/// The subnet when the config names none (Docker takes 172.17/16, Podman 10.88/16).
pub const DEFAULT_SUBNET: &str = "10.77.0.0/16";

impl Default for PrivateNetwork {
    fn default() -> PrivateNetwork {
        PrivateNetwork {
            bridge: DEFAULT_BRIDGE.into(),
            subnet: DEFAULT_SUBNET.parse().expect("the default subnet is valid"),
        }
    }
}

/// Checks a bridge name: an interface name the kernel takes (1-15 bytes, no '/', ':' or space).
pub fn check_bridge_name(name: &str) -> Result<(), String> {
    let fine = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.is_empty() || name.len() > 15 || !name.chars().all(fine) || name == "." || name == ".." {
        return Err(format!(
            "'{name}' is not an interface name: 1-15 letters, digits, '-', '_' or '.', e.g. vr0"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_parse_and_a_wrong_one_says_what_to_write() {
        assert_eq!(Network::parse(None), Ok(Network::Host));
        assert_eq!(Network::parse(Some(" private ")), Ok(Network::Private));
        let e = Network::parse(Some("bridge")).unwrap_err();
        assert!(e.contains("host") && e.contains("private"), "{e}");
    }

    #[test]
    fn a_subnet_gives_its_gateway_and_proc_addresses_and_refuses_host_bits() {
        let s: Subnet = "10.77.0.0/16".parse().unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(s.proc_address(0), Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!(s.proc_addresses(), 65_533);
        assert_eq!(s.proc_address(65_533), Ipv4Addr::new(10, 77, 0, 2), "wraps before broadcast");
        assert!(s.contains(Ipv4Addr::new(10, 77, 255, 254)) && !s.contains(Ipv4Addr::new(10, 78, 0, 1)));
        assert!("10.77.0.1/16".parse::<Subnet>().unwrap_err().contains("10.77.0.0/16"));
        assert!("10.77.0.0/30".parse::<Subnet>().is_err());
        assert!("10.77.0.0".parse::<Subnet>().unwrap_err().contains("CIDR"));
        assert_eq!(s.to_string(), "10.77.0.0/16");
    }

    #[test]
    fn bridge_names_are_interface_names() {
        assert!(check_bridge_name("vr0").is_ok());
        assert!(check_bridge_name("a-very-long-name0").is_err());
        assert!(check_bridge_name("vr/0").is_err());
        assert!(check_bridge_name("").is_err());
    }
}
