//! A joined host's link to its coordinator: dial out (mutual TLS), upgrade to the host link, serve
//! the host API on it until it closes, then dial again with backoff (1 s, doubling to 30 s). Procs
//! never depend on the link: while the coordinator is away they keep running. The identity is
//! read from `<data>/pki` at every dial, so a renewed certificate is used from the next link on;
//! it is renewed when a third of its life is left (checked at start and every 6 hours).

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;

use crate::services::hosts::HostAgent;
use crate::services::peer::identity::{due_for_renewal, FleetFiles, HostIdentity};
use crate::services::peer::{client, link, pki};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);
const RENEWAL_CHECK: Duration = Duration::from_secs(6 * 3600);

/// Keeps the link up for as long as vrd runs.
pub fn spawn(files: FleetFiles, agent: Arc<dyn HostAgent>) {
    let renewing = files.clone();
    tokio::spawn(async move {
        loop {
            renew_if_due(&renewing).await;
            tokio::time::sleep(RENEWAL_CHECK).await;
        }
    });
    tokio::spawn(async move {
        let mut retry = FIRST_RETRY;
        loop {
            match files.host() {
                Ok(Some(id)) => {
                    if link_once(&id, &agent).await {
                        retry = FIRST_RETRY;
                    }
                }
                Ok(None) => tracing::error!("this host's fleet identity is gone: join again with `vrd join`"),
                Err(e) => tracing::error!(error = %e, "this host's fleet identity is unreadable"),
            }
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(LAST_RETRY);
        }
    });
}

/// One link, until it closes; whether it was up at all.
async fn link_once(id: &HostIdentity, agent: &Arc<dyn HostAgent>) -> bool {
    match client::open_link(id).await {
        Ok(upgraded) => {
            tracing::info!(coordinator = %id.link.coordinator, host = %id.link.name, "linked to the coordinator");
            let ended = link::serve_host_api(TokioIo::new(upgraded), Arc::clone(agent)).await;
            tracing::warn!(coordinator = %id.link.coordinator, outcome = ?ended, "the link to the coordinator closed");
            true
        }
        Err(e) => {
            tracing::warn!(coordinator = %id.link.coordinator, error = %e, "cannot reach the coordinator");
            false
        }
    }
}

async fn renew_if_due(files: &FleetFiles) {
    let Ok(Some(id)) = files.host() else { return };
    let due = id
        .own
        .cert_der()
        .ok()
        .and_then(|der| pki::identity_of(&der).ok())
        .is_none_or(|(_, end)| due_for_renewal(end));
    if !due {
        return;
    }
    match client::renew(&id).await {
        Ok(renewed) => match files.save_host(&renewed) {
            Ok(()) => tracing::info!(host = %id.link.name, "renewed this host's certificate"),
            Err(e) => tracing::error!(error = %e, "failed to save the renewed certificate"),
        },
        Err(e) => tracing::warn!(error = %e, "failed to renew this host's certificate; trying again later"),
    }
}
