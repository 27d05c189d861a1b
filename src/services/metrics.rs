//! vrd's metrics, in the OpenMetrics text format Prometheus scrapes (`metrics_listen`, off by
//! default; see docs/metrics.md for each family and how to scrape a fleet).
//!
//! One set per process ([`metrics`]): the services that see an event count it where it happens
//! (a restart in the supervisor, a dispatch in the swarm service, a build in the build service, a
//! balancer change in `Balancers`); what is a state rather than an event (procs by state, store
//! bytes, heartbeat ages) is set by the daemon from its services at each scrape, so it is never
//! stale and costs nothing between scrapes. A global, as metric registries are: threading it
//! through every constructor would buy nothing, and the families are lock-free or short-locked.

use std::sync::atomic::AtomicU64;
use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of a proc's counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcLabels {
    /// The proc's name.
    pub proc: String,
}

/// Labels of the procs gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProcStateLabels {
    /// The host that runs them.
    pub host: String,
    /// Their state (RUNNING, FATAL, ...).
    pub state: String,
}

/// Labels of a duration that ends well or not.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `ok` or `failed`.
    pub outcome: String,
}

/// Labels of a balancer change.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    /// builtin, nginx, haproxy, varnish, dummy, remote, ...
    pub backend: String,
}

/// Labels of a swarm's counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SwarmLabels {
    /// The swarm's name.
    pub swarm: String,
}

/// Labels of the store gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// What the bytes are (`artifacts`: slugs and image tarballs by sha256).
    pub kind: String,
}

/// Labels of a joined host's gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HostLabels {
    /// The host's name.
    pub host: String,
}

type Durations<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every family vrd exports.
pub struct Metrics {
    registry: Registry,
    /// Procs of this host by state (set at each scrape).
    pub procs: Family<ProcStateLabels, Gauge>,
    /// Automatic restarts of a proc after its container ended.
    pub restarts: Family<ProcLabels, Counter>,
    /// Containers of a proc ended by the kernel's OOM killer.
    pub oom_kills: Family<ProcLabels, Counter>,
    /// Swarm dispatches, from start to their last step.
    pub dispatch_seconds: Durations<OutcomeLabels>,
    /// Builds, from start to a stored slug or a failure.
    pub build_seconds: Durations<OutcomeLabels>,
    /// One change of a balancer's pool (nodes added or removed), per backend.
    pub balancer_change_seconds: Durations<BackendLabels>,
    /// Procs whose uptests failed, per swarm (dispatches and periodic runs).
    pub uptest_failures: Family<SwarmLabels, Counter>,
    /// Bytes in the store (set at each scrape).
    pub store_bytes: Family<StoreLabels, Gauge>,
    /// Seconds since a joined host last answered a heartbeat (set at each scrape).
    pub heartbeat_age_seconds: Family<HostLabels, Gauge<f64, AtomicU64>>,
}

