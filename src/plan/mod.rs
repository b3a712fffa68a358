//! The variant matrix → build plan: the recipe rendered once per
//! combination of the variant keys it uses, and for each distinct output
//! the variant it uses, its hash and build string, and its subdir, in the
//! order they are built (dependencies between outputs first), with
//! `pin_subpackage` applied against the sibling of the same combination.

use std::collections::BTreeSet;
use std::sync::Arc;

use miette::Result;
use rattler_conda_types::Subdir;
use serde::Serialize;
use serde_json::json;

use crate::hash::{self, HashInfo, Variant};
use crate::recipe::model::{Dependency, Output, PinKind, Requirements};
use crate::recipe::{LoadOptions, Recipe, RecipeSource};
use crate::syntax::jinja::{Jinja, Platforms};
use crate::syntax::node::Renderer;
use crate::variants::VariantConfig;

mod overrides;
pub use overrides::{parse_prefix, BuildNumber, Overrides};

/// Rounds of matrix expansion: rendering a combination can reveal more used
/// keys (a branch taken only for some values), which expands it again.
const MAX_EXPANSION_ROUNDS: usize = 10;

/// Everything to build, in order.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The recipe rendered with the first combination (for recipe-wide
    /// facts: its file, directory and staging outputs).
    pub recipe: Arc<Recipe>,
    /// The distinct outputs over all combinations, in build order.
    pub outputs: Vec<PlannedOutput>,
}

/// A sibling output of the same combination (`subpackages` in the render).
#[derive(Debug, Clone, Serialize)]
pub struct Sibling {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string.
    pub build_string: String,
}

/// One package to build.
#[derive(Debug, Clone)]
pub struct PlannedOutput {
    /// The recipe rendered with this output's combination.
    pub recipe: Arc<Recipe>,
    /// The outputs of the same combination.
    pub siblings: Vec<Sibling>,
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
    /// Names of the packages its build needs: its build and host
    /// requirements and those of the staging outputs it inherits.
    pub fn names_to_build(&self) -> BTreeSet<String> {
        let mut deps: Vec<&Dependency> = Vec::new();
        let reqs = &self.output.requirements;
        deps.extend(reqs.build.iter().chain(&reqs.host));
        if let Some(name) = self.output.inherit.staging_name() {
            for s in self.recipe.staging_chain(name) {
                deps.extend(s.requirements.build.iter().chain(&s.requirements.host));
            }
        }
        deps.iter().filter_map(|d| d.name()).collect()
    }

