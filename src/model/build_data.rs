//! build.yaml: Velociraptor's description of one build (`vr.builder.models.BuildData`), and
//! build_result.yaml, the same keys filled in by a finished build so that feeding it back rebuilds
//! exactly the same thing.
//!
//! Required keys are VR's: `app_name`, `app_repo_type` (git | hg), `app_repo_url`, `version` (the
//! tag, branch or revision to build). Buildpacks come from `buildpack_url` or `buildpack_urls`; the
//! singular wins, as in VR, and a `#rev` fragment pins a revision. vr adds `app_commit` (the exact
//! revision a build used; it wins over `version` when present) and requires `image_url`, because
//! every vr build runs in a container of the stack image.

use std::collections::BTreeMap;

use super::yaml::{self, BadKey};
use serde::{Deserialize, Serialize};
use serde_yaml_ng::{Mapping, Value};

use super::names::{self, NameError};
use super::proc_data::{image_name_from_url, Artifact};

/// The version control system of a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoType {
    /// git.
    #[default]
    Git,
    /// Mercurial.
    Hg,
}

impl RepoType {
    /// The name build.yaml uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RepoType::Git => "git",
            RepoType::Hg => "hg",
        }
    }
}

/// Every key of build.yaml (and build_result.yaml), in VR's order, after validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildData {
    /// The app; names the build container and the app's cache.
    pub app_name: String,
    /// git or hg.
    pub app_repo_type: RepoType,
    /// Where the app's source is.
    pub app_repo_url: String,
    /// The tag, branch or revision asked for.
    pub version: String,
    /// vr extension: the exact revision built (a full hash); wins over `version` when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_commit: Option<String>,
    /// The buildpack (`url#rev` pins a revision); wins over `buildpack_urls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buildpack_url: Option<String>,
    /// Buildpacks tried in order; the first whose `bin/detect` passes builds the app.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub buildpack_urls: Vec<String>,
    /// The revision of `buildpack_url` when it has no `#rev` fragment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buildpack_version: Option<String>,
    /// The stack image's cache name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// The stack image the build runs in.
    pub image_url: String,
    /// The stack image's expected md5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_md5: Option<String>,
    /// The md5 of build.tar.gz (set by a build).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build_md5: Option<String>,
    /// What the buildpacks' `bin/release` printed (set by a build).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release_data: Option<Value>,
    /// vr extension: environment for the build, written to ENV_DIR one file per variable (as
    /// Heroku hands an app's config vars to buildpacks).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_env: BTreeMap<String, String>,
    /// Keys the file held that vr does not know (reported as warnings, not kept).
    #[serde(skip)]
    pub unknown_keys: Vec<String>,
}

/// A buildpack as build.yaml names it: its URL without the fragment, and the pinned revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildpackRef {
    /// The URL without `#rev`.
    pub url: String,
    /// The revision after `#`, if any.
    pub rev: Option<String>,
}

impl BuildpackRef {
    /// Splits `url#rev`.
    pub fn parse(text: &str) -> BuildpackRef {
        match text.split_once('#') {
            Some((url, rev)) if !rev.is_empty() => BuildpackRef { url: url.into(), rev: Some(rev.into()) },
            Some((url, _)) => BuildpackRef { url: url.into(), rev: None },
            None => BuildpackRef { url: text.into(), rev: None },
        }
    }

    /// `url#rev`, or the bare URL.
    pub fn to_text(&self) -> String {
        match &self.rev {
            Some(rev) => format!("{}#{rev}", self.url),
            None => self.url.clone(),
        }
    }
}

