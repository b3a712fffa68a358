//! Many recipes in one run: finding them (`--recipe` repeated,
//! `--recipe-dir`), the order they build in (a recipe whose package another
//! one needs comes first) and `--up-to`'s choice of outputs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use miette::{miette, Result};

use crate::plan::Plan;

/// The recipe files a run builds: every `--recipe` as given, then every
/// `recipe.yaml` below each `--recipe-dir` (sorted; hidden directories,
/// cache directories and the output directory are not searched). With
/// neither, the recipe in the current directory.
pub fn find(recipes: &[PathBuf], dirs: &[PathBuf], output_dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = recipes.to_vec();
    for dir in dirs {
        if !dir.is_dir() {
            miette::bail!(
                help = "pass a directory that holds recipe folders, each with a recipe.yaml",
                "--recipe-dir {}: not a directory",
                dir.display()
            );
        }
        let mut below: Vec<PathBuf> = walkdir::WalkDir::new(dir)
            .follow_links(false)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !skipped_dir(e.path(), output_dir))
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file() && e.file_name() == "recipe.yaml")
            .map(|e| e.into_path())
            .collect();
        if below.is_empty() {
            miette::bail!(
                help = "kiln looks for files named recipe.yaml (v1 recipes) in every folder below it",
                "--recipe-dir {}: no recipe.yaml below it",
                dir.display()
            );
        }
        below.sort();
        found.extend(below);
    }
    if found.is_empty() {
        found.push(PathBuf::from("."));
    }
    // The same recipe named twice (as a file or its directory) is built once.
    let mut seen = BTreeSet::new();
    found.retain(|p| {
        let file = crate::recipe::resolve_path(p).unwrap_or_else(|_| p.clone());
        seen.insert(std::fs::canonicalize(&file).unwrap_or(file))
    });
    Ok(found)
}

/// The package names a recipe declares (`package.name` and each
/// output's, in `if`/`then`/`else` branches too), read from its YAML
/// without rendering, with `${{ var }}` filled from literal `context`
/// values: for a recipe that failed to plan. `None` when it cannot be read
/// or a name cannot be known this way.
pub fn declared_names(path: &Path) -> Option<BTreeSet<String>> {
    use serde_yaml_ng::Value;
    let file = crate::recipe::resolve_path(path).ok()?;
    let value: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(file).ok()?).ok()?;
    let context: std::collections::BTreeMap<String, String> = value
        .get("context")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let v = match v {
                Value::String(s) if !s.contains("${{") => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((k.as_str()?.to_string(), v))
        })
        .collect();
    let mut names = BTreeSet::new();
    let mut add = |package: &Value| -> Option<()> {
        let name = fill(package.get("name")?.as_str()?, &context)?;
        names.insert(name.to_ascii_lowercase());
        Some(())
    };
    if let Some(package) = value.get("package") {
        add(package)?;
    }
    fn outputs(item: &Value, add: &mut dyn FnMut(&Value) -> Option<()>) -> Option<()> {
        match item {
            Value::Sequence(items) => items.iter().try_for_each(|i| outputs(i, add)),
            Value::Mapping(_) if item.get("package").is_some() => add(item.get("package")?),
            Value::Mapping(_) if item.get("if").is_some() => {
                outputs(item.get("then")?, add)?;
                item.get("else").map_or(Some(()), |e| outputs(e, add))
            }
            // Staging outputs make no package.
            Value::Mapping(_) if item.get("staging").is_some() || item.get("cache").is_some() => Some(()),
            _ => None,
        }
    }
    if let Some(list) = value.get("outputs") {
        outputs(list, &mut add)?;
    }
    (!names.is_empty()).then_some(names)
}

/// `text` with each `${{ var }}` replaced by its `context` value; `None`
/// for any other expression.
fn fill(text: &str, context: &std::collections::BTreeMap<String, String>) -> Option<String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}")? + start;
        out.push_str(context.get(rest[start + 3..end].trim())?);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// Directories `--recipe-dir` does not search: hidden ones, the output
