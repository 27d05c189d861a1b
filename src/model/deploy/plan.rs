//! The dispatch decisions of VR's swarm algorithm as pure functions, so each rule is a unit test:
//! which of a swarm's procs are current and which stale, where new procs go, which port they get,
//! and which procs go when a swarm shrinks.

use std::collections::{BTreeMap, BTreeSet};

use super::SwarmSpec;

/// A proc a swarm deployed, as its record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedProc {
    /// The host it runs on.
    pub host: String,
    /// Its six-part name.
    pub name: String,
    /// Its app, config and proc name, and its release's hash.
    pub app: String,
    /// Its config name.
    pub config: String,
    /// Its Procfile entry.
    pub proc: String,
    /// Its release hash.
    pub hash: String,
    /// Its port.
    pub port: u16,
}

/// A host as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLoad {
    /// Its name.
    pub name: String,
    /// Whether it takes new procs.
    pub active: bool,
    /// Procs of this swarm on it.
    pub swarm_procs: usize,
    /// Procs of any kind on it.
    pub total_procs: usize,
}

/// A swarm's procs split by whether they are what the swarm now asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Same app, config, proc and release hash, on a host of the swarm's squad.
    pub current: Vec<OwnedProc>,
    /// Everything else the swarm owns: old releases, and procs of its old identity (another app,
    /// config, proc name or squad), which VR left running.
    pub stale: Vec<OwnedProc>,
}

/// Splits `owned` into current and stale for `swarm` at release `hash` on `squad_hosts`.
pub fn census(owned: &[OwnedProc], swarm: &SwarmSpec, hash: &str, squad_hosts: &BTreeSet<String>) -> Census {
    let (current, stale) = owned.iter().cloned().partition(|p| {
        p.app == swarm.app
            && p.config == swarm.config_name
            && p.proc == swarm.proc_name
            && p.hash == hash
            && squad_hosts.contains(&p.host)
    });
    Census { current, stale }
}

/// VR's `get_prioritized_hosts`: the active hosts, those with fewest procs of this swarm first,
/// then fewest procs overall, then by name (so equal loads place predictably).
pub fn prioritized_hosts(hosts: &[HostLoad]) -> Vec<String> {
    let mut active: Vec<&HostLoad> = hosts.iter().filter(|h| h.active).collect();
    active.sort_by(|a, b| {
        (a.swarm_procs, a.total_procs, &a.name).cmp(&(b.swarm_procs, b.total_procs, &b.name))
    });
    active.into_iter().map(|h| h.name.clone()).collect()
}

/// Round-robin over the prioritized hosts: the host of each of `needed` new procs.
pub fn placements(needed: usize, hosts: &[String]) -> Vec<String> {
    if hosts.is_empty() {
        return Vec::new();
    }
    (0..needed).map(|i| hosts[i % hosts.len()].clone()).collect()
}

/// A free port in `start..end` not in `used`, starting the search at a point picked by `seed`
/// (random ports make reuse of a just-freed port, and so routing crosstalk, unlikely).
pub fn free_port(range: (u16, u16), used: &BTreeSet<u16>, seed: u64) -> Option<u16> {
    let (start, end) = range;
    let span = u64::from(end.checked_sub(start)?);
    if span == 0 {
        return None;
    }
    (0..span).map(|i| start + ((seed.wrapping_add(i)) % span) as u16).find(|p| !used.contains(p))
}

/// The procs to remove when a swarm has `excess` current procs too many: from the busiest hosts
/// first, one per host in turn, so the swarm stays spread.
pub fn surplus(current: &[OwnedProc], excess: usize) -> Vec<OwnedProc> {
    let mut by_host: BTreeMap<&str, Vec<&OwnedProc>> = BTreeMap::new();
    for p in current {
        by_host.entry(&p.host).or_default().push(p);
    }
    let mut chosen = Vec::new();
    while chosen.len() < excess {
        let Some((_, procs)) = by_host.iter_mut().filter(|(_, v)| !v.is_empty()).max_by_key(|(_, v)| v.len())
        else {
            break;
        };
        if let Some(p) = procs.pop() {
            chosen.push(p.clone());
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn swarm() -> SwarmSpec {
        serde_json::from_value(
            json!({"app": "hello", "version": "1", "proc_name": "web", "config_name": "prod"}),
        )
        .unwrap()
    }

    fn proc(host: &str, app: &str, config: &str, hash: &str, port: u16) -> OwnedProc {
        OwnedProc {
            host: host.into(),
            name: format!("{app}-1-{config}-{hash}-web-{port}"),
            app: app.into(),
            config: config.into(),
            proc: "web".into(),
            hash: hash.into(),
            port,
        }
    }

    #[test]
    fn census_counts_old_identities_and_other_squads_as_stale() {
        let squad = BTreeSet::from(["h1".to_string(), "h2".to_string()]);
        let owned = [
            proc("h1", "hello", "prod", "aaaa", 5001),
            proc("h2", "hello", "prod", "bbbb", 5002),
            proc("h1", "hello", "staging", "aaaa", 5003),
            proc("h3", "hello", "prod", "aaaa", 5004),
            proc("h1", "other", "prod", "aaaa", 5005),
        ];
        let c = census(&owned, &swarm(), "aaaa", &squad);
        assert_eq!(c.current.iter().map(|p| p.port).collect::<Vec<_>>(), [5001]);
        assert_eq!(c.stale.iter().map(|p| p.port).collect::<Vec<_>>(), [5002, 5003, 5004, 5005]);
    }

    #[test]
    fn placement_prefers_hosts_without_this_swarm_then_the_least_busy() {
        let h = |name: &str, active, swarm_procs, total_procs| HostLoad {
            name: name.into(),
            active,
            swarm_procs,
            total_procs,
        };
        let hosts = [h("a", true, 1, 1), h("b", true, 0, 9), h("c", true, 0, 2), h("d", false, 0, 0)];
        let order = prioritized_hosts(&hosts);
        assert_eq!(order, ["c", "b", "a"]);
        assert_eq!(placements(4, &order), ["c", "b", "a", "c"]);
        assert!(placements(2, &[]).is_empty());
    }

    #[test]
    fn ports_avoid_used_ones_and_run_out_cleanly() {
        let used = BTreeSet::from([5000, 5001]);
        assert_eq!(free_port((5000, 5003), &used, 0), Some(5002));
        assert_eq!(free_port((5000, 5003), &used, 1), Some(5002));
        let all = BTreeSet::from([5000, 5001, 5002]);
        assert_eq!(free_port((5000, 5003), &all, 7), None);
        let picks: BTreeSet<u16> = (0..50).filter_map(|s| free_port((5000, 6000), &used, s * 97)).collect();
        assert!(picks.len() > 40, "ports should spread with the seed: {picks:?}");
    }

    #[test]
    fn shrinking_takes_from_the_busiest_host_first() {
        let current = [
            proc("a", "hello", "prod", "h", 1),
            proc("a", "hello", "prod", "h", 2),
            proc("a", "hello", "prod", "h", 3),
            proc("b", "hello", "prod", "h", 4),
        ];
        let gone = surplus(&current, 2);
        assert_eq!(gone.iter().map(|p| p.host.as_str()).collect::<Vec<_>>(), ["a", "a"]);
        assert_eq!(surplus(&current, 9).len(), 4);
    }
}
