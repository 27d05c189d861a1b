//! Balancer settings: Velociraptor's `BALANCERS` (a name → backend table), as the `[balancers.NAME]`
//! tables of vrd's config file. Each swarm names one. Pure data; the backends are in
//! `services::balancer`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The balancer every installation has, even with no `[balancers]` table: the builtin router.
pub const DEFAULT_BALANCER: &str = "builtin";

/// One named balancer: `kind` picks the backend, the other keys are that backend's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum BalancerConfig {
    /// Keeps the node sets in vrd's state and routes nothing (tests, dry runs).
    Dummy(DummyConfig),
    /// VR's nginx upstream file per pool.
    Nginx(NginxConfig),
    /// VR's varnish director file per pool, plus the `pools.vcl` include list.
    Varnish(VarnishConfig),
    /// HAProxy servers, changed through its runtime API and kept in its config file.
    Haproxy(HaproxyConfig),
    /// vrd's own L4 TCP proxy, one listener per pool.
    Builtin(BuiltinConfig),
    /// An external program, given each call as JSON on stdin.
    Exec(ExecConfig),
    /// A balancer that lives on other hosts of the fleet: each applies the changes to its own.
    Remote(RemoteConfig),
}

impl BalancerConfig {
    /// The backend's kind, as the config file names it.
    pub fn kind(&self) -> &'static str {
        match self {
            BalancerConfig::Dummy(_) => "dummy",
            BalancerConfig::Nginx(_) => "nginx",
            BalancerConfig::Varnish(_) => "varnish",
            BalancerConfig::Haproxy(_) => "haproxy",
            BalancerConfig::Builtin(_) => "builtin",
            BalancerConfig::Exec(_) => "exec",
            BalancerConfig::Remote(_) => "remote",
        }
    }
}

/// `kind = "dummy"`: no keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DummyConfig {}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_string()).collect()
}

/// `kind = "nginx"`: `<include_dir>/<pool>.conf` holds `upstream <pool> { server host:port; ... }`.
/// After a write vrd runs `test_cmd`; when it fails the previous file is put back and the change
/// is refused; when it passes, `reload_cmd` runs. Commands are argv lists, not shell lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NginxConfig {
    /// Where the upstream files go [default: /etc/nginx/sites-enabled].
    pub include_dir: PathBuf,
    /// Checks the whole configuration [default: nginx -t].
    pub test_cmd: Vec<String>,
    /// Makes nginx load it [default: nginx -s reload].
    pub reload_cmd: Vec<String>,
    /// nginx's pid file [default: /run/nginx.pid]. `nginx -s reload` returns before nginx has
    /// switched; with the master's pid vrd waits until new workers run and the old ones stopped
    /// accepting, so "routed" means routed.
    pub pid_file: PathBuf,
}

impl Default for NginxConfig {
    fn default() -> Self {
        NginxConfig {
            include_dir: "/etc/nginx/sites-enabled".into(),
            test_cmd: argv(&["nginx", "-t"]),
            reload_cmd: argv(&["nginx", "-s", "reload"]),
            pid_file: "/run/nginx.pid".into(),
        }
    }
}

/// `kind = "varnish"`: `<include_dir>/<pool_file_prefix><pool>.vcl` holds VR's director, and
/// `<include_dir>/<main_pool_file>` includes every pool file. `main_vcl` (which includes the pools
/// file) is then loaded under a new name with `varnishadm vcl.load` and switched to atomically with
/// `vcl.use`; a VCL that does not compile leaves the running one in place and the files restored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VarnishConfig {
    /// Where the pool files go [default: /etc/varnish].
    pub include_dir: PathBuf,
    /// The include list [default: pools.vcl].
    pub main_pool_file: String,
    /// The pool files' prefix [default: pool-].
    pub pool_file_prefix: String,
    /// The VCL varnish loads, which includes the pools file [default: /etc/varnish/default.vcl].
    pub main_vcl: PathBuf,
    /// How to reach varnishd's CLI: varnishadm and its flags [default: varnishadm].
    pub admin_cmd: Vec<String>,
}

impl Default for VarnishConfig {
    fn default() -> Self {
        VarnishConfig {
            include_dir: "/etc/varnish".into(),
            main_pool_file: "pools.vcl".into(),
            pool_file_prefix: "pool-".into(),
            main_vcl: "/etc/varnish/default.vcl".into(),
            admin_cmd: argv(&["varnishadm"]),
        }
    }
}

/// `kind = "haproxy"`: a pool is the backend `<backend_prefix><pool>`. Servers are added, drained
/// (up to `drain_secs`) and removed through the runtime API on `admin_socket` (no reload); the
/// backend's server lines are also written to `config_file` between vr's markers, so a restart
/// keeps them. A pool whose backend does not exist yet is written to the config file and
/// `reload_cmd` runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HaproxyConfig {
    /// The runtime API socket (`stats socket ... level admin`) [default: /run/haproxy/admin.sock].
    pub admin_socket: PathBuf,
    /// The config file vr keeps its backends in [default: /etc/haproxy/haproxy.cfg].
    pub config_file: PathBuf,
    /// Prefix of the backends vr manages [default: none].
    pub backend_prefix: String,
    /// Makes haproxy reread its config [default: systemctl reload haproxy].
    pub reload_cmd: Vec<String>,
    /// How long a removed server's open sessions may finish before they are cut [default: 30].
    pub drain_secs: u64,
}

