//! The `info/` files of a package: `index.json`, `paths.json`,
//! `about.json`, `hash_input.json`, `files`, `run_exports.json`, `recipe/`,
//! `licenses/` and `tests/`.

use std::path::Path;

use miette::{miette, IntoDiagnostic, Result};
use rattler_conda_types::Subdir;
use serde::Serialize;
use serde_json::{json, Map, Value};

use super::contents::PathEntry;
use crate::recipe::model::{Dependency, Output};
use crate::recipe::Recipe;

/// Everything `info/` is made from.
pub struct InfoInputs<'a> {
    /// The recipe.
    pub recipe: &'a Recipe,
    /// The output being packaged.
    pub output: &'a Output,
    /// Final build string.
    pub build_string: &'a str,
    /// Target subdir (`noarch` for noarch outputs).
    pub subdir: &'a str,
    /// Target platform (for `arch`/`platform`).
    pub target: Subdir,
    /// The hash input text.
    pub hash_input: &'a str,
    /// The variant as YAML-able data.
    pub variant: &'a Value,
    /// Timestamp in seconds.
    pub timestamp: i64,
    /// The rendered recipe (as in `--render-only`).
    pub rendered: &'a Value,
    /// Run dependencies (`depends`).
    pub depends: &'a [String],
    /// Run constraints (`constrains`).
    pub constrains: &'a [String],
    /// The work directory (for license files).
    pub work_dir: &'a Path,
    /// Whether `info/recipe/` is written.
    pub include_recipe: bool,
    /// `--extra-meta` entries for `about.json`'s `extra`.
    pub extra_meta: &'a std::collections::BTreeMap<String, String>,
    /// The output directory (never copied into `info/recipe`).
    pub output_dir: &'a Path,
    /// The tests as stored in `info/tests/tests.yaml` (see `crate::testing::stored`).
    pub tests: &'a [Value],
    /// `--allow-absolute-license-paths`.
    pub allow_absolute_license_paths: bool,
}

/// Write `info/` into `pkg_dir`; returns nothing but files on disk.
pub fn write_info(pkg_dir: &Path, i: &InfoInputs, paths: &[PathEntry]) -> Result<()> {
    let info = pkg_dir.join("info");
    fs_err::create_dir_all(&info).into_diagnostic()?;
    write_json(&info.join("index.json"), &index_json(i))?;
    write_json(&info.join("paths.json"), &json!({ "paths": paths, "paths_version": 1 }))?;
    write_json(&info.join("about.json"), &about_json(i))?;
    fs_err::write(info.join("hash_input.json"), i.hash_input).into_diagnostic()?;
    let files: String = paths.iter().map(|p| format!("{}\n", p.path)).collect();
    fs_err::write(info.join("files"), files).into_diagnostic()?;
    let re = &i.output.requirements.run_exports;
    if !re.is_empty() {
        let specs = |d: &[Dependency]| d.iter().map(|d| d.spec.clone()).collect::<Vec<_>>();
        let mut m = Map::new();
        for (k, v) in [
            ("weak", &re.weak),
            ("strong", &re.strong),
            ("noarch", &re.noarch),
            ("weak_constrains", &re.weak_constraints),
            ("strong_constrains", &re.strong_constraints),
        ] {
            if !v.is_empty() {
                m.insert(k.into(), json!(specs(v)));
            }
        }
        write_json(&info.join("run_exports.json"), &Value::Object(m))?;
    }
    if let Some(link) = link_json(i) {
        write_json(&info.join("link.json"), &link)?;
    }
    if !i.tests.is_empty() {
        fs_err::create_dir_all(info.join("tests")).into_diagnostic()?;
        write_yaml(&info.join("tests/tests.yaml"), &i.tests)?;
    }
    if i.include_recipe {
        write_recipe_dir(&info.join("recipe"), i)?;
    }
    write_licenses(&info.join("licenses"), i)?;
    Ok(())
}

