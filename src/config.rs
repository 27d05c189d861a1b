//! The daemon's settings: a TOML file (`vrd daemon --config FILE`), then flags over it, then the
//! defaults here. Paths are injected (never hard-coded elsewhere), so tests and several daemons
//! side by side use their own directories. Every error names the key and says what is allowed.

use std::path::{Component, Path, PathBuf};

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::balancer::BalancerConfig;

/// The default data dir (images, builds, procs, state).
pub const DEFAULT_DATA_DIR: &str = "/var/lib/vrd";
/// The default run dir (socket, runtime files).
pub const DEFAULT_RUN_DIR: &str = "/run/vrd";
/// The default API socket.
pub const DEFAULT_SOCKET: &str = "/run/vrd/vrd.sock";
/// Where the cgroup file systems are mounted.
pub const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The cgroup under which this daemon's containers live.
pub const DEFAULT_CGROUP_PARENT: &str = "vrd";
/// The client's environment variable naming the socket.
pub const SOCKET_ENV: &str = "VR_SOCKET";

/// Everything the daemon needs to know to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonConfig {
    /// Images, builds, procs.
    pub data_dir: PathBuf,
    /// Runtime files.
    pub run_dir: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// The cgroup root.
    pub cgroup_root: PathBuf,
    /// The cgroup parent of every container.
    pub cgroup_parent: String,
    /// The group that may use the socket (mode 0660); root only when `None`.
    pub socket_gid: Option<u32>,
    /// Seconds from a supervised proc's SIGTERM to its SIGKILL.
    pub stop_grace_secs: u64,
    /// Seconds one uptest run (all tests of a proc) may take.
    pub uptest_timeout_secs: u64,
    /// The named balancers swarms route through (the builtin router is added when absent).
    pub balancers: BTreeMap<String, BalancerConfig>,
    /// The ports swarms give new procs: `start..end` (end excluded), VR's 5000..6000 by default.
    pub port_range: (u16, u16),
    /// Seconds between taking a proc out of its pool and stopping it, so requests in flight finish.
    pub drain_secs: u64,
    /// This machine's host name in the fleet (procs, events, certificates).
    pub host_name: String,
    /// Where a coordinator listens for its hosts (mutual TLS); `None`: not a coordinator.
    pub peer_listen: Option<std::net::SocketAddr>,
    /// The address hosts dial to reach this coordinator (`peer_listen` as seen from the hosts).
    pub peer_advertise: Option<String>,
    /// Where /metrics is served over plain HTTP (Prometheus); `None`: not served.
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Where the HTTPS API listens; `None`: not served.
    pub http_listen: Option<std::net::SocketAddr>,
    /// The HTTPS listener's certificate chain and key (PEM); `None`: one signed by vrd's CA.
    pub http_tls: Option<(PathBuf, PathBuf)>,
    /// Seconds a joined host may be lost (suspect) before its procs are replaced elsewhere.
    pub host_grace_secs: u64,
    /// Days a gone proc's log stays readable (`vr logs`) before the scooper removes it.
    pub log_retention_days: u64,
    /// Days audit entries are kept before the scooper removes them.
    pub audit_retention_days: u64,
    /// A group whose members are admins (root always is); other socket callers are members.
    pub admins_gid: Option<u32>,
    /// Host directories under which members may mount volumes (admins anywhere).
    pub volume_prefixes: Vec<PathBuf>,
    /// Free room kept on the data dir, and the memory limit of procs that set none.
    pub host_limits: crate::model::limits::HostLimits,
    /// The bridge and subnet of procs with `network: private`.
    pub private_network: crate::model::network::PrivateNetwork,
    /// The PostgreSQL database that holds the model (coordinators share it); `None`: SQLite in
    /// the data dir.
    pub state_url: Option<String>,
    /// PEM certificates to trust for `state_url`'s TLS besides the system's roots.
    pub state_ca_file: Option<PathBuf>,
    /// Seconds the coordinators' lease lasts unless renewed (renewed every third of it).
    pub lease_secs: u64,
}

/// How long the coordinators' lease lasts unless renewed (Diego's presence TTL).
pub const DEFAULT_LEASE_SECS: u64 = 15;

/// How long audit entries are kept by default.
pub const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 365;

/// How long a gone proc's log stays readable by default.
pub const DEFAULT_LOG_RETENTION_DAYS: u64 = 7;

/// How long a lost host may stay away before its procs are replaced (see ARCHITECTURE "The fleet").
pub const DEFAULT_HOST_GRACE_SECS: u64 = 60;

