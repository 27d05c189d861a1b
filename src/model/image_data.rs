//! image.yaml: Velociraptor's description of one stack image build (`vr.imager`, §5), validated.
//!
//! Required: `base_image_url`, `base_image_name`, `new_image_name`, `script_url`. Optional:
//! `base_image_md5` (the cached base is re-fetched when it differs), `new_image_md5` (accepted for
//! VR's files; a new build never has a known md5, so it is not checked) and `env`, a mapping of
//! variables for the provisioning script (VR parsed it but never passed it on; vr does).
//!
//! A `*_url` is http://, https://, file:// or a local path; a relative local path is relative to
//! the client's working directory ([`ImageData::resolve_relative`]).

use super::yaml::{self, BadKey};
use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

/// A validated image.yaml.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageData {
    /// Where the base image tarball is (.tar, .tar.gz, .tar.bz2, .tar.xz; a `docker export` works).
    pub base_image_url: String,
    /// The base's name in the shared image cache.
    pub base_image_name: String,
    /// The base's md5, if known.
    pub base_image_md5: Option<String>,
    /// The new image's name: the outputs are `<name>.tar.gz`, `<name>.tar.gz.md5`, `<name>.log`.
    pub new_image_name: String,
    /// Accepted for compatibility with VR's files; not checked.
    pub new_image_md5: Option<String>,
    /// Where the provisioning script is.
    pub script_url: String,
    /// Variables for the script, in file order.
    pub env: Vec<(String, String)>,
    /// Keys vr does not know (ignored, as VR did).
    pub unknown_keys: Vec<String>,
}

/// What is wrong with an image.yaml; every message names the key and says what to write.
#[derive(Debug, thiserror::Error)]
pub enum ImageDataError {
    /// Not YAML at all.
    #[error("image.yaml can't be read as YAML: {0}")]
    Yaml(#[from] super::yaml::YamlError),
    /// The top level is not a mapping.
    #[error("image.yaml must be a mapping of keys (base_image_url: ..., script_url: ...), not {0}")]
    NotAMapping(&'static str),
    /// A required key is missing or empty.
    #[error("image.yaml has no '{0}': add it (see `vr imager build --help`)")]
    Missing(&'static str),
    /// A key has a value that cannot work.
    #[error("image.yaml key '{key}': {problem}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong and what to write instead.
        problem: String,
    },
}

const KNOWN_KEYS: &[&str] = &[
    "base_image_url",
    "base_image_name",
    "base_image_md5",
    "new_image_name",
    "new_image_md5",
    "script_url",
    "env",
];

impl From<BadKey> for ImageDataError {
    fn from(b: BadKey) -> ImageDataError {
        ImageDataError::BadValue { key: b.key, problem: b.problem }
    }
}

fn bad(key: &str, problem: impl Into<String>) -> ImageDataError {
    ImageDataError::BadValue { key: key.to_string(), problem: problem.into() }
}

/// A scalar as VR's Python printed it; `None` for a missing or null value.
fn scalar(key: &str, value: Option<&Value>) -> Result<Option<String>, ImageDataError> {
    Ok(yaml::scalar_text(key, value.unwrap_or(&Value::Null))?)
}

fn required(map: &Mapping, key: &'static str) -> Result<String, ImageDataError> {
    scalar(key, map.get(key))?.filter(|s| !s.trim().is_empty()).ok_or(ImageDataError::Missing(key))
}

/// Image names become cache directories and output file names: one plain file name.
fn image_name(key: &str, name: String) -> Result<String, ImageDataError> {
    super::names::file_name("image name", &name).map_err(|e| bad(key, e.to_string()))
}

fn md5(key: &str, value: Option<String>) -> Result<Option<String>, ImageDataError> {
    Ok(yaml::md5(key, value)?)
}

fn env_pairs(value: Option<&Value>) -> Result<Vec<(String, String)>, ImageDataError> {
    Ok(yaml::env_pairs("env", value.unwrap_or(&Value::Null))?)
}

/// Whether a url names a local path rather than a server.
fn is_local_path(url: &str) -> bool {
    !["http://", "https://", "file://"].iter().any(|scheme| url.starts_with(scheme))
}

impl ImageData {
    /// Parses and validates image.yaml text.
    pub fn from_yaml(text: &str) -> Result<ImageData, ImageDataError> {
        let map = match super::yaml::parse(text)? {
            Value::Mapping(m) => m,
            Value::Null => Mapping::new(),
            Value::Sequence(_) => return Err(ImageDataError::NotAMapping("a list")),
            _ => return Err(ImageDataError::NotAMapping("a single value")),
        };
        let mut unknown_keys: Vec<String> = map
            .keys()
            .filter_map(Value::as_str)
            .filter(|k| !KNOWN_KEYS.contains(k))
            .map(str::to_string)
            .collect();
        unknown_keys.sort();
        let data = ImageData {
            base_image_url: required(&map, "base_image_url")?,
            base_image_name: image_name("base_image_name", required(&map, "base_image_name")?)?,
            base_image_md5: md5("base_image_md5", scalar("base_image_md5", map.get("base_image_md5"))?)?,
            new_image_name: image_name("new_image_name", required(&map, "new_image_name")?)?,
            new_image_md5: md5("new_image_md5", scalar("new_image_md5", map.get("new_image_md5"))?)?,
            script_url: required(&map, "script_url")?,
            env: env_pairs(map.get("env"))?,
            unknown_keys,
        };
        data.script_name()?;
        Ok(data)
    }

    /// The script's file name (the last part of `script_url`'s path): it runs as `/<name>` in
    /// the image, as VR ran it.
    pub fn script_name(&self) -> Result<String, ImageDataError> {
        let path = if is_local_path(&self.script_url) {
            self.script_url.as_str()
        } else {
            self.script_url.split(['?', '#']).next().unwrap_or_default()
        };
        let name = path.rsplit('/').next().unwrap_or_default();
        if name.is_empty() || name == "." || name == ".." || name.contains('\0') {
            return Err(bad(
                "script_url",
                format!("'{}' does not end in a file name: point it at the script itself", self.script_url),
            ));
        }
        Ok(name.to_string())
    }

    /// Makes relative local paths in `base_image_url` and `script_url` absolute, relative to
    /// `dir` (the client's working directory, where VR ran).
    pub fn resolve_relative(&mut self, dir: &Path) {
        for url in [&mut self.base_image_url, &mut self.script_url] {
            if is_local_path(url) && !url.starts_with('/') {
                *url = dir.join(url.as_str()).display().to_string();
            }
        }
    }

    /// The output file names, in the client's directory: the tarball, its md5 and the log.
    pub fn output_names(&self) -> (String, String, String) {
        let name = &self.new_image_name;
        (format!("{name}.tar.gz"), format!("{name}.tar.gz.md5"), format!("{name}.log"))
    }
}

#[cfg(test)]
mod tests;