fn index_json(i: &InfoInputs) -> Value {
    let o = i.output;
    let mut m = Map::new();
    m.insert("name".into(), json!(o.package.name.as_normalized()));
    m.insert("version".into(), json!(o.package.version.as_str()));
    m.insert("build".into(), json!(i.build_string));
    m.insert("build_number".into(), json!(o.build.number));
    if o.build.noarch.is_none() {
        if let Some(arch) = i.target.arch() {
            m.insert("arch".into(), json!(arch.as_str()));
        }
        if let Some(platform) = i.target.only_platform() {
            m.insert("platform".into(), json!(platform));
        }
    }
    m.insert("subdir".into(), json!(i.subdir));
    let mut depends: Vec<String> = Vec::new();
    for d in i.depends {
        if !depends.contains(d) {
            depends.push(d.clone());
        }
    }
    m.insert("depends".into(), json!(depends));
    if !i.constrains.is_empty() {
        m.insert("constrains".into(), json!(i.constrains));
    }
    if let Some(l) = &o.about.license {
        m.insert("license".into(), json!(l));
    }
    if let Some(l) = &o.about.license_family {
        m.insert("license_family".into(), json!(l));
    }
    if let Some(n) = o.build.variant.down_prioritize_variant.filter(|n| *n > 0) {
        // As conda-build: each feature lowers the solver's preference for this variant.
        let name = o.package.name.as_normalized();
        let features: Vec<String> = (0..n).map(|k| format!("{name}-p-{k}")).collect();
        m.insert("track_features".into(), json!(features.join(" ")));
    }
    m.insert("timestamp".into(), json!(i.timestamp * 1000));
    // An abi3 package is installed like a noarch python one, from its platform's subdir.
    if o.build.python_noarch_layout() {
        m.insert("noarch".into(), json!("python"));
    } else if !o.build.noarch.is_none() {
        m.insert("noarch".into(), json!("generic"));
    }
    if let Some(path) = &o.build.python.site_packages_path {
        m.insert("python_site_packages_path".into(), json!(path));
    }
    Value::Object(m)
}

/// `link.json` of a `noarch: python` package: installers write the entry
/// points' launchers and compile its byte-code.
fn link_json(i: &InfoInputs) -> Option<Value> {
    let o = i.output;
    o.build.python_noarch_layout().then(|| {
        let entry_points: Vec<String> = o.build.python.entry_points.iter().map(|e| e.to_string()).collect();
        json!({
            "noarch": {"type": "python", "entry_points": entry_points},
            "package_metadata_version": 1,
        })
    })
}

fn about_json(i: &InfoInputs) -> Value {
    let a = &i.output.about;
    let mut m = Map::new();
    m.insert("channels".into(), json!([]));
    for (k, v) in [
        ("description", &a.description),
        ("dev_url", &a.repository),
        ("doc_url", &a.documentation),
        ("home", &a.homepage),
        ("license", &a.license),
        ("license_family", &a.license_family),
        ("summary", &a.summary),
    ] {
        if let Some(v) = v {
            m.insert(k.into(), json!(v));
        }
    }
    let mut extra = match &i.output.extra {
        Value::Null => json!({}),
        e => e.clone(),
    };
    if let Value::Object(map) = &mut extra {
        for (k, v) in i.extra_meta {
            map.insert(k.clone(), json!(v));
        }
    }
    m.insert("extra".into(), extra);
    Value::Object(m)
}

fn write_recipe_dir(dest: &Path, i: &InfoInputs) -> Result<()> {
    fs_err::create_dir_all(dest).into_diagnostic()?;
    if i.recipe.from_stdin {
        // The directory is just where kiln ran: only the recipe is stored.
        fs_err::write(
            dest.join("recipe.yaml"),
            crate::redact::mask(&i.recipe.file.text).as_bytes(),
        )
        .into_diagnostic()?;
        write_yaml(&dest.join("rendered_recipe.yaml"), i.rendered)?;
        return write_yaml(&dest.join("variant_config.yaml"), i.variant);
    }
    let recipe_dir = &i.recipe.dir;
    let recipe_file = std::fs::canonicalize(&i.recipe.file.path).unwrap_or_else(|_| i.recipe.file.path.clone());
    let output_dir = std::fs::canonicalize(i.output_dir).unwrap_or_else(|_| i.output_dir.to_path_buf());
    let walker = ignore::WalkBuilder::new(recipe_dir)
        .standard_filters(false)
        .hidden(true)
        .git_ignore(true)
        .require_git(false)
        .follow_links(false)
        .filter_entry(move |e| std::fs::canonicalize(e.path()).map_or(true, |p| !p.starts_with(&output_dir)))
        .build();
    for entry in walker {
        let entry = entry.into_diagnostic()?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let canonical = std::fs::canonicalize(entry.path()).unwrap_or_else(|_| entry.path().to_path_buf());
        let rel = entry.path().strip_prefix(recipe_dir).into_diagnostic()?;
        if canonical == recipe_file {
            // Credentials written into source URLs are masked.
            let text = fs_err::read_to_string(entry.path()).into_diagnostic()?;
            fs_err::write(dest.join("recipe.yaml"), crate::redact::mask(&text).as_bytes()).into_diagnostic()?;
            continue;
        }
        let target = dest.join(rel);
        if let Some(p) = target.parent() {
            fs_err::create_dir_all(p).into_diagnostic()?;
        }
        crate::disk::copy_file(entry.path(), &target)?;
    }
    write_yaml(&dest.join("rendered_recipe.yaml"), i.rendered)?;
    write_yaml(&dest.join("variant_config.yaml"), i.variant)?;
    Ok(())
}

