//! JSON into typed values with the path of what was wrong (`env.PORT: invalid type ...`), so a
//! refusal of a definition or a request body names the field to fix, whichever door it came in.

use serde::de::DeserializeOwned;

/// `value` as a `T`; the error names the field (dotted, `[i]` for list items) when it is not the
/// whole value.
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.into_inner().to_string()
        } else {
            format!("{path}: {}", e.into_inner())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        size: u32,
    }

    #[test]
    fn errors_name_the_field() {
        let wrong = from_json::<Outer>(json!({ "inner": { "size": "two" } })).unwrap_err();
        assert!(wrong.starts_with("inner.size: invalid type: string \"two\""), "{wrong}");
        let unknown = from_json::<Outer>(json!({ "inner": { "size": 1 }, "x": 1 })).unwrap_err();
        assert!(unknown.contains("unknown field `x`"), "{unknown}");
        let whole = from_json::<Outer>(json!("text")).unwrap_err();
        assert!(whole.starts_with("invalid type: string"), "{whole}");
    }
}
