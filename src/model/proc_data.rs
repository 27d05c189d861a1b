//! proc.yaml: Velociraptor's description of one proc (`vr.common.models.ProcData`), and the validated
//! [`ProcSpec`] vr derives from it.
//!
//! Every key VR reads is accepted with VR's defaults (`user: nobody`, `group: nogroup`, `port: 0`,
//! `cmd` over the Procfile). Keys VR's server never wrote but vr adds are marked in [`ProcData`].
//! Unknown keys are kept as warnings rather than errors, because VR ignored them too.

use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use super::limits::{parse_size, Limits, CPU_PERIOD_US};
use super::names::{self, NameError, ProcName};
pub use super::network::Network;
use super::yaml::{self, BadKey};

/// Every key of proc.yaml, as written (VR §3.1), before validation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcData {
    pub app_name: Option<String>,
    pub app_repo_url: Option<String>,
    pub app_repo_type: Option<String>,
    pub buildpack_url: Option<String>,
    pub buildpack_version: Option<String>,
    pub config_name: Option<String>,
    pub env: Vec<(String, String)>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub version: Option<String>,
    pub release_hash: Option<String>,
    pub settings: Value,
    pub user: Option<String>,
    pub group: Option<String>,
    pub proc_name: Option<String>,
    pub app_folder: Option<String>,
    pub build_url: Option<String>,
    pub build_md5: Option<String>,
    pub cmd: Option<String>,
    pub image_url: Option<String>,
    pub image_name: Option<String>,
    pub image_md5: Option<String>,
    pub volumes: Vec<Volume>,
    pub mem_limit: Option<String>,
    pub memsw_limit: Option<String>,
    /// vr extension: `cpu.shares` weight (1024 = one default share).
    pub cpu_shares: Option<u64>,
    /// vr extension: CPU cores the proc may use, e.g. `0.5`.
    pub cpu_quota: Option<f64>,
    /// vr extension: maximum number of tasks; defaults to [`DEFAULT_PIDS_MAX`].
    pub pids_max: Option<u64>,
    /// `default` (vr's seccomp filter) or `unconfined` (none; only an admin may ask).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<String>,
    /// `host` (the host's network, VR's way) or `private` (a network namespace of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Keys the file held that vr does not know.
    #[serde(skip)]
    pub unknown_keys: Vec<String>,
}

/// The pids limit a proc gets when proc.yaml sets none: enough for any sane app, fatal to fork bombs.
pub const DEFAULT_PIDS_MAX: u64 = 4096;

