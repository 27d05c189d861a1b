//! What buildpacks' `bin/release` printed: YAML with `default_process_types` (Procfile entries used
//! for the types the app's Procfile lacks; Velociraptor ignored them), `config_vars` (kept in
//! build_result.yaml's `release_data`, the release's default env) and `addons`. With several
//! buildpacks the outputs are merged in order, later ones winning key by key.

use serde_yaml_ng::{Mapping, Value};

use crate::model::procfile;

/// Merges release outputs, each labelled for messages (`buildpack 1 (url)`), into one mapping.
pub fn merge(outputs: &[(String, String)]) -> Result<Value, String> {
    let mut merged = Mapping::new();
    for (label, text) in outputs {
        let value: Value = crate::model::yaml::parse(text)
            .map_err(|e| format!("{label} printed YAML vr can't read from bin/release: {e}"))?;
        let map = match value {
            Value::Null => continue,
            Value::Mapping(m) => m,
            _ => return Err(format!("{label}: bin/release must print a YAML mapping (default_process_types: ..., config_vars: ...)")),
        };
        for (key, value) in map {
            match (merged.get_mut(&key), value) {
                (Some(Value::Mapping(old)), Value::Mapping(new)) => old.extend(new),
                (_, value) => {
                    merged.insert(key, value);
                }
            }
        }
    }
    Ok(Value::Mapping(merged))
}

/// `default_process_types` of a merged release, as `(type, command)` pairs in order.
pub fn default_process_types(release: &Value) -> Result<Vec<(String, String)>, String> {
    let Some(types) = release.get("default_process_types") else { return Ok(Vec::new()) };
    let map = match types {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(m) => m,
        _ => return Err("default_process_types must be a mapping of type: command".into()),
    };
    map.iter()
        .map(|(k, v)| match (k.as_str(), v.as_str()) {
            (Some(k), Some(v)) => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("default_process_types entry {k:?}: {v:?} is not type: command text")),
        })
        .collect()
}

/// The Procfile with a line added for each default type it lacks, or `None` when nothing changes.
pub fn procfile_with_defaults(existing: Option<&str>, defaults: &[(String, String)]) -> Option<String> {
    let have: Vec<String> =
        existing.map(procfile::entries).unwrap_or_default().into_iter().map(|(k, _)| k).collect();
    let missing: Vec<&(String, String)> = defaults.iter().filter(|(k, _)| !have.contains(k)).collect();
    if missing.is_empty() {
        return None;
    }
    let mut text = existing.unwrap_or_default().to_string();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    for (kind, command) in missing {
        text.push_str(&format!("{kind}: {command}\n"));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(texts: &[&str]) -> Vec<(String, String)> {
        texts.iter().enumerate().map(|(i, t)| (format!("buildpack {i}"), t.to_string())).collect()
    }

    #[test]
    fn later_buildpacks_win_key_by_key() {
        let merged = merge(&outputs(&[
            "default_process_types:\n  web: one\n  worker: w\nconfig_vars:\n  A: '1'\n",
            "default_process_types:\n  web: two\nconfig_vars:\n  B: '2'\naddons: []\n",
            "",
        ]))
        .unwrap();
        let types = default_process_types(&merged).unwrap();
        assert_eq!(types, [("web".to_string(), "two".to_string()), ("worker".to_string(), "w".to_string())]);
        assert_eq!(merged["config_vars"]["A"], "1");
        assert_eq!(merged["config_vars"]["B"], "2");
    }

    #[test]
    fn bad_release_output_names_the_buildpack() {
        let err = merge(&outputs(&["- a list\n"])).unwrap_err();
        assert!(err.contains("buildpack 0") && err.contains("mapping"), "{err}");
        let err = merge(&outputs(&["{{{"])).unwrap_err();
        assert!(err.contains("buildpack 0"), "{err}");
    }

    #[test]
    fn defaults_fill_only_missing_types() {
        let defaults =
            vec![("web".to_string(), "serve".to_string()), ("worker".to_string(), "work".to_string())];
        assert_eq!(
            procfile_with_defaults(Some("web: mine"), &defaults).as_deref(),
            Some("web: mine\nworker: work\n")
        );
        assert_eq!(procfile_with_defaults(None, &defaults).as_deref(), Some("web: serve\nworker: work\n"));
        assert_eq!(procfile_with_defaults(Some("web: a\nworker: b\n"), &defaults), None);
        assert_eq!(procfile_with_defaults(Some("web: a\n"), &[]), None);
    }
}
