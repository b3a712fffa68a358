//! The rendered form of a planned output, as printed by `--render-only` and
//! stored in `info/recipe/rendered_recipe.yaml` (rattler-build's layout,
//! without the build machine's directories, so that packages built into
//! different output directories are identical; secrets masked).

use serde_json::{json, Map, Value};

use crate::build::BuildOptions;
use crate::dependencies;
use crate::environment::resolve::{PackageRef, Resolved};
use crate::environment::run_exports::Applied;
use crate::environment::LazyEnvironments;
use crate::plan::{Plan, PlannedOutput};
use crate::recipe::model::Output;

/// The JSON object describing one planned output.
pub fn rendered_output(
    p: &PlannedOutput,
    opts: &BuildOptions,
    finalized: Option<Value>,
    sources: Option<Vec<Value>>,
) -> Value {
    let recipe = &*p.recipe;
    let mut rec = match serde_json::to_value(&p.output) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if let Some(Value::Object(build)) = rec.get_mut("build") {
        build.insert("string".into(), json!(p.build_string));
    }
    if let Some(name) = p.output.inherit.staging_name() {
        // The staging caches this output uses, outermost first, and where it inherits from.
        let mut chain = recipe.staging_chain(name);
        chain.reverse();
        rec.insert(
            "staging_caches".into(),
            serde_json::to_value(&chain).unwrap_or_default(),
        );
        let run_exports = matches!(
            p.output.inherit,
            crate::recipe::model::Inherit::Staging { run_exports: true, .. }
        );
        rec.insert(
            "inherits_from".into(),
            json!({"cache_name": name, "inherit_run_exports": run_exports}),
        );
    }
    let mut recipe_obj = Map::new();
    recipe_obj.insert("schema_version".into(), json!(1));
    recipe_obj.insert("context".into(), json!(recipe.context));
    recipe_obj.extend(rec);

    let subpackages: Map<String, Value> = p.siblings.iter().map(|s| (s.name.clone(), json!(s))).collect();
    let config = json!({
        "target_platform": p.subdir,
        "host_platform": {"platform": opts.platforms.host.as_str()},
        "build_platform": {"platform": opts.platforms.build.as_str()},
        "variant": p.variant,
        "hash": p.hash,
        "channels": channel_urls(opts),
        "timestamp": opts.timestamp,
        "subpackages": subpackages,
        "packaging_settings": packaging_settings(opts.compression.format),
    });
    let mut rendered = json!({
        "recipe": Value::Object(recipe_obj),
        "build_configuration": config,
        "finalized_dependencies": finalized.unwrap_or(Value::Null),
        "finalized_sources": sources.map(Value::Array).unwrap_or(Value::Null),
        "system_tools": {"kiln": env!("CARGO_PKG_VERSION")},
    });
    // Values of secrets read with `env.get` must not be recorded.
    crate::redact::mask_json(&mut rendered);
    rendered
}

/// `finalized_dependencies`: what was asked for and resolved in each
/// environment, and the final run requirements with their provenance.
pub fn finalized_dependencies(
    output: &Output,
    resolved: &Resolved,
    depends: &[String],
    constrains: &[String],
    exports: &Applied,
) -> Value {
    let env = |specs: Vec<String>, records: Vec<PackageRef>| {
        json!({
            "specs": specs,
            "resolved": records
                .iter()
                .map(|r| json!({"name": r.name, "version": r.version, "build": r.build, "subdir": r.subdir}))
                .collect::<Vec<_>>(),
        })
    };
    let mut out = Map::new();
    if !resolved.build.is_empty() {
        let specs = output.requirements.build.iter().map(|d| d.spec.clone()).collect();
        out.insert("build".into(), env(specs, resolved.build_refs()));
    }
    if !resolved.host.is_empty() {
        out.insert("host".into(), env(resolved.host_specs.clone(), resolved.host_refs()));
    }
    out.insert(
        "run".into(),
        json!({"depends": depends, "constraints": constrains, "run_exports": exports}),
    );
    Value::Object(out)
}

/// `--render-only --with-solve`: every planned output with its environments
/// solved (nothing is installed or written).
pub fn with_solve(plan: &Plan, opts: &BuildOptions) -> miette::Result<Vec<Value>> {
    let envs =
        LazyEnvironments::new(&opts.channels, &opts.output_dir, Vec::new(), true).with_solving(opts.solving.clone());
    let mut out = Vec::new();
    let mut staging = std::collections::HashMap::new();
    for p in &plan.outputs {
        let recipe = &*p.recipe;
        let resolved = dependencies::resolve_output(p, opts, &envs)?;
        let inherited = match p.output.inherit.staging_name() {
            Some(name) => dependencies::solve_inherited(&envs, recipe, name, opts, &mut staging)?,
            None => None,
        };
        let (depends, constrains, exports) = dependencies::finalize_run(p, &resolved, inherited.as_ref())?;
        let finalized = finalized_dependencies(&p.output, &resolved, &depends, &constrains, &exports);
        out.push(rendered_output(p, opts, Some(finalized), None));
    }
    Ok(out)
}

/// The channels as URLs, in priority order (the output directory is implied).
fn channel_urls(opts: &BuildOptions) -> Vec<String> {
    match crate::environment::channels::resolve(&opts.channels, None) {
        Ok(channels) => channels.iter().map(crate::environment::channels::for_file).collect(),
        Err(_) => opts
            .channels
            .iter()
            .map(|c| crate::redact::mask(c).into_owned())
            .collect(),
    }
}

/// `packaging_settings` of the rendered recipe (rattler-build's form).
fn packaging_settings(f: crate::package::archive::PackageFormat) -> Value {
    use crate::package::archive::Format;
    let (archive_type, level) = match f.format {
        Format::Conda => ("conda", f.level.to_zstd_level().map(i64::from)),
        Format::TarBz2 => ("tar_bz2", f.level.to_bzip2_level().map(i64::from)),
    };
    json!({"archive_type": archive_type, "compression_level": level.ok()})
}