/// A host directory bound into the container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Absolute path on the host.
    pub outside: String,
    /// Absolute path inside the container.
    pub inside: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What was wrong with a proc.yaml; each message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ProcDataError {
    /// Not YAML at all.
    #[error("proc.yaml can't be read as YAML: {0}")]
    Yaml(#[from] super::yaml::YamlError),
    /// The top level is not a mapping.
    #[error("proc.yaml must be a mapping of keys (app_name: ..., proc_name: ...), not {0}")]
    NotAMapping(&'static str),
    /// A key has a value of the wrong kind.
    #[error("proc.yaml key '{key}': {problem}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong and what to write instead.
        problem: String,
    },
    /// A key the container name or the launch needs is missing.
    #[error("proc.yaml has no '{key}': {why}")]
    Missing {
        /// The key.
        key: &'static str,
        /// Why it is needed.
        why: &'static str,
    },
    /// A name part is invalid.
    #[error("proc.yaml: {0}")]
    Name(#[from] NameError),
}

const KNOWN_KEYS: &[&str] = &[
    "app_name",
    "app_repo_url",
    "app_repo_type",
    "buildpack_url",
    "buildpack_version",
    "config_name",
    "env",
    "host",
    "port",
    "version",
    "release_hash",
    "settings",
    "user",
    "group",
    "proc_name",
    "proc",
    "app_folder",
    "build_url",
    "build_md5",
    "build_sha256",
    "cmd",
    "image_url",
    "image_name",
    "image_md5",
    "image_sha256",
    "volumes",
    "mem_limit",
    "memsw_limit",
    "cpu_shares",
    "cpu_quota",
    "pids_max",
    "seccomp",
    "network",
];

impl From<BadKey> for ProcDataError {
    fn from(b: BadKey) -> ProcDataError {
        ProcDataError::BadValue { key: b.key, problem: b.problem }
    }
}

fn bad(key: &str, problem: impl Into<String>) -> ProcDataError {
    ProcDataError::BadValue { key: key.to_string(), problem: problem.into() }
}

fn scalar_text(key: &str, value: &Value) -> Result<Option<String>, ProcDataError> {
    Ok(yaml::scalar_text(key, value)?)
}

fn number(key: &str, value: &Value) -> Result<Option<u64>, ProcDataError> {
    match scalar_text(key, value)? {
        None => Ok(None),
        Some(text) => {
            text.trim().parse().map(Some).map_err(|_| bad(key, format!("'{text}' is not a whole number")))
        }
    }
}

fn port(value: &Value) -> Result<Option<u16>, ProcDataError> {
    match number("port", value)? {
        None => Ok(None),
        Some(p) => {
            u16::try_from(p).map(Some).map_err(|_| bad("port", format!("{p} is not a TCP port (0-65535)")))
        }
    }
}

fn env_pairs(value: &Value) -> Result<Vec<(String, String)>, ProcDataError> {
    Ok(yaml::env_pairs("env", value)?)
}

fn volume(entry: &Value) -> Result<Volume, ProcDataError> {
    let parts = match entry {
        Value::Sequence(s) => s.iter().map(|v| scalar_text("volumes", v)).collect::<Result<Vec<_>, _>>()?,
        _ => {
            return Err(bad(
                "volumes",
                "each volume is a list: [/host/dir, /inside] or [/host/dir, /inside, ro]",
            ))
        }
    };
    let parts: Vec<String> = parts.into_iter().flatten().collect();
    let read_only = match parts.get(2).map(String::as_str) {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => return Err(bad("volumes", format!("mode '{other}' is neither 'ro' nor 'rw'"))),
    };
    match parts.as_slice() {
        [outside, inside] | [outside, inside, _] => {
            Ok(Volume { outside: outside.clone(), inside: inside.clone(), read_only })
        }
        _ => Err(bad("volumes", "each volume is a list: [/host/dir, /inside] or [/host/dir, /inside, ro]")),
    }
}

fn volumes(value: &Value) -> Result<Vec<Volume>, ProcDataError> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => items.iter().map(volume).collect(),
        _ => Err(bad("volumes", "expected a list of [/host/dir, /inside] pairs")),
    }
}

