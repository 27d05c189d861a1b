//! The coordinator's view of its hosts: which are connected now (each joined host keeps one link
//! open), and the directory dispatch uses — hosts served by this vrd through `LocalDirectory`,
//! joined hosts through their link. A host that is not connected is `Unreachable` at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use jsonrpsee::core::client::Client;

use super::link::SILENCE_LIMIT;
use super::remote::{RemoteHost, CALL_DEADLINE};
use crate::model::deploy::HostSpec;
use crate::services::hosts::directory::LocalDirectory;
use crate::services::hosts::{HostAgent, HostDirectory, HostError, HostHealth};

/// One open link.
#[derive(Clone)]
struct Connected {
    client: Arc<Client>,
    since: SystemTime,
    id: u64,
    version: String,
    cut: Arc<tokio::sync::Notify>,
}

/// A connected host as listings show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    /// The host's name.
    pub name: String,
    /// When its link opened.
    pub since: SystemTime,
    /// Its vrd's version.
    pub version: String,
}

/// The links of joined hosts, by host name, and when each was lost.
pub struct Peers {
    links: RwLock<HashMap<String, Connected>>,
    lost: RwLock<HashMap<String, SystemTime>>,
    /// When each host last answered a heartbeat.
    heard: RwLock<HashMap<String, SystemTime>>,
    next: AtomicU64,
    /// When this coordinator started: a host not seen since counts as lost from then, so a
    /// coordinator restart gives every host the whole grace to dial again.
    started: SystemTime,
    /// How long a lost host is `Suspect` before it is `Down`.
    pub grace: std::time::Duration,
}

impl Default for Peers {
    fn default() -> Peers {
        Peers::new(DEFAULT_GRACE)
    }
}

/// How long a host may be lost before its procs are replaced (Nomad's heartbeat grace plus
/// Kubernetes' node-monitor grace, rounded: long enough for a restart, short enough to heal).
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(60);

impl Peers {
    /// No links yet; lost hosts turn `Down` after `grace`.
    pub fn new(grace: std::time::Duration) -> Peers {
        Peers {
            links: RwLock::default(),
            lost: RwLock::default(),
            heard: RwLock::default(),
            next: AtomicU64::new(0),
            started: SystemTime::now(),
            grace,
        }
    }

    /// How host `name` is doing at `now`: up while it is linked and answered a heartbeat within
    /// [`SILENCE_LIMIT`]; else suspect, and down once the grace has passed since it was last heard
    /// (or since its link was lost, or since this coordinator started).
    pub fn health(&self, name: &str, now: SystemTime) -> HostHealth {
        let linked = self.links.read().unwrap_or_else(PoisonError::into_inner).contains_key(name);
        let lost = self.lost.read().unwrap_or_else(PoisonError::into_inner).get(name).copied();
        let seen = Seen { linked, heard: self.last_heard(name), lost, started: self.started };
        seen.health(now, self.grace)
    }

    /// Whether `name` is linked but has not answered a heartbeat within [`SILENCE_LIMIT`] (a
    /// partitioned host's link can take longer than that to be closed).
    pub fn is_silent(&self, name: &str, now: SystemTime) -> bool {
        self.last_heard(name).is_some_and(|heard| silent_since(heard, now))
    }

    /// When host `name`'s link was lost (`None` while connected, or never seen).
    pub fn lost_since(&self, name: &str) -> Option<SystemTime> {
        self.lost.read().unwrap_or_else(PoisonError::into_inner).get(name).copied()
    }

