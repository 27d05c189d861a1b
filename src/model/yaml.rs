//! Reading Velociraptor's YAML files (proc.yaml, build.yaml, image.yaml) the way VR's Python did:
//! one set of rules for scalars, `env` mappings and md5s, so the three files cannot disagree.

use serde_yaml_ng::Value;

/// The largest YAML text vr parses: far above any proc.yaml, build.yaml or image.yaml (settings
/// included), far below what would keep a parser busy.
pub const MAX_BYTES: usize = 1 << 20;
/// The deepest nesting of flow collections (`[` and `{`) vr parses. libyaml's scanner is
/// quadratic in it: 100 kB of `[` took 32 s, blocking whatever thread parsed it.
pub const MAX_FLOW_DEPTH: usize = 64;

/// Why YAML text was not parsed.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// Longer than [`MAX_BYTES`].
    #[error("it is {0} bytes long; vr reads at most {MAX_BYTES} bytes of YAML (keep large data out of it, e.g. in a volume)")]
    TooLong(usize),
    /// Nested deeper than [`MAX_FLOW_DEPTH`].
    #[error("it nests [ and {{ more than {MAX_FLOW_DEPTH} levels deep; vr reads no deeper (flatten it)")]
    TooDeep,
    /// Not YAML, or not of the expected shape.
    #[error("{0}")]
    Syntax(#[from] serde_yaml_ng::Error),
    /// YAML, but not the mapping of fields a definition is.
    #[error("expected `key: value` lines, found {0}")]
    NotAMapping(String),
}

/// The deepest flow nesting in `text`, counting `[`/`{` outside quotes and comments; stops
/// counting past `limit`. An over-estimate at worst (a bracket in a plain scalar counts), in
/// time linear in the text.
fn flow_depth(text: &str, limit: usize) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut comment = false;
    let mut previous = '\n';
    // The last character before this one on the line that is not a space: outside flow a bracket
    // opens one only where a value or an entry starts (at the start of a line, or after ': ',
    // '- ' or '? '); elsewhere it is part of a plain scalar (`sha: 00[[00`, `a: x-?[`).
    let mut token = '\n';
    // Whether the line so far holds only block indicators ('- ', '? '), which start a node.
    let mut indicators_only = true;
    for c in text.chars() {
        let entry = matches!(token, '-' | '?') && indicators_only;
        let indicator = previous.is_whitespace() && (token == ':' || entry);
        let opens_flow = depth > 0 || token == '\n' || indicator;
        if c == '\n' {
            token = '\n';
            indicators_only = true;
        } else if !c.is_whitespace() && quote.is_none() && !comment {
            indicators_only &= matches!(c, '-' | '?') && (token == '\n' || previous.is_whitespace());
            token = c;
        }
        match (quote, c) {
            _ if comment => comment = c != '\n',
            (Some('"'), '\\') if previous == '\\' => {
                previous = ' ';
                continue;
            }
            (Some(q), c) if c == q && !(q == '"' && previous == '\\') => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') if !previous.is_alphanumeric() => quote = Some(c),
            (None, '#') if previous.is_whitespace() => comment = true,
            (None, '[' | '{') if opens_flow => {
                depth += 1;
                deepest = deepest.max(depth);
                if deepest > limit {
                    return deepest;
                }
            }
            (None, ']' | '}') => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    deepest
}

/// Parses YAML from a file, a request or an app, within [`MAX_BYTES`] and [`MAX_FLOW_DEPTH`], so
/// no input keeps the parsing thread busy for long. Every YAML vr did not write goes through it.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    if text.len() > MAX_BYTES {
        return Err(YamlError::TooLong(text.len()));
    }
    if flow_depth(text, MAX_FLOW_DEPTH) > MAX_FLOW_DEPTH {
        return Err(YamlError::TooDeep);
    }
    Ok(serde_yaml_ng::from_str(text)?)
}

/// Parses a mapping of fields (a definition file, an editor's text, a form's config or env):
/// empty text is an empty mapping. The CLI and the dashboard's forms both read YAML with it.
pub fn mapping(text: &str) -> Result<serde_json::Map<String, serde_json::Value>, YamlError> {
    match parse::<serde_json::Value>(text)? {
        serde_json::Value::Object(map) => Ok(map),
        serde_json::Value::Null => Ok(serde_json::Map::new()),
        other => Err(YamlError::NotAMapping(other.to_string())),
    }
}

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
        parse(text).unwrap()
    }

    #[test]
    fn deep_or_huge_yaml_is_refused_before_the_parser_sees_it() {
        let deep = format!("a: {}", "[".repeat(100_000));
        let started = std::time::Instant::now();
        assert!(matches!(parse::<Value>(&deep), Err(YamlError::TooDeep)));
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "refused without parsing");
        let braces = format!("a: {}", "{a: ".repeat(65));
        assert!(matches!(parse::<Value>(&braces), Err(YamlError::TooDeep)));
        let long = "k: v\n".repeat(MAX_BYTES / 4);
        assert!(matches!(parse::<Value>(&long), Err(YamlError::TooLong(_))));
        assert!(parse::<Value>(&format!("a: {}1{}", "[".repeat(64), "]".repeat(64))).is_ok());
    }

    #[test]
    fn brackets_in_quotes_and_comments_do_not_count() {
        let text = format!("a: '{0}'\nb: \"{0}\\\"\"\n# {0}\nc: [[1]]\n", "[".repeat(100));
        assert_eq!(flow_depth(&text, 1000), 2);
        assert_eq!(parse::<Value>(&text).unwrap()["c"][0][0], Value::from(1));
    }

    #[test]
    fn brackets_inside_a_plain_scalar_do_not_count() {
        let text = format!(
            "sha: 00{0}00\nmd5: 0[{{?? {{{0}\nlist: [[1]]\nitems:\n- [2]\n- - [3]\n",
            "[".repeat(100)
        );
        assert_eq!(flow_depth(&text, 1000), 2);
        assert_eq!(parse::<Value>(&text).unwrap()["list"][0][0], Value::from(1));
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
