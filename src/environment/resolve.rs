//! One build's environments: solve the build environment, add the strong
//! run exports of its direct dependencies to the host request, solve the
//! host environment, and work out the run exports that apply; then install
//! both and finish `pin_compatible` against what was resolved.

use std::collections::BTreeMap;

use miette::Result;
use rattler_conda_types::RepoDataRecord;
use serde::{Deserialize, Serialize};

use super::run_exports::{self, Applied};
use super::{Environments, LazyEnvironments, SolveError};
use crate::recipe::model::{Dependency, PinKind, Requirements};
use crate::recipe::Recipe;
use crate::syntax::jinja::Platforms;

/// What one build needs: its requirements and whether it is noarch.
pub struct Request<'a> {
    /// Who asks (`name-version-build` or `staging NAME`), for messages.
    pub label: &'a str,
    /// The recipe (for located errors).
    pub recipe: &'a Recipe,
    /// The requirements to solve.
    pub requirements: &'a Requirements,
    /// Platforms of the build.
    pub platforms: Platforms,
    /// A noarch package takes only `noarch` run exports.
    pub noarch: bool,
    /// `merge_build_and_host_envs`: one environment, solved from both
    /// requirement lists for the host platform (into `host`).
    pub merge: bool,
}

/// The solved environments of one build.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// Build environment records (for `build_platform`).
    pub build: Vec<RepoDataRecord>,
    /// Host environment records (for the host platform).
    pub host: Vec<RepoDataRecord>,
    /// The host request, including strong exports of build dependencies.
    pub host_specs: Vec<String>,
    /// Run exports that apply, after `ignore_run_exports`.
    pub exports: Applied,
}

/// A resolved package as remembered (in staging metadata, render output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageRef {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string.
    pub build: String,
    /// Subdir.
    pub subdir: String,
    /// SHA-256 of the archive, when the channel lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl PackageRef {
    /// Describe a record.
    pub fn of(r: &RepoDataRecord) -> Self {
        let p = &r.package_record;
        PackageRef {
            name: p.name.as_normalized().to_string(),
            version: p.version.as_str().to_string(),
            build: p.build.to_string(),
            subdir: p.subdir.clone(),
            sha256: p.sha256.map(hex::encode),
        }
    }
}

impl Resolved {
    /// The host packages as references.
    pub fn host_refs(&self) -> Vec<PackageRef> {
        self.host.iter().map(PackageRef::of).collect()
    }

    /// The build packages as references.
    pub fn build_refs(&self) -> Vec<PackageRef> {
        self.build.iter().map(PackageRef::of).collect()
    }
}

fn specs(recipe: &Recipe, label: &str, deps: &[Dependency], section: &str) -> Result<Vec<String>> {
    deps.iter()
        .map(|d| match &d.pin {
            Some(pin) if pin.kind == PinKind::PinCompatible => Err(recipe
                .file
                .error(
                    &d.span,
                    format!("{label}: pin_compatible('{}') cannot be used in `{section}`", pin.name),
                    "here",
                )
                .with_help(
                    "pin_compatible pins a run requirement to the version resolved in host; use a plain spec here",
                )
                .into()),
            _ => Ok(d.spec.clone()),
        })
        .collect()
}

fn names(specs: &[String]) -> Vec<String> {
    specs
        .iter()
        .filter_map(|s| crate::recipe::model::spec_name(s))
        .collect()
}

