//! Rendered outputs → build plan: for each output, the variant it uses, its
//! hash and build string, and its subdir, in the order they are built
//! (dependencies between outputs first), with `pin_subpackage` applied.

use std::collections::{BTreeMap, BTreeSet};

use miette::Result;
use rattler_conda_types::Subdir;
use serde_json::json;

use crate::hash::{self, HashInfo, Variant};
use crate::recipe::jinja::{Jinja, Platforms};
use crate::recipe::model::{Dependency, Output, PinKind, Requirements};
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

/// Plan every output of a rendered recipe, in build order.
pub fn plan(recipe: &Recipe, platforms: Platforms) -> Result<Vec<PlannedOutput>> {
    let order = build_order(recipe)?;
    let mut planned: Vec<PlannedOutput> = Vec::new();
    for i in order {
        let mut p = plan_output(recipe, &recipe.outputs[i], platforms, &planned)?;
        // Self-pins (typically in `run_exports`) need this output's own build string.
        let me = (p.output.package.name.as_normalized().to_string(), p.clone());
        apply_subpackage_pins(recipe, &mut p.output, &planned, Some(&me))?;
        planned.push(p);
    }
    Ok(planned)
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
    let mut staging = output.inherit.staging_name();
    while let Some(name) = staging {
        let Some(s) = recipe.staging(name) else { break };
        names.extend(
            s.requirements
                .build
                .iter()
                .chain(&s.requirements.host)
                .filter_map(|d| d.name()),
        );
        staging = s.inherit.as_deref();
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
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let next = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&j| done[j]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                let mut stuck: Vec<usize> = (0..n).filter(|&i| !done[i]).collect();
                // Report only outputs on a cycle, not those merely waiting for one.
                loop {
                    let keep: Vec<usize> = stuck
                        .iter()
                        .copied()
                        .filter(|&i| stuck.iter().any(|&k| deps[k].contains(&i)))
                        .filter(|&i| deps[i].iter().any(|j| stuck.contains(j)))
                        .collect();
                    if keep.len() == stuck.len() {
                        break;
                    }
                    stuck = keep;
                }
                let mut cycle: Vec<&str> = stuck.iter().map(|&i| names[i].as_str()).collect();
                cycle.sort();
                let first = &recipe.outputs[stuck[0]];
                return Err(recipe
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
                    .into());
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

fn plan_output(
    recipe: &Recipe,
    output: &Output,
    platforms: Platforms,
    planned: &[PlannedOutput],
) -> Result<PlannedOutput> {
    let mut output = output.clone();
    let noarch = output.build.noarch;
    let subdir = if noarch.is_none() {
        platforms.target.as_str().to_string()
    } else {
        Subdir::NoArch.as_str().to_string()
    };
    let mut variant: Variant = BTreeMap::new();
    variant.insert("target_platform".into(), json!(subdir));
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
                pin.name.replace(['-', '.'], "_"),
                json!(format!("{} {}", t.output.package.version.as_str(), t.build_string)),
            );
        }
    }
    apply_subpackage_pins(recipe, &mut output, planned, None)?;
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
        output,
        variant,
        hash,
        build_string,
        subdir,
    })
}