impl ProcData {
    /// Parses proc.yaml text. Keys are checked for type here; meaning is checked by [`ProcData::spec`].
    pub fn from_yaml(text: &str) -> Result<ProcData, ProcDataError> {
        let root: Value = super::yaml::parse(text)?;
        let map = match root {
            Value::Mapping(m) => m,
            Value::Null => Mapping::new(),
            Value::Sequence(_) => return Err(ProcDataError::NotAMapping("a list")),
            _ => return Err(ProcDataError::NotAMapping("a single value")),
        };
        let get = |k: &str| map.get(k).cloned().unwrap_or(Value::Null);
        let text = |k: &str| scalar_text(k, &get(k));
        let cpu_quota = match text("cpu_quota")? {
            None => None,
            Some(t) => Some(
                t.parse::<f64>().map_err(|_| bad("cpu_quota", format!("'{t}' is not a number of cores")))?,
            ),
        };
        let mut unknown_keys: Vec<String> = map
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| !KNOWN_KEYS.contains(k))
            .map(str::to_string)
            .collect();
        unknown_keys.sort();
        Ok(ProcData {
            app_name: text("app_name")?,
            app_repo_url: text("app_repo_url")?,
            app_repo_type: text("app_repo_type")?,
            buildpack_url: text("buildpack_url")?,
            buildpack_version: text("buildpack_version")?,
            config_name: text("config_name")?,
            env: env_pairs(&get("env"))?,
            host: text("host")?,
            port: port(&get("port"))?,
            version: text("version")?,
            release_hash: text("release_hash")?,
            settings: get("settings"),
            user: text("user")?,
            group: text("group")?,
            proc_name: text("proc_name")?.or(text("proc")?),
            app_folder: text("app_folder")?,
            build_url: text("build_url")?,
            build_md5: text("build_md5")?,
            cmd: text("cmd")?,
            image_url: text("image_url")?,
            image_name: text("image_name")?,
            image_md5: text("image_md5")?,
            volumes: volumes(&get("volumes"))?,
            mem_limit: text("mem_limit")?,
            memsw_limit: text("memsw_limit")?,
            cpu_shares: number("cpu_shares", &get("cpu_shares"))?,
            cpu_quota,
            pids_max: number("pids_max", &get("pids_max"))?,
            seccomp: text("seccomp")?,
            network: text("network")?,
            unknown_keys,
        })
    }

    /// Validates the data into what a container launch needs.
    pub fn spec(&self) -> Result<ProcSpec, ProcDataError> {
        if self.proc_name.is_none() && self.cmd.is_none() {
            return Err(ProcDataError::Missing {
                key: "proc_name",
                why: "give proc_name (a Procfile entry) or cmd",
            });
        }
        let need = |v: &Option<String>, key: &'static str, why: &'static str| {
            v.clone().ok_or(ProcDataError::Missing { key, why })
        };
        let name = ProcName::new(
            &need(&self.app_name, "app_name", "it names the container (app-version-config-hash-proc-port)")?,
            &need(&self.version, "version", "it names the container (app-version-config-hash-proc-port)")?,
            &need(
                &self.config_name,
                "config_name",
                "it names the container (app-version-config-hash-proc-port)",
            )?,
            self.release_hash.as_deref().unwrap_or(""),
            self.proc_name.as_deref().unwrap_or("cmd"),
            self.port.unwrap_or(0),
        )?;
        let image_url = need(
            &self.image_url,
            "image_url",
            "vr runs every proc on an OS image; set image_url (and image_name)",
        )?;
        for v in &self.volumes {
            check_volume(v)?;
        }
        let image_name = self.image_name.clone().unwrap_or_else(|| image_name_from_url(&image_url));
        let build = match &self.build_url {
            Some(url) => Some(Artifact {
                url: url.clone(),
                md5: self.build_md5.clone(),
                name: artifact_name("build_url", "build file name", basename(url))?,
            }),
            None => None,
        };
        Ok(ProcSpec {
            name,
            image: Artifact {
                url: image_url.clone(),
                md5: self.image_md5.clone(),
                name: artifact_name("image_name", "image name", image_name)?,
            },
            build,
            cmd: self.cmd.clone(),
            env: self.env.clone(),
            settings: self.settings.clone(),
            user: self.user.clone().unwrap_or_else(|| "nobody".into()),
            group: self.group.clone().unwrap_or_else(|| "nogroup".into()),
            host: self.host.clone().filter(|h| !h.is_empty()).unwrap_or_else(|| "127.0.0.1".into()),
            volumes: self.volumes.clone(),
            limits: self.limits()?,
            seccomp: match self.seccomp.as_deref().map(str::trim) {
                None | Some("") | Some("default") => Seccomp::Default,
                Some("unconfined") => Seccomp::Unconfined,
                Some(other) => {
                    return Err(bad(
                        "seccomp",
                        format!("'{other}' is not a seccomp profile: use default (vr's filter) or unconfined (none; admins only)"),
                    ))
                }
            },
            network: Network::parse(self.network.as_deref()).map_err(|e| bad("network", e))?,
        })
    }

    fn limits(&self) -> Result<Limits, ProcDataError> {
        let size = |key: &str, v: &Option<String>| match v {
            None => Ok(None),
            Some(t) if t.trim().is_empty() => Ok(None),
            Some(t) => parse_size(t).map(Some).map_err(|e| bad(key, e.to_string())),
        };
        let memory = size("mem_limit", &self.mem_limit)?;
        let memsw = size("memsw_limit", &self.memsw_limit)?;
        if let (Some(m), Some(s)) = (memory, memsw) {
            if s < m {
                return Err(bad("memsw_limit", format!("{s} bytes is below mem_limit ({m} bytes); memory plus swap can't be less than memory")));
            }
        }
        let cpu_quota_us = match self.cpu_quota {
            None => None,
            Some(c) if c > 0.0 && c <= 1024.0 => Some((c * CPU_PERIOD_US as f64).round() as u64),
            Some(c) => {
                return Err(bad("cpu_quota", format!("{c} is not a number of cores between 0 and 1024")))
            }
        };
        if let Some(s) = self.cpu_shares {
            if !(2..=262_144).contains(&s) {
                return Err(bad(
                    "cpu_shares",
                    format!("{s} is outside 2..262144 (1024 is the default weight)"),
                ));
            }
        }
        let pids_max = Some(self.pids_max.unwrap_or(DEFAULT_PIDS_MAX));
        if pids_max == Some(0) {
            return Err(bad("pids_max", "0 would let the proc start nothing; omit it for the default"));
        }
        Ok(Limits { memory, memsw, cpu_shares: self.cpu_shares, cpu_quota_us, pids_max })
    }
}