impl Default for HaproxyConfig {
    fn default() -> Self {
        HaproxyConfig {
            admin_socket: "/run/haproxy/admin.sock".into(),
            config_file: "/etc/haproxy/haproxy.cfg".into(),
            backend_prefix: String::new(),
            reload_cmd: argv(&["systemctl", "reload", "haproxy"]),
            drain_secs: 30,
        }
    }
}

/// `kind = "builtin"`: vrd listens on each pool's address and forwards TCP connections round-robin
/// to its nodes. A membership change swaps the node set atomically; open connections to removed
/// nodes finish on their own (drained), up to `drain_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BuiltinConfig {
    /// Pool name → listening address, e.g. `hello = "127.0.0.1:8080"`.
    pub pools: BTreeMap<String, String>,
    /// How long connections to removed nodes may live on [default: 30].
    pub drain_secs: u64,
}

impl Default for BuiltinConfig {
    fn default() -> Self {
        BuiltinConfig { pools: BTreeMap::new(), drain_secs: 30 }
    }
}

/// `kind = "exec"`: `program args...` is run once per call with a JSON request on stdin
/// (`{"op": "get_nodes"|"add_nodes"|"delete_nodes"|"delete_pool_if_empty", "pool": ..., "nodes": [...]}`)
/// and answers on stdout (`{"nodes": [...]}` for get_nodes); a non-zero exit is an error whose
/// message is its stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecConfig {
    /// The program (absolute path).
    pub program: PathBuf,
    /// Arguments before the request.
    #[serde(default)]
    pub args: Vec<String>,
    /// Seconds one call may take [default: 30].
    #[serde(default = "default_exec_timeout")]
    pub timeout_secs: u64,
}

fn default_exec_timeout() -> u64 {
    30
}

/// `kind = "remote"` (on a coordinator): the balancer lives on the joined hosts `hosts` (VR reached
/// its nginx and varnish hosts over SSH). Each change of a pool is recorded here with a new
/// generation and sent over the peer link to every one of those hosts, whose vrd applies it to its
/// own balancer named `balancer` (its nginx, haproxy, varnish or builtin router, configured in
/// that host's vrd config). A host refuses a change older than one it has applied, and a host
/// that missed changes (down, unreachable) gets the pool's current nodes when it is back, before
/// anything else is done there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConfig {
    /// The hosts the balancer runs on (names of joined hosts; at least one).
    pub hosts: Vec<String>,
    /// Its name in those hosts' configs [default: this table's name].
    #[serde(default)]
    pub balancer: Option<String>,
}

impl RemoteConfig {
    /// Refuses settings that can never work, saying what to write instead.
    pub fn check(&self, name: &str) -> Result<(), String> {
        if self.hosts.is_empty() {
            return Err(format!(
                "[balancers.{name}] (kind = \"remote\") names no hosts: add hosts = [\"HOST\", ...], the joined hosts it runs on"
            ));
        }
        if let Some(bad) = self.hosts.iter().find(|h| crate::model::names::host_name(h).is_err()) {
            return Err(format!("[balancers.{name}] names the host '{bad}', which is not a host name"));
        }
        Ok(())
    }

    /// The balancer's name on its hosts.
    pub fn name_on_hosts<'a>(&'a self, name: &'a str) -> &'a str {
        self.balancer.as_deref().unwrap_or(name)
    }
}

/// The balancers of an installation: the configured ones plus, unless the config names its own,
/// the builtin router as [`DEFAULT_BALANCER`].
pub fn with_default(mut configured: BTreeMap<String, BalancerConfig>) -> BTreeMap<String, BalancerConfig> {
    configured
        .entry(DEFAULT_BALANCER.to_string())
        .or_insert_with(|| BalancerConfig::Builtin(BuiltinConfig::default()));
    configured
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_parse_from_toml_with_defaults_and_refuse_unknown_keys() {
        let text = r#"
            [web]
            kind = "nginx"
            include_dir = "/tmp/x"
            [router]
            kind = "builtin"
            pools = { hello = "127.0.0.1:8080" }
        "#;
        let parsed: BTreeMap<String, BalancerConfig> = toml::from_str(text).unwrap();
        let BalancerConfig::Nginx(nginx) = &parsed["web"] else { panic!("{parsed:?}") };
        assert_eq!(nginx.include_dir, PathBuf::from("/tmp/x"));
        assert_eq!(nginx.reload_cmd, vec!["nginx", "-s", "reload"]);
        let BalancerConfig::Builtin(b) = &parsed["router"] else { panic!() };
        assert_eq!(b.pools["hello"], "127.0.0.1:8080");
        let err = toml::from_str::<BTreeMap<String, BalancerConfig>>(
            "[w]\nkind = \"nginx\"\nincude_dir = \"/x\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("incude_dir"), "{err}");
        let err = toml::from_str::<BTreeMap<String, BalancerConfig>>("[w]\nkind = \"f5\"\n").unwrap_err();
        assert!(err.to_string().contains("f5"), "{err}");
    }

    #[test]
    fn the_builtin_router_is_always_there_unless_replaced() {
        let all = with_default(BTreeMap::new());
        assert_eq!(all[DEFAULT_BALANCER].kind(), "builtin");
        let mine = BTreeMap::from([(DEFAULT_BALANCER.to_string(), BalancerConfig::Dummy(DummyConfig {}))]);
        assert_eq!(with_default(mine)[DEFAULT_BALANCER].kind(), "dummy");
    }
}
