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
use crate::sys::fdstream::FdStream;

/// A JSON-RPC client that makes one connection per call.
pub struct OneShot {
    socket: PathBuf,
    /// The connection opened up front (so a missing daemon is reported at once, with advice),
    /// taken by the first call, with the fds to send along.
    first: Mutex<Option<FdStream>>,
    fds: Mutex<Vec<OwnedFd>>,
}

impl OneShot {
    /// Connects to vrd at `socket`.
    pub async fn connect(socket: &Path) -> anyhow::Result<OneShot> {
        let stream = FdStream::new(open_socket(socket).await?);
        Ok(OneShot { socket: socket.to_path_buf(), first: Mutex::new(Some(stream)), fds: Mutex::default() })
    }

    /// Sends `fds` (in order) with the next call; the call says so in its parameters.
    pub fn send_fds_with_next_call(&self, fds: Vec<OwnedFd>) {
        *self.fds.lock().unwrap_or_else(PoisonError::into_inner) = fds;
    }

    async fn stream(&self) -> Result<FdStream, ClientError> {
        let first = self.first.lock().unwrap_or_else(PoisonError::into_inner).take();
        let mut stream = match first {
            Some(stream) => stream,
            None => FdStream::new(
                open_socket(&self.socket).await.map_err(|e| ClientError::Custom(e.to_string()))?,
            ),
        };
        let fds = std::mem::take(&mut *self.fds.lock().unwrap_or_else(PoisonError::into_inner));
        stream.send_with_first_write(fds);
        Ok(stream)
    }

    /// POSTs `body` and returns the response body.
    async fn post(&self, body: String) -> Result<Bytes, ClientError> {
        let transport = |e: hyper::Error| ClientError::Transport(e.into());
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(self.stream().await?))
            .await
            .map_err(transport)?;
        // Drives the connection; it ends when the response is in and `sender` is dropped.
        tokio::spawn(conn);
        let request = http::Request::post("/")
            .header(http::header::HOST, "vrd")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ClientError::Custom(format!("failed to make the request: {e}")))?;
        let response = sender.send_request(request).await.map_err(transport)?;
        let status = response.status();
        let bytes = response.into_body().collect().await.map_err(transport)?.to_bytes();
        if !status.is_success() && bytes.is_empty() {
            return Err(ClientError::Custom(format!("vrd answered HTTP {status}")));
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
