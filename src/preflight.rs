//! Checks that need no script: run over every output and staging output of
//! every variant before the first script runs, so that a mistake in the
//! last output does not surface after an hour of compiling the first.
//! Every problem found is reported at once. [`check`] needs nothing but the
//! plan; [`solve`] also solves every environment that does not wait for a
//! sibling output to be built (nothing is installed).

use std::collections::BTreeSet;

use miette::{miette, Result};

use crate::build::{script, sources, BuildOptions};
use crate::dependencies;
use crate::environment::LazyEnvironments;
use crate::package::glob::Selector;
use crate::plan::Plan;
use crate::recipe::model::{spec_name, Requirements, Script, Source};
use crate::recipe::Recipe;

/// `build.python` settings that need a particular package or platform.
fn check_python(recipe: &Recipe, p: &crate::plan::PlannedOutput) -> Result<()> {
    let output = &p.output;
    let py = &output.build.python;
    if py.use_python_app_entrypoint && p.subdir.starts_with("osx") {
        return Err(miette!(
            help = "remove it; launchers run the prefix's `bin/python`",
            "{}: `use_python_app_entrypoint` (launchers that run python.app) is not supported yet",
            recipe.file.location(&output.span)
        ));
    }
    if let (Some(_), Some(span)) = (&py.site_packages_path, py.site_packages_span) {
        if output.package.name.as_normalized() != "python" {
            return Err(miette!(
                help = "remove it: only the `python` package itself says where its site-packages is",
                "{}: `site_packages_path` is set for {}, which is not the `python` package",
                recipe.file.location(&span),
                output.package.name.as_source()
            ));
        }
    }
    Ok(())
}

/// Check script files, secrets, sources and file globs of everything in `plan`.
pub fn check(plan: &Plan) -> Result<()> {
    let mut problems = Problems::default();
    let mut note = |r: Result<()>| problems.note(r);
    let mut warned: BTreeSet<String> = BTreeSet::new();
    for p in &plan.outputs {
        let recipe = &*p.recipe;
        for s in &recipe.staging {
            note(check_script(recipe, s.script.as_ref()));
            note(check_sources(recipe, &s.source));
        }
        note(check_script(recipe, p.output.build.script.as_ref()));
        note(check_sources(recipe, &p.output.source));
        note(check_python(recipe, p));
        if warned.insert(p.output.package.name.as_normalized().to_string()) {
            for t in &p.output.tests {
                note(crate::testing::check(recipe, t));
            }
        }
        // Every glob list of the build section, located.
        let b = &p.output.build;
        let mut lists: Vec<&[crate::recipe::model::Glob]> = vec![
            &b.always_copy_files,
            &b.dynamic_linking.rpath_allowlist,
            &b.dynamic_linking.missing_dso_allowlist,
            &b.prefix_detection.ignore,
            &b.prefix_detection.force_text,
            &b.prefix_detection.force_binary,
        ];
        if let crate::recipe::model::BinaryRelocation::Only(g) = &b.dynamic_linking.binary_relocation {
            lists.push(g);
        }
        lists.extend(b.post_process.iter().map(|r| r.files.as_slice()));
        for list in lists {
            note(
                crate::package::glob::GlobList::new(list)
                    .map(|_| ())
                    .map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span))),
            );
        }
        note(
            Selector::new(&p.output.build.files)
                .map(|_| ())
                .map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span))),
        );
    }
    problems.report()
}

/// Solve the build and host environments of every output and staging
/// output whose requirements name no output of the recipe (those can only
/// be solved once the sibling is built).
pub fn solve(plan: &Plan, opts: &BuildOptions, envs: &LazyEnvironments) -> Result<()> {
    let mut problems = Problems::default();
    let mut note = |r: Result<()>| problems.note(r);
    let mut asked: BTreeSet<String> = BTreeSet::new();
    for p in &plan.outputs {
        let recipe = &*p.recipe;
        let siblings: BTreeSet<&str> = p.siblings.iter().map(|s| s.name.as_str()).collect();
        let waits_for_sibling = |r: &Requirements| {
            r.build
                .iter()
                .chain(&r.host)
                .any(|d| spec_name(&d.spec).is_some_and(|n| siblings.contains(n.as_str())))
        };
        for s in &recipe.staging {
            // A staging output shared by every output (and variant) is solved once.
            let id = format!(
                "staging {} {:?} {:?}",
                s.name, s.requirements.build, s.requirements.host
            );
            if !waits_for_sibling(&s.requirements) && asked.insert(id) {
                let label = format!("staging {}", s.name);
                note(dependencies::resolve_staging(envs, recipe, s, opts, &label).map(|_| ()));
            }
        }
        if !waits_for_sibling(&p.output.requirements) {
            note(dependencies::resolve_output(p, opts, envs).map(|_| ()));
        }
    }
    problems.report()
}

/// Problems found so far, each once.
#[derive(Default)]
struct Problems {
    list: Vec<miette::Report>,
    seen: BTreeSet<String>,
}

impl Problems {
    fn note(&mut self, r: Result<()>) {
        if let Err(e) = r {
            if self.seen.insert(e.to_string()) {
                self.list.push(e);
            }
        }
    }

    /// All of them as one error (none: `Ok`).
    fn report(self) -> Result<()> {
        let mut problems = self.list;
        match problems.len() {
            0 => Ok(()),
            1 => Err(problems.remove(0)),
            n => {
                let all: Vec<String> = problems.iter().map(|e| format!("{e:?}")).collect();
                Err(miette!(
                    help = "nothing was built; fix these and run again",
                    "{n} problems found before building:\n\n{}",
                    all.join("\n")
                ))
            }
        }
    }
}

fn check_script(recipe: &Recipe, s: Option<&Script>) -> Result<()> {
    let Some(s) = s else {
        return Ok(());
    };
    script::resolve_body(recipe, s)?;
    script::secrets(recipe, s)?;
    Ok(())
}

fn check_sources(recipe: &Recipe, list: &[Source]) -> Result<()> {
    list.iter().try_for_each(|s| sources::check(recipe, s))
}