/// directory (it holds copies of recipes in `info/recipe/`) and caches.
fn skipped_dir(path: &Path, output_dir: &Path) -> bool {
    let hidden = path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'));
    hidden || std::fs::canonicalize(path).is_ok_and(|p| p == output_dir) || path.join("CACHEDIR.TAG").exists()
}

/// The package names a recipe's planned outputs produce.
pub fn provided(plan: &Plan) -> BTreeSet<String> {
    plan.outputs
        .iter()
        .map(|o| o.output.package.name.as_normalized().to_string())
        .collect()
}

/// The package names a recipe's outputs need from elsewhere, to build or to
/// test (its own outputs left out).
pub fn needed(plan: &Plan) -> BTreeSet<String> {
    let own = provided(plan);
    plan.outputs
        .iter()
        .flat_map(|o| o.names_to_build().into_iter().chain(o.names_to_test()))
        .filter(|n| !own.contains(n))
        .collect()
}

/// The order to build `plans` in: a recipe after every recipe whose
/// packages it needs, otherwise in the order given. Recipes that need each
/// other's packages are an error naming them.
pub fn order(plans: &[&Plan]) -> Result<Vec<usize>> {
    let provides: Vec<BTreeSet<String>> = plans.iter().map(|p| provided(p)).collect();
    let needs: Vec<BTreeSet<String>> = plans.iter().map(|p| needed(p)).collect();
    let before = |i: usize, j: usize| i != j && !provides[i].is_disjoint(&needs[j]);
    let mut done = vec![false; plans.len()];
    let mut order = Vec::with_capacity(plans.len());
    while order.len() < plans.len() {
        let next = (0..plans.len()).find(|&j| !done[j] && (0..plans.len()).all(|i| done[i] || !before(i, j)));
        let Some(j) = next else {
            let stuck: Vec<String> = (0..plans.len())
                .filter(|&j| !done[j])
                .map(|j| {
                    let from: Vec<&str> = needs[j]
                        .iter()
                        .filter(|n| (0..plans.len()).any(|i| !done[i] && i != j && provides[i].contains(*n)))
                        .map(String::as_str)
                        .collect();
                    format!("{} needs {}", plans[j].recipe.file.path.display(), from.join(", "))
                })
                .collect();
            miette::bail!(
                help = "build one of them first with --recipe, or break the cycle in the recipes",
                "these recipes need each other's packages, so none can be built first: {}",
                stuck.join("; ")
            );
        };
        done[j] = true;
        order.push(j);
    }
    Ok(order)
}

/// `--up-to NAME`: the names of the outputs to build, which are the outputs
/// named NAME and every output they need to build or test, transitively,
/// across `plans`.
pub fn up_to(plans: &[&Plan], name: &str) -> Result<BTreeSet<String>> {
    closure(plans, name, true)
}

/// The outputs named `name` and every output they need to build (with
/// `tests`, also to test), transitively, across `plans`.
pub fn closure(plans: &[&Plan], name: &str, tests: bool) -> Result<BTreeSet<String>> {
    let name = name.to_ascii_lowercase();
    let all: BTreeSet<String> = plans.iter().flat_map(|p| provided(p)).collect();
    if !all.contains(&name) {
        return Err(miette!(
            help = format!(
                "the recipes' outputs are: {}",
                all.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            "`{name}`: no recipe has an output of that name"
        ));
    }
    let mut keep = BTreeSet::from([name]);
    loop {
        let more: BTreeSet<String> = plans
            .iter()
            .flat_map(|p| &p.outputs)
            .filter(|o| keep.contains(o.output.package.name.as_normalized()))
            .flat_map(|o| {
                let test = if tests { o.names_to_test() } else { BTreeSet::new() };
                o.names_to_build().into_iter().chain(test)
            })
            .filter(|n| all.contains(n) && !keep.contains(n))
            .collect();
        if more.is_empty() {
            return Ok(keep);
        }
        keep.extend(more);
    }
}