/// How long a de-routed proc keeps running before it is stopped.
pub const DEFAULT_DRAIN_SECS: u64 = 2;

/// VR's `PORT_RANGE_START` and `PORT_RANGE_END`.
pub const DEFAULT_PORT_RANGE: (u16, u16) = (5000, 6000);

/// How long uptests may take by default.
pub const DEFAULT_UPTEST_TIMEOUT_SECS: u64 = 60;

/// Heroku's stop grace period.
pub const DEFAULT_STOP_GRACE_SECS: u64 = 30;

/// The settings as the config file and the `vrd daemon` flags give them (one definition for both,
/// so they cannot drift); every one optional, flags win over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Images, builds, procs and the state database [default: /var/lib/vrd]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Runtime files [default: /run/vrd]
    #[arg(long)]
    pub run_dir: Option<PathBuf>,
    /// The API socket [default: RUN_DIR/vrd.sock]
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Where the cgroup file systems are mounted [default: /sys/fs/cgroup]
    #[arg(long)]
    pub cgroup_root: Option<PathBuf>,
    /// The cgroup every container is created under [default: vrd]
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// A numeric group id whose members may use the socket (mode 0660)
    #[arg(long)]
    pub socket_gid: Option<u32>,
    /// Seconds from a supervised proc's SIGTERM to its SIGKILL [default: 30]
    #[arg(long)]
    pub stop_grace_secs: Option<u64>,
    /// Seconds one uptest run (all tests of a proc) may take before it is stopped [default: 60]
    #[arg(long)]
    pub uptest_timeout_secs: Option<u64>,
    /// The first port swarms give procs [default: 5000]
    #[arg(long)]
    pub port_range_start: Option<u16>,
    /// One past the last port swarms give procs [default: 6000]
    #[arg(long)]
    pub port_range_end: Option<u16>,
    /// Seconds between taking a proc out of its pool and stopping it [default: 2]
    #[arg(long)]
    pub drain_secs: Option<u64>,
    /// Days a gone proc's log stays readable with `vr logs` [default: 7]
    #[arg(long)]
    pub log_retention_days: Option<u64>,
    /// Days audit entries are kept (`vr audit`) [default: 365]
    #[arg(long)]
    pub audit_retention_days: Option<u64>,
    /// Keep the model in PostgreSQL, shared by coordinators: postgres://USER@HOST/DB?sslmode=require
    /// [default: SQLite in the data dir]. Put a password in the config file, not on the command line
    #[arg(long)]
    pub state_url: Option<String>,
    /// PEM certificates to trust for state_url's TLS, besides the system's roots
    #[arg(long)]
    pub state_ca_file: Option<PathBuf>,
    /// Seconds the coordinators' lease lasts unless renewed; a standby leads this long after the
    /// leader stops renewing [default: 15]
    #[arg(long)]
    pub lease_secs: Option<u64>,
    /// This machine's name in the fleet [default: the system's host name]
    #[arg(long)]
    pub host_name: Option<String>,
    /// Coordinate other hosts: listen for them (mutual TLS) on ADDR:PORT, e.g. 0.0.0.0:7443
    #[arg(long)]
    pub peer_listen: Option<String>,
    /// The ADDR:PORT hosts dial to reach this coordinator [default: peer_listen, unless 0.0.0.0]
    #[arg(long)]
    pub peer_advertise: Option<String>,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics, e.g. 127.0.0.1:9477 [default: off]
    #[arg(long)]
    pub metrics_listen: Option<String>,
    /// Serve the HTTPS API on ADDR:PORT, e.g. 0.0.0.0:8443 [default: off]
    #[arg(long)]
    pub http_listen: Option<String>,
    /// The HTTPS listener's certificate chain (PEM) [default: one signed by vrd's CA]
    #[arg(long)]
    pub http_cert: Option<PathBuf>,
    /// The key of http_cert (PEM)
    #[arg(long)]
    pub http_key: Option<PathBuf>,
    /// Seconds a lost host stays suspect (its nodes out of their pools) before its procs are
    /// replaced on other hosts [default: 60]
    #[arg(long)]
    pub host_grace_secs: Option<u64>,
    /// A numeric group id whose members are vrd's admins, like root (see README "Who may do what")
    #[arg(long)]
    pub admins_gid: Option<u32>,
    /// Host directories under which members of the socket's group may mount volumes; repeat the
    /// flag for more [default: none, so only admins may mount volumes]
    #[arg(long = "volume-prefix")]
    #[serde(default)]
    pub volume_prefixes: Option<Vec<PathBuf>>,
    /// New deploys, builds and fetches are refused while the data dir's file system has less free
    /// than this, e.g. 5G [default: 1G]
    #[arg(long)]
    pub min_free_disk: Option<String>,
    /// The memory limit of a proc whose proc.yaml or swarm sets none, e.g. 512M, or "none"
    /// [default: 1G]
    #[arg(long)]
    pub default_mem_limit: Option<String>,
    /// How much a proc's container may write to its own root (a tmpfs counted against its memory
    /// limit), e.g. 2G, or "none" for no bound on the data dir's disk [default: 1G]
    #[arg(long)]
    pub root_disk_limit: Option<String>,
    /// The host bridge procs with `network: private` are attached to [default: vr0]
    #[arg(long)]
    pub private_bridge: Option<String>,
    /// The IPv4 subnet of that bridge; the bridge takes its first address [default: 10.77.0.0/16]
    #[arg(long)]
    pub private_subnet: Option<String>,
    /// `[balancers.NAME]` tables (config file only): see docs/balancers.md
    #[arg(skip)]
    pub balancers: Option<BTreeMap<String, BalancerConfig>>,
}

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read the config file {path}: {cause}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
    /// The file is not valid TOML for vrd.
    #[error("the config file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message, which names the key and the line.
        message: String,
    },
    /// A value is not allowed.
    #[error("config key '{key}': {problem}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong, and what to write instead.
        problem: String,
    },
}

