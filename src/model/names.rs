//! Validated names and Velociraptor's six-part proc name.
//!
//! A proc is named `<app>-<version>-<config>-<hash>-<proc>-<port>` (VR `paths.get_container_name`): the
//! supervisor program, the container, the hostname and the proc dir all use it. VR split it on every
//! `-` and wanted exactly six parts, so a version such as `1.0-rc1` made procs no swarm recognised.
//! vr keeps the format but parses from both ends: every part except the version is dash-free, so the
//! version is whatever lies between the app and the config name and may contain dashes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a name was refused; the message says what is allowed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    /// A required part was empty.
    #[error("{what} must not be empty")]
    Empty {
        /// Which kind of name.
        what: &'static str,
    },
    /// A part contains a character it may not hold.
    #[error("{what} '{value}' contains {bad:?}: {rule}")]
    BadChar {
        /// Which kind of name.
        what: &'static str,
        /// The refused value.
        value: String,
        /// The first offending character.
        bad: char,
        /// What the name may contain, and why.
        rule: &'static str,
    },
    /// A part is longer than the kernel or the file system allows.
    #[error("{what} '{value}' is {len} characters long; at most {max} are allowed")]
    TooLong {
        /// Which kind of name.
        what: &'static str,
        /// The refused value.
        value: String,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A full proc name that does not have the six parts.
    #[error("'{0}' is not a proc name of the form app-version-config-hash-proc-port")]
    NotAProcName(String),
}

const DASH_RULE: &str = "use letters, digits, '_' and '.'; '-' separates the parts of a proc name \
                         (app-version-config-hash-proc-port)";
const CONFIG_RULE: &str = "config names may only hold letters, digits and '_' (as in Velociraptor)";
const VERSION_RULE: &str =
    "versions may not contain '/', ':', ',', whitespace, control characters or any of \
                            ~^?*[\\ (git's rules for tags, as in Velociraptor)";

fn check_len(what: &'static str, value: &str, max: usize) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > max {
        return Err(NameError::TooLong { what, value: value.into(), len: value.len(), max });
    }
    Ok(())
}

fn check_chars(
    what: &'static str,
    value: &str,
    ok: impl Fn(char) -> bool,
    rule: &'static str,
) -> Result<(), NameError> {
    match value.chars().find(|c| !ok(*c)) {
        Some(bad) => Err(NameError::BadChar { what, value: value.into(), bad, rule }),
        None => Ok(()),
    }
}

fn dash_free_part(what: &'static str, value: &str, max: usize) -> Result<String, NameError> {
    check_len(what, value, max)?;
    check_chars(what, value, |c| c.is_ascii_alphanumeric() || c == '_' || c == '.', DASH_RULE)?;
    if value.starts_with('.') {
        return Err(NameError::BadChar {
            what,
            value: value.into(),
            bad: '.',
            rule: "it may not start with '.'",
        });
    }
    Ok(value.to_string())
}

/// The rule of [`file_name`].
const FILE_NAME_RULE: &str = "it becomes one file or directory name under vrd's data dir: no '/', \
                              whitespace or control characters, not starting with '.' or '-'";

/// Checks a name that becomes one path component under the data dir (an image or build name, a
/// cache entry): the one validator every such name passes, so no `/`, `..` or hidden name can
/// make vrd write outside the directory meant for it.
pub fn file_name(what: &'static str, value: &str) -> Result<String, NameError> {
    check_len(what, value, 200)?;
    check_chars(what, value, |c| c != '/' && !c.is_whitespace() && !c.is_control(), FILE_NAME_RULE)?;
    if let Some(bad) = value.chars().next().filter(|c| ".-".contains(*c)) {
        return Err(NameError::BadChar { what, value: value.into(), bad, rule: FILE_NAME_RULE });
    }
    Ok(value.to_string())
}

/// Checks an app name: dash-free, path-safe.
pub fn app_name(value: &str) -> Result<String, NameError> {
    dash_free_part("app name", value, 64)
}

/// Checks a host name as the fleet uses it (in certificate names `<host>.hosts.vr`, URLs and file
/// names): letters, digits, '-', '_' and '.', not starting or ending with '-' or '.'.
pub fn host_name(value: &str) -> Result<String, NameError> {
    check_len("host name", value, 253)?;
    check_chars(
        "host name",
        value,
        |c| c.is_ascii_alphanumeric() || "-_.".contains(c),
        "a host name is letters, digits, '-', '_' and '.'",
    )?;
    if let Some(bad) =
        [value.chars().next(), value.chars().last()].into_iter().flatten().find(|c| "-.".contains(*c))
    {
        return Err(NameError::BadChar {
            what: "host name",
            value: value.into(),
            bad,
            rule: "it may not start or end with '-' or '.'",
        });
    }
    Ok(value.to_string())
}

