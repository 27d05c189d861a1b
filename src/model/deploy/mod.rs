//! Velociraptor's deployment model (its `deployment_*` tables) as validated definitions: apps,
//! buildpacks, stacks, squads, hosts, config ingredients and swarms. Users write them as YAML
//! (`vr apps create -f app.yaml`) or flags; vrd stores them as JSON. Pure data, no I/O.

pub mod hash;
pub mod plan;
pub mod records;
pub mod release;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use super::build_data::RepoType;
use super::names;
use super::network::Network;
use super::proc_data::Seccomp;

/// The kinds of definitions, as the CLI and the API name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An app: where its code is and how it builds.
    App,
    /// A buildpack, in detect order.
    Buildpack,
    /// An OS stack and its active image.
    Stack,
    /// A group of hosts swarms are placed on.
    Squad,
    /// A machine running vrd.
    Host,
    /// A reusable piece of config and env.
    Ingredient,
    /// N copies of one proc of one app, routed to one pool.
    Swarm,
}

impl Kind {
    /// Every kind, in the order references run (a swarm needs an app, an app a stack...).
    pub const ALL: [Kind; 7] =
        [Kind::Stack, Kind::Buildpack, Kind::App, Kind::Squad, Kind::Host, Kind::Ingredient, Kind::Swarm];

    /// The singular name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::App => "app",
            Kind::Buildpack => "buildpack",
            Kind::Stack => "stack",
            Kind::Squad => "squad",
            Kind::Host => "host",
            Kind::Ingredient => "ingredient",
            Kind::Swarm => "swarm",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a definition was refused; the message names the field and says what is allowed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{kind} '{name}': {problem}")]
pub struct DefinitionError {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// What is wrong.
    pub problem: String,
}

/// An app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// Dash-free name.
    pub name: String,
    /// Where its code is (a URL or an absolute path vrd can read).
    pub repo_url: String,
    /// git or hg.
    #[serde(default)]
    pub repo_type: RepoType,
    /// A buildpack (by name) that always builds it; none: detect over every buildpack in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildpack: Option<String>,
    /// The stack whose active image it builds and runs on.
    pub stack: String,
    /// Environment for its builds (ENV_DIR, one file per variable, as Heroku gives buildpacks the
    /// app's config vars: NPM_CONFIG_PRODUCTION, APP_BASE, ...). Used by the next build.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_env: BTreeMap<String, String>,
}

/// A buildpack; `order` (then name) is the detect order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildpackSpec {
    /// Its name.
    pub name: String,
    /// Its repository; a `#rev` fragment pins a revision.
    pub repo_url: String,
    /// git or hg.
    #[serde(default)]
    pub repo_type: RepoType,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desc: String,
    /// Detect order: lower first.
    #[serde(default)]
    pub order: i64,
}

/// An OS stack: a base image plus an optional provisioning script; building it makes its active
/// image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackSpec {
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desc: String,
    /// The base tarball (file path, file://, http(s)://).
    pub base_image_url: String,
    /// The base's name in the image cache; derived from the URL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image_name: Option<String>,
    /// The base's md5, checked when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_image_md5: Option<String>,
    /// A provisioning script run as root on a copy of the base (`vr stacks build`): its absolute
    /// path on vrd's host or its http(s):// or file:// URL, fetched at every build; none: the base
    /// is the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning_script: Option<String>,
    /// Environment for the script.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub env: Map<String, Value>,
}

/// A squad: the hosts a swarm may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SquadSpec {
    /// Its name.
    pub name: String,
    /// What it is for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub desc: String,
}

/// A host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// Its name (shown in proc listings).
    pub name: String,
    /// Its squad (one at most).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub squad: Option<String>,
    /// Inactive hosts get no new procs (their procs still count, and are cleaned up).
    #[serde(default = "yes")]
    pub active: bool,
    /// Where balancers reach its procs; the name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The peer vrd that runs it; none: this vrd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Being drained (`vr hosts drain`): its procs are stale, so dispatch places replacements on
    /// other hosts, routes them, and only then retires these (Diego's evacuation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub draining: bool,
}

impl HostSpec {
    /// The address nodes on this host are routed to.
    pub fn node_address(&self) -> &str {
        self.address.as_deref().unwrap_or(&self.name)
    }
}

fn yes() -> bool {
    true
}

/// A reusable piece of config (settings.yaml) and env.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngredientSpec {
    /// Its name.
    pub name: String,
    /// Merged into the release's settings.yaml.
    #[serde(default)]
    pub config: Map<String, Value>,
    /// Merged into the release's environment.
    #[serde(default)]
    pub env: Map<String, Value>,
}

/// A bind mount: host path, container path, and optionally `ro`.
pub type VolumeSpec = Vec<String>;

