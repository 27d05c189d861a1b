//! Procfiles. VR parsed them as YAML; Heroku's format is `name: command` lines, which is usually
//! valid YAML too, but not when a command holds `: ` or starts with a quote. Both are read here:
//! YAML first, then plain lines.

/// Why no command came out of a Procfile.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProcfileError {
    /// The type is not in the file.
    #[error("the Procfile has no '{wanted}' entry (it has: {have}): add `{wanted}: <command>` to the Procfile, or set cmd in proc.yaml")]
    NoEntry {
        /// The proc type asked for.
        wanted: String,
        /// The types the file has.
        have: String,
    },
}

fn from_yaml(text: &str) -> Option<Vec<(String, String)>> {
    let map: serde_yaml_ng::Mapping = super::yaml::parse(text).ok()?;
    map.into_iter()
        .map(|(k, v)| match (k, v) {
            (serde_yaml_ng::Value::String(k), serde_yaml_ng::Value::String(v)) => Some((k, v)),
            _ => None,
        })
        .collect()
}

fn from_lines(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .filter(|(k, v)| !k.is_empty() && !v.is_empty() && !k.contains(char::is_whitespace))
        .collect()
}

/// Every `(type, command)` entry of a Procfile, in file order.
pub fn entries(text: &str) -> Vec<(String, String)> {
    from_yaml(text).unwrap_or_else(|| from_lines(text))
}

/// The command for one proc type.
pub fn command(text: &str, proc_type: &str) -> Result<String, ProcfileError> {
    let all = entries(text);
    all.iter().find(|(k, _)| k == proc_type).map(|(_, v)| v.clone()).ok_or_else(|| ProcfileError::NoEntry {
        wanted: proc_type.into(),
        have: if all.is_empty() {
            "nothing".into()
        } else {
            all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_heroku_lines() {
        assert_eq!(command("web: busybox httpd -f -p $PORT\n", "web").unwrap(), "busybox httpd -f -p $PORT");
        // Not valid YAML (": " inside the command), still a valid Heroku Procfile.
        let text = "web: sh -c 'echo a: b'\nworker: ./work --queue=x\n";
        assert_eq!(command(text, "web").unwrap(), "sh -c 'echo a: b'");
        assert_eq!(command(text, "worker").unwrap(), "./work --queue=x");
    }

    #[test]
    fn a_missing_entry_lists_what_is_there() {
        let err = command("web: x\nclock: y\n", "worker").unwrap_err();
        assert!(err.to_string().contains("has: web, clock"), "{err}");
    }
}
