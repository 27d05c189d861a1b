//! Reading Velociraptor's YAML files (proc.yaml, build.yaml, image.yaml) the way VR's Python did:
//! one set of rules for scalars, `env` mappings and md5s, so the three files cannot disagree.

use serde_yaml_ng::Value;

/// A key whose value is wrong, and what to write instead; each file's error type takes it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadKey {
    /// The key (`env.NAME` for one variable).
    pub key: String,
    /// What is wrong and what to write instead.
    pub problem: String,
}

fn bad(key: &str, problem: impl Into<String>) -> BadKey {
    BadKey { key: key.to_string(), problem: problem.into() }
}

/// A scalar as VR's Python `str()` renders it, so `version: 1.0` stays `1.0` and `true` is
/// `True`; `None` for null. A list or mapping is an error.
pub fn scalar_text(key: &str, value: &Value) -> Result<Option<String>, BadKey> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(if *b { "True" } else { "False" }.to_string())),
        _ => Err(bad(key, "expected a single value (text or number), not a list or mapping")),
    }
}

/// Whether `name` is a shell variable name: letters, digits and `_`, not starting with a digit.
/// The one rule for every environment a user names (proc.yaml `env`, build env, ENV_DIR files).
pub fn is_var_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// An `env` mapping of NAME: value, in file order. Names are shell variable names; values are any
/// scalar, without NUL bytes (they end up in a process environment).
pub fn env_pairs(key: &str, value: &Value) -> Result<Vec<(String, String)>, BadKey> {
    let map = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Mapping(m) => m,
        _ => return Err(bad(key, "expected a mapping of NAME: value")),
    };
    let mut pairs = Vec::new();
    for (k, v) in map {
        let name = scalar_text(key, k)?.unwrap_or_default();
        if !is_var_name(&name) {
            return Err(bad(key, format!("'{name}' is not a valid variable name (letters, digits, '_')")));
        }
        let value_key = format!("{key}.{name}");
        let value = scalar_text(&value_key, v)?.unwrap_or_default();
        if value.contains('\0') {
            return Err(bad(&value_key, "a value cannot contain a NUL byte"));
        }
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// An md5 as 32 lowercase hex digits; `None` when absent or empty.
pub fn md5(key: &str, value: Option<String>) -> Result<Option<String>, BadKey> {
    let Some(md5) = value.map(|m| m.trim().to_ascii_lowercase()).filter(|m| !m.is_empty()) else {
        return Ok(None);
    };
    if md5.len() == 32 && md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(Some(md5))
    } else {
        Err(bad(key, format!("'{md5}' is not an md5: write 32 hex digits, or leave the key out")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    #[test]
    fn scalars_read_as_python_printed_them() {
        assert_eq!(scalar_text("v", &yaml("1.0")).unwrap().as_deref(), Some("1.0"));
        assert_eq!(scalar_text("v", &yaml("true")).unwrap().as_deref(), Some("True"));
        assert_eq!(scalar_text("v", &yaml("~")).unwrap(), None);
        assert!(scalar_text("v", &yaml("[1]")).unwrap_err().problem.contains("not a list"));
    }

    #[test]
    fn env_keeps_order_and_names_the_bad_key() {
        let pairs = env_pairs("env", &yaml("{B: 1, A: x}")).unwrap();
        assert_eq!(pairs, [("B".to_string(), "1".to_string()), ("A".to_string(), "x".to_string())]);
        assert_eq!(env_pairs("env", &yaml("{1X: y}")).unwrap_err().key, "env");
        assert_eq!(env_pairs("env", &yaml("{X: \"a\\0b\"}")).unwrap_err().key, "env.X");
    }

    #[test]
    fn md5s_are_32_hex_digits() {
        assert_eq!(md5("m", Some(" ABCDEF0123456789abcdef0123456789 ".into())).unwrap().unwrap().len(), 32);
        assert_eq!(md5("m", Some(String::new())).unwrap(), None);
        assert!(md5("m", Some("xyz".into())).is_err());
    }
}