    /// Names of the packages its tests need: its run requirements, its
    /// test scripts' requirements and the packages of its downstream tests.
    pub fn names_to_test(&self) -> BTreeSet<String> {
        use crate::recipe::package_tests::PackageTest;
        let mut specs: Vec<String> = self.output.requirements.run.iter().map(|d| d.spec.clone()).collect();
        for t in &self.output.tests {
            match t {
                PackageTest::Script(s) => specs.extend(s.requirements.run.iter().cloned()),
                PackageTest::Downstream(d) => specs.push(d.clone()),
                _ => {}
            }
        }
        specs
            .iter()
            .filter_map(|s| crate::recipe::model::spec_name(s))
            .collect()
    }

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

/// Render the recipe for every combination of the variant keys it uses and
/// plan the distinct outputs, in build order.
pub fn plan(
    source: &RecipeSource,
    options: LoadOptions,
    config: &VariantConfig,
    overrides: &Overrides,
) -> Result<Plan> {
    let recipes = expand(source, options, config)?;
    let mut all: Vec<PlannedOutput> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for recipe in &recipes {
        for p in plan_recipe(recipe, options.platforms, overrides)? {
            // Outputs that use none of the keys that differ are the same
            // package in several combinations: keep the first.
            if seen.insert((p.subdir.clone(), p.identifier())) {
                all.push(p);
            }
        }
    }
    let outputs = order_across_combinations(all)?;
    Ok(Plan {
        recipe: recipes[0].clone(),
        outputs,
    })
}

/// The rendered recipe per combination of used keys. Starts from the first
/// value of every key, and widens the set of used keys until rendering
/// reveals no new one.
fn expand(source: &RecipeSource, options: LoadOptions, config: &VariantConfig) -> Result<Vec<Arc<Recipe>>> {
    let mut used = config.always_used();
    let mut rounds = 0;
    loop {
        let mut recipes = Vec::new();
        let mut seen = used.clone();
        for combination in config.combinations(&used) {
            let recipe = source.render(options, &combination)?;
            seen.extend(recipe.keys_read.iter().cloned());
            for o in &recipe.outputs {
                seen.extend(o.used_variant.keys().cloned());
            }
            for s in &recipe.staging {
                seen.extend(s.used_variant.keys().cloned());
            }
            recipes.push(Arc::new(recipe));
        }
        rounds += 1;
        if seen != used && rounds == MAX_EXPANSION_ROUNDS {
            tracing::warn!(
                "{}: variant keys kept appearing after {MAX_EXPANSION_ROUNDS} rounds of expansion; \
                 building the combinations of {:?} only",
                source.file().path.display(),
                used
            );
        }
        if seen == used || rounds == MAX_EXPANSION_ROUNDS {
            tracing::debug!(
                "variant keys used by {}: {:?} ({} combination(s))",
                source.file().path.display(),
                used,
                recipes.len()
            );
            return Ok(recipes);
        }
        used = seen;
    }
}

/// Plan every output of one rendered recipe, in build order.
fn plan_recipe(recipe: &Arc<Recipe>, platforms: Platforms, overrides: &Overrides) -> Result<Vec<PlannedOutput>> {
    let order = build_order(recipe)?;
    let mut planned: Vec<PlannedOutput> = Vec::new();
    for i in order {
        let mut p = plan_output(recipe, &recipe.outputs[i], platforms, &planned, overrides)?;
        // Self-pins (typically in `run_exports`) need this output's own build string.
        let me = (p.output.package.name.as_normalized().to_string(), p.clone());
        apply_subpackage_pins(recipe, &mut p.output, &planned, Some(&me))?;
        planned.push(p);
    }
    let siblings: Vec<Sibling> = planned
        .iter()
        .map(|p| Sibling {
            name: p.output.package.name.as_normalized().to_string(),
            version: p.output.package.version.as_str().to_string(),
            build_string: p.build_string.clone(),
        })
        .collect();
    for p in &mut planned {
        p.siblings = siblings.clone();
    }
    Ok(planned)
}

/// Order the outputs of all combinations: by output, dependencies first
/// (the union of every combination's edges), then by combination.
fn order_across_combinations(all: Vec<PlannedOutput>) -> Result<Vec<PlannedOutput>> {
    let mut names: Vec<String> = Vec::new();
    for p in &all {
        let name = p.output.package.name.as_normalized().to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); names.len()];
    for p in &all {
        let i = names
            .iter()
            .position(|n| n == p.output.package.name.as_normalized())
            .expect("collected above");
        for d in dependency_names(&p.recipe, &p.output) {
            if let Some(j) = names.iter().position(|n| *n == d).filter(|&j| j != i) {
                deps[i].insert(j);
            }
        }
    }
    let rank = topological_order(&deps).map_err(|stuck| {
        let cycle: Vec<&str> = stuck.iter().map(|&i| names[i].as_str()).collect();
        miette::miette!(
            help = "outputs depend on each other differently in different variants; remove one of the dependencies",
            "cycle detected in recipe outputs across variants: {}",
            cycle.join(", ")
        )
    })?;
    let mut all = all;
    all.sort_by_key(|p| {
        let i = names
            .iter()
            .position(|n| n == p.output.package.name.as_normalized())
            .expect("collected above");
        rank.iter().position(|&r| r == i)
    });
    Ok(all)
}