    /// Records `name`'s new link (replacing an older one: a host reconnecting); returns its id
    /// and what tells the link's holder to close it ([`Peers::cut`]).
    pub fn connect(
        &self,
        name: &str,
        client: Arc<Client>,
        version: String,
    ) -> (u64, Arc<tokio::sync::Notify>) {
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let cut = Arc::new(tokio::sync::Notify::new());
        let link = Connected { client, since: SystemTime::now(), id, version, cut: Arc::clone(&cut) };
        let old = self.links.write().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), link);
        self.lost.write().unwrap_or_else(PoisonError::into_inner).remove(name);
        self.note_heard(name, SystemTime::now());
        if let Some(old) = old {
            old.cut.notify_one();
        }
        (id, cut)
    }

    /// Forgets link `id` of `name` (a newer link of the same host stays), and notes the loss. The
    /// grace counts from the host's last heartbeat, not from when the silent link was closed
    /// (as Nomad's heartbeat TTL and Kubernetes' node monitor grace do): a host that went quiet
    /// 15 s before its link was closed has used 15 s of its grace already.
    pub fn disconnect(&self, name: &str, id: u64) {
        let mut links = self.links.write().unwrap_or_else(PoisonError::into_inner);
        if links.get(name).is_some_and(|l| l.id == id) {
            links.remove(name);
            let since = lost_at(self.last_heard(name), SystemTime::now());
            self.lost.write().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), since);
        }
    }

    /// Closes `name`'s link, whatever it is (the host was deleted: its certificate is revoked).
    pub fn cut(&self, name: &str) {
        let removed = self.links.write().unwrap_or_else(PoisonError::into_inner).remove(name);
        if let Some(link) = removed {
            link.cut.notify_one();
        }
    }

    /// Records that `name` answered at `at`.
    pub fn note_heard(&self, name: &str, at: SystemTime) {
        self.heard.write().unwrap_or_else(PoisonError::into_inner).insert(name.to_string(), at);
    }

    /// When `name` last answered a heartbeat (or linked).
    pub fn last_heard(&self, name: &str) -> Option<SystemTime> {
        self.heard.read().unwrap_or_else(PoisonError::into_inner).get(name).copied()
    }

    /// Every host heard at least once, with when it last was.
    pub fn heard(&self) -> Vec<(String, SystemTime)> {
        let heard = self.heard.read().unwrap_or_else(PoisonError::into_inner);
        heard.iter().map(|(name, at)| (name.clone(), *at)).collect()
    }

    /// Pings every linked host every `every` (each ping given `every` to answer) and records who
    /// answered: what `vr hosts list` shows as the last heartbeat. A host that stops answering
    /// loses its link to the transport's own ping limit (`link::SILENCE_LIMIT`).
    pub fn spawn_heartbeats(self: &Arc<Self>, every: std::time::Duration) {
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(peers) = this.upgrade() else { return };
                let links: Vec<(String, Arc<Client>)> = {
                    let links = peers.links.read().unwrap_or_else(PoisonError::into_inner);
                    links.iter().map(|(name, l)| (name.clone(), Arc::clone(&l.client))).collect()
                };
                let pings = links.into_iter().map(|(name, client)| async move {
                    let ok = RemoteHost::new(&name, client, every).ping().await.is_ok();
                    (name, ok)
                });
                for (name, ok) in futures::future::join_all(pings).await {
                    if ok {
                        peers.note_heard(&name, SystemTime::now());
                    }
                }
            }
        });
    }

    fn client(&self, name: &str) -> Option<Arc<Client>> {
        let links = self.links.read().unwrap_or_else(PoisonError::into_inner);
        links.get(name).map(|l| Arc::clone(&l.client))
    }

    /// The connected hosts.
    pub fn list(&self) -> Vec<LinkInfo> {
        let links = self.links.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<LinkInfo> = links
            .iter()
            .map(|(name, l)| LinkInfo { name: name.clone(), since: l.since, version: l.version.clone() })
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

/// What the coordinator knows of a host's presence.
struct Seen {
    linked: bool,
    heard: Option<SystemTime>,
    lost: Option<SystemTime>,
    started: SystemTime,
}

impl Seen {
    fn health(&self, now: SystemTime, grace: std::time::Duration) -> HostHealth {
        let since = match (self.linked, self.heard) {
            (true, Some(heard)) if silent_since(heard, now) => heard,
            (true, _) => return HostHealth::Up,
            (false, _) => self.lost.unwrap_or(self.started),
        };
        if now.duration_since(since).unwrap_or_default() >= grace {
            HostHealth::Down
        } else {
            HostHealth::Suspect
        }
    }
}

/// Whether a host last heard at `heard` is silent at `now`: three heartbeats missed.
fn silent_since(heard: SystemTime, now: SystemTime) -> bool {
    now.duration_since(heard).unwrap_or_default() > SILENCE_LIMIT
}

/// When a host whose link closed at `now` counts as lost: at its last heartbeat, if any.
fn lost_at(heard: Option<SystemTime>, now: SystemTime) -> SystemTime {
    heard.map_or(now, |heard| heard.min(now))
}

/// Hosts this vrd serves itself, and joined hosts over their links.
pub struct FleetDirectory {
    /// Hosts without `peer`.
    pub local: LocalDirectory,
    /// The joined hosts' links.
    pub peers: Arc<Peers>,
}

impl HostDirectory for FleetDirectory {
    fn agent(&self, host: &HostSpec) -> Result<Arc<dyn HostAgent>, HostError> {
        if host.peer.is_none() {
            return self.local.agent(host);
        }
        if self.peers.is_silent(&host.name, SystemTime::now()) {
            return Err(HostError::Unreachable {
                host: host.name.clone(),
                why: format!(
                    "it has not answered a heartbeat for more than {} s (its link is still open)",
                    SILENCE_LIMIT.as_secs()
                ),
            });
        }
        match self.peers.client(&host.name) {
            Some(client) => Ok(Arc::new(RemoteHost::new(&host.name, client, CALL_DEADLINE))),
            None => Err(HostError::Unreachable {
                host: host.name.clone(),
                why: "its vrd is not connected to this coordinator (not started, not joined yet, or its link is down)"
                    .into(),
            }),
        }
    }

    fn health(&self, host: &HostSpec) -> HostHealth {
        match host.peer {
            None => HostHealth::Up,
            Some(_) => self.peers.health(&host.name, SystemTime::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lost_host_is_suspect_then_down_after_the_grace() {
        let peers = Peers::new(Duration::from_secs(60));
        let now = SystemTime::now();
        assert_eq!(peers.health("h1", now), HostHealth::Suspect, "not seen since the start: suspect");
        assert_eq!(peers.health("h1", now + Duration::from_secs(61)), HostHealth::Down);
        peers.lost.write().unwrap().insert("h1".into(), now);
        assert_eq!(peers.health("h1", now + Duration::from_secs(59)), HostHealth::Suspect);
        assert_eq!(peers.health("h1", now + Duration::from_secs(60)), HostHealth::Down);
    }

    #[test]
    fn a_linked_host_silent_for_three_heartbeats_is_suspect_then_down() {
        let now = SystemTime::now();
        let grace = Duration::from_secs(60);
        let seen = |heard_ago: u64| Seen {
            linked: true,
            heard: Some(now - Duration::from_secs(heard_ago)),
            lost: None,
            started: now - Duration::from_secs(3600),
        };
        assert_eq!(seen(4).health(now, grace), HostHealth::Up);
        assert_eq!(seen(15).health(now, grace), HostHealth::Up, "15 s is the limit");
        assert_eq!(seen(16).health(now, grace), HostHealth::Suspect, "its link is open, but it is silent");
        assert_eq!(seen(60).health(now, grace), HostHealth::Down, "the grace counts from when it was heard");
        let never = Seen { linked: true, heard: None, lost: None, started: now };
        assert_eq!(never.health(now, grace), HostHealth::Up, "just linked");
    }

    #[test]
    fn the_grace_counts_from_the_last_heartbeat() {
        let now = SystemTime::now();
        let heard = now - Duration::from_secs(15);
        assert_eq!(lost_at(Some(heard), now), heard, "silent for 15 s before the link closed");
        assert_eq!(lost_at(None, now), now);
        assert_eq!(lost_at(Some(now + Duration::from_secs(1)), now), now, "a clock step never lies ahead");
    }
}