/// 5 ms to about 5.5 min, doubling: balancer changes take milliseconds, builds minutes.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 17))
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vr");
        let m = Metrics {
            procs: Family::default(),
            restarts: Family::default(),
            oom_kills: Family::default(),
            dispatch_seconds: Family::new_with_constructor(duration_histogram),
            build_seconds: Family::new_with_constructor(duration_histogram),
            balancer_change_seconds: Family::new_with_constructor(duration_histogram),
            uptest_failures: Family::default(),
            store_bytes: Family::default(),
            heartbeat_age_seconds: Family::default(),
            registry: Registry::default(),
        };
        registry.register("procs", "Procs of this host by state", m.procs.clone());
        registry.register("proc_restarts", "Automatic restarts of a proc after it ended", m.restarts.clone());
        registry.register(
            "proc_oom_kills",
            "Containers of a proc ended by the OOM killer",
            m.oom_kills.clone(),
        );
        registry.register("dispatch_duration_seconds", "Swarm dispatches", m.dispatch_seconds.clone());
        registry.register("build_duration_seconds", "Builds", m.build_seconds.clone());
        let balancer = m.balancer_change_seconds.clone();
        registry.register("balancer_change_duration_seconds", "Changes of a balancer pool", balancer);
        registry.register("uptest_failures", "Procs that failed their uptests", m.uptest_failures.clone());
        registry.register("store_bytes", "Bytes in the artifact store", m.store_bytes.clone());
        let ages = m.heartbeat_age_seconds.clone();
        registry.register("peer_heartbeat_age_seconds", "Seconds since a joined host last answered", ages);
        Metrics { registry, ..m }
    }

    /// The text a scrape gets.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }

    /// Counts an automatic restart of `proc`.
    pub fn restarted(&self, proc: &str) {
        self.restarts.get_or_create(&ProcLabels { proc: proc.to_string() }).inc();
    }

    /// Counts an OOM kill in `proc`.
    pub fn oom_killed(&self, proc: &str) {
        self.oom_kills.get_or_create(&ProcLabels { proc: proc.to_string() }).inc();
    }

    /// Records a dispatch that took `took`.
    pub fn dispatched(&self, ok: bool, took: Duration) {
        self.dispatch_seconds.get_or_create(&outcome(ok)).observe(took.as_secs_f64());
    }

    /// Records a build that took `took`.
    pub fn built(&self, ok: bool, took: Duration) {
        self.build_seconds.get_or_create(&outcome(ok)).observe(took.as_secs_f64());
    }

    /// Records one pool change of a `backend` balancer.
    pub fn balancer_changed(&self, backend: &str, took: Duration) {
        let labels = BackendLabels { backend: backend.to_string() };
        self.balancer_change_seconds.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Counts `procs` procs of `swarm` that failed their uptests.
    pub fn uptests_failed(&self, swarm: &str, procs: u64) {
        self.uptest_failures.get_or_create(&SwarmLabels { swarm: swarm.to_string() }).inc_by(procs);
    }

    /// Sets the procs gauge to `counts` (host, state, count); states not named are dropped.
    pub fn set_procs(&self, counts: impl IntoIterator<Item = (String, String, i64)>) {
        self.procs.clear();
        for (host, state, n) in counts {
            self.procs.get_or_create(&ProcStateLabels { host, state }).set(n);
        }
    }

    /// Sets the store gauge.
    pub fn set_store_bytes(&self, kind: &str, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.store_bytes.get_or_create(&StoreLabels { kind: kind.to_string() }).set(bytes);
    }

    /// Sets the heartbeat ages to `ages`; hosts not named are dropped.
    pub fn set_heartbeat_ages(&self, ages: impl IntoIterator<Item = (String, Duration)>) {
        self.heartbeat_age_seconds.clear();
        for (host, age) in ages {
            self.heartbeat_age_seconds.get_or_create(&HostLabels { host }).set(age.as_secs_f64());
        }
    }
}

fn outcome(ok: bool) -> OutcomeLabels {
    OutcomeLabels { outcome: if ok { "ok" } else { "failed" }.to_string() }
}

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_names_every_family_and_counts_what_happened() {
        let m = Metrics::new();
        m.restarted("web-1");
        m.restarted("web-1");
        m.dispatched(true, Duration::from_millis(1500));
        m.balancer_changed("nginx", Duration::from_millis(3));
        m.set_procs([("h1".into(), "RUNNING".into(), 3), ("h1".into(), "FATAL".into(), 1)]);
        m.set_heartbeat_ages([("h2".into(), Duration::from_millis(2500))]);
        let text = m.encode();
        assert!(text.contains("vr_proc_restarts_total{proc=\"web-1\"} 2"), "{text}");
        assert!(text.contains("vr_procs{host=\"h1\",state=\"RUNNING\"} 3"), "{text}");
        assert!(text.contains("vr_dispatch_duration_seconds_count{outcome=\"ok\"} 1"), "{text}");
        assert!(
            text.contains("vr_balancer_change_duration_seconds_bucket{le=\"0.005\",backend=\"nginx\"} 1"),
            "{text}"
        );
        assert!(text.contains("vr_peer_heartbeat_age_seconds{host=\"h2\"} 2.5"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
        // A state no proc is in any more leaves the gauge.
        m.set_procs([("h1".into(), "RUNNING".into(), 4)]);
        assert!(!m.encode().contains("FATAL"));
    }
}