impl RawConfig {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<RawConfig, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|cause| ConfigError::Read { path: path.into(), cause })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse { path: path.into(), message: e.to_string() })
    }

    /// Settings in `over` win over those in `self`.
    pub fn overridden_by(self, over: RawConfig) -> RawConfig {
        RawConfig {
            data_dir: over.data_dir.or(self.data_dir),
            run_dir: over.run_dir.or(self.run_dir),
            socket: over.socket.or(self.socket),
            cgroup_root: over.cgroup_root.or(self.cgroup_root),
            cgroup_parent: over.cgroup_parent.or(self.cgroup_parent),
            socket_gid: over.socket_gid.or(self.socket_gid),
            stop_grace_secs: over.stop_grace_secs.or(self.stop_grace_secs),
            uptest_timeout_secs: over.uptest_timeout_secs.or(self.uptest_timeout_secs),
            port_range_start: over.port_range_start.or(self.port_range_start),
            port_range_end: over.port_range_end.or(self.port_range_end),
            drain_secs: over.drain_secs.or(self.drain_secs),
            log_retention_days: over.log_retention_days.or(self.log_retention_days),
            audit_retention_days: over.audit_retention_days.or(self.audit_retention_days),
            state_url: over.state_url.or(self.state_url),
            state_ca_file: over.state_ca_file.or(self.state_ca_file),
            lease_secs: over.lease_secs.or(self.lease_secs),
            host_name: over.host_name.or(self.host_name),
            peer_listen: over.peer_listen.or(self.peer_listen),
            peer_advertise: over.peer_advertise.or(self.peer_advertise),
            metrics_listen: over.metrics_listen.or(self.metrics_listen),
            http_listen: over.http_listen.or(self.http_listen),
            http_cert: over.http_cert.or(self.http_cert),
            http_key: over.http_key.or(self.http_key),
            host_grace_secs: over.host_grace_secs.or(self.host_grace_secs),
            admins_gid: over.admins_gid.or(self.admins_gid),
            volume_prefixes: over.volume_prefixes.or(self.volume_prefixes),
            min_free_disk: over.min_free_disk.or(self.min_free_disk),
            default_mem_limit: over.default_mem_limit.or(self.default_mem_limit),
            root_disk_limit: over.root_disk_limit.or(self.root_disk_limit),
            private_bridge: over.private_bridge.or(self.private_bridge),
            private_subnet: over.private_subnet.or(self.private_subnet),
            balancers: over.balancers.or(self.balancers),
        }
    }

    /// Fills in defaults and validates.
    pub fn validate(self) -> Result<DaemonConfig, ConfigError> {
        let data_dir = absolute("data_dir", self.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into()))?;
        // The data dir ends up in overlayfs's option string, where ',' and ':' are separators.
        if data_dir.to_string_lossy().contains([',', ':']) {
            return Err(invalid(
                "data_dir",
                format!("{} contains ',' or ':', which overlayfs options can't hold", data_dir.display()),
            ));
        }
        let run_dir = absolute("run_dir", self.run_dir.unwrap_or_else(|| DEFAULT_RUN_DIR.into()))?;
        let socket = absolute("socket", self.socket.unwrap_or_else(|| run_dir.join("vrd.sock")))?;
        let cgroup_root =
            absolute("cgroup_root", self.cgroup_root.unwrap_or_else(|| DEFAULT_CGROUP_ROOT.into()))?;
        let cgroup_parent = self.cgroup_parent.unwrap_or_else(|| DEFAULT_CGROUP_PARENT.into());
        let parent_ok = !cgroup_parent.is_empty()
            && !cgroup_parent.starts_with('/')
            && cgroup_parent.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
        if !parent_ok {
            return Err(invalid(
                "cgroup_parent",
                format!("'{cgroup_parent}' must be a relative cgroup path such as vrd or system/vrd"),
            ));
        }
        let stop_grace_secs = self.stop_grace_secs.unwrap_or(DEFAULT_STOP_GRACE_SECS);
        if stop_grace_secs > 3600 {
            return Err(invalid(
                "stop_grace_secs",
                format!("{stop_grace_secs} is more than an hour; stopped procs would linger that long"),
            ));
        }
        let port_range = (
            self.port_range_start.unwrap_or(DEFAULT_PORT_RANGE.0),
            self.port_range_end.unwrap_or(DEFAULT_PORT_RANGE.1),
        );
        if port_range.0 == 0 || port_range.0 >= port_range.1 {
            return Err(invalid(
                "port_range_start",
                format!(
                    "the range {}..{} is empty or starts at 0; give a start below the end, e.g. 5000 and 6000",
                    port_range.0, port_range.1
                ),
            ));
        }
        let host_name = match self.host_name {
            Some(name) => name,
            None => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into()),
        };
        crate::model::names::host_name(&host_name).map_err(|e| invalid("host_name", e.to_string()))?;
        let peer_listen = listen_address("peer_listen", self.peer_listen, "0.0.0.0:7443")?;
        let metrics_listen = listen_address("metrics_listen", self.metrics_listen, "127.0.0.1:9477")?;
        let http_listen = listen_address("http_listen", self.http_listen, "0.0.0.0:8443")?;
        let http_tls = match (self.http_cert, self.http_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => {
                return Err(invalid(
                    "http_cert",
                    "http_cert and http_key go together: set both, or neither for a certificate signed by vrd's CA".into(),
                ))
            }
        };
        let volume_prefixes = volume_prefixes(self.volume_prefixes.unwrap_or_default())?;
        let host_limits = host_limits(
            self.min_free_disk.as_deref(),
            self.default_mem_limit.as_deref(),
            self.root_disk_limit.as_deref(),
        )?;
        let private_network = private_network(self.private_bridge, self.private_subnet.as_deref())?;
        let state_url = self.state_url.map(state_url).transpose()?;
        if self.state_ca_file.is_some() && state_url.is_none() {
            return Err(invalid(
                "state_ca_file",
                "it is for state_url's TLS: set state_url too, or remove it".into(),
            ));
        }
        let state_ca_file = self.state_ca_file.map(|p| absolute("state_ca_file", p)).transpose()?;
        let lease_secs = self.lease_secs.unwrap_or(DEFAULT_LEASE_SECS);
        if !(3..=300).contains(&lease_secs) {
            return Err(invalid(
                "lease_secs",
                format!("{lease_secs} is outside 3..=300: it is renewed every third of it, and a standby waits that long"),
            ));
        }
        Ok(DaemonConfig {
            data_dir,
            run_dir,
            socket,
            cgroup_root,
            cgroup_parent,
            socket_gid: self.socket_gid,
            stop_grace_secs,
            uptest_timeout_secs: self.uptest_timeout_secs.unwrap_or(DEFAULT_UPTEST_TIMEOUT_SECS).max(1),
            balancers: self.balancers.unwrap_or_default(),
            port_range,
            drain_secs: self.drain_secs.unwrap_or(DEFAULT_DRAIN_SECS),
            log_retention_days: self.log_retention_days.unwrap_or(DEFAULT_LOG_RETENTION_DAYS),
            audit_retention_days: self.audit_retention_days.unwrap_or(DEFAULT_AUDIT_RETENTION_DAYS),
            host_name,
            peer_listen,
            peer_advertise: self.peer_advertise,
            metrics_listen,
            http_listen,
            http_tls,
            host_grace_secs: self.host_grace_secs.unwrap_or(DEFAULT_HOST_GRACE_SECS),
            admins_gid: self.admins_gid,
            volume_prefixes,
            host_limits,
            private_network,
            state_url,
            state_ca_file,
            lease_secs,
        })
    }
}

