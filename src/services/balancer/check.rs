//! What a pool name and a node must look like before a backend writes them into a config file:
//! a pool name becomes a file name and an identifier, a node a `host:port` line, so neither may
//! carry a `/`, a quote, a `;` or a newline into nginx's or varnish's syntax.

use super::{BalancerError, Node};

/// A node split into its host and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort<'a> {
    /// Host name or IPv4 address.
    pub host: &'a str,
    /// Port, 1 to 65535.
    pub port: u16,
}

/// Accepts letters, digits, `_`, `-` and `.`, not starting with `.` (no hidden files, no `..`).
pub fn pool_name(balancer: &str, pool: &str) -> Result<(), BalancerError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if pool.is_empty() || pool.starts_with('.') || !pool.chars().all(ok_char) {
        return Err(BalancerError::Invalid(format!(
            "balancer '{balancer}': pool name '{pool}' is not usable; use letters, digits, '_', '-' and '.' \
             (not first)"
        )));
    }
    Ok(())
}

/// Splits `host:port`; the host is a name or an IPv4 address (letters, digits, `.`, `-`, `_`).
pub fn node<'a>(balancer: &str, pool: &str, node: &'a str) -> Result<HostPort<'a>, BalancerError> {
    let bad = || {
        BalancerError::Invalid(format!(
            "balancer '{balancer}', pool '{pool}': node '{node}' is not host:port (a host name or IPv4 \
             address, and a port from 1 to 65535)"
        ))
    };
    let (host, port_text) = node.rsplit_once(':').ok_or_else(bad)?;
    let host_ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    if host.is_empty() || !host.chars().all(host_ok) {
        return Err(bad());
    }
    let port: u16 = port_text.parse().map_err(|_| bad())?;
    if port == 0 || port_text != port.to_string() {
        return Err(bad()); // "08080" would not survive a round trip through the file
    }
    Ok(HostPort { host, port })
}

/// Checks every node of a set.
pub fn nodes<'a>(
    balancer: &str,
    pool: &str,
    nodes: impl IntoIterator<Item = &'a Node>,
) -> Result<Vec<HostPort<'a>>, BalancerError> {
    nodes.into_iter().map(|n| node(balancer, pool, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names_that_are_safe_file_names_pass() {
        for good in ["web", "my-app_2.prod", "A1"] {
            pool_name("b", good).unwrap();
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", "a;b", "a\"b", "a\nb"] {
            let err = pool_name("b", bad).unwrap_err().to_string();
            assert!(err.contains("balancer 'b'") && err.contains("letters"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn nodes_are_host_and_port() {
        assert_eq!(node("b", "p", "10.0.0.1:5001").unwrap(), HostPort { host: "10.0.0.1", port: 5001 });
        assert_eq!(node("b", "p", "web-1.example:80").unwrap().host, "web-1.example");
        for bad in ["h", "h:", ":80", "h:0", "h:65536", "h:08", "h:80;", "h h:80", "h\":80", "[::1]:80"] {
            let err = node("b", "web", bad).unwrap_err().to_string();
            assert!(err.contains("pool 'web'") && err.contains(bad), "{bad}: {err}");
        }
    }
}