/// Checks a proc type such as `web` (a Procfile key).
pub fn proc_type(value: &str) -> Result<String, NameError> {
    dash_free_part("proc name", value, 64)
}

/// Checks a config name: `^[a-zA-Z0-9_]+$` as Velociraptor requires.
pub fn config_name(value: &str) -> Result<String, NameError> {
    check_len("config name", value, 64)?;
    check_chars("config name", value, |c| c.is_ascii_alphanumeric() || c == '_', CONFIG_RULE)?;
    Ok(value.to_string())
}

/// Checks a release hash: empty (build containers) or letters and digits.
pub fn release_hash(value: &str) -> Result<String, NameError> {
    if value.len() > 64 {
        return Err(NameError::TooLong {
            what: "release hash",
            value: value.into(),
            len: value.len(),
            max: 64,
        });
    }
    check_chars(
        "release hash",
        value,
        |c| c.is_ascii_alphanumeric(),
        "a release hash is letters and digits",
    )?;
    Ok(value.to_string())
}

/// Checks a version (a tag, branch or revision). Dashes are fine: see the module doc.
pub fn version(value: &str) -> Result<String, NameError> {
    check_len("version", value, 128)?;
    let forbidden = |c: char| c.is_whitespace() || c.is_control() || "/:,~^?*[\\".contains(c);
    check_chars("version", value, |c| !forbidden(c), VERSION_RULE)?;
    if value == "." || value == ".." || value.starts_with('-') || value.ends_with('-') {
        return Err(NameError::BadChar {
            what: "version",
            value: value.into(),
            bad: value.chars().next().unwrap_or('.'),
            rule: "a version may not be '.' or '..', nor start or end with '-'",
        });
    }
    Ok(value.to_string())
}

/// The six-part identity of one running copy of one process type of an app.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProcName {
    /// The app, dash-free.
    pub app: String,
    /// The version (tag); may contain dashes.
    pub version: String,
    /// The config name.
    pub config: String,
    /// The release hash; empty for build containers.
    pub hash: String,
    /// The process type (Procfile key).
    pub proc: String,
    /// The port the proc listens on (0 for workers and builds).
    pub port: u16,
}

impl ProcName {
    /// Validates every part; the result formats to a name that parses back to itself.
    pub fn new(
        app: &str,
        version_: &str,
        config: &str,
        hash: &str,
        proc: &str,
        port: u16,
    ) -> Result<ProcName, NameError> {
        let name = ProcName {
            app: app_name(app)?,
            version: version(version_)?,
            config: config_name(config)?,
            hash: release_hash(hash)?,
            proc: proc_type(proc)?,
            port,
        };
        let full = name.to_string();
        // The proc dir, the cgroup and the socket paths are named after it: keep well under NAME_MAX.
        if full.len() > 200 {
            return Err(NameError::TooLong {
                what: "proc name",
                value: full.clone(),
                len: full.len(),
                max: 200,
            });
        }
        Ok(name)
    }

    /// Parses `app-version-config-hash-proc-port`, taking the version as everything in the middle.
    pub fn parse(full: &str) -> Result<ProcName, NameError> {
        let parts: Vec<&str> = full.split('-').collect();
        if parts.len() < 6 {
            return Err(NameError::NotAProcName(full.into()));
        }
        let n = parts.len();
        let port = parts[n - 1].parse().map_err(|_| NameError::NotAProcName(full.into()))?;
        let version = parts[1..n - 4].join("-");
        ProcName::new(parts[0], &version, parts[n - 4], parts[n - 3], parts[n - 2], port)
    }

    /// VR's reading of any program name (`Proc.parse_name`): a six-part name gives its parts;
    /// anything else is foreign: app and proc are the whole name, the rest `UNKNOWN`, port 0.
    pub fn parse_lenient(full: &str) -> ProcName {
        ProcName::parse(full).unwrap_or_else(|_| ProcName {
            app: full.into(),
            version: "UNKNOWN".into(),
            config: "UNKNOWN".into(),
            hash: "UNKNOWN".into(),
            proc: full.into(),
            port: 0,
        })
    }

