//! Reading one variant file: rattler-build's `variants.yaml` (lists that may
//! use `if`/`then`/`else` and `${{ }}`) and conda-build's
//! `conda_build_config.yaml` (also `# [selector]` line comments).

use std::path::Path;

use indexmap::IndexMap;
use marked_yaml::Span;
use minijinja::value::ValueKind;

use super::Variant;
use crate::diagnostics::{SourceError, SourceFile};
use crate::syntax::jinja::{Jinja, Platforms};
use crate::syntax::node::{RNode, Renderer};
use crate::syntax::variant::normalize_key;

/// Keys a variant file may set that kiln reads but does not vary over.
const IGNORED: &[(&str, &str)] = &[
    (
        "pin_run_as_build",
        "`pin_run_as_build` is ignored (as in rattler-build); use run exports or `pin_compatible`",
    ),
    (
        "target_platform",
        "`target_platform` in a variant file is ignored; pass `--target-platform` instead",
    ),
];

/// The content of one variant file.
#[derive(Debug)]
pub struct VariantFile {
    /// The file (for errors).
    pub file: SourceFile,
    /// Values per normalized key, in file order, with the key's span.
    pub values: IndexMap<String, (Vec<serde_json::Value>, Span)>,
    /// `zip_keys` groups (normalized), with each group's span.
    pub zip_keys: Option<Vec<(Vec<String>, Span)>>,
}

/// Read and evaluate one variant file for `platforms`.
pub fn read(path: &Path, platforms: Platforms) -> miette::Result<VariantFile> {
    let mut file = SourceFile::read(path)?;
    let jinja = Jinja::new(platforms, &Variant::new());
    if is_conda_build_config(path) {
        file.text = std::sync::Arc::new(apply_selectors(&file, &jinja)?);
    }
    let mut out = VariantFile {
        file: file.clone(),
        values: IndexMap::new(),
        zip_keys: None,
    };
    if file
        .text
        .lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        return Ok(out);
    }
    let root = crate::syntax::yaml::parse_mapping(&file, "a variant config")?;
    let r = Renderer {
        file: &file,
        jinja: &jinja,
    };
    let Some(rendered) = r.render(&root)? else {
        return Ok(out);
    };
    for (k, v) in rendered.as_map().unwrap_or_default() {
        let key = normalize_key(&k.name);
        if key == "zip_keys" {
            out.zip_keys = Some(zip_keys(&file, v)?);
            continue;
        }
        if let Some((_, why)) = IGNORED.iter().find(|(name, _)| *name == key) {
            tracing::warn!("{}: {why}", file.location(&k.span));
            continue;
        }
        if !crate::syntax::variant::is_shell_name(&key) {
            // Keys become environment variables of the build script.
            return Err(file
                .error(&k.span, format!("`{}` is not a valid variant key", k.name), "here")
                .with_help("use letters, digits, `_`, `-` and `.`, not starting with a digit")
                .into());
        }
        let items: Vec<&RNode> = match v.as_seq() {
            Some(items) => items.iter().collect(),
            None if v.as_scalar().is_some() => vec![v],
            None => {
                return Err(file
                    .error(
                        &v.span,
                        format!("variant key `{}` must be a list of values", k.name),
                        "expected a list",
                    )
                    .with_help(format!("write e.g. `{}: [\"1.0\", \"2.0\"]`", k.name))
                    .into())
            }
        };
        let mut values = Vec::new();
        for item in items {
            values.push(scalar(&file, item, &k.name)?);
        }
        if values.is_empty() {
            return Err(file
                .error(&k.span, format!("variant key `{}` has no values", k.name), "empty list")
                .with_help("give at least one value, or remove the key")
                .into());
        }
        out.values.insert(key, (values, k.span));
    }
    Ok(out)
}

fn is_conda_build_config(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("conda_build_config"))
}

/// A value: integers and booleans keep their type (they hash as JSON
/// numbers and booleans), everything else is a string.
fn scalar(file: &SourceFile, node: &RNode, key: &str) -> Result<serde_json::Value, SourceError> {
    let v = node
        .as_scalar()
        .filter(|v| !matches!(v.kind(), ValueKind::Seq | ValueKind::Map));
    let Some(v) = v else {
        return Err(file
            .error(
                &node.span,
                format!("values of variant key `{key}` must be strings or numbers"),
                "not a single value",
            )
            .with_help("nested lists are only allowed under `zip_keys`"));
    };
    Ok(match v.kind() {
        ValueKind::Bool => serde_json::Value::Bool(v.is_true()),
        ValueKind::Number if v.as_i64().is_some() => serde_json::json!(v.as_i64()),
        _ => serde_json::Value::String(v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())),
    })
}

