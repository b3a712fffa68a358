//! The dependencies of a planned output, computed the same way for the
//! build and for `--render-only --with-solve`: its solved environments,
//! what it inherits from its staging output (run exports through the whole
//! staging chain, the staging host environment for `pin_compatible`), and
//! its final `depends` and `constrains`.

use std::collections::HashMap;

use miette::Result;

use crate::build::BuildOptions;
use crate::environment::resolve::{self, PackageRef, Resolved};
use crate::environment::run_exports::Applied;
use crate::environment::LazyEnvironments;
use crate::plan::PlannedOutput;
use crate::recipe::model::{spec_name, Inherit, StagingOutput};
use crate::recipe::Recipe;

/// What an output takes from the staging output it inherits.
#[derive(Debug, Clone)]
pub struct Inherited {
    /// Run exports of the staging dependencies (after the staging filters).
    pub run_exports: Applied,
    /// The staging host environment (for `pin_compatible`).
    pub host_packages: Vec<PackageRef>,
}

/// Solve an output's environments (none when it has no build/host requirements).
pub fn resolve_output(p: &PlannedOutput, opts: &BuildOptions, envs: &LazyEnvironments) -> Result<Resolved> {
    resolve::resolve(
        envs,
        &resolve::Request {
            label: &p.identifier(),
            recipe: &p.recipe,
            requirements: &p.output.requirements,
            platforms: opts.platforms,
            noarch: !p.output.build.noarch.is_none(),
            merge: p.output.build.merge_build_and_host_envs,
        },
    )
}

/// The final `depends` and `constrains` of an output: its own run
/// requirements (pins applied), the run exports of its environments, and
/// those of the staging output it inherits (unless `run_exports: false`),
/// all after the output's `ignore_run_exports`.
pub fn finalize_run(
    p: &PlannedOutput,
    resolved: &Resolved,
    staging: Option<&Inherited>,
) -> Result<(Vec<String>, Vec<String>, Applied)> {
    let recipe = &*p.recipe;
    let output = &p.output;
    let id = p.identifier();
    let staging_host = staging.map(|e| e.host_packages.clone()).unwrap_or_default();
    let mut depends = resolve::apply_compatible_pins(recipe, &id, &output.requirements.run, resolved, &staging_host)?;
    let mut constrains = resolve::apply_compatible_pins(
        recipe,
        &id,
        &output.requirements.run_constraints,
        resolved,
        &staging_host,
    )?;
    let mut exports = resolved.exports.clone();
    if let (Some(entry), Inherit::Staging { run_exports: true, .. }) = (staging, &output.inherit) {
        exports.extend(&entry.run_exports.filtered(&output.requirements.ignore_run_exports));
    }
    let me = output.package.name.as_normalized();
    for (list, extra) in [(&mut depends, &exports.depends), (&mut constrains, &exports.constrains)] {
        for e in extra {
            // A package never depends on itself through its own exports.
            if spec_name(&e.spec).as_deref() == Some(me) {
                continue;
            }
            if !list.contains(&e.spec) {
                list.push(e.spec.clone());
            }
        }
    }
    Ok((depends, constrains, exports))
}

/// Solve a staging output's environments (`label` names it in messages).
pub fn resolve_staging(
    envs: &LazyEnvironments,
    recipe: &Recipe,
    staging: &StagingOutput,
    opts: &BuildOptions,
    label: &str,
) -> Result<Resolved> {
    resolve::resolve(
        envs,
        &resolve::Request {
            label,
            recipe,
            requirements: &staging.requirements,
            platforms: opts.platforms,
            noarch: false,
            merge: false,
        },
    )
}

/// What a staging output passes on to inheritors: its own run exports, plus
/// those of the staging output it inherits from after its own filters.
pub fn staging_exports(staging: &StagingOutput, own: &Applied, parent: Option<&Applied>) -> Applied {
    let mut exports = own.clone();
    if let Some(parent) = parent {
        exports.extend(&parent.filtered(&staging.requirements.ignore_run_exports));
    }
    exports
}

/// What inheriting `name` gives, solved without building anything (for
/// `--with-solve`); `cache` keeps each staging output solved once.
pub fn solve_inherited(
    envs: &LazyEnvironments,
    recipe: &Recipe,
    name: &str,
    opts: &BuildOptions,
    cache: &mut HashMap<String, Inherited>,
) -> Result<Option<Inherited>> {
    let Some(staging) = recipe.staging(name) else {
        return Ok(None);
    };
    if let Some(done) = cache.get(name) {
        return Ok(Some(done.clone()));
    }
    let parent = match &staging.inherit {
        Some(p) => solve_inherited(envs, recipe, p, opts, cache)?,
        None => None,
    };
    let resolved = resolve_staging(envs, recipe, staging, opts, &format!("staging {name}"))?;
    let inherited = Inherited {
        run_exports: staging_exports(staging, &resolved.exports, parent.as_ref().map(|p| &p.run_exports)),
        host_packages: resolved.host_refs(),
    };
    cache.insert(name.to_string(), inherited.clone());
    Ok(Some(inherited))
}
