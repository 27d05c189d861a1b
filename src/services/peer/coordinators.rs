//! One coordinator's calls to another over their peer ports (issue 15), with its own coordinator
//! certificate: a standby forwards a leader's duty to the leader (`POST /v1/forward`), and a
//! coordinator whose store lacks an artifact fetches it by sha256 from the others
//! (`GET /v1/blobs/sha256/<hex>`). The other side accepts only a certificate the sender recorded
//! in the model (`coordinators`), so a host's certificate cannot pass for a coordinator's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};

use super::client::{dial, fetch_blob, refusal};
use super::pki::{self, KeyAndCert};
use super::tls;
use crate::api::forward::{ForwardedAnswer, ForwardedCall};

/// The largest answer a forwarded call may have (a dispatch's list of traces is small).
const MAX_ANSWER: usize = 16 << 20;
/// How long a forwarded call may take: a leader's duties answer once started, not when done.
const FORWARD_DEADLINE: Duration = Duration::from_secs(120);

/// Calls other coordinators as this one.
#[derive(Clone)]
pub struct CoordinatorClient {
    config: Arc<rustls::ClientConfig>,
}

impl CoordinatorClient {
    /// A client with this coordinator's certificate `own`, trusting the fleet's CA `ca` only.
    pub fn new(ca: &KeyAndCert, own: &KeyAndCert) -> Result<CoordinatorClient, String> {
        let config = tls::client_config(&ca.cert_pem, own).map_err(|e| e.to_string())?;
        Ok(CoordinatorClient { config })
    }

    /// Forwards `call` to the coordinator at `addr`; its answer, or why it could not be had.
    pub async fn forward(&self, addr: &str, call: &ForwardedCall) -> Result<ForwardedAnswer, String> {
        let exchange = async {
            let mut sender = dial(addr, Arc::clone(&self.config)).await?;
            let body = serde_json::to_vec(call).map_err(|e| e.to_string())?;
            let request = hyper::Request::post("/v1/forward")
                .header("host", pki::COORDINATOR_SERVER_NAME)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(refusal(response).await);
            }
            let body = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| format!("the answer broke off: {e}"))?
                .to_bytes();
            serde_json::from_slice(&body).map_err(|e| format!("an answer vr cannot read: {e}"))
        };
        tokio::time::timeout(FORWARD_DEADLINE, exchange)
            .await
            .map_err(|_| format!("no answer within {} s", FORWARD_DEADLINE.as_secs()))?
    }

    /// Fetches the artifact with `sha256` from the coordinator at `addr` into `dest` (through a
    /// temp file, kept only when its sha256 is right).
    pub async fn fetch(&self, addr: &str, sha256: &str, dest: &Path) -> Result<(), String> {
        fetch_blob(addr, Arc::clone(&self.config), sha256, None, dest).await
    }
}

/// The other coordinators of the model, as the source of artifacts this one's store lacks.
pub struct PeerStores {
    /// This coordinator's client.
    pub client: CoordinatorClient,
    /// The model, which lists the coordinators.
    pub state: crate::services::state::State,
    /// This coordinator's name (not asked).
    pub me: String,
}

#[async_trait::async_trait]
impl crate::services::builds::fill::StoreFill for PeerStores {
    async fn fill(&self, sha256: &str, dest: &Path) -> Result<String, String> {
        let all =
            self.state.coordinators().await.map_err(|e| format!("the coordinators are unknown: {e}"))?;
        let mut tried = Vec::new();
        for other in all.into_iter().filter(|c| c.name != self.me) {
            let Some(addr) = other.address else { continue };
            match self.client.fetch(&addr, sha256, dest).await {
                Ok(()) => return Ok(other.name),
                Err(e) => tried.push(format!("{} ({addr}): {e}", other.name)),
            }
        }
        if tried.is_empty() {
            return Err("no other coordinator with a peer address to fetch it from".into());
        }
        Err(format!("no other coordinator has it: {}", tried.join("; ")))
    }
}
