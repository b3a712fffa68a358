//! Checks that need no script: run over every output and staging output of
//! every variant before the first script runs, so that a mistake in the
//! last output does not surface after an hour of compiling the first.
//! Every problem found is reported at once.

use std::collections::BTreeSet;

use miette::{miette, Result};

use crate::build::{script, sources};
use crate::package::glob::Selector;
use crate::plan::Plan;
use crate::recipe::model::{Script, Source};
use crate::recipe::Recipe;

/// Check script files, secrets, sources and file globs of everything in `plan`.
pub fn check(plan: &Plan) -> Result<()> {
    let mut problems: Vec<miette::Report> = Vec::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut note = |r: Result<()>| {
        if let Err(e) = r {
            if seen.insert(e.to_string()) {
                problems.push(e);
            }
        }
    };
    for p in &plan.outputs {
        let recipe = &*p.recipe;
        for s in &recipe.staging {
            note(check_script(recipe, s.script.as_ref()));
            note(check_sources(recipe, &s.source));
        }
        note(check_script(recipe, p.output.build.script.as_ref()));
        note(check_sources(recipe, &p.output.source));
        note(
            Selector::new(&p.output.build.files)
                .map(|_| ())
                .map_err(|(msg, g)| miette!("{}: {msg}", recipe.file.location(&g.span))),
        );
    }
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
