//! A joined host's link to its coordinator: dial out (mutual TLS), upgrade to the host link, serve
//! the host API on it until it closes, then dial again. With several coordinators (issue 15) the
//! host dials the one it linked to last, then the leader a standby names in its refusal, then
//! every other coordinator the fleet listed (at the join, and at each link); the one that takes
//! the link is remembered in `link.json`. While standbys answer (the fleet is between leaders)
//! it tries again every second; when no coordinator answers, with backoff (1 s, doubling to
//! 30 s). Procs never depend on the link: while the coordinators are away they keep running. The
//! identity is read from `<data>/pki` at every dial, so a renewed certificate is used from the
//! next link on; it is renewed when a third of its life is left (checked at start and every 6
//! hours).

use std::collections::{HashSet, VecDeque};
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
            let round = match files.host() {
                Ok(Some(id)) => link_round(&files, &id, &agent).await,
                Ok(None) => {
                    tracing::error!("this host's fleet identity is gone: join again with `vrd join`");
                    Round::Unreachable
                }
                Err(e) => {
                    tracing::error!(error = %e, "this host's fleet identity is unreadable");
                    Round::Unreachable
                }
            };
            retry = match round {
                Round::Linked | Round::BetweenLeaders => FIRST_RETRY,
                Round::Unreachable => retry,
            };
            tokio::time::sleep(retry).await;
            if round == Round::Unreachable {
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
    });
}

/// How one round over the coordinators went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Round {
    /// A link was up (and closed since).
    Linked,
    /// Only standbys answered: a leader is about to be chosen.
    BetweenLeaders,
    /// No coordinator answered.
    Unreachable,
}

/// Dials the coordinators in turn until one takes the link, and serves it until it closes.
async fn link_round(files: &FleetFiles, id: &HostIdentity, agent: &Arc<dyn HostAgent>) -> Round {
    let mut queue: VecDeque<String> = id.link.candidates().into();
    let mut tried = HashSet::new();
    let mut standbys = false;
    while let Some(addr) = queue.pop_front() {
        if !tried.insert(addr.clone()) {
            continue;
        }
        match client::open_link(id, &addr).await {
            Ok(open) => {
                remember(files, &addr, open.coordinators);
                tracing::info!(coordinator = %addr, host = %id.link.name, "linked to the coordinator");
                let ended = link::serve_host_api(TokioIo::new(open.upgraded), Arc::clone(agent)).await;
                tracing::warn!(coordinator = %addr, outcome = ?ended, "the link to the coordinator closed");
                return Round::Linked;
            }
            Err(refused) => {
                tracing::warn!(coordinator = %addr, error = %refused.error, "cannot link to this coordinator");
                if let Some(leader) = refused.leader {
                    standbys = true;
                    queue.push_front(leader);
                }
            }
        }
    }
    if standbys {
        Round::BetweenLeaders
    } else {
        Round::Unreachable
    }
}

/// Keeps the coordinator that took the link (dialed first next time) and the fleet's list of
/// coordinators in `link.json`.
fn remember(files: &FleetFiles, linked: &str, listed: Vec<String>) {
    let Ok(Some(id)) = files.host() else { return };
    let mut link = id.link.clone();
    link.coordinator = linked.to_string();
    if !listed.is_empty() {
        link.coordinators = listed;
    }
    if link != id.link {
        if let Err(e) = files.save_link(&link) {
            tracing::warn!(error = %e, "failed to remember the coordinators in link.json");
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