/// Copy one license file; a different file already copied to the same
/// name (the work directory's, replaced by the recipe directory's) is said.
fn copy_license(from: &Path, to: &Path, i: &InfoInputs, g: &crate::recipe::model::Glob) -> Result<()> {
    if to.is_file() && fs_err::read(to).into_diagnostic()? != fs_err::read(from).into_diagnostic()? {
        tracing::warn!(
            "{}: two different license files are named {}; the one from {} is packaged",
            i.recipe.file.location(&g.span),
            to.file_name().unwrap_or_default().to_string_lossy(),
            from.parent().unwrap_or(from).display()
        );
    }
    crate::disk::copy_file(from, to)?;
    Ok(())
}

fn write_licenses(dest: &Path, i: &InfoInputs) -> Result<()> {
    let globs = &i.output.about.license_file;
    if globs.is_empty() {
        return Ok(());
    }
    for g in globs {
        let mut found = false;
        if Path::new(&g.pattern).is_absolute() {
            absolute_license(dest, i, g, g.pattern.trim_end_matches('/'))?;
            continue;
        }
        let pattern = g.pattern.trim_end_matches('/');
        if pattern.is_empty() {
            return Err(miette!(
                "{}: license_file `{}` names no file",
                i.recipe.file.location(&g.span),
                g.pattern
            ));
        }
        let escapes = Path::new(pattern)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir));
        if escapes {
            return Err(miette!(
                help = "license files are looked up in the work directory (sources) and the recipe directory; name them relative to those",
                "{}: license_file `{}` leaves the recipe and work directories",
                i.recipe.file.location(&g.span),
                g.pattern
            ));
        }
        // The recipe directory wins over the work directory.
        for root in [i.work_dir, i.recipe.dir.as_path()] {
            let candidate = root.join(pattern);
            let inside = |p: &Path| {
                let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
                std::fs::canonicalize(p).is_ok_and(|p| p.starts_with(&root))
            };
            if candidate.is_dir() && inside(&candidate) {
                for e in walkdir::WalkDir::new(&candidate).into_iter().filter_map(|e| e.ok()) {
                    if e.file_type().is_file() {
                        let rel = e.path().strip_prefix(root).into_diagnostic()?;
                        copy_license(e.path(), &dest.join(rel), i, g)?;
                        found = true;
                    }
                }
                continue;
            }
            let matcher = globset::GlobBuilder::new(pattern)
                .literal_separator(true)
                .build()
                .map_err(|e| miette!("{}: invalid license_file glob: {e}", i.recipe.file.location(&g.span)))?
                .compile_matcher();
            for e in walkdir::WalkDir::new(root).into_iter().filter_map(|e| e.ok()) {
                if !e.file_type().is_file() {
                    continue;
                }
                let rel = e.path().strip_prefix(root).into_diagnostic()?;
                if matcher.is_match(rel) {
                    copy_license(e.path(), &dest.join(rel), i, g)?;
                    found = true;
                }
            }
        }
        if !found {
            return Err(miette!(
                help = "license files are looked up in the work directory (sources) and the recipe directory",
                "{}: license_file `{}` matched no file",
                i.recipe.file.location(&g.span),
                g.pattern
            ));
        }
    }
    Ok(())
}

/// An absolute `license_file` (with `--allow-absolute-license-paths`): a
/// file goes to `info/licenses/<name>`, a directory's files below
/// `info/licenses/<directory name>/`.
fn absolute_license(dest: &Path, i: &InfoInputs, g: &crate::recipe::model::Glob, pattern: &str) -> Result<()> {
    let at = i.recipe.file.location(&g.span);
    if !i.allow_absolute_license_paths {
        return Err(miette!(
            help = "name it relative to the recipe or work directory, or pass --allow-absolute-license-paths",
            "{at}: license_file `{pattern}` is an absolute path"
        ));
    }
    let path = Path::new(pattern);
    let name = path.file_name().map(Path::new).unwrap_or(Path::new("LICENSE"));
    if path.is_file() {
        return copy_license(path, &dest.join(name), i, g);
    }
    if path.is_dir() {
        for e in walkdir::WalkDir::new(path).into_iter().filter_map(|e| e.ok()) {
            if e.file_type().is_file() {
                let rel = e.path().strip_prefix(path).into_diagnostic()?;
                copy_license(e.path(), &dest.join(name).join(rel), i, g)?;
            }
        }
        return Ok(());
    }
    Err(miette!(
        help = "check the path",
        "{at}: license_file `{pattern}` does not exist"
    ))
}

fn write_json(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(v).into_diagnostic()?;
    fs_err::write(path, text).into_diagnostic()
}

fn write_yaml(path: &Path, v: &impl Serialize) -> Result<()> {
    let text = serde_yaml_ng::to_string(v).into_diagnostic()?;
    fs_err::write(path, text).into_diagnostic()
}
