//! Publishing a private proc's port: its launcher listens on the port on the host and relays
//! each connection to the same port at the proc's address. Living in the launcher, the relay
//! lasts exactly as long as the container, survives vrd's restarts as the proc does, and leaves no
//! firewall state behind; balancers, uptests and `wait_listening` reach the proc as they would a
//! proc on the host's network (docker-proxy's way, without a process of its own).

use std::net::{SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{shutdown, Shutdown};
use tokio::io::copy_bidirectional;
use tokio::net::TcpStream;

/// How long the relay waits for the app to accept before it drops the client's connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Listens on `port` of every host address, before the container starts, so a taken port fails
/// the start with a clear reason.
pub fn listen(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind(("0.0.0.0", port)).map_err(|e| {
        format!("failed to publish port {port} on the host: {e} (another program holds it; free it or give the proc another port)")
    })
}

/// A published port being relayed; dropping it stops publishing (the port refuses connections
/// again at once, before the launcher reports the container's end).
pub struct Published(OwnedFd);

impl Drop for Published {
    fn drop(&mut self) {
        // shutdown() of a listening socket stops it listening, for every copy of its fd, and
        // wakes the relay's accept with an error that ends it.
        let _ = shutdown(self.0.as_raw_fd(), Shutdown::Both);
    }
}

/// Relays every connection to `listener` to `target`, on a thread of its own, until the returned
/// [`Published`] is dropped.
pub fn start(listener: TcpListener, target: SocketAddrV4) -> Result<Published, String> {
    let setup = |e: std::io::Error| format!("failed to set up the published port: {e}");
    listener.set_nonblocking(true).map_err(setup)?;
    let handle = listener.try_clone().map_err(setup)?;
    std::thread::Builder::new()
        .name("vrd-publish".into())
        .stack_size(256 << 10)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build();
            match rt {
                Ok(rt) => rt.block_on(relay(listener, target)),
                Err(e) => eprintln!("vrd init: the published port's relay could not start: {e}"),
            }
        })
        .map(|_| Published(handle.into()))
        .map_err(|e| format!("failed to start the published port's relay: {e}"))
}

async fn relay(listener: TcpListener, target: SocketAddrV4) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => return eprintln!("vrd init: the published port's relay could not start: {e}"),
    };
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                tokio::spawn(pass(client, target));
            }
            // Shut down: the container is gone.
            Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EINVAL as i32) => return,
            // Out of fds or memory for a moment: the next accept may well succeed.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// One connection: to the app, then both ways until either side closes. A client whose app
/// does not answer is dropped, as it would be by a proc on the host's network.
async fn pass(mut client: TcpStream, target: SocketAddrV4) {
    let Ok(Ok(mut app)) = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target)).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = app.set_nodelay(true);
    let _ = copy_bidirectional(&mut client, &mut app).await;
}