/// A swarm: `size` copies of one proc of one app at one version, with merged config, on one
/// squad, optionally routed to a pool. Its `name` is its stable identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SwarmSpec {
    /// Its name; `<app>-<config_name>-<proc_name>` when created without one.
    #[serde(default)]
    pub name: String,
    /// The app.
    pub app: String,
    /// The version (tag, branch or revision) to build and run.
    pub version: String,
    /// The Procfile entry.
    #[serde(default = "web")]
    pub proc_name: String,
    /// The config name (part of the proc name).
    #[serde(default = "prod")]
    pub config_name: String,
    /// The squad.
    #[serde(default = "default_squad")]
    pub squad: String,
    /// How many procs.
    #[serde(default = "one")]
    pub size: u32,
    /// The balancer pool; none: not routed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
    /// The balancer (a `[balancers.NAME]` of vrd's config); the builtin router when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balancer: Option<String>,
    /// Ingredients, merged in this order (later wins), before the swarm's own config and env.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ingredients: Vec<String>,
    /// The swarm's own settings.yaml entries (win over the ingredients').
    #[serde(default)]
    pub config: Map<String, Value>,
    /// The swarm's own env (wins over the ingredients' and the build's).
    #[serde(default)]
    pub env: Map<String, Value>,
    /// Bind mounts: `[host_path, container_path]` or `[host_path, container_path, ro]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    /// The user the proc runs as.
    #[serde(default = "nobody")]
    pub run_as: String,
    /// Memory limit, VR's size strings ("256M").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<String>,
    /// Memory+swap limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memsw_limit: Option<String>,
    /// `host` (default) or `private`: see proc.yaml's `network`.
    #[serde(default, skip_serializing_if = "Network::is_host")]
    pub network: Network,
    /// `default` or `unconfined` (admins only): see proc.yaml's `seccomp`.
    #[serde(default, skip_serializing_if = "Seccomp::is_default")]
    pub seccomp: Seccomp,
}

fn web() -> String {
    "web".into()
}
fn prod() -> String {
    "prod".into()
}
fn one() -> u32 {
    1
}
fn nobody() -> String {
    "nobody".into()
}

/// The squad swarms use when they name none; vrd creates it with the local host in it.
pub const DEFAULT_SQUAD: &str = "default";

fn default_squad() -> String {
    DEFAULT_SQUAD.into()
}

impl SwarmSpec {
    /// VR's `str(swarm)`: `<app>-<config>-<proc>`, what FILTER patterns match.
    pub fn display_name(&self) -> String {
        format!("{}-{}-{}", self.app, self.config_name, self.proc_name)
    }

    /// The balancer it routes through, when it has a pool.
    pub fn balancer_name(&self) -> &str {
        self.balancer.as_deref().unwrap_or(super::balancer::DEFAULT_BALANCER)
    }
}

/// One definition of any kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Definition {
    /// An app.
    App(AppSpec),
    /// A buildpack.
    Buildpack(BuildpackSpec),
    /// A stack.
    Stack(StackSpec),
    /// A squad.
    Squad(SquadSpec),
    /// A host.
    Host(HostSpec),
    /// An ingredient.
    Ingredient(IngredientSpec),
    /// A swarm.
    Swarm(SwarmSpec),
}

impl Definition {
    /// Parses a definition of `kind` from JSON (the API) after checking it.
    pub fn from_value(kind: Kind, value: Value) -> Result<Definition, DefinitionError> {
        let name = value.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let err = |problem: String| DefinitionError { kind, name: name.clone(), problem };
        let def = match kind {
            Kind::App => Definition::App(super::typed::from_json(value).map_err(err)?),
            Kind::Buildpack => Definition::Buildpack(super::typed::from_json(value).map_err(err)?),
            Kind::Stack => Definition::Stack(super::typed::from_json(value).map_err(err)?),
            Kind::Squad => Definition::Squad(super::typed::from_json(value).map_err(err)?),
            Kind::Host => Definition::Host(super::typed::from_json(value).map_err(err)?),
            Kind::Ingredient => Definition::Ingredient(super::typed::from_json(value).map_err(err)?),
            Kind::Swarm => Definition::Swarm(super::typed::from_json(value).map_err(err)?),
        };
        def.validated()
    }

    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Definition::App(_) => Kind::App,
            Definition::Buildpack(_) => Kind::Buildpack,
            Definition::Stack(_) => Kind::Stack,
            Definition::Squad(_) => Kind::Squad,
            Definition::Host(_) => Kind::Host,
            Definition::Ingredient(_) => Kind::Ingredient,
            Definition::Swarm(_) => Kind::Swarm,
        }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        match self {
            Definition::App(d) => &d.name,
            Definition::Buildpack(d) => &d.name,
            Definition::Stack(d) => &d.name,
            Definition::Squad(d) => &d.name,
            Definition::Host(d) => &d.name,
            Definition::Ingredient(d) => &d.name,
            Definition::Swarm(d) => &d.name,
        }
    }

    /// As JSON.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Checks names and values; fills a swarm's derived name.
    pub fn validated(mut self) -> Result<Definition, DefinitionError> {
        if let Definition::Swarm(s) = &mut self {
            if s.name.is_empty() {
                s.name = s.display_name();
            }
        }
        let kind = self.kind();
        let name = self.name().to_string();
        let fail = |problem: String| DefinitionError { kind, name: name.clone(), problem };
        check_object_name(&name).map_err(&fail)?;
        match &self {
            Definition::App(a) => {
                names::app_name(&a.name).map_err(|e| fail(e.to_string()))?;
                check_repo_url(&a.repo_url).map_err(&fail)?;
                check_build_env(&a.build_env).map_err(&fail)?;
            }
            Definition::Buildpack(b) => check_repo_url(&b.repo_url).map_err(&fail)?,
            Definition::Stack(s) => check_stack(s).map_err(&fail)?,
            Definition::Swarm(s) => check_swarm(s).map_err(&fail)?,
            Definition::Ingredient(i) => check_env_map("env", &i.env).map_err(&fail)?,
            _ => {}
        }
        Ok(self)
    }
}

