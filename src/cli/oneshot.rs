//! The client for plain calls: each call is one HTTP/1.1 POST of a JSON-RPC request on its own
//! connection to vrd's socket (the same service also speaks WebSocket, which only subscriptions
//! need). Compared with a WebSocket client this saves the upgrade round trip, jsonrpsee's
//! background task and its timer thread, which is most of what a short `vr runner run` spends
//! outside the container. Fds given to [`OneShot::send_fds_with_next_call`] travel with the next
//! request (SCM_RIGHTS), so vrd need not connect back for the caller's terminal.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use jsonrpsee::core::client::{
    BatchResponse, ClientT, Error as ClientError, Subscription, SubscriptionClientT,
};
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::core::traits::ToRpcParams;
use jsonrpsee::types::{Id, Notification, Request, Response, ResponsePayload};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::client::open_socket;
use super::remote::Remote;
use crate::sys::fdstream::FdStream;

/// A JSON-RPC client that makes one connection per call.
pub struct OneShot {
    target: Target,
    /// The connection opened up front (so a missing daemon is reported at once, with advice),
    /// taken by the first call, with the fds to send along.
    first: Mutex<Option<Conn>>,
    fds: Mutex<Vec<OwnedFd>>,
}

/// Where the calls go.
enum Target {
    Socket(PathBuf),
    Remote(&'static Remote),
}

/// One call's connection.
enum Conn {
    Socket(FdStream),
    Remote(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

/// What hyper needs of a connection.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

impl OneShot {
    /// Connects to vrd at `socket`.
    pub async fn connect(socket: &Path) -> anyhow::Result<OneShot> {
        let stream = FdStream::new(open_socket(socket).await?);
        Ok(OneShot {
            target: Target::Socket(socket.to_path_buf()),
            first: Mutex::new(Some(Conn::Socket(stream))),
            fds: Mutex::default(),
        })
    }

    /// Connects to a remote vrd's HTTPS API (`vr --url`).
    pub async fn connect_remote(remote: &'static Remote) -> anyhow::Result<OneShot> {
        let stream = remote.connect().await?;
        Ok(OneShot {
            target: Target::Remote(remote),
            first: Mutex::new(Some(Conn::Remote(Box::new(stream)))),
            fds: Mutex::default(),
        })
    }

    /// Sends `fds` (in order) with the next call; the call says so in its parameters.
    pub fn send_fds_with_next_call(&self, fds: Vec<OwnedFd>) {
        *self.fds.lock().unwrap_or_else(PoisonError::into_inner) = fds;
    }

    async fn stream(&self) -> Result<Box<dyn Io>, ClientError> {
        let custom = |e: anyhow::Error| ClientError::Custom(format!("{e:#}"));
        let first = self.first.lock().unwrap_or_else(PoisonError::into_inner).take();
        let conn = match (first, &self.target) {
            (Some(conn), _) => conn,
            (None, Target::Socket(path)) => {
                Conn::Socket(FdStream::new(open_socket(path).await.map_err(custom)?))
            }
            (None, Target::Remote(remote)) => Conn::Remote(Box::new(remote.connect().await.map_err(custom)?)),
        };
        let fds = std::mem::take(&mut *self.fds.lock().unwrap_or_else(PoisonError::into_inner));
        match conn {
            Conn::Socket(mut stream) => {
                stream.send_with_first_write(fds);
                Ok(Box::new(stream))
            }
            Conn::Remote(_) if !fds.is_empty() => Err(ClientError::Custom(
                "this command passes your terminal or files to vrd, which needs its local socket: run it on the host".into(),
            )),
            Conn::Remote(stream) => Ok(Box::new(stream)),
        }
    }

    /// POSTs `body` and returns the response body.
    async fn post(&self, body: String) -> Result<Bytes, ClientError> {
        let transport = |e: hyper::Error| ClientError::Transport(e.into());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(self.stream().await?))
            .await
            .map_err(transport)?;
        // Drives the connection; it ends when the response is in and `sender` is dropped.
        tokio::spawn(conn);
        let builder = match &self.target {
            Target::Socket(_) => http::Request::post("/").header(http::header::HOST, "vrd"),
            Target::Remote(r) => http::Request::post("/rpc")
                .header(http::header::HOST, r.authority())
                .header(http::header::AUTHORIZATION, r.authorization()),
        };
        let request = builder
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Custom(format!("failed to make the request: {e}")))?;
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(transport)?.to_bytes();
        if !status.is_success() && (bytes.is_empty() || !bytes.starts_with(b"{\"jsonrpc\"")) {
            // The HTTPS listener's own refusals (401, 404) carry {"error": "..."}.
            let said = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_default();
            return Err(ClientError::Custom(format!("vrd answered HTTP {status}: {said}")));
        }
        Ok(bytes)
    }
}

fn params_of(params: impl ToRpcParams) -> Result<Option<Box<RawValue>>, ClientError> {
    params.to_rpc_params().map_err(ClientError::ParseError)
}

impl ClientT for OneShot {
    async fn notification<Params>(&self, method: &str, params: Params) -> Result<(), ClientError>
    where
        Params: ToRpcParams + Send,
    {
        let params = params_of(params)?;
        let body = serde_json::to_string(&Notification::new(method.into(), params))
            .map_err(ClientError::ParseError)?;
        self.post(body).await.map(|_| ())
    }

    async fn request<R, Params>(&self, method: &str, params: Params) -> Result<R, ClientError>
    where
        R: DeserializeOwned,
        Params: ToRpcParams + Send,
    {
        let params = params_of(params)?;
        let body = serde_json::to_string(&Request::owned(method.into(), params, Id::Number(0)))
            .map_err(ClientError::ParseError)?;
        let bytes = self.post(body).await?;
        let response: Response<&RawValue> =
            serde_json::from_slice(&bytes).map_err(ClientError::ParseError)?;
        match response.payload {
            ResponsePayload::Success(result) => {
                serde_json::from_str(result.get()).map_err(ClientError::ParseError)
            }
            ResponsePayload::Error(e) => Err(ClientError::Call(e.into_owned())),
        }
    }

    async fn batch_request<'a, R>(
        &self,
        _batch: BatchRequestBuilder<'a>,
    ) -> Result<BatchResponse<'a, R>, ClientError>
    where
        R: DeserializeOwned + std::fmt::Debug + 'a,
    {
        Err(ClientError::Custom("vr makes no batch calls".into()))
    }
}

/// Subscriptions need the WebSocket client (`client::connect`); the generated API client asks for
/// this trait as a whole, so plain calls get an error here rather than a second client type.
impl SubscriptionClientT for OneShot {
    async fn subscribe<'a, Notif, Params>(
        &self,
        method: &'a str,
        _params: Params,
        _unsubscribe: &'a str,
    ) -> Result<Subscription<Notif>, ClientError>
    where
        Params: ToRpcParams + Send,
        Notif: DeserializeOwned,
    {
        Err(ClientError::Custom(format!("{method} is a subscription: it needs the WebSocket client")))
    }

    async fn subscribe_to_method<Notif>(&self, method: &str) -> Result<Subscription<Notif>, ClientError>
    where
        Notif: DeserializeOwned,
    {
        Err(ClientError::Custom(format!("{method} is a subscription: it needs the WebSocket client")))
    }
}