    /// The hostname the container gets: the full name, cut to the kernel's 64-byte limit (at a
    /// character boundary: a version may hold non-ASCII letters).
    pub fn hostname(&self) -> String {
        let mut full = self.to_string();
        let mut end = full.len().min(64);
        while !full.is_char_boundary(end) {
            end -= 1;
        }
        full.truncate(end);
        full
    }
}

impl fmt::Display for ProcName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ProcName { app, version, config, hash, proc, port } = self;
        write!(f, "{app}-{version}-{config}-{hash}-{proc}-{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_name_cannot_leave_its_directory() {
        for ok in ["busybox", "busybox-1.36", "app-1.0+rc1_abc.tar.gz", "Ubuntu_22.04"] {
            assert_eq!(file_name("image name", ok).unwrap(), ok);
        }
        for bad in ["", "..", ".", "../etc", "/etc/passwd", "a/b", ".hidden", "-rf", "a b", "a\0b", "x\n"] {
            let err = file_name("image name", bad).unwrap_err().to_string();
            assert!(err.contains("image name"), "{bad:?}: {err}");
        }
        assert!(file_name("image name", &"a".repeat(201)).is_err());
    }

    #[test]
    fn velociraptor_names_round_trip() {
        let name = ProcName::parse("node_example-v2-local-f96054b7-web-5003").unwrap();
        assert_eq!(name.app, "node_example");
        assert_eq!(name.version, "v2");
        assert_eq!(name.hash, "f96054b7");
        assert_eq!(name.port, 5003);
        assert_eq!(name.to_string(), "node_example-v2-local-f96054b7-web-5003");
    }

    #[test]
    fn versions_with_dashes_work() {
        let name = ProcName::new("app", "1.0-rc1", "prod", "abcd1234", "web", 5000).unwrap();
        let back = ProcName::parse(&name.to_string()).unwrap();
        assert_eq!(back.version, "1.0-rc1");
        assert_eq!(back, name);
    }

    #[test]
    fn build_containers_have_an_empty_hash() {
        let name = ProcName::parse("app-1.2-build--build-0").unwrap();
        assert_eq!(name.hash, "");
        assert_eq!(name.proc, "build");
    }

    #[test]
    fn dashes_elsewhere_are_refused_with_the_reason() {
        let err = ProcName::new("my-app", "1", "prod", "", "web", 1).unwrap_err();
        assert!(err.to_string().contains("'-' separates the parts"), "{err}");
        assert!(ProcName::new("app", "1", "pr-od", "", "web", 1).is_err());
        assert!(ProcName::new("app", "1", "prod", "", "web-2", 1).is_err());
    }

    #[test]
    fn bad_versions_are_refused() {
        for bad in ["", "a b", "x/y", "..", "v:1", "-x", "a\nb"] {
            assert!(version(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(version("2024.01.02+build.7").is_ok());
    }

    #[test]
    fn not_a_proc_name() {
        assert!(matches!(ProcName::parse("just-three-parts"), Err(NameError::NotAProcName(_))));
        assert!(ProcName::parse("a-1-c-h-p-notaport").is_err());
    }

    #[test]
    fn foreign_names_read_as_velociraptor_reads_them() {
        let n = ProcName::parse_lenient("postgres");
        assert_eq!(
            (n.app.as_str(), n.proc.as_str(), n.version.as_str(), n.port),
            ("postgres", "postgres", "UNKNOWN", 0)
        );
        assert_eq!(ProcName::parse_lenient("a-1-c-h-web-80").proc, "web");
    }

    #[test]
    fn hostname_fits_the_kernel_limit() {
        let name = ProcName::new(&"a".repeat(60), "1.0", "prod", "abcdef12", "web", 5000).unwrap();
        assert_eq!(name.hostname().len(), 64);
    }

    #[test]
    fn hostname_cuts_between_characters() {
        // Found by fuzzing (fuzz/corpus/names): byte 64 fell inside a two-byte 'é' and truncate panicked.
        let name = ProcName::new("app", &"é".repeat(40), "prod", "abcdef12", "web", 5000).unwrap();
        assert_eq!(name.hostname(), format!("app-{}", "é".repeat(30)));
        let foreign = ProcName::parse_lenient(&format!("{}ü", "x".repeat(63)));
        assert_eq!(foreign.hostname(), "x".repeat(63));
    }
}
