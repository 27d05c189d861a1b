//! Velociraptor's `make_hash`: each argument as Python's `json.dumps(arg, sort_keys=True)` (default
//! separators `", "` and `": "`, `ensure_ascii`), concatenated, md5'd. Release hashes are the first 8
//! hex digits. Reproduced byte for byte so a release hashes the same in vr as it did in VR, which
//! keeps proc names (they carry the hash) stable for users moving over.

use md5::{Digest, Md5};
use serde_json::Value;

/// The md5 hex of the arguments, as VR's `make_hash(*args)`.
pub fn make_hash(args: &[Value]) -> String {
    let mut hasher = Md5::new();
    for arg in args {
        let mut text = String::new();
        python_json(arg, &mut text);
        hasher.update(text.as_bytes());
    }
    format!("{:x}", hasher.finalize())
}

/// Appends `value` as Python's `json.dumps(value, sort_keys=True)` writes it.
pub fn python_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => python_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            // Python sorts str keys by code point, which is the UTF-8 byte order Rust's str uses.
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                python_string(key, out);
                out.push_str(": ");
                python_json(&map[key], out);
            }
            out.push('}');
        }
    }
}

/// A str with `ensure_ascii`: everything outside space..tilde escaped, `\uXXXX` in lowercase hex,
/// UTF-16 surrogate pairs above the BMP.
fn python_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python's `repr`: shortest round-trip digits, exponent form below 1e-4 and from 1e16,
/// always with a `.` or an exponent.
fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if f == 0.0 || (-4..16).contains(&exp) {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn velociraptors_test_vectors() {
        assert_eq!(make_hash(&[json!(1)]), "c4ca4238a0b923820dcc509a6f75849b");
        assert_eq!(make_hash(&[json!("a")]), "6067924ae1b1832abce3d12fe83755a9");
        assert_eq!(make_hash(&[json!({})]), "99914b932bd37a50b983c5e7c90ae93b");
        assert_eq!(make_hash(&[json!([])]), "d751713988987e9331980363e24189ce");
        assert_eq!(make_hash(&[json!("\u{a3}")]), "dd335aa90459c69348d739b1628dcf86");
    }

    #[test]
    fn dumps_like_python() {
        let dumped = |v: Value| {
            let mut s = String::new();
            python_json(&v, &mut s);
            s
        };
        assert_eq!(
            dumped(json!({"b": [1, null], "a": {"z": true, "y": "x\"\n"}})),
            r#"{"a": {"y": "x\"\n", "z": true}, "b": [1, null]}"#
        );
        assert_eq!(dumped(json!("é😀\u{7f}")), r#""\u00e9\ud83d\ude00\u007f""#);
        assert_eq!(dumped(json!(1.0)), "1.0");
        assert_eq!(dumped(json!(0.1)), "0.1");
        assert_eq!(dumped(json!(1e16)), "1e+16");
        assert_eq!(dumped(json!(1.5e-7)), "1.5e-07");
        assert_eq!(dumped(json!(-2.5)), "-2.5");
    }
}