/// Solve the build and host environments of a request and collect the run
/// exports that apply (downloading packages only to read their exports).
/// A request without build/host requirements resolves to nothing without
/// setting up channels.
pub fn resolve(envs: &LazyEnvironments, req: &Request) -> Result<Resolved> {
    let r = req.requirements;
    if r.build.is_empty() && r.host.is_empty() {
        return Ok(Resolved::default());
    }
    if req.merge {
        return resolve_merged(envs, req);
    }
    let envs = envs.get()?;
    let build_specs = specs(req.recipe, req.label, &r.build, "requirements.build")?;
    let build_names = names(&build_specs);
    let mut resolved = Resolved::default();
    if !build_specs.is_empty() {
        let mut build = solve(envs, req, "build", &build_specs, req.platforms.build, &r.build)?;
        fill_direct(envs, &mut build, &build_names)?;
        resolved.build = build;
    }
    let mut host_specs = specs(req.recipe, req.label, &r.host, "requirements.host")?;
    for extra in run_exports::host_additions(&resolved.build, &build_names, &r.ignore_run_exports) {
        if !host_specs.contains(&extra) {
            host_specs.push(extra);
        }
    }
    let host_names = names(&host_specs);
    if !host_specs.is_empty() {
        let at = if r.host.is_empty() { &r.build } else { &r.host };
        let mut host = solve(envs, req, "host", &host_specs, req.platforms.host, at)?;
        fill_direct(envs, &mut host, &host_names)?;
        resolved.host = host;
    }
    resolved.exports = run_exports::collect(
        (&resolved.build, &build_names),
        (&resolved.host, &host_names),
        req.noarch,
        &r.ignore_run_exports,
    );
    resolved.host_specs = host_specs;
    Ok(resolved)
}

/// `merge_build_and_host_envs`: build and host requirements (with the
/// build dependencies' strong exports) solved together into the host
/// environment; run exports still apply by the section that names each
/// package.
fn resolve_merged(envs: &LazyEnvironments, req: &Request) -> Result<Resolved> {
    let r = req.requirements;
    if req.platforms.build != req.platforms.host {
        return Err(miette::miette!(
            help = "remove `merge_build_and_host_envs`, or build for the machine's own platform",
            "{}: `merge_build_and_host_envs` needs the build and host platforms to be the same ({} ≠ {})",
            req.label,
            req.platforms.build,
            req.platforms.host
        ));
    }
    let envs = envs.get()?;
    let build_specs = specs(req.recipe, req.label, &r.build, "requirements.build")?;
    let host_specs = specs(req.recipe, req.label, &r.host, "requirements.host")?;
    let (build_names, mut host_names) = (names(&build_specs), names(&host_specs));
    let mut all = build_specs.clone();
    all.extend(host_specs.iter().cloned());
    let mut merged = solve(envs, req, "merged build and host", &all, req.platforms.host, &r.build)?;
    let direct: Vec<String> = build_names.iter().chain(&host_names).cloned().collect();
    fill_direct(envs, &mut merged, &direct)?;
    // The build dependencies' strong exports join the request as host
    // requirements, as they would join a separate host environment's (so
    // their own run exports apply as a host package's).
    let extra: Vec<String> = run_exports::host_additions(&merged, &build_names, &r.ignore_run_exports)
        .into_iter()
        .filter(|e| !all.contains(e))
        .collect();
    if !extra.is_empty() {
        host_names.extend(names(&extra));
        all.extend(extra);
        let direct: Vec<String> = build_names.iter().chain(&host_names).cloned().collect();
        merged = solve(envs, req, "merged build and host", &all, req.platforms.host, &r.build)?;
        fill_direct(envs, &mut merged, &direct)?;
    }
    let exports = run_exports::collect(
        (&merged, &build_names),
        (&merged, &host_names),
        req.noarch,
        &r.ignore_run_exports,
    );
    Ok(Resolved {
        build: Vec::new(),
        host: merged,
        host_specs: all,
        exports,
    })
}

fn fill_direct(envs: &Environments, records: &mut [RepoDataRecord], direct: &[String]) -> Result<()> {
    let mut wanted: Vec<RepoDataRecord> = records
        .iter()
        .filter(|r| direct.iter().any(|n| n == r.package_record.name.as_normalized()))
        .cloned()
        .collect();
    envs.fill_run_exports(&mut wanted)?;
    for w in wanted {
        if let Some(r) = records.iter_mut().find(|r| r.url == w.url) {
            r.package_record.run_exports = w.package_record.run_exports;
        }
    }
    Ok(())
}

