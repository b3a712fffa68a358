//! Rendered outputs → build plan: for each output, the variant it uses, its
//! hash and build string, and its subdir, in the order they are built.

use std::collections::BTreeMap;

use miette::Result;
use rattler_conda_types::Subdir;
use serde_json::json;

use crate::hash::{self, HashInfo, Variant};
use crate::recipe::jinja::{Jinja, Platforms};
use crate::recipe::model::Output;
use crate::recipe::node::Renderer;
use crate::recipe::Recipe;

/// One package to build.
#[derive(Debug, Clone)]
pub struct PlannedOutput {
    /// The merged output.
    pub output: Output,
    /// Variant values this output uses (the hash input).
    pub variant: Variant,
    /// Hash and prefix.
    pub hash: HashInfo,
    /// Final build string.
    pub build_string: String,
    /// Where the package goes: the target platform, or `noarch`.
    pub subdir: String,
}

impl PlannedOutput {
    /// `name-version-build`.
    pub fn identifier(&self) -> String {
        format!(
            "{}-{}-{}",
            self.output.package.name.as_normalized(),
            self.output.package.version.as_str(),
            self.build_string
        )
    }
}

/// Plan every output of a rendered recipe.
pub fn plan(recipe: &Recipe, platforms: Platforms) -> Result<Vec<PlannedOutput>> {
    recipe
        .outputs
        .iter()
        .map(|o| plan_output(recipe, o, platforms))
        .collect()
}

fn plan_output(recipe: &Recipe, output: &Output, platforms: Platforms) -> Result<PlannedOutput> {
    let noarch = output.build.noarch;
    let subdir = if noarch.is_none() {
        platforms.target.as_str().to_string()
    } else {
        Subdir::NoArch.as_str().to_string()
    };
    let mut variant: Variant = BTreeMap::new();
    variant.insert("target_platform".into(), json!(subdir));
    let hash = hash::compute(&variant, &noarch);
    let build_string = match &output.build.string {
        None => format!("{hash}_{}", output.build.number),
        Some(template) => {
            let mut jinja = Jinja::new(platforms, &BTreeMap::new());
            for (k, v) in &recipe.context {
                jinja.set_var(k, minijinja::Value::from_serialize(v));
            }
            jinja.set_var("hash", minijinja::Value::from(hash.hash.clone()));
            jinja.set_var("build_number", minijinja::Value::from(output.build.number));
            let span = output.build.string_span.unwrap_or_else(marked_yaml::Span::new_blank);
            let r = Renderer {
                file: &recipe.file,
                jinja: &jinja,
            };
            let s = jinja
                .render_str(template)
                .map_err(|e| r.jinja_error(e, &span, template))?;
            if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '-') {
                return Err(recipe
                    .file
                    .error(
                        &span,
                        format!("invalid build string `{s}`"),
                        "rendered from this template",
                    )
                    .with_help("a build string may not be empty or contain spaces or `-`")
                    .into());
            }
            s
        }
    };
    Ok(PlannedOutput {
        output: output.clone(),
        variant,
        hash,
        build_string,
        subdir,
    })
}
