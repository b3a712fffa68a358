//! Variant configuration: the values each variant key takes and the keys
//! that vary together (`zip_keys`), merged from `variants.yaml` (or
//! `conda_build_config.yaml`) next to the recipe and the `-m` files, and
//! the combinations of the keys a recipe uses.
//!
//! Later files replace whole keys of earlier ones (and `zip_keys` as a
//! whole), as in rattler-build.

pub mod file;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use marked_yaml::Span;

use crate::diagnostics::SourceFile;
use crate::syntax::jinja::Platforms;
pub use crate::syntax::variant::{implied_keys, normalize_key, variant_text, Variant, ALWAYS_USED};

/// Variant files looked for next to the recipe, first found wins.
const RECIPE_VARIANT_FILES: &[&str] = &["variants.yaml", "conda_build_config.yaml"];

/// The merged variant configuration.
#[derive(Debug, Default, Clone)]
pub struct VariantConfig {
    /// Values per normalized key.
    pub values: BTreeMap<String, Vec<serde_json::Value>>,
    /// Groups of keys that vary together.
    pub zip_keys: Vec<Vec<String>>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

/// Where variant values come from, besides the recipe's own file.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    /// `-m` files, in order.
    pub files: Vec<PathBuf>,
    /// `--variant KEY=V1,V2` overrides, applied last.
    pub overrides: Vec<String>,
    /// Skip `variants.yaml` / `conda_build_config.yaml` next to the recipe.
    pub ignore_recipe_variants: bool,
}

/// Load the variant configuration for a recipe in `recipe_dir`: the recipe's
/// own variant file (unless ignored), then the `-m` files, then `--variant`.
pub fn load(recipe_dir: &Path, sources: &Sources, platforms: Platforms) -> miette::Result<VariantConfig> {
    let (extra, ignore_recipe_variants) = (&sources.files, sources.ignore_recipe_variants);
    let mut paths = Vec::new();
    if !ignore_recipe_variants {
        if let Some(p) = RECIPE_VARIANT_FILES
            .iter()
            .map(|n| recipe_dir.join(n))
            .find(|p| p.is_file())
        {
            paths.push(p);
        }
    }
    for p in extra {
        if !p.is_file() {
            miette::bail!(
                help = "pass the path of a variants.yaml or conda_build_config.yaml file",
                "variant config {} does not exist",
                p.display()
            );
        }
        paths.push(p.clone());
    }
    let mut config = VariantConfig::default();
    let mut zip_origin: Option<(SourceFile, Vec<Span>)> = None;
    for path in paths {
        let f = file::read(&path, platforms)?;
        for (k, (values, _)) in f.values {
            config.values.insert(k, values);
        }
        if let Some(zips) = f.zip_keys {
            zip_origin = Some((f.file.clone(), zips.iter().map(|(_, s)| *s).collect()));
            config.zip_keys = zips.into_iter().map(|(keys, _)| keys).collect();
        }
        config.files.push(path);
    }
    for o in &sources.overrides {
        let Some((key, values)) = o.split_once('=') else {
            miette::bail!(
                help = "write `--variant python=3.11,3.12`",
                "invalid --variant `{o}`: expected KEY=VALUE[,VALUE...]"
            );
        };
        let values: Vec<serde_json::Value> = values
            .split(',')
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| serde_json::Value::String(v.to_string()))
            .collect();
        if key.trim().is_empty() || values.is_empty() {
            miette::bail!("invalid --variant `{o}`: needs a key and at least one value");
        }
        if !crate::syntax::variant::is_shell_name(&normalize_key(key.trim())) {
            miette::bail!(
                help = "use letters, digits, `_`, `-` and `.`, not starting with a digit",
                "invalid --variant `{o}`: `{}` is not a valid variant key",
                key.trim()
            );
        }
        config.values.insert(normalize_key(key.trim()), values);
    }
    if let Some((file, spans)) = zip_origin {
        config.check_zip_keys(&file, &spans)?;
    }
    Ok(config)
}

