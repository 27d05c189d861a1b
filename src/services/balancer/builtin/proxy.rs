//! One pool's TCP proxy: the listener, the accept loop, and per connection a round-robin connect
//! (falling through to the next nodes when one refuses) and a byte copy that ends on its own, when
//! its node has been drained, or when the balancer stops.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::members::{Member, Snapshot};
use crate::services::balancer::Node;

/// How long one node may take to accept before the next is tried: a dead host must not stall
/// the client for the kernel's minutes-long SYN retries.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How long the accept loop rests after a failed accept (out of file descriptors, say), so it
/// does not spin while the cause lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A pool being served: where it listens and its current node set.
pub struct Pool {
    balancer: String,
    name: String,
    local: SocketAddr,
    drain: Duration,
    members: RwLock<Arc<Snapshot>>,
    turn: AtomicUsize,
    stop: CancellationToken,
}

impl Pool {
    /// Listens on `addr` for pool `name` and serves it until `stop` is cancelled. The error says
    /// which pool and address could not be bound, and what to change.
    pub async fn serve(
        balancer: &str,
        name: &str,
        addr: &str,
        drain: Duration,
        stop: &CancellationToken,
    ) -> Result<Arc<Pool>, String> {
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            format!(
                "balancer '{balancer}': cannot listen for pool '{name}' on {addr}: {e}; set pools.{name} \
                 in [balancers.{balancer}] of vrd's config to a free address of this host, or stop \
                 what is listening there"
            )
        })?;
        let local =
            listener.local_addr().map_err(|e| format!("balancer '{balancer}', pool '{name}': {e}"))?;
        let pool = Arc::new(Pool {
            balancer: balancer.to_string(),
            name: name.to_string(),
            local,
            drain,
            members: RwLock::default(),
            turn: AtomicUsize::new(0),
            stop: stop.clone(),
        });
        tracing::info!(balancer, pool = name, %local, "builtin balancer listening");
        tokio::spawn(accept_loop(Arc::clone(&pool), listener));
        Ok(pool)
    }

    /// The address actually bound (differs from the configured one for port 0).
    #[cfg(test)]
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Makes `nodes` the pool's node set in one swap. Connections to nodes that left keep going
    /// for the drain time, then are closed.
    pub fn install(&self, nodes: &BTreeSet<Node>) {
        let removed = {
            let mut current = self.members.write().unwrap_or_else(|p| p.into_inner());
            let (next, removed) = Snapshot::replacing(&current, nodes, &self.stop);
            *current = Arc::new(next);
            removed
        };
        if !removed.is_empty() {
            tokio::spawn(close_after(self.drain, removed, self.stop.clone()));
        }
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.members.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Closes the connections to `removed` nodes once `drain` has passed (or the balancer stopped,
/// which closes them through their parent token anyway).
async fn close_after(drain: Duration, removed: Vec<Arc<Member>>, stop: CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(drain) => removed.iter().for_each(|m| m.closed.cancel()),
        () = stop.cancelled() => {}
    }
}

async fn accept_loop(pool: Arc<Pool>, listener: TcpListener) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = pool.stop.cancelled() => break,
        };
        match accepted {
            Ok((client, _)) => dispatch(&pool, client),
            Err(e) => {
                tracing::warn!(balancer = pool.balancer, pool = pool.name, local = %pool.local,
                    "builtin balancer: accept failed: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    tracing::info!(balancer = pool.balancer, pool = pool.name, local = %pool.local, "builtin balancer stopped");
}

/// Hands a new connection to its own task. A pool without nodes closes it at once: the client
/// learns immediately that nothing serves the pool instead of waiting in the backlog.
fn dispatch(pool: &Arc<Pool>, client: TcpStream) {
    let snapshot = pool.snapshot();
    if snapshot.is_empty() {
        tracing::debug!(balancer = pool.balancer, pool = pool.name, "no nodes: connection closed");
        return;
    }
    let turn = pool.turn.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(proxy(Arc::clone(pool), client, snapshot, turn));
}

async fn proxy(pool: Arc<Pool>, mut client: TcpStream, snapshot: Arc<Snapshot>, turn: usize) {
    let connected = tokio::select! {
        connected = connect_any(&pool, &snapshot, turn) => connected,
        () = pool.stop.cancelled() => return,
    };
    drop(snapshot);
    let Some((mut upstream, member)) = connected else { return };
    // Small request/response exchanges must not wait for Nagle on either leg.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = copied {
                tracing::debug!(pool = pool.name, node = member.node, "connection ended: {e}");
            }
        }
        () = member.closed.cancelled() => {
            tracing::debug!(pool = pool.name, node = member.node, "connection closed: node drained");
        }
    }
}

/// Connects to the turn's node, or to the next ones when it refuses or does not answer in time.
async fn connect_any(pool: &Pool, snapshot: &Snapshot, turn: usize) -> Option<(TcpStream, Arc<Member>)> {
    for member in snapshot.order(turn) {
        match connect(member).await {
            Ok(stream) => return Some((stream, Arc::clone(member))),
            Err(e) => tracing::debug!(pool = pool.name, node = member.node, "cannot connect: {e}"),
        }
    }
    tracing::warn!(balancer = pool.balancer, pool = pool.name, "no node of the pool accepted a connection");
    None
}

async fn connect(member: &Member) -> std::io::Result<TcpStream> {
    let attempt = async {
        match member.addr {
            Some(addr) => TcpStream::connect(addr).await,
            None => TcpStream::connect(member.node.as_str()).await,
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")))
}