fn check_volume(v: &Volume) -> Result<(), ProcDataError> {
    if !v.outside.starts_with('/') {
        return Err(bad("volumes", format!("host path '{}' must be absolute", v.outside)));
    }
    if !v.inside.starts_with('/') {
        return Err(bad("volumes", format!("container path '{}' must be absolute", v.inside)));
    }
    if v.inside.split('/').any(|c| c == "..") {
        return Err(bad(
            "volumes",
            format!("container path '{}' escapes the container's root with '..'", v.inside),
        ));
    }
    if v.inside.trim_end_matches('/').is_empty() {
        return Err(bad("volumes", "a volume can't be mounted over the container's root '/'"));
    }
    Ok(())
}

/// An artifact's cache name (from `key`, or derived from its url), checked by the one validator
/// of names that become paths.
pub fn artifact_name(key: &str, what: &'static str, name: String) -> Result<String, ProcDataError> {
    names::file_name(what, &name).map_err(|e| bad(key, e.to_string()))
}

fn basename(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// `…/busybox-1.36.tar.gz` → `busybox-1.36`, VR's fallback when `image_name` is absent.
pub fn image_name_from_url(url: &str) -> String {
    let base = basename(url);
    for ext in [".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar"] {
        if let Some(stem) = base.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    base
}

/// A downloadable artifact (an OS image or a build) and where the cache keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    /// `file://`, `http://`, `https://` or an absolute path.
    pub url: String,
    /// Expected md5, if given.
    pub md5: Option<String>,
    /// The cache name (image_name, or the build's file name).
    pub name: String,
}

/// A validated proc.yaml: everything the runner needs to set up and launch the proc.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcSpec {
    /// The six-part name.
    pub name: ProcName,
    /// The OS image the root file system comes from.
    pub image: Artifact,
    /// The app build unpacked at /app, if any.
    pub build: Option<Artifact>,
    /// The command; else the Procfile entry named by `name.proc`.
    pub cmd: Option<String>,
    /// proc.yaml `env`, in file order.
    pub env: Vec<(String, String)>,
    /// proc.yaml `settings`, written to /settings.yaml.
    pub settings: Value,
    /// The run-as user, resolved in the image's /etc/passwd.
    pub user: String,
    /// The run-as group, resolved in the image's /etc/group.
    pub group: String,
    /// The host uptests are given.
    pub host: String,
    /// Bind mounts.
    pub volumes: Vec<Volume>,
    /// cgroup limits.
    pub limits: Limits,
    /// The container's seccomp filter.
    #[serde(default)]
    pub seccomp: Seccomp,
    /// The container's network.
    #[serde(default)]
    pub network: Network,
}

/// Which seccomp filter a container gets (see `sys::seccomp`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Seccomp {
    /// vr's default filter: the calls Docker's default profile refuses are refused.
    #[default]
    Default,
    /// No filter: for an app that needs what the filter refuses. Only an admin may ask.
    Unconfined,
}

impl Seccomp {
    /// Whether this is the default filter (kept out of release hashes and proc.yaml when so).
    pub fn is_default(&self) -> bool {
        *self == Seccomp::Default
    }
}

#[cfg(test)]
mod tests;
