//! The names vr gives haproxy: a pool's backend, and one server per node. A server's name carries
//! its node reversibly (`web1:5000` → `n_web1_5000`, `[::1]:5000` → `n_::1_5000`), so the running
//! haproxy alone says which nodes a pool has, even for nodes given by host name (which dynamic
//! servers cannot keep: haproxy adds them with an address and no name to resolve).
//!
//! Everything here also ends up on the runtime API's command line, where `;` separates commands
//! and spaces separate words, so names are checked against haproxy's own character set.

use super::BalancerError;

/// What starts every server vr names; other servers of a backend are the user's and left alone.
const SERVER_PREFIX: &str = "n_";

/// A node split into what haproxy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The node as vr names it: `host:port` (`[v6]:port` for IPv6).
    pub node: String,
    /// The host, without brackets.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Target {
    /// The name of this node's server.
    pub fn server_name(&self) -> String {
        format!("{SERVER_PREFIX}{}_{}", self.host, self.port)
    }
}

/// Characters haproxy accepts in proxy and server names.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// Checks that a pool can be part of a backend name and a config-file marker.
pub fn check_pool(balancer: &str, pool: &str) -> Result<(), BalancerError> {
    if !pool.is_empty() && pool.chars().all(is_name_char) {
        return Ok(());
    }
    Err(BalancerError::Invalid(format!(
        "balancer '{balancer}': pool '{pool}' cannot name a haproxy backend: use only letters, digits, \
         '-', '_', '.' and ':'"
    )))
}

/// Checks the backend name prefix given in the config.
pub fn check_prefix(balancer: &str, prefix: &str) -> Result<(), BalancerError> {
    if prefix.chars().all(is_name_char) {
        return Ok(());
    }
    Err(BalancerError::Invalid(format!(
        "balancer '{balancer}': backend_prefix '{prefix}' cannot start a haproxy backend name: use only \
         letters, digits, '-', '_', '.' and ':'"
    )))
}

/// Splits `host:port` (or `[v6]:port`), refusing what haproxy or the round trip through a server
/// name could not keep exactly.
pub fn parse_node(balancer: &str, node: &str) -> Result<Target, BalancerError> {
    let invalid = |why: &str| {
        BalancerError::Invalid(format!(
            "balancer '{balancer}': node '{node}' {why}; nodes are host:port, with IPv6 hosts in brackets"
        ))
    };
    let (host, port) = node.rsplit_once(':').ok_or_else(|| invalid("has no port"))?;
    let port: u16 = port.parse().map_err(|_| invalid("has no valid port"))?;
    if port == 0 || format!("{host}:{port}") != node {
        return Err(invalid("has no valid port"));
    }
    let host = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) if !v6.is_empty() && v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.') => v6,
        Some(_) => return Err(invalid("has an invalid IPv6 address")),
        None if host.contains(':') => return Err(invalid("has an IPv6 address without brackets")),
        None if !host.is_empty() && host.chars().all(is_name_char) => host,
        None => return Err(invalid("has an invalid host")),
    };
    Ok(Target { node: node.to_string(), host: host.to_string(), port })
}

/// The node a server stands for, when vr named it; `None` for the user's own servers.
pub fn node_of_server(name: &str) -> Option<String> {
    let (host, port) = name.strip_prefix(SERVER_PREFIX)?.rsplit_once('_')?;
    let node = if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
    let target = parse_node("", &node).ok()?;
    (target.server_name() == name).then_some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_round_trip_to_their_nodes() {
        for node in ["127.0.0.1:5001", "web-1.example.com:80", "[::1]:5000", "odd_host:7"] {
            let target = parse_node("b", node).unwrap();
            assert_eq!(node_of_server(&target.server_name()).as_deref(), Some(node), "{node}");
        }
        assert_eq!(parse_node("b", "127.0.0.1:5001").unwrap().server_name(), "n_127.0.0.1_5001");
        assert_eq!(parse_node("b", "[::1]:5000").unwrap().host, "::1");
    }

    #[test]
    fn the_users_own_servers_are_not_nodes() {
        for name in ["web1", "n_", "n_host", "n_host_http", "n_host_0", "n_host_05000", "backup_n_a_1"] {
            assert_eq!(node_of_server(name), None, "{name}");
        }
    }

    #[test]
    fn nodes_that_could_break_a_command_or_not_round_trip_are_refused() {
        for node in ["web1", "web1:", "web1:http", "web1:0", "web1:05000", ":80", "::1:80", "[]:80", "[x]:80"]
        {
            assert!(parse_node("b", node).is_err(), "{node}");
        }
        let err = parse_node("edge", "a;del server x/y:80").unwrap_err().to_string();
        assert!(err.contains("edge") && err.contains("invalid host"), "{err}");
        assert!(check_pool("b", "hello-web_1.v2").is_ok());
        assert!(
            check_pool("b", "").is_err()
                && check_pool("b", "a b").is_err()
                && check_pool("b", "a/b").is_err()
        );
        assert!(check_prefix("b", "").is_ok() && check_prefix("b", "vr;").is_err());
    }
}