/// A PostgreSQL URL for the model, checked as the client will read it.
fn state_url(url: String) -> Result<String, ConfigError> {
    let scheme_ok = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !scheme_ok {
        return Err(invalid(
            "state_url",
            "it must be a PostgreSQL URL, e.g. postgres://vrd@db.example/vr?sslmode=require (leave it out for SQLite in the data dir)".into(),
        ));
    }
    url.parse::<postgres::Config>()
        .map_err(|e| invalid("state_url", format!("it does not parse as a PostgreSQL URL: {e}")))?;
    Ok(url)
}

/// A listening address setting `key`, parsed (`example` shows the form in the error).
fn listen_address(
    key: &'static str,
    value: Option<String>,
    example: &str,
) -> Result<Option<std::net::SocketAddr>, ConfigError> {
    value
        .map(|a| {
            a.parse().map_err(|_| {
                invalid(key, format!("'{a}' is not ADDR:PORT with an IP address, e.g. {example}"))
            })
        })
        .transpose()
}

/// `private_bridge` and `private_subnet`, checked.
fn private_network(
    bridge: Option<String>,
    subnet: Option<&str>,
) -> Result<crate::model::network::PrivateNetwork, ConfigError> {
    use crate::model::network::{check_bridge_name, PrivateNetwork};
    let mut net = PrivateNetwork::default();
    if let Some(bridge) = bridge {
        check_bridge_name(&bridge).map_err(|e| invalid("private_bridge", e))?;
        net.bridge = bridge;
    }
    if let Some(subnet) = subnet {
        net.subnet = subnet.parse().map_err(|e| invalid("private_subnet", e))?;
    }
    Ok(net)
}