/// What was wrong with a build.yaml; each message names the key.
#[derive(Debug, thiserror::Error)]
pub enum BuildDataError {
    /// Not YAML at all.
    #[error("build.yaml can't be read as YAML: {0}")]
    Yaml(#[from] super::yaml::YamlError),
    /// The top level is not a mapping.
    #[error("build.yaml must be a mapping of keys (app_name: ..., app_repo_url: ...), not {0}")]
    NotAMapping(&'static str),
    /// A key has a value of the wrong kind or form.
    #[error("build.yaml key '{key}': {problem}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong and what to write instead.
        problem: String,
    },
    /// A required key is missing.
    #[error("build.yaml has no '{key}': {why}")]
    Missing {
        /// The key.
        key: &'static str,
        /// Why it is needed.
        why: &'static str,
    },
    /// A name is invalid.
    #[error("build.yaml: {0}")]
    Name(#[from] NameError),
}

const KNOWN_KEYS: &[&str] = &[
    "app_name",
    "app_repo_type",
    "app_repo_url",
    "version",
    "app_commit",
    "buildpack_url",
    "buildpack_urls",
    "buildpack_version",
    "image_name",
    "image_url",
    "image_md5",
    "build_md5",
    "release_data",
    "build_env",
];

impl From<BadKey> for BuildDataError {
    fn from(b: BadKey) -> BuildDataError {
        BuildDataError::BadValue { key: b.key, problem: b.problem }
    }
}

fn bad(key: &str, problem: impl Into<String>) -> BuildDataError {
    BuildDataError::BadValue { key: key.to_string(), problem: problem.into() }
}

/// A scalar as VR's Python printed it, trimmed; empty text counts as absent.
fn scalar_text(key: &str, value: &Value) -> Result<Option<String>, BuildDataError> {
    Ok(yaml::scalar_text(key, value)?.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()))
}

/// A URL or a revision: something handed to git or hg as one argument.
fn check_word(key: &str, text: &str, what: &str) -> Result<(), BuildDataError> {
    if text.starts_with('-') {
        return Err(bad(key, format!("{what} '{text}' may not start with '-'")));
    }
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(key, format!("{what} '{text}' contains {c:?}; remove it")));
    }
    Ok(())
}

fn buildpack(key: &str, text: &str) -> Result<String, BuildDataError> {
    let r = BuildpackRef::parse(text);
    if r.url.is_empty() {
        return Err(bad(key, format!("'{text}' has no URL before '#'")));
    }
    check_word(key, &r.url, "URL")?;
    if let Some(rev) = &r.rev {
        check_word(key, rev, "revision")?;
    }
    Ok(text.to_string())
}

fn buildpack_list(value: &Value) -> Result<Vec<String>, BuildDataError> {
    let items = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Sequence(items) => items,
        _ => return Err(bad("buildpack_urls", "expected a list of URLs (each may end in #rev)")),
    };
    let mut urls = Vec::new();
    for item in items {
        if let Some(text) = scalar_text("buildpack_urls", item)? {
            urls.push(buildpack("buildpack_urls", &text)?);
        }
    }
    Ok(urls)
}

fn repo_type(text: Option<String>) -> Result<RepoType, BuildDataError> {
    match text.as_deref() {
        Some("git") => Ok(RepoType::Git),
        Some("hg") => Ok(RepoType::Hg),
        Some(other) => Err(bad("app_repo_type", format!("'{other}' is neither 'git' nor 'hg'"))),
        None => Err(BuildDataError::Missing { key: "app_repo_type", why: "write git or hg" }),
    }
}

fn commit(text: Option<String>) -> Result<Option<String>, BuildDataError> {
    let Some(text) = text else { return Ok(None) };
    let hex = text.chars().all(|c| c.is_ascii_hexdigit());
    if !hex || !(40..=64).contains(&text.len()) {
        return Err(bad(
            "app_commit",
            format!("'{text}' is not a full revision hash (40 to 64 hex digits); remove the key to build `version`"),
        ));
    }
    Ok(Some(text.to_ascii_lowercase()))
}

fn root_mapping(text: &str) -> Result<Mapping, BuildDataError> {
    match super::yaml::parse(text)? {
        Value::Mapping(m) => Ok(m),
        Value::Null => Ok(Mapping::new()),
        Value::Sequence(_) => Err(BuildDataError::NotAMapping("a list")),
        _ => Err(BuildDataError::NotAMapping("a single value")),
    }
}

