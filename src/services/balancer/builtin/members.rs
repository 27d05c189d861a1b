//! A pool's node set as the accept loop reads it: an immutable snapshot swapped whole, so a new
//! connection sees the old set or the new one, never a mix, and a round-robin order over it that
//! falls through to the next nodes when one refuses.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::super::Node;

/// One node of a snapshot. Its `closed` token is shared by every connection proxied to it and is
/// cancelled once the node has been out of the pool for the drain time.
#[derive(Debug)]
pub struct Member {
    /// `host:port`, as routed.
    pub node: Node,
    /// The node parsed as an IP address, so the common case connects without a name lookup.
    pub addr: Option<SocketAddr>,
    /// Cancelled when connections to this node must end.
    pub closed: CancellationToken,
}

/// The nodes of one pool at one moment, in a stable (sorted) order.
#[derive(Debug, Default)]
pub struct Snapshot {
    members: Vec<Arc<Member>>,
}

impl Snapshot {
    /// The nodes `nodes`, keeping the members (and so the open connections' tokens) of nodes
    /// `old` already had; nodes new to the pool get a child of `parent`, so stopping the balancer
    /// closes them too. Returns the snapshot and the members left out, which the caller drains.
    pub fn replacing(
        old: &Snapshot,
        nodes: &BTreeSet<Node>,
        parent: &CancellationToken,
    ) -> (Snapshot, Vec<Arc<Member>>) {
        let kept = |node: &Node| old.members.iter().find(|m| &m.node == node).cloned();
        let members = nodes
            .iter()
            .map(|node| kept(node).unwrap_or_else(|| Arc::new(Member::new(node, parent.child_token()))))
            .collect();
        let removed = old.members.iter().filter(|m| !nodes.contains(&m.node)).cloned().collect();
        (Snapshot { members }, removed)
    }

    /// The members to try for the connection numbered `turn`: every member once, starting at the
    /// turn's one and wrapping around, so consecutive connections start on consecutive nodes.
    pub fn order(&self, turn: usize) -> impl Iterator<Item = &Arc<Member>> {
        let len = self.members.len();
        let start = if len == 0 { 0 } else { turn % len };
        self.members[start..].iter().chain(self.members[..start].iter())
    }

    /// Whether the pool has no nodes.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

impl Member {
    fn new(node: &Node, closed: CancellationToken) -> Member {
        Member { node: node.clone(), addr: node.parse().ok(), closed }
    }
}

/// Checks that `node` looks like `host:port` (a name or an IP, a non-zero port), so a typo fails
/// when it is routed rather than on every connection.
pub fn check_node(node: &str) -> Result<(), String> {
    if node.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let well_formed = match node.rsplit_once(':') {
        Some((host, port)) => {
            !host.is_empty() && !host.contains(':') && port.parse::<u16>().is_ok_and(|p| p != 0)
        }
        None => false,
    };
    if well_formed {
        Ok(())
    } else {
        Err(format!("node '{node}' is not host:port (e.g. 10.0.0.5:5001 or web1:5001)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[&str]) -> BTreeSet<Node> {
        list.iter().map(|n| (*n).to_string()).collect()
    }

    fn names<'a>(it: impl Iterator<Item = &'a Arc<Member>>) -> Vec<&'a str> {
        it.map(|m| m.node.as_str()).collect()
    }

    #[test]
    fn each_turn_starts_on_the_next_node_and_falls_through_to_all_others() {
        let root = CancellationToken::new();
        let (snap, _) = Snapshot::replacing(&Snapshot::default(), &set(&["a:1", "b:1", "c:1"]), &root);
        assert_eq!(names(snap.order(0)), ["a:1", "b:1", "c:1"]);
        assert_eq!(names(snap.order(1)), ["b:1", "c:1", "a:1"]);
        assert_eq!(names(snap.order(5)), ["c:1", "a:1", "b:1"]);
        assert_eq!(names(snap.order(usize::MAX)), names(snap.order(usize::MAX % 3)));
        let firsts: Vec<&str> = (0..6).map(|t| snap.order(t).next().unwrap().node.as_str()).collect();
        assert_eq!(firsts, ["a:1", "b:1", "c:1", "a:1", "b:1", "c:1"]);
    }

    #[test]
    fn an_empty_pool_offers_no_node() {
        let snap = Snapshot::default();
        assert!(snap.is_empty());
        assert_eq!(snap.order(7).count(), 0);
    }

    #[test]
    fn replacing_keeps_the_members_of_kept_nodes_and_hands_back_the_removed() {
        let root = CancellationToken::new();
        let (first, _) = Snapshot::replacing(&Snapshot::default(), &set(&["a:1", "b:1"]), &root);
        let (second, removed) = Snapshot::replacing(&first, &set(&["b:1", "c:1"]), &root);
        assert_eq!(names(second.order(0)), ["b:1", "c:1"]);
        assert_eq!(names(removed.iter()), ["a:1"]);
        let b_then = first.order(1).next().unwrap();
        let b_now = second.order(0).next().unwrap();
        assert!(Arc::ptr_eq(b_then, b_now), "b's open connections must keep their member");
        removed[0].closed.cancel();
        assert!(!b_now.closed.is_cancelled(), "closing a removed node must not touch the others");
        root.cancel();
        assert!(b_now.closed.is_cancelled(), "stopping the balancer closes every node");
    }

    #[test]
    fn ip_nodes_are_parsed_once_and_names_are_left_for_lookup() {
        let root = CancellationToken::new();
        let (snap, _) = Snapshot::replacing(&Snapshot::default(), &set(&["127.0.0.1:80", "web1:80"]), &root);
        let addrs: Vec<Option<SocketAddr>> = snap.order(0).map(|m| m.addr).collect();
        assert_eq!(addrs, [Some("127.0.0.1:80".parse().unwrap()), None]);
    }

    #[test]
    fn nodes_must_be_host_and_port() {
        for good in ["10.0.0.5:5001", "web1:5001", "[::1]:80", "a.example.com:65535"] {
            assert_eq!(check_node(good), Ok(()), "{good}");
        }
        for bad in ["web1", ":80", "web1:", "web1:0", "web1:http", "web1:70000", "::1:80", ""] {
            let err = check_node(bad).unwrap_err();
            assert!(err.contains(&format!("'{bad}'")) && err.contains("host:port"), "{err}");
        }
    }
}