/// Absolute, without `.` or `..` (a prefix is compared component by component), and not `/`
/// itself (that would let members mount anything, which is what an admin is for).
fn volume_prefixes(prefixes: Vec<PathBuf>) -> Result<Vec<PathBuf>, ConfigError> {
    for p in &prefixes {
        let p = absolute("volume_prefixes", p.clone())?;
        let plain = p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !plain || p == Path::new("/") {
            return Err(invalid(
                "volume_prefixes",
                format!("'{}' must be an absolute directory other than /, without . or ..", p.display()),
            ));
        }
    }
    Ok(prefixes)
}

/// `min_free_disk`, `default_mem_limit` and `root_disk_limit`, as VR's size strings; `none` lifts
/// the last two.
fn host_limits(
    min_free: Option<&str>,
    memory: Option<&str>,
    root_disk: Option<&str>,
) -> Result<crate::model::limits::HostLimits, ConfigError> {
    let mut limits = crate::model::limits::HostLimits::default();
    if let Some(text) = min_free {
        limits.min_free_disk =
            crate::model::limits::parse_size(text).map_err(|e| invalid("min_free_disk", e.to_string()))?;
    }
    if let Some(text) = memory {
        limits.default_memory = bound("default_mem_limit", text, 4 << 20, "512M")?;
    }
    if let Some(text) = root_disk {
        limits.root_disk = bound("root_disk_limit", text, 1 << 20, "1G")?;
    }
    Ok(limits)
}

/// A size that may be `none` (no bound), at least `least` bytes; `example` is what to write.
fn bound(key: &'static str, text: &str, least: u64, example: &str) -> Result<Option<u64>, ConfigError> {
    if text == "none" {
        return Ok(None);
    }
    let bytes = crate::model::limits::parse_size(text).map_err(|e| invalid(key, e.to_string()))?;
    if bytes < least {
        return Err(invalid(
            key,
            format!(
                "'{text}' is below {} MiB, too little to run anything; write e.g. {example}, or none",
                least >> 20
            ),
        ));
    }
    Ok(Some(bytes))
}

fn invalid(key: &'static str, problem: String) -> ConfigError {
    ConfigError::Invalid { key, problem }
}

fn absolute(key: &'static str, path: PathBuf) -> Result<PathBuf, ConfigError> {
    if path.is_absolute() {
        Ok(path)
    } else {
        Err(invalid(key, format!("{} must be an absolute path", path.display())))
    }
}

