//! Serving the API on a Unix socket: jsonrpsee's tower service over each accepted connection, with
//! the caller's SO_PEERCRED identity and the fds it passed on the connection (SCM_RIGHTS) attached
//! to every request. The service speaks both WebSocket (subscriptions) and plain HTTP POST (one
//! call per request, one round trip less: what the client uses for everything else).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use jsonrpsee::server::{serve_with_graceful_shutdown, stop_channel, ServerConfig};
use jsonrpsee::Methods;
use tokio::net::UnixListener;

use super::ops::{Ops, Principal};
use super::rpc::RpcHandler;
use super::{Daemon, DaemonError};
use crate::api::VrdServer;
use crate::sys::fdstream::FdStream;
pub use crate::sys::fdstream::ReceivedFds;

/// Binds the API socket, replacing a stale one, with mode 0660 and the configured group.
pub fn bind(path: &Path, gid: Option<u32>) -> Result<UnixListener, DaemonError> {
    let io = |what, cause| DaemonError::Io { what, path: path.to_path_buf(), cause };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| io("create the directory of", e))?;
    }
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(io(
            "bind",
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another vrd is listening there; stop it or use --socket",
            ),
        ));
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path).map_err(|e| io("bind", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| io("chmod", e))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| io("chown", e))?;
    }
    Ok(listener)
}

/// Serves until `shutdown` resolves; in-flight calls finish, procs are left running.
pub async fn serve(
    listener: UnixListener,
    daemon: Arc<Daemon>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    // Accepting on a runtime worker, not on the thread that runs `block_on`: a connection task
    // spawned from a worker starts on that same worker, without waking another thread.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let accepting = tokio::spawn(accept_until(listener, daemon, stopped));
    shutdown.await;
    let _ = stop.send(());
    if let Err(e) = accepting.await {
        tracing::error!(error = %e, "the accept loop failed");
    }
}

async fn accept_until(
    listener: UnixListener,
    daemon: Arc<Daemon>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let policy = daemon.policy.clone();
    let slots = Arc::new(super::slots::Slots::default());
    let methods: Methods = RpcHandler { ops: Ops::new(daemon) }.into_rpc().into();
    let (stop_handle, server_handle) = stop_channel();
    let builder = jsonrpsee::server::Server::builder()
        .set_config(
            ServerConfig::builder()
                .max_connections(super::slots::MAX_CONNECTIONS)
                // A request carries at most a YAML file (1 MiB, model::yaml::MAX_BYTES) and its
                // JSON escaping; bulk data travels as fds, never in a request body.
                .max_request_body_size(8 << 20)
                .build(),
        )
        .to_service_builder();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => { tracing::warn!(error = %e, "failed to accept a connection"); continue; }
            },
            _ = &mut shutdown => break,
        };
        let stream = FdStream::new(stream);
        let passed = stream.received();
        let caller = match stream.peer_cred().and_then(|c| Ok((c, stream.peer_groups()?))) {
            Ok((c, groups)) => Principal::socket(c.uid(), c.gid(), groups, c.pid(), &policy),
            Err(e) => {
                tracing::warn!(error = %e, "failed to read the caller's credentials");
                continue;
            }
        };
        let Some(slot) = slots.take(caller.uid) else {
            tracing::warn!(
                uid = caller.uid,
                "refused a connection: this uid holds its share of connections already"
            );
            tokio::spawn(super::slots::refuse(stream, caller.uid));
            continue;
        };
        let svc = builder.clone().build(methods.clone(), stop_handle.clone());
        let svc = tower::ServiceBuilder::new()
            .map_request(move |mut req: http::Request<_>| {
                req.extensions_mut().insert(caller.clone());
                req.extensions_mut().insert(passed.clone());
                req
            })
            .service(svc);
        let stopped = stop_handle.clone().shutdown();
        tokio::spawn(async move {
            let _slot = slot; // held for as long as the connection is served
            if let Err(e) = serve_with_graceful_shutdown(stream, svc, stopped).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(stop_handle);
    // Calls that last as long as a proc (a foreground `runner.run`, `logs -f`) would hold the
    // daemon forever; they get a moment, then the daemon goes and their clients see it.
    if tokio::time::timeout(SHUTDOWN_WAIT, server_handle.stopped()).await.is_err() {
        tracing::warn!("calls still in flight after {SHUTDOWN_WAIT:?}; stopping anyway");
    }
}

/// How long a stopping daemon waits for in-flight calls.
pub const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
