//! A small client of haproxy's runtime API (the `stats socket ... level admin` Unix socket): one
//! command per connection, answer read to EOF (haproxy's non-interactive mode), under a deadline.
//! Commands that change something answer either nothing or a fixed success line; anything else is
//! haproxy's complaint and becomes the error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::parse;
use crate::services::balancer::BalancerError;

/// How long one command may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime API of one haproxy.
pub struct Runtime {
    balancer: String,
    socket: PathBuf,
}

impl Runtime {
    /// The API on `socket`, for the balancer called `balancer` (named in errors).
    pub fn new(balancer: &str, socket: &Path) -> Runtime {
        Runtime { balancer: balancer.to_string(), socket: socket.to_path_buf() }
    }

    /// Sends `command` and returns the answer.
    async fn send(&self, command: &str) -> Result<String, BalancerError> {
        let exchange = async {
            let mut stream = UnixStream::connect(&self.socket).await?;
            stream.write_all(format!("{command}\n").as_bytes()).await?;
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await?;
            Ok::<_, std::io::Error>(String::from_utf8_lossy(&answer).into_owned())
        };
        let answer = match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err(self.unreachable(&e.to_string())),
            Err(_) => return Err(self.unreachable(&format!("no answer to `{command}` within {TIMEOUT:?}"))),
        };
        if answer.trim_start().starts_with("Permission denied") {
            return Err(BalancerError::Unreachable(format!(
                "balancer '{}': haproxy refused `{command}` on {}: the socket needs `level admin` on its \
                 `stats socket` line",
                self.balancer,
                self.socket.display()
            )));
        }
        Ok(answer)
    }

    fn unreachable(&self, cause: &str) -> BalancerError {
        let socket = self.socket.display();
        BalancerError::Unreachable(format!(
            "balancer '{}': cannot use haproxy's runtime API at {socket}: {cause}; is haproxy running with \
             `stats socket {socket} level admin` in its global section, and is admin_socket that path?",
            self.balancer
        ))
    }

    /// Sends a command that answers `success` (empty: nothing) when it worked.
    async fn change(&self, command: &str, success: &str) -> Result<(), BalancerError> {
        let answer = self.send(command).await?;
        if answer.trim() == success {
            return Ok(());
        }
        Err(BalancerError::Command {
            what: format!("balancer '{}': `{command}` on {}", self.balancer, self.socket.display()),
            output: answer.trim().to_string(),
        })
    }

    fn garbled(&self, command: &str, why: String) -> BalancerError {
        BalancerError::Command {
            what: format!(
                "balancer '{}': reading the answer to `{command}` on {}",
                self.balancer,
                self.socket.display()
            ),
            output: why,
        }
    }

    /// The server names of `backend`, or `None` when the running haproxy has no such backend.
    pub async fn servers(&self, backend: &str) -> Result<Option<Vec<String>>, BalancerError> {
        let command = format!("show servers state {backend}");
        let answer = self.send(&command).await?;
        parse::servers_state(&answer, backend).map_err(|why| self.garbled(&command, why))
    }

    /// Current sessions per server of `backend`.
    pub async fn sessions(
        &self,
        backend: &str,
    ) -> Result<std::collections::BTreeMap<String, u64>, BalancerError> {
        let command = format!("show stat {backend} 4 -1");
        let answer = self.send(&command).await?;
        parse::sessions(&answer, backend).map_err(|why| self.garbled(&command, why))
    }

    /// Adds a health-checked server, which haproxy creates in maintenance with checks off.
    pub async fn add_server(
        &self,
        backend: &str,
        server: &str,
        addr: SocketAddr,
    ) -> Result<(), BalancerError> {
        let added = self
            .change(&format!("add server {backend}/{server} {addr} check"), "New server registered.")
            .await;
        match added {
            Err(BalancerError::Command { what, output }) if output.contains("dynamic load balancing") => {
                Err(BalancerError::Command {
                    what,
                    output: format!(
                        "{output} (backend {backend} needs `balance roundrobin`, `leastconn`, `first` or `random`, or `hash-type consistent`)"
                    ),
                })
            }
            other => other,
        }
    }

    /// Turns on a server's health checks.
    pub async fn enable_health(&self, backend: &str, server: &str) -> Result<(), BalancerError> {
        self.change(&format!("enable health {backend}/{server}"), "").await
    }

    /// Sets a server's administrative state: `ready`, `drain` or `maint`.
    pub async fn set_state(&self, backend: &str, server: &str, state: &str) -> Result<(), BalancerError> {
        self.change(&format!("set server {backend}/{server} state {state}"), "").await
    }

    /// Cuts a server's open sessions.
    pub async fn shutdown_sessions(&self, backend: &str, server: &str) -> Result<(), BalancerError> {
        self.change(&format!("shutdown sessions server {backend}/{server}"), "").await
    }

    /// Removes a server, which must be in maintenance with no connections left.
    pub async fn del_server(&self, backend: &str, server: &str) -> Result<(), BalancerError> {
        self.change(&format!("del server {backend}/{server}"), "Server deleted.").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_socket_is_named_with_what_to_check() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let err = Runtime::new("edge", &socket).servers("vr_web").await.unwrap_err().to_string();
        assert!(err.contains("balancer 'edge'") && err.contains(&socket.display().to_string()), "{err}");
        assert!(err.contains("level admin"), "{err}");
    }

    #[tokio::test]
    async fn an_unexpected_answer_becomes_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("admin.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut line = [0u8; 256];
            let _ = conn.read(&mut line).await.unwrap();
            conn.write_all(b"No such server.\n\n").await.unwrap();
        });
        let err = Runtime::new("edge", &socket).del_server("vr_web", "n_a_1").await.unwrap_err().to_string();
        assert!(err.contains("`del server vr_web/n_a_1`") && err.ends_with("No such server."), "{err}");
    }
}