fn solve(
    envs: &Environments,
    req: &Request,
    which: &str,
    specs: &[String],
    platform: rattler_conda_types::Subdir,
    located_at: &[Dependency],
) -> Result<Vec<RepoDataRecord>> {
    let started = std::time::Instant::now();
    match envs.solve(platform, specs) {
        Ok(records) => {
            tracing::info!(
                "{}: {which} environment ({platform}): {} package(s) solved in {:.2} s",
                req.label,
                records.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(records)
        }
        Err(SolveError::Channel(report)) => Err(report.wrap_err(format!(
            "{}: cannot solve the {which} environment ({platform})",
            req.label
        ))),
        Err(SolveError::Unsolvable(explanation)) => {
            let msg = format!(
                "{}: cannot solve the {which} environment ({platform}) for {}\n{}",
                req.label,
                specs.join(", "),
                explanation.trim_end()
            );
            let help = format!(
                "check the names and versions in `requirements.{which}`; channels searched, in order: {}",
                envs.channel_urls().join(", ")
            );
            match located_at.first() {
                Some(d) => Err(req
                    .recipe
                    .file
                    .error(&d.span, msg, "requested here")
                    .with_help(help)
                    .into()),
                None => Err(miette::miette!(help = help, "{msg}")),
            }
        }
    }
}

/// Where a build's two environments are installed.
#[derive(Debug, Clone, Copy)]
pub struct Prefixes<'a> {
    /// `$BUILD_PREFIX` (build platform).
    pub build: &'a std::path::Path,
    /// `$PREFIX` (host platform).
    pub host: &'a std::path::Path,
}

/// Install both environments into the build's prefixes.
pub fn install(
    envs: &LazyEnvironments,
    resolved: &Resolved,
    prefixes: Prefixes,
    platforms: Platforms,
    label: &str,
) -> Result<()> {
    if resolved.build.is_empty() && resolved.host.is_empty() {
        return Ok(());
    }
    let envs = envs.get()?;
    for (records, prefix, platform, which) in [
        (&resolved.build, prefixes.build, platforms.build, "build"),
        (&resolved.host, prefixes.host, platforms.host, "host"),
    ] {
        if records.is_empty() {
            continue;
        }
        crate::ui::step(label, &format!("installing the {which} environment"));
        let started = std::time::Instant::now();
        envs.install(prefix, platform, records)?;
        tracing::info!(
            "{label}: installed {} {which} package(s) in {:.2} s",
            records.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Apply `pin_compatible` in `deps` against the resolved packages: the
/// host environment first, then the build environment, then `fallback`
/// (the host environment of an inherited staging output).
pub fn apply_compatible_pins(
    recipe: &Recipe,
    label: &str,
    deps: &[Dependency],
    resolved: &Resolved,
    fallback: &[PackageRef],
) -> Result<Vec<String>> {
    let mut versions: BTreeMap<String, (String, String)> = BTreeMap::new();
    for p in fallback
        .iter()
        .cloned()
        .chain(resolved.build_refs())
        .chain(resolved.host_refs())
    {
        versions.insert(p.name.clone(), (p.version, p.build));
    }
    deps.iter()
        .map(|d| match d.pin.as_ref() {
            Some(pin) if pin.kind == PinKind::PinCompatible => {
                let Some((version, build)) = versions.get(&pin.name) else {
                    return Err(recipe
                        .file
                        .error(
                            &d.span,
                            format!(
                                "{label}: pin_compatible('{}') needs `{}` in the host (or build) environment",
                                pin.name, pin.name
                            ),
                            "pinned here",
                        )
                        .with_help(format!("add `{}` to requirements.host", pin.name))
                        .into());
                };
                pin.apply(version, build)
                    .map_err(|m| recipe.file.error(&d.span, m, "in this pin").into())
            }
            _ => Ok(d.spec.clone()),
        })
        .collect()
}