impl BuildData {
    /// Parses and validates build.yaml (or build_result.yaml) text.
    pub fn from_yaml(text: &str) -> Result<BuildData, BuildDataError> {
        let map = root_mapping(text)?;
        let get = |k: &str| map.get(k).cloned().unwrap_or(Value::Null);
        let text = |k: &str| scalar_text(k, &get(k));
        let need =
            |k: &'static str, why: &'static str| text(k)?.ok_or(BuildDataError::Missing { key: k, why });
        let app_name = names::app_name(&need("app_name", "it names the build and the app's cache")?)?;
        let app_repo_url = need("app_repo_url", "it says where the app's source is")?;
        check_word("app_repo_url", &app_repo_url, "URL")?;
        let version = names::version(&need("version", "name the tag, branch or revision to build")?)?;
        let image_url =
            need("image_url", "vr builds in a container of the stack image; set image_url (and image_name)")?;
        let image_name = text("image_name")?;
        let stack = image_name.clone().unwrap_or_else(|| image_name_from_url(&image_url));
        names::file_name("image name", &stack).map_err(|e| bad("image_name", e.to_string()))?;
        let buildpack_url = text("buildpack_url")?.map(|u| buildpack("buildpack_url", &u)).transpose()?;
        let buildpack_version = text("buildpack_version")?;
        if let Some(v) = &buildpack_version {
            check_word("buildpack_version", v, "revision")?;
        }
        let release_data = match get("release_data") {
            Value::Null => None,
            v @ Value::Mapping(_) => Some(v),
            _ => return Err(bad("release_data", "expected a mapping (what bin/release printed)")),
        };
        let mut unknown_keys: Vec<String> = map
            .keys()
            .filter_map(|k| k.as_str())
            .filter(|k| !KNOWN_KEYS.contains(k))
            .map(str::to_string)
            .collect();
        unknown_keys.sort();
        Ok(BuildData {
            app_name,
            app_repo_type: repo_type(text("app_repo_type")?)?,
            app_repo_url,
            version,
            app_commit: commit(text("app_commit")?)?,
            buildpack_url,
            buildpack_urls: buildpack_list(&get("buildpack_urls"))?,
            buildpack_version,
            image_name,
            image_url,
            image_md5: text("image_md5")?,
            build_md5: text("build_md5")?,
            release_data,
            build_env: yaml::env_pairs("build_env", &get("build_env"))?.into_iter().collect(),
            unknown_keys,
        })
    }

    /// The YAML text of this data (build_result.yaml).
    pub fn to_yaml(&self) -> Result<String, BuildDataError> {
        Ok(serde_yaml_ng::to_string(self).map_err(super::yaml::YamlError::from)?)
    }

    /// The buildpacks to try, in order: `buildpack_url` alone when set (pinned by its fragment or
    /// else `buildpack_version`), otherwise `buildpack_urls`.
    pub fn buildpacks(&self) -> Vec<BuildpackRef> {
        match &self.buildpack_url {
            Some(url) => {
                let mut r = BuildpackRef::parse(url);
                if r.rev.is_none() {
                    r.rev = self.buildpack_version.clone();
                }
                vec![r]
            }
            None => self.buildpack_urls.iter().map(|u| BuildpackRef::parse(u)).collect(),
        }
    }

    /// Every pinned buildpack the file names, from both keys: a `.buildpacks` entry with the same URL
    /// and no revision of its own is built at this revision.
    pub fn pins(&self) -> Vec<BuildpackRef> {
        let mut all = self.buildpacks();
        all.extend(self.buildpack_urls.iter().map(|u| BuildpackRef::parse(u)));
        all.into_iter().filter(|r| r.rev.is_some()).collect()
    }

    /// The revision to check out: `app_commit` when known, else `version`.
    pub fn revision(&self) -> &str {
        self.app_commit.as_deref().unwrap_or(&self.version)
    }

    /// The stack image as the runner fetches it.
    pub fn image(&self) -> Artifact {
        Artifact {
            url: self.image_url.clone(),
            md5: self.image_md5.clone(),
            name: self.image_name.clone().unwrap_or_else(|| image_name_from_url(&self.image_url)),
        }
    }

    /// The stack's name as buildpacks see it in `STACK`.
    pub fn stack(&self) -> String {
        self.image().name
    }
}

#[cfg(test)]
mod tests;