/// Names an output depends on within the recipe: its build, host and run
/// requirements, every `pin_subpackage`, and the requirements of the
/// staging outputs it inherits.
fn dependency_names(recipe: &Recipe, output: &Output) -> Vec<String> {
    let r = &output.requirements;
    let mut names: Vec<String> = [&r.build, &r.host, &r.run]
        .into_iter()
        .flatten()
        .filter(|d| d.pin.is_none())
        .filter_map(|d| d.name())
        .collect();
    for d in all_dependencies(r) {
        if let Some(pin) = d.pin.as_ref().filter(|p| p.kind == PinKind::PinSubpackage) {
            names.push(pin.name.clone());
        }
    }
    if let Some(name) = output.inherit.staging_name() {
        for s in recipe.staging_chain(name) {
            names.extend(
                s.requirements
                    .build
                    .iter()
                    .chain(&s.requirements.host)
                    .filter_map(|d| d.name()),
            );
        }
    }
    names
}

/// Every dependency list of a requirements section, run exports included.
fn all_dependencies(r: &Requirements) -> impl Iterator<Item = &Dependency> {
    let e = &r.run_exports;
    [
        &r.build,
        &r.host,
        &r.run,
        &r.run_constraints,
        &e.weak,
        &e.strong,
        &e.noarch,
        &e.weak_constraints,
        &e.strong_constraints,
    ]
    .into_iter()
    .flatten()
}

/// Output indices in build order: a stable topological sort (ties keep
/// declaration order); a cycle is an error naming its outputs.
fn build_order(recipe: &Recipe) -> Result<Vec<usize>> {
    let names: Vec<String> = recipe
        .outputs
        .iter()
        .map(|o| o.package.name.as_normalized().to_string())
        .collect();
    let n = names.len();
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, o) in recipe.outputs.iter().enumerate() {
        for name in dependency_names(recipe, o) {
            if let Some(j) = names.iter().position(|x| *x == name) {
                if j != i {
                    deps[i].insert(j);
                }
            }
        }
    }
    let stuck = match topological_order(&deps) {
        Ok(order) => return Ok(order),
        Err(stuck) => stuck,
    };
    let mut cycle: Vec<&str> = stuck.iter().map(|&i| names[i].as_str()).collect();
    cycle.sort();
    let first = &recipe.outputs[stuck[0]];
    Err(recipe
        .file
        .error(
            &first.span,
            format!("cycle detected in recipe outputs: {}", cycle.join(", ")),
            "this output is part of the cycle",
        )
        .with_help(
            "outputs that list each other in build/host/run requirements (or pin each other) cannot be ordered; \
             remove one of the dependencies",
        )
        .into())
}

/// A stable topological order of nodes `0..deps.len()` (`deps[i]`: the
/// nodes `i` comes after; ties keep index order). On a cycle, the nodes on
/// it (not those merely waiting for it).
fn topological_order(deps: &[BTreeSet<usize>]) -> std::result::Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        match (0..n).find(|&i| !done[i] && deps[i].iter().all(|&j| done[j])) {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                let mut stuck: Vec<usize> = (0..n).filter(|&i| !done[i]).collect();
                loop {
                    let keep: Vec<usize> = stuck
                        .iter()
                        .copied()
                        .filter(|&i| stuck.iter().any(|&k| deps[k].contains(&i)))
                        .filter(|&i| deps[i].iter().any(|j| stuck.contains(j)))
                        .collect();
                    if keep.len() == stuck.len() {
                        return Err(stuck);
                    }
                    stuck = keep;
                }
            }
        }
    }
    Ok(order)
}