/// Object names: what a file name or a URL segment can hold.
fn check_object_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_.-".contains(c);
    if name.is_empty() || name.len() > 100 || !name.chars().all(ok) || name.starts_with(['.', '-']) {
        return Err(format!(
            "'{name}' is not a usable name: use 1 to 100 letters, digits, '_', '.' and '-', not starting with '.' or '-'"
        ));
    }
    Ok(())
}

fn check_repo_url(url: &str) -> Result<(), String> {
    if url.trim().is_empty() {
        return Err("repo_url is empty: give the repository's URL or absolute path".into());
    }
    Ok(())
}

fn check_build_env(env: &BTreeMap<String, String>) -> Result<(), String> {
    check_env("build_env", env.iter().map(|(k, v)| (k.as_str(), v.clone())))
}

/// What a process environment takes: names are shell variable names, values hold no NUL. For
/// the env of apps' builds, swarms and ingredients when defined, and of a release when a host
/// receives it.
pub fn check_env<'a>(key: &str, vars: impl IntoIterator<Item = (&'a str, String)>) -> Result<(), String> {
    for (name, value) in vars {
        if !super::yaml::is_var_name(name) {
            return Err(format!(
                "{key} '{name}' is not a valid variable name: use letters, digits and '_', not starting with a digit"
            ));
        }
        if value.contains('\0') {
            return Err(format!("{key}.{name} contains a NUL byte; remove it"));
        }
    }
    Ok(())
}

/// A swarm's or an ingredient's `env`, as the release will hand it to processes.
pub fn check_env_map(key: &str, env: &Map<String, Value>) -> Result<(), String> {
    check_env(key, env.iter().map(|(k, v)| (k.as_str(), release::env_text(v))))
}

fn check_stack(s: &StackSpec) -> Result<(), String> {
    if s.base_image_url.trim().is_empty() {
        return Err("base_image_url is empty: give the URL or path of a base tarball".into());
    }
    let Some(script) = &s.provisioning_script else { return Ok(()) };
    let fetchable =
        ["http://", "https://", "file://"].iter().any(|p| script.starts_with(p)) || script.starts_with('/');
    let named =
        script.split(['?', '#']).next().unwrap_or_default().rsplit('/').next().is_some_and(|n| !n.is_empty());
    if !fetchable || !named {
        return Err(format!(
            "provisioning_script '{script}' is not usable: give the absolute path of the script on vrd's host, or its http(s):// or file:// URL"
        ));
    }
    Ok(())
}

fn check_swarm(s: &SwarmSpec) -> Result<(), String> {
    names::app_name(&s.app).map_err(|e| e.to_string())?;
    names::version(&s.version).map_err(|e| format!("{e}; versions become part of proc names"))?;
    names::proc_type(&s.proc_name).map_err(|e| e.to_string())?;
    names::config_name(&s.config_name).map_err(|e| e.to_string())?;
    if s.size > 1000 {
        return Err(format!("size {} is more than 1000 procs; split it into several swarms", s.size));
    }
    if s.balancer.is_some() && s.pool.is_none() {
        return Err("a balancer is named but no pool: give --pool, or drop the balancer".into());
    }
    if let Some(pool) = &s.pool {
        check_object_name(pool).map_err(|e| format!("pool: {e}"))?;
    }
    check_env_map("env", &s.env)?;
    check_volumes(&s.volumes)?;
    check_limits(&s.mem_limit, &s.memsw_limit)
}

/// Each volume is `[host_path, container_path]` or `[host_path, container_path, ro|rw]`, both
/// absolute: for swarms when defined, and for a release again when a host receives it.
pub fn check_volumes(volumes: &[VolumeSpec]) -> Result<(), String> {
    for v in volumes {
        let ok = matches!(v.len(), 2 | 3) && (v.len() == 2 || v[2] == "ro" || v[2] == "rw");
        if !ok || !v[0].starts_with('/') || !v[1].starts_with('/') {
            return Err(format!(
                "volume {v:?} must be [host_path, container_path] or [host_path, container_path, ro], both absolute"
            ));
        }
    }
    Ok(())
}

/// `mem_limit` and `memsw_limit` are VR's size strings.
pub fn check_limits(mem_limit: &Option<String>, memsw_limit: &Option<String>) -> Result<(), String> {
    for (key, what) in [(mem_limit, "mem_limit"), (memsw_limit, "memsw_limit")] {
        if let Some(limit) = key {
            super::limits::parse_size(limit).map_err(|e| format!("{what}: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
