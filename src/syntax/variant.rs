//! The variant value type every layer shares: values by normalized key,
//! their text, which keys are implied, and which names a build script can
//! receive as environment variables.

use std::collections::{BTreeMap, BTreeSet};

/// Variant values by normalized key, as typed in the variant config (an
/// output's used variant, or one value of every key for rendering).
pub type Variant = BTreeMap<String, serde_json::Value>;

/// A variant value as text (`3.10`, `1`, `true`), as functions, specs and
/// scripts see it.
pub fn variant_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A variant key as kiln stores it: `-` and `.` become `_` (as in rattler-build).
pub fn normalize_key(key: &str) -> String {
    key.replace(['-', '.'], "_")
}

/// Keys that are part of every output's variant when the config sets them
/// (as in rattler-build): channel settings, and build environment variables
/// a variant file may override.
pub const ALWAYS_USED: &[&str] = &[
    "channel_targets",
    "channel_sources",
    "MACOSX_DEPLOYMENT_TARGET",
    "CMAKE_GENERATOR",
];

/// The keys an output or staging output uses beyond those it reads: the
/// [`ALWAYS_USED`] keys, and `CONDA_BUILD_SYSROOT` along with a C or C++
/// compiler. Only keys present in `variant` are returned.
pub fn implied_keys(used: &BTreeSet<String>, variant: &Variant) -> BTreeSet<String> {
    let mut keys: BTreeSet<String> = ALWAYS_USED.iter().map(|k| k.to_string()).collect();
    if used.contains("c_compiler") || used.contains("cxx_compiler") {
        keys.insert("CONDA_BUILD_SYSROOT".to_string());
    }
    keys.retain(|k| variant.contains_key(k));
    keys
}

/// Whether `name` can be exported by a POSIX shell (`[A-Za-z_][A-Za-z0-9_]*`).
pub fn is_shell_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
