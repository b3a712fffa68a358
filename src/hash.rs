//! Build-string hashes, computed as rattler-build and conda-build do.
//!
//! The hash input is the output's used variant as JSON with sorted keys and
//! Python's `json.dumps` separators (`", "` and `": "`); the hash is the
//! first 7 hex digits of its SHA-1. A prefix such as `py311` comes from the
//! `python`/`numpy`/`perl`/`lua`/`r` entries.

use std::io::Write;

use rattler_conda_types::NoArchType;
use serde::Serialize;
use sha1::{Digest, Sha1};

pub use crate::variants::Variant;

/// A computed hash and its prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HashInfo {
    /// First 7 hex digits of the SHA-1 of the hash input.
    pub hash: String,
    /// `py311`, `np126py311`, ... or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

impl std::fmt::Display for HashInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}h{}", self.prefix, self.hash)
    }
}

/// `json.dumps(variant, sort_keys=True)` as Python writes it.
pub fn hash_input(variant: &Variant) -> String {
    let mut out = Vec::new();
    write_python_json(&mut out, &serde_json::to_value(variant).expect("variant is JSON"));
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn write_python_json(out: &mut Vec<u8>, v: &serde_json::Value) {
    match v {
        serde_json::Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_python_json(out, item);
            }
            out.push(b']');
        }
        serde_json::Value::Object(map) => {
            let mut keys: Vec<_> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write_python_json(out, &serde_json::Value::String(k.clone()));
                out.extend_from_slice(b": ");
                write_python_json(out, &map[k]);
            }
            out.push(b'}');
        }
        // Scalars: serde_json escapes strings like Python with ensure_ascii=False.
        scalar => {
            let _ = write!(out, "{scalar}");
        }
    }
}

/// Compute the hash of a variant for an output with the given noarch kind.
pub fn compute(variant: &Variant, noarch: &NoArchType) -> HashInfo {
    let digest = Sha1::digest(hash_input(variant).as_bytes());
    HashInfo {
        hash: hex::encode(digest)[..7].to_string(),
        prefix: prefix(variant, noarch),
    }
}

fn prefix(variant: &Variant, noarch: &NoArchType) -> String {
    if noarch.is_python() {
        return "py".to_string();
    }
    let mut out = String::new();
    for (tag, keys, parts) in [
        ("np", &["numpy"][..], 2),
        ("py", &["python"][..], 2),
        ("pl", &["perl"][..], 3),
        ("lua", &["lua"][..], 2),
        ("r", &["r", "r_base", "r-base"][..], 2),
    ] {
        if let Some(v) = keys.iter().find_map(|k| variant.get(*k)) {
            let text = crate::variants::variant_text(v);
            let version = text.split_whitespace().next().unwrap_or("");
            let short: String = version.split('.').take(parts).collect();
            out.push_str(tag);
            out.push_str(&short);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn variant(pairs: &[(&str, serde_json::Value)]) -> Variant {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn python_json_formatting() {
        let v = variant(&[("target_platform", json!("linux-64")), ("a", json!(1))]);
        assert_eq!(hash_input(&v), r#"{"a": 1, "target_platform": "linux-64"}"#);
    }

    #[test]
    fn matches_rattler_build_reference_values() {
        // Values from the reference spec (§6.3 acceptance checks):
        // sha1('{"__unix": "__unix", "target_platform": "noarch"}')[:7] == 5600cae
        let v = variant(&[("__unix", json!("__unix")), ("target_platform", json!("noarch"))]);
        assert_eq!(compute(&v, &NoArchType::generic()).hash, "5600cae");
        let v = variant(&[
            ("rattler_build_demo", json!("1 unix_5600cae_0")),
            ("target_platform", json!("noarch")),
        ]);
        assert_eq!(compute(&v, &NoArchType::generic()).hash, "63d9094");
    }

    #[test]
    fn python_prefix() {
        let v = variant(&[
            ("python", json!("3.11.* *_cpython")),
            ("target_platform", json!("linux-64")),
        ]);
        assert_eq!(compute(&v, &NoArchType::none()).prefix, "py311");
        assert_eq!(compute(&v, &NoArchType::python()).prefix, "py");
    }
}
