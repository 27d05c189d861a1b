//! A joined host's link to its coordinator: dial out (mutual TLS), upgrade to the host link, serve
//! the host API on it until it closes, then dial again with backoff (1 s, doubling to 30 s). Procs
//! never depend on the link: while the coordinator is away they keep running.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;

use crate::services::hosts::HostAgent;
use crate::services::peer::client;
use crate::services::peer::identity::HostIdentity;
use crate::services::peer::link;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);

/// Keeps the link up for as long as vrd runs.
pub fn spawn(id: HostIdentity, agent: Arc<dyn HostAgent>) {
    tokio::spawn(async move {
        let mut retry = FIRST_RETRY;
        loop {
            match client::open_link(&id).await {
                Ok(upgraded) => {
                    tracing::info!(coordinator = %id.link.coordinator, host = %id.link.name, "linked to the coordinator");
                    retry = FIRST_RETRY;
                    let ended = link::serve_host_api(TokioIo::new(upgraded), Arc::clone(&agent)).await;
                    tracing::warn!(coordinator = %id.link.coordinator, outcome = ?ended, "the link to the coordinator closed");
                }
                Err(e) => {
                    tracing::warn!(coordinator = %id.link.coordinator, error = %e, retry_secs = retry.as_secs(), "cannot reach the coordinator");
                }
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    });
}