#[cfg(test)]
mod tests {
    /// The config the packages install documents the defaults: with every default's line
    /// uncommented it reads as no config at all (examples, marked "# e.g.", stay comments).
    #[test]
    fn the_packaged_config_shows_the_defaults() {
        let text = include_str!("../packaging/vrd.toml");
        let uncommented: String = text
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| !l.ends_with("# e.g.") && l.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(uncommented.lines().count() >= 18, "{uncommented}");
        let shown: RawConfig = toml::from_str(&uncommented).unwrap();
        assert_eq!(shown.validate().unwrap(), RawConfig::default().validate().unwrap(), "{uncommented}");
        let as_shipped: RawConfig = toml::from_str(text).unwrap();
        assert_eq!(as_shipped, RawConfig::default());
    }

    use super::*;

    #[test]
    fn host_limits_take_sizes_and_none_and_refuse_what_could_run_nothing() {
        let limits = host_limits(Some("5G"), Some("none"), Some("2G")).unwrap();
        assert_eq!(
            (limits.min_free_disk, limits.default_memory, limits.root_disk),
            (5 << 30, None, Some(2 << 30))
        );
        assert_eq!(host_limits(None, None, None).unwrap(), Default::default());
        let tiny = host_limits(None, Some("1M"), None).unwrap_err().to_string();
        assert!(tiny.contains("default_mem_limit") && tiny.contains("512M"), "{tiny}");
        let bad = host_limits(None, None, Some("lots")).unwrap_err().to_string();
        assert!(bad.contains("root_disk_limit") && bad.contains("not a size"), "{bad}");
    }

    #[test]
    fn defaults_and_derived_socket() {
        let c = RawConfig::default().validate().unwrap();
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(c.socket, PathBuf::from(DEFAULT_SOCKET));
        let c = RawConfig { run_dir: Some("/tmp/r".into()), ..Default::default() }.validate().unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/r/vrd.sock"));
    }

    #[test]
    fn flags_win_over_the_file() {
        let file =
            RawConfig { data_dir: Some("/a".into()), cgroup_parent: Some("x".into()), ..Default::default() };
        let flags = RawConfig { data_dir: Some("/b".into()), ..Default::default() };
        let c = file.overridden_by(flags).validate().unwrap();
        assert_eq!((c.data_dir, c.cgroup_parent.as_str()), (PathBuf::from("/b"), "x"));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vrd.toml");
        std::fs::write(&path, "data_dir = \"/x\"\nsokcet = \"/y\"\n").unwrap();
        let err = RawConfig::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("sokcet") && err.contains("expected one of"), "{err}");
        std::fs::write(&path, "socket_gid = \"wheel\"\n").unwrap();
        assert!(RawConfig::from_file(&path).unwrap_err().to_string().contains("socket_gid"));
        let err =
            RawConfig { data_dir: Some("relative".into()), ..Default::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("data_dir") && err.to_string().contains("absolute"), "{err}");
        let err =
            RawConfig { cgroup_parent: Some("../up".into()), ..Default::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("cgroup_parent"), "{err}");
        let err = RawConfig { data_dir: Some("/a,b".into()), ..Default::default() }.validate().unwrap_err();
        assert!(err.to_string().contains("overlayfs"), "{err}");
    }

    #[test]
    fn the_model_in_postgresql_is_checked_before_vrd_starts() {
        let with = |url: &str| RawConfig { state_url: Some(url.into()), ..Default::default() }.validate();
        let c = with("postgres://vrd:pw@db.example/vr?sslmode=require").unwrap();
        assert_eq!(c.state_url.as_deref(), Some("postgres://vrd:pw@db.example/vr?sslmode=require"));
        assert_eq!(c.lease_secs, DEFAULT_LEASE_SECS);
        let err = with("mysql://db/vr").unwrap_err().to_string();
        assert!(err.contains("state_url") && err.contains("PostgreSQL URL"), "{err}");
        let err = with("postgres://db/vr?sslmode=sometimes").unwrap_err().to_string();
        assert!(err.contains("state_url") && err.contains("does not parse"), "{err}");
        let ca = RawConfig { state_ca_file: Some("/etc/ca.pem".into()), ..Default::default() }.validate();
        assert!(ca.unwrap_err().to_string().contains("set state_url too"));
        let lease = RawConfig { lease_secs: Some(1), ..Default::default() }.validate();
        assert!(lease.unwrap_err().to_string().contains("lease_secs"));
    }
}