impl VariantConfig {
    /// Zipped keys must have the same number of values (keys absent from
    /// the config are left out of their group), and a key may be in one group.
    fn check_zip_keys(&mut self, file: &SourceFile, spans: &[Span]) -> miette::Result<()> {
        let mut seen = BTreeSet::new();
        for (group, span) in self.zip_keys.iter_mut().zip(spans) {
            for k in group.iter() {
                if !seen.insert(k.clone()) {
                    return Err(file
                        .error(span, format!("`{k}` is in more than one `zip_keys` group"), "here")
                        .with_help("each key can be zipped with one group of keys only")
                        .into());
                }
            }
            group.retain(|k| self.values.contains_key(k));
            let mut lengths = group.iter().map(|k| (k, self.values[k].len()));
            if let Some((first, n)) = lengths.next() {
                if let Some((other, m)) = lengths.find(|(_, m)| *m != n) {
                    return Err(file
                        .error(
                            span,
                            format!(
                                "zip_keys: `{other}` has {m} value{} but `{first}` has {n}",
                                if m == 1 { "" } else { "s" }
                            ),
                            "these keys are zipped",
                        )
                        .with_help("keys that vary together need the same number of values; give each the same length")
                        .into());
                }
            }
        }
        self.zip_keys.retain(|g| g.len() > 1);
        Ok(())
    }

    /// Every key at its first value (zipped keys stay aligned): what a
    /// recipe is rendered with before its used keys are known.
    pub fn first(&self) -> Variant {
        self.values.iter().map(|(k, v)| (k.clone(), v[0].clone())).collect()
    }

    /// Keys the config sets that every output uses (e.g. `channel_targets`).
    pub fn always_used(&self) -> BTreeSet<String> {
        implied_keys(&BTreeSet::new(), &self.first())
    }

    /// The value of `channel_sources` (`"a,b"`), split into channels.
    pub fn channel_sources(&self) -> Option<Vec<String>> {
        let v = self.values.get("channel_sources")?.first()?;
        Some(
            variant_text(v)
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
        )
    }

    /// One full variant (every key) per combination of the `used` keys'
    /// values. Zipped used keys advance together; the other keys keep their
    /// first value (or the value zipped with a used key). The order is
    /// deterministic: groups sorted by key, the last group varying fastest.
    pub fn combinations(&self, used: &BTreeSet<String>) -> Vec<Variant> {
        let used: BTreeSet<&String> = used.iter().filter(|k| self.values.contains_key(*k)).collect();
        // Each dimension: the zip group (or single key) and its length.
        let mut dims: Vec<Vec<&String>> = Vec::new();
        let mut placed = BTreeSet::new();
        for k in &used {
            if placed.contains(*k) {
                continue;
            }
            let group: Vec<&String> = match self.zip_keys.iter().find(|g| g.contains(k)) {
                Some(g) => g.iter().collect(),
                None => vec![*k],
            };
            placed.extend(group.iter().copied());
            dims.push(group);
        }
        let lengths: Vec<usize> = dims.iter().map(|g| self.values[g[0]].len()).collect();
        let total: usize = lengths.iter().product();
        let base = self.first();
        let mut out = Vec::with_capacity(total);
        for n in 0..total {
            let mut variant = base.clone();
            let mut rest = n;
            for (group, len) in dims.iter().zip(&lengths).rev() {
                let index = rest % len;
                rest /= len;
                for k in group {
                    variant.insert((*k).clone(), self.values[*k][index].clone());
                }
            }
            out.push(variant);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(pairs: &[(&str, &[&str])], zips: &[&[&str]]) -> VariantConfig {
        VariantConfig {
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.iter().map(|s| json!(s)).collect()))
                .collect(),
            zip_keys: zips.iter().map(|g| g.iter().map(|s| s.to_string()).collect()).collect(),
            files: vec![],
        }
    }

    fn used(keys: &[&str]) -> BTreeSet<String> {
        keys.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn product_of_used_keys_only() {
        let c = config(&[("a", &["1", "2"]), ("b", &["x", "y", "z"]), ("c", &["p", "q"])], &[]);
        let all = c.combinations(&used(&["a", "b"]));
        assert_eq!(all.len(), 6);
        assert_eq!(all[0]["a"], json!("1"));
        assert_eq!(all[1]["b"], json!("y"));
        // An unused key keeps its first value.
        assert!(all.iter().all(|v| v["c"] == json!("p")));
        assert_eq!(c.combinations(&used(&[])).len(), 1);
    }

    #[test]
    fn zipped_keys_advance_together() {
        let c = config(
            &[
                ("python", &["3.10", "3.11"]),
                ("numpy", &["1.22", "1.26"]),
                ("x", &["a", "b"]),
            ],
            &[&["python", "numpy"]],
        );
        let all = c.combinations(&used(&["python", "x"]));
        assert_eq!(all.len(), 4);
        for v in &all {
            let pair = (v["python"].as_str().unwrap(), v["numpy"].as_str().unwrap());
            assert!(pair == ("3.10", "1.22") || pair == ("3.11", "1.26"), "{pair:?}");
        }
    }
}
