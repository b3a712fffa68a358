//! Which variant keys an output uses: the keys its expressions read
//! (directly or through `context` variables), the implied ones, bare
//! `build`/`host` names that are keys (substituted with their value), and
//! `use_keys`/`ignore_keys`; a staging output also uses its parents' keys.

use std::collections::{BTreeMap, BTreeSet};

use super::model::*;
use super::outputs::*;
use super::parse::PResult;

/// Which variant keys expressions read: directly, or through `context`
/// variables (whose own reads are recorded when they are evaluated).
#[derive(Default)]
pub(super) struct Usage {
    /// Variant keys in play (every key of the variant config).
    pub(super) keys: BTreeSet<String>,
    /// For each context variable, the variant keys its value depends on.
    pub(super) context: BTreeMap<String, BTreeSet<String>>,
}

impl Usage {
    /// The variant keys behind the names an evaluation read.
    pub(super) fn resolve(&self, accessed: BTreeSet<String>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for name in accessed {
            // Context variables shadow variant keys of the same name.
            if let Some(deps) = self.context.get(&name) {
                out.extend(deps.iter().cloned());
            } else if self.keys.contains(&name) {
                out.insert(name);
            }
        }
        out
    }
}

impl Loader<'_> {
    /// Fill `used_variant`: `used` (keys read by the output's expressions),
    /// bare build/host names that are variant keys (substituted with their
    /// value), `use_keys` minus `ignore_keys`, then the keys of the staging
    /// outputs it inherits.
    pub(super) fn with_used_variant(
        &self,
        mut output: Output,
        mut used: BTreeSet<String>,
        variant: &Variant,
        staging: &[StagingOutput],
    ) -> PResult<Output> {
        used.extend(substitute_variant(&mut output.requirements, variant));
        used.extend(crate::syntax::variant::implied_keys(&used, variant));
        let keys = &output.build.variant;
        for (key, span) in keys.use_keys.iter().zip(&keys.use_key_spans) {
            if !variant.contains_key(key) {
                return Err(self
                    .file
                    .error(
                        span,
                        format!("`use_keys` names `{key}`, which is not in the variant config"),
                        "unknown variant key",
                    )
                    .with_help(format!(
                        "add `{key}: [...]` to variants.yaml next to the recipe or to a `-m` file"
                    )));
            }
            used.insert(key.clone());
        }
        for key in &keys.ignore_keys {
            used.remove(key);
        }
        output.used_variant = used
            .into_iter()
            .filter_map(|k| variant.get(&k).map(|v| (k, v.clone())))
            .collect();
        if let Some(name) = output.inherit.staging_name() {
            if let Some(s) = staging.iter().find(|s| s.name == name) {
                for (k, v) in &s.used_variant {
                    output.used_variant.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        Ok(output)
    }
}

/// Set a staging output's own used variant: the keys its expressions read
/// and its bare build/host names that are variant keys (substituted).
pub(super) fn set_staging_variant(s: &mut StagingOutput, mut used: BTreeSet<String>, variant: &Variant) {
    used.extend(substitute_variant(&mut s.requirements, variant));
    used.extend(crate::syntax::variant::implied_keys(&used, variant));
    s.used_variant = used
        .into_iter()
        .filter_map(|k| variant.get(&k).map(|v| (k, v.clone())))
        .collect();
}

/// A nested staging output also uses the keys of the ones it inherits.
pub(super) fn inherit_staging_variants(staging: &mut [StagingOutput]) {
    let extras: Vec<Variant> = staging
        .iter()
        .map(|s| {
            let mut extra = Variant::new();
            for p in staging_chain(staging, &s.name).into_iter().skip(1) {
                for (k, v) in &p.used_variant {
                    extra.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            extra
        })
        .collect();
    for (s, extra) in staging.iter_mut().zip(extras) {
        for (k, v) in extra {
            s.used_variant.entry(k).or_insert(v);
        }
    }
}

/// Variant substitution (as rattler-build does it): a build or host
/// requirement that is a bare package name which is also a variant key
/// becomes `name =<value>` (or `name <value>` when the value is a full
/// spec such as `3.11.* *_cpython`). Returns the keys substituted.
pub(super) fn substitute_variant(r: &mut Requirements, variant: &Variant) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for d in r.build.iter_mut().chain(r.host.iter_mut()) {
        if d.pin.is_some() {
            continue;
        }
        let name = d.spec.trim();
        let bare = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !bare {
            continue;
        }
        let key = crate::syntax::variant::normalize_key(&name.to_lowercase());
        let Some(value) = variant.get(&key) else { continue };
        let value = crate::syntax::variant::variant_text(value);
        d.spec = if value.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
            format!("{name} ={value}")
        } else {
            format!("{name} {value}")
        };
        used.insert(key);
    }
    used
}