/// `zip_keys`: a list of lists of at least two keys (a single flat list is
/// one group, as conda-build accepts).
fn zip_keys(file: &SourceFile, node: &RNode) -> Result<Vec<(Vec<String>, Span)>, SourceError> {
    let err = |span: &Span, msg: &str| {
        file.error(span, msg.to_string(), "in `zip_keys`")
            .with_help("write `zip_keys: [[python, numpy], [c_compiler_version, cxx_compiler_version]]`")
    };
    let Some(items) = node.as_seq() else {
        return Err(err(&node.span, "`zip_keys` must be a list of lists of keys"));
    };
    let groups: Vec<&RNode> = if items.iter().all(|i| i.as_scalar().is_some()) {
        vec![node]
    } else {
        items.iter().collect()
    };
    let mut out = Vec::new();
    for g in groups {
        let Some(keys) = g.as_seq() else {
            return Err(err(&g.span, "each `zip_keys` entry must be a list of keys"));
        };
        let mut names = Vec::new();
        for k in keys {
            match k.as_scalar().and_then(|v| v.as_str()) {
                Some(name) => names.push(normalize_key(name)),
                None => return Err(err(&k.span, "`zip_keys` entries must be key names")),
            }
        }
        if names.len() < 2 {
            return Err(err(&g.span, "a `zip_keys` group needs at least two keys"));
        }
        out.push((names, g.span));
    }
    Ok(out)
}

/// conda-build selectors: a line ending in `# [expr]` is kept (without the
/// comment) when `expr` is true and blanked otherwise, so line numbers in
/// later errors still match the file. A selector naming something kiln does
/// not know (`os.environ...`, `py`) is false, with a warning; one that does
/// not parse is an error.
fn apply_selectors(file: &SourceFile, jinja: &Jinja) -> miette::Result<String> {
    let mut out = String::with_capacity(file.text.len());
    let mut warned = std::collections::BTreeSet::new();
    for (i, line) in file.text.lines().enumerate() {
        match selector(line) {
            Some((content, expr)) => {
                let value = match jinja.eval(expr) {
                    Err(e) if e.undefined => {
                        if warned.insert(expr.to_string()) {
                            tracing::warn!(
                                "{}:{}: selector `[{expr}]` is treated as false: {}",
                                file.path.display(),
                                i + 1,
                                e.message
                            );
                        }
                        Ok(minijinja::Value::from(false))
                    }
                    other => other,
                };
                let keep = value.map_err(|e| {
                    let span = Span::new_start(marked_yaml::Marker::new(0, 0, i + 1, 1));
                    file.error(
                        &span,
                        format!("invalid selector `[{expr}]`: {}", e.message),
                        "in this line",
                    )
                    .with_help("selectors use platform names such as `linux`, `osx`, `win`, `x86_64`, combined with `and`/`or`/`not`")
                })?;
                if keep.is_true() {
                    out.push_str(content);
                }
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    Ok(out)
}

/// Split `content  # [expr]` into its parts.
fn selector(line: &str) -> Option<(&str, &str)> {
    let trimmed = line.trim_end();
    let body = trimmed.strip_suffix(']')?;
    let open = body.rfind("# [").or_else(|| body.rfind("#["))?;
    let expr = body[open..].trim_start_matches('#').trim_start().strip_prefix('[')?;
    Some((line[..open].trim_end(), expr.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platforms() -> Platforms {
        let linux = rattler_conda_types::Subdir::Linux64;
        Platforms {
            target: linux,
            build: linux,
            host: linux,
        }
    }

    #[test]
    fn values_keep_yaml_types_and_keys_are_normalized() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("variants.yaml");
        std::fs::write(
            &path,
            "python: [3.10, \"3.11\"]\nlevel: [1, \"2\"]\ndebug: [true]\nc-compiler.version: [\"12\"]\n",
        )
        .unwrap();
        let f = read(&path, platforms()).unwrap();
        let values = |k: &str| f.values[k].0.clone();
        assert_eq!(values("python"), [serde_json::json!("3.10"), serde_json::json!("3.11")]);
        assert_eq!(values("level"), [serde_json::json!(1), serde_json::json!("2")]);
        assert_eq!(values("debug"), [serde_json::json!(true)]);
        assert_eq!(values("c_compiler_version"), [serde_json::json!("12")]);
    }

    #[test]
    fn selector_lines() {
        assert_eq!(selector("  - 11  # [linux]"), Some(("  - 11", "linux")));
        assert_eq!(selector("- 11 #[osx and arm64]"), Some(("- 11", "osx and arm64")));
        assert_eq!(selector("- 11"), None);
        assert_eq!(selector("- '[a]'"), None);
    }
}