/// Replace every `pin_subpackage` in `output` by the spec it gives for the
/// planned sibling (or for `me`, the output itself).
fn apply_subpackage_pins(
    recipe: &Recipe,
    output: &mut Output,
    planned: &[PlannedOutput],
    me: Option<&(String, PlannedOutput)>,
) -> Result<()> {
    let r = &mut output.requirements;
    let e = &mut r.run_exports;
    for list in [
        &mut r.build,
        &mut r.host,
        &mut r.run,
        &mut r.run_constraints,
        &mut e.weak,
        &mut e.strong,
        &mut e.noarch,
        &mut e.weak_constraints,
        &mut e.strong_constraints,
    ] {
        for d in list.iter_mut() {
            let Some(pin) = d.pin.clone().filter(|p| p.kind == PinKind::PinSubpackage) else {
                continue;
            };
            let target = planned
                .iter()
                .find(|p| p.output.package.name.as_normalized() == pin.name)
                .or_else(|| me.filter(|(name, _)| *name == pin.name).map(|(_, p)| p));
            let Some(target) = target else {
                if me.is_some() {
                    // Not planned yet: a sibling later in build order is an
                    // ordering bug, an unknown name a user error.
                    let known = recipe
                        .outputs
                        .iter()
                        .any(|o| o.package.name.as_normalized() == pin.name);
                    let msg = if known {
                        format!("pin_subpackage('{}') refers to an output that is built later", pin.name)
                    } else {
                        format!(
                            "pin_subpackage('{}'): missing output `{}` in this recipe",
                            pin.name, pin.name
                        )
                    };
                    return Err(recipe
                        .file
                        .error(&d.span, msg, "pinned here")
                        .with_help("pin_subpackage pins another output of the same recipe; use pin_compatible for host dependencies")
                        .into());
                }
                continue;
            };
            let version = target.output.package.version.as_str().to_string();
            d.spec = pin
                .apply(&version, &target.build_string)
                .map_err(|msg| recipe.file.error(&d.span, msg, "in this pin"))?;
            d.pin = None;
        }
    }
    Ok(())
}

/// The hash input of an output: its used variant, `target_platform` (its
/// subdir), `python` dropped for noarch python, and an entry per
/// virtual-package run requirement (as rattler-build does).
fn output_variant(output: &Output, subdir: &str) -> Variant {
    let mut variant = output.used_variant.clone();
    if output.build.noarch.is_python() {
        variant.remove("python");
    }
    variant.insert("target_platform".into(), json!(subdir));
    for d in &output.requirements.run {
        if let Some(name) = d.name().filter(|n| n.starts_with("__")) {
            variant.insert(name, json!(d.spec.trim()));
        }
    }
    variant
}

fn plan_output(
    recipe: &Arc<Recipe>,
    output: &Output,
    platforms: Platforms,
    planned: &[PlannedOutput],
    overrides: &Overrides,
) -> Result<PlannedOutput> {
    let mut output = output.clone();
    output.build.number = overrides.build_number(
        output.package.name.as_normalized(),
        &output.package.version.as_str(),
        output.build.number,
    );
    let noarch = output.build.noarch;
    let subdir = if noarch.is_none() {
        platforms.target.as_str().to_string()
    } else {
        Subdir::NoArch.as_str().to_string()
    };
    let mut variant = output_variant(&output, &subdir);
    // An exact pin on a sibling makes the sibling's build part of this
    // output's identity (as in rattler-build).
    for d in all_dependencies(&output.requirements) {
        let Some(pin) = d.pin.as_ref().filter(|p| p.exact && p.kind == PinKind::PinSubpackage) else {
            continue;
        };
        if let Some(t) = planned
            .iter()
            .find(|p| p.output.package.name.as_normalized() == pin.name)
        {
            variant.insert(
                crate::variants::normalize_key(&pin.name),
                json!(format!("{} {}", t.output.package.version.as_str(), t.build_string)),
            );
        }
    }
    apply_subpackage_pins(recipe, &mut output, planned, None)?;
    let hash = hash::compute(&variant, &noarch);
    let build_string = match &output.build.string {
        None => format!("{hash}_{}", output.build.number),
        Some(template) => {
            let mut jinja = Jinja::new(platforms, &recipe.variant);
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
    let build_string = overrides.build_string(build_string);
    Ok(PlannedOutput {
        recipe: recipe.clone(),
        siblings: Vec::new(),
        output,
        variant,
        hash,
        build_string,
        subdir,
    })
}
