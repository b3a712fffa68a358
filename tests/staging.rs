//! Staging outputs and the legacy `cache:`: the real `kiln` binary on the
//! seed documents' examples, asserting package contents, the on-disk cache,
//! how often staging scripts run, and the errors.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

const H: &str = "hb0f4dca_0";

fn staging(rel: &str) -> PathBuf {
    recipe(&format!("staging/{rel}"))
}

/// `build --experimental` with extra args.
fn build_staging(recipe: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["--experimental"];
    args.extend_from_slice(extra);
    build_ok(recipe, out, &args)
}

fn extracted(out: &Path, subdir_and_name: &str) -> tempfile::TempDir {
    extract(&out.join(subdir_and_name))
}

#[test]
fn library_and_headers_split_and_cache_layout() {
    let out = tempfile::tempdir().unwrap();
    build_staging(&staging("basic"), out.path(), &[]);
    assert_eq!(
        package_names(out.path()),
        vec![
            format!("mypackage-headers-0.1.0-{H}.conda"),
            format!("mypackage-library-0.1.0-{H}.conda")
        ]
    );
    let lib = extracted(out.path(), &format!("linux-64/mypackage-library-0.1.0-{H}.conda"));
    assert_eq!(content_files(lib.path()), vec!["lib/library.txt"]);
    assert_eq!(
        fs::read_to_string(lib.path().join("lib/library.txt")).unwrap(),
        "This is the library\n"
    );
    let headers = extracted(out.path(), &format!("linux-64/mypackage-headers-0.1.0-{H}.conda"));
    assert_eq!(content_files(headers.path()), vec!["include/header.txt"]);

    let entries = cache_entries(&out.path().join("build_cache"));
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert!(entry.join("prefix").is_dir() && entry.join("work_dir").is_dir());
    let meta = json(&entry.join("metadata.json"));
    assert_eq!(meta["name"], "mypackage-build");
    assert_eq!(
        format!("staging_{}", meta["key"].as_str().unwrap()),
        entry.file_name().unwrap().to_string_lossy()
    );
    let files: Vec<&str> = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(files, vec!["include/header.txt", "lib/library.txt"]);
    assert_eq!(meta["files"][0]["type"], "file");
    assert!(meta["prefix"].as_str().unwrap().contains("host_env_placehold"));
    assert!(meta["work_dir"].as_str().unwrap().ends_with("/work"));
    assert_eq!(meta["key_inputs"]["target_platform"], "linux-64");
    assert!(meta["timings"]["script_seconds"].is_number());

    // The rendered recipe records where the package came from.
    let rendered: serde_json::Value =
        serde_yaml_ng::from_str(&fs::read_to_string(lib.path().join("info/recipe/rendered_recipe.yaml")).unwrap())
            .unwrap();
    assert_eq!(rendered["recipe"]["staging_caches"][0]["name"], "mypackage-build");
    assert_eq!(rendered["recipe"]["inherits_from"]["cache_name"], "mypackage-build");
}

#[test]
fn legacy_cache_behaves_as_one_staging_output() {
    let out = tempfile::tempdir().unwrap();
    build_staging(&staging("legacy-cache"), out.path(), &[]);
    let lib = extracted(out.path(), &format!("linux-64/mypackage-library-0.1.0-{H}.conda"));
    assert_eq!(content_files(lib.path()), vec!["lib/library.txt"]);
    let headers = extracted(out.path(), &format!("linux-64/mypackage-headers-0.1.0-{H}.conda"));
    assert_eq!(content_files(headers.path()), vec!["include/header.txt"]);
    let entries = cache_entries(&out.path().join("build_cache"));
    assert_eq!(entries.len(), 1);
    assert_eq!(json(&entries[0].join("metadata.json"))["name"], "mypackage-build");
}

#[test]
fn staging_and_cache_need_experimental() {
    for (recipe, what) in [
        (staging("basic"), "staging outputs"),
        (staging("legacy-cache"), "the top-level `cache:`"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let o = build(&recipe, out.path(), &[]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(err.contains(what) && err.contains("--experimental"), "{err}");
        assert!(err.contains("recipe.yaml:"), "{err}");
    }
}

#[test]
fn multiple_caches_and_top_level_inheritance() {
    let out = tempfile::tempdir().unwrap();
    build_staging(&staging("multi"), out.path(), &[]);
    let lib = extracted(out.path(), &format!("linux-64/libcore-2.0.0-{H}.conda"));
    assert_eq!(content_files(lib.path()), vec!["lib/libcore.txt"]);
    let headers = extracted(out.path(), &format!("linux-64/core-headers-2.0.0-{H}.conda"));
    assert_eq!(content_files(headers.path()), vec!["include/core.h"]);
    let py = extracted(out.path(), &format!("linux-64/python-mycore-2.0.0-{H}.conda"));
    assert_eq!(content_files(py.path()), vec!["site-packages/mycore/__init__.py"]);
    assert_eq!(cache_entries(&out.path().join("build_cache")).len(), 2);

    let out = tempfile::tempdir().unwrap();
    build_staging(&staging("toplevel"), out.path(), &[]);
    let compiled = extracted(out.path(), &format!("linux-64/compiled-pkg-1.0.0-{H}.conda"));
    assert_eq!(content_files(compiled.path()), vec!["lib/compiled.so"]);
    let data = extracted(out.path(), &format!("linux-64/data-pkg-1.0.0-{H}.conda"));
    assert_eq!(content_files(data.path()), vec!["share/data.txt"]);
}

#[test]
fn unused_staging_unselected_files_and_overlaps_are_reported() {
    let out = tempfile::tempdir().unwrap();
    let o = build_staging(&staging("unused"), out.path(), &[]);
    let log = stderr(&o);
    // `orphan` would fail (`exit 1`) if it were built.
    assert!(
        log.contains("staging output `orphan` is not inherited by any package output; it is not built"),
        "{log}"
    );
    assert!(
        log.contains("1 file(s) of staging output `used` are in no package: leftover.txt"),
        "{log}"
    );
    assert!(
        log.contains("1 file(s) are in more than one package: share/b.txt (first, second)"),
        "{log}"
    );
    assert_eq!(cache_entries(&out.path().join("build_cache")).len(), 1);

    for flag in ["--error-unused-staging-files", "--error-overlapping-files"] {
        let out = tempfile::tempdir().unwrap();
        let o = build(&staging("unused"), out.path(), &["--experimental", flag]);
        assert!(!o.status.success(), "{flag} should fail the build");
    }
}

#[test]
fn symlinks_modes_and_placeholders_survive_the_cache() {
    let out = tempfile::tempdir().unwrap();
    build_staging(&staging("symlinks"), out.path(), &[]);
    let pkg = extract(&packages(out.path())[0]);
    let d = pkg.path();
    assert_eq!(
        content_files(d),
        vec![
            "bin/absolute.txt",
            "lib/broken.txt",
            "lib/config.txt",
            "lib/real.txt",
            "lib/relative.txt"
        ]
    );
    assert_three_symlinks(d);
    let paths = paths_json(d);
    assert_eq!(paths["lib/broken.txt"]["path_type"], "softlink");
    assert_eq!(paths["lib/config.txt"]["file_mode"], "text");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(d.join("lib/real.txt")).unwrap().permissions().mode() & 0o111,
        0o111
    );
    let meta = json(&cache_entries(&out.path().join("build_cache"))[0].join("metadata.json"));
    let kinds: Vec<(String, String)> = meta["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                f["type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(kinds.contains(&("lib/broken.txt".into(), "symlink".into())));
    assert!(kinds.contains(&("bin/absolute.txt".into(), "symlink".into())));
}

#[test]
fn work_dir_restore_allows_an_incremental_make_without_recompiling() {
    let out = tempfile::tempdir().unwrap();
    build_staging(&staging("incremental"), out.path(), &[]);
    let lib = extracted(out.path(), &format!("linux-64/libgreet-1.0.0-{H}.conda"));
    assert_eq!(content_files(lib.path()), vec!["include/greet.h", "lib/libgreet.so"]);
    let tool = extracted(out.path(), &format!("linux-64/greet-tool-1.0.0-{H}.conda"));
    assert_eq!(content_files(tool.path()), vec!["bin/greet-tool", "compile.log"]);
    // greet.o was compiled once, by the staging build; the inheritor only compiled tool.o.
    assert_eq!(
        fs::read_to_string(tool.path().join("compile.log")).unwrap(),
        "compiled greet.o\nlinked libgreet.so\ncompiled tool.o\nlinked greet-tool\n"
    );
    let run = std::process::Command::new(tool.path().join("bin/greet-tool"))
        .run()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "hello from a staged build\n");

    // A second invocation is a cache hit and the incremental build still compiles nothing staged.
    let o = build_staging(&staging("incremental"), out.path(), &[]);
    assert!(
        stderr(&o).contains("staging greet-build: cache hit staging_"),
        "{}",
        stderr(&o)
    );
    let tool = extracted(out.path(), &format!("linux-64/greet-tool-1.0.0-{H}.conda"));
    assert!(!fs::read_to_string(tool.path().join("compile.log"))
        .unwrap()
        .contains("compiled greet.o\ncompiled greet.o"));
}

#[test]
fn output_sources_are_layered_on_the_staging_work_dir() {
    let out = tempfile::tempdir().unwrap();
    build_staging(&staging("sources"), out.path(), &[]);
    let py = extracted(out.path(), &format!("linux-64/py-calculator-1.0.0-{H}.conda"));
    assert_eq!(
        fs::read_to_string(py.path().join("share/combined.txt")).unwrap(),
        "built by staging\n# sources\n"
    );
    let lib = extracted(out.path(), &format!("linux-64/libcalculator-1.0.0-{H}.conda"));
    assert_eq!(content_files(lib.path()), vec!["lib/calc.py"]);
}

#[test]
fn nested_staging_restores_the_parent_first() {
    let out = tempfile::tempdir().unwrap();
    build_staging(&staging("nested"), out.path(), &[]);
    let all = extracted(out.path(), &format!("linux-64/nest-all-3.1.0-{H}.conda"));
    assert_eq!(content_files(all.path()), vec!["lib/base.txt", "lib/derived.txt"]);
    let base = extracted(out.path(), &format!("linux-64/nest-base-3.1.0-{H}.conda"));
    assert_eq!(content_files(base.path()), vec!["lib/base.txt"]);
    assert_eq!(cache_entries(&out.path().join("build_cache")).len(), 2);
}

/// Run the `counted` recipe with a counter file.
fn build_counted(out: &Path, counter: &Path, extra: &[&str]) -> std::process::Output {
    let o = kiln()
        .env("KILN_TEST_COUNTER", counter)
        .env("KILN_TEST_SLOW", "")
        .args(["build", "--experimental", "--recipe"])
        .arg(staging("counted"))
        .arg("--output-dir")
        .arg(out)
        .args(extra)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

fn runs(counter: &Path) -> usize {
    fs::read_to_string(counter).map(|s| s.lines().count()).unwrap_or(0)
}

#[test]
fn staging_runs_once_per_invocation_then_hits_across_invocations() {
    let out = tempfile::tempdir().unwrap();
    let counter = out.path().join("counter.txt");
    build_counted(out.path(), &counter, &[]);
    assert_eq!(runs(&counter), 1, "three inheritors, one staging run");
    assert_eq!(package_names(out.path()).len(), 3);

    // The staging script saw its own identity.
    let a = extracted(out.path(), &format!("linux-64/counted-a-4.2.0-{H}.conda"));
    let env = fs::read_to_string(a.path().join("share/staging-env.txt")).unwrap();
    assert_eq!(
        env,
        "PKG_NAME=counted-build\nPKG_VERSION=4.2.0\nPKG_BUILDNUM=unset\nPKG_BUILD_STRING=unset\nSUBDIR=linux-64\ntarget_platform=linux-64\n"
    );

    // Second invocation: a hit, the script does not run, the log names the key.
    let o = build_counted(out.path(), &counter, &[]);
    assert_eq!(runs(&counter), 1);
    let entries = cache_entries(&out.path().join("build_cache"));
    let key = entries[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        stderr(&o).contains(&format!("staging counted-build: cache hit {key}, script skipped")),
        "{}",
        stderr(&o)
    );

    // Deleting the entry forces a rebuild.
    fs::remove_dir_all(&entries[0]).unwrap();
    build_counted(out.path(), &counter, &[]);
    assert_eq!(runs(&counter), 2);

    // A half-written entry (no metadata.json) is not trusted: rebuilt.
    let entries = cache_entries(&out.path().join("build_cache"));
    fs::remove_file(entries[0].join("metadata.json")).unwrap();
    build_counted(out.path(), &counter, &[]);
    assert_eq!(runs(&counter), 3);
    assert!(entries[0].join("metadata.json").is_file());
}

#[test]
fn a_changed_script_is_a_miss_that_says_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let recipe_path = dir.path().join("recipe.yaml");
    fs::copy(staging("basic/recipe.yaml"), &recipe_path).unwrap();
    let out = dir.path().join("out");
    build_staging(&recipe_path, &out, &[]);
    let text = fs::read_to_string(&recipe_path)
        .unwrap()
        .replace("This is the library", "This is the new library");
    fs::write(&recipe_path, text).unwrap();
    let o = build_staging(&recipe_path, &out, &[]);
    let log = stderr(&o);
    assert!(log.contains("staging mypackage-build: cache miss"), "{log}");
    assert!(log.contains("the staging script changed since staging_"), "{log}");
    assert_eq!(cache_entries(&out.join("build_cache")).len(), 2);
    let lib = extracted(&out, &format!("linux-64/mypackage-library-0.1.0-{H}.conda"));
    assert_eq!(
        fs::read_to_string(lib.path().join("lib/library.txt")).unwrap(),
        "This is the new library\n"
    );
}

#[test]
fn a_changed_source_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("recipe");
    copy_dir(&staging("sources"), &copy);
    let out = dir.path().join("out");
    build_staging(&copy, &out, &[]);
    fs::write(copy.join("src/calc.py"), "print('changed')\n").unwrap();
    let o = build_staging(&copy, &out, &[]);
    assert!(stderr(&o).contains("sources changed since staging_"), "{}", stderr(&o));
    let lib = extracted(&out, &format!("linux-64/libcalculator-1.0.0-{H}.conda"));
    assert_eq!(
        fs::read_to_string(lib.path().join("lib/calc.py")).unwrap(),
        "print('changed')\n"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    for e in walkdir::WalkDir::new(from) {
        let e = e.unwrap();
        let target = to.join(e.path().strip_prefix(from).unwrap());
        if e.file_type().is_dir() {
            fs::create_dir_all(&target).unwrap();
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

#[test]
fn a_shared_cache_is_relocated_into_another_output_dir() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("shared-cache");
    let cache_arg = cache.to_string_lossy().into_owned();
    build_staging(
        &staging("symlinks"),
        &dir.path().join("first"),
        &["--staging-cache-dir", &cache_arg],
    );
    let second = dir.path().join("second-output-dir");
    let o = build_staging(&staging("symlinks"), &second, &["--staging-cache-dir", &cache_arg]);
    let log = stderr(&o);
    assert!(log.contains("cache hit"), "{log}");
    assert!(
        !second.join("build_cache").exists(),
        "the cache stays where --staging-cache-dir says"
    );
    let pkg = extract(&packages(&second)[0]);
    let paths = paths_json(pkg.path());
    let placeholder = paths["lib/config.txt"]["prefix_placeholder"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(placeholder.starts_with(&second.canonicalize().unwrap().to_string_lossy().into_owned()));
    assert_eq!(
        fs::read_to_string(pkg.path().join("lib/config.txt")).unwrap(),
        format!("prefix={placeholder}\n")
    );
    assert_eq!(
        fs::read_link(pkg.path().join("bin/absolute.txt")).unwrap(),
        Path::new("../lib/real.txt")
    );

    let list = kiln()
        .args(["cache", "list", "--staging-cache-dir", &cache_arg])
        .run()
        .unwrap();
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(table.contains("links-build"), "{table}");
    let clean = kiln()
        .args([
            "cache",
            "clean",
            "--older-than",
            "1d",
            "--staging-cache-dir",
            &cache_arg,
        ])
        .run()
        .unwrap();
    assert!(clean.status.success());
    assert_eq!(cache_entries(&cache).len(), 1, "a fresh entry survives --older-than 1d");
    kiln()
        .args(["cache", "clean", "--staging-cache-dir", &cache_arg])
        .run()
        .unwrap();
    assert!(cache_entries(&cache).is_empty());
}

#[test]
fn an_interrupted_staging_build_leaves_no_trusted_entry() {
    // A failing staging script: nothing is cached, nothing is packaged.
    let out = tempfile::tempdir().unwrap();
    let o = build(&staging("bad/failing.yaml"), out.path(), &["--experimental"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("failing.yaml:9:9") && err.contains("(exit code 3)"),
        "{err}"
    );
    assert!(cache_entries(&out.path().join("build_cache")).is_empty());
    assert!(packages(out.path()).is_empty());

    // A killed build (SIGKILL while the staging script runs): no entry; the next run builds it.
    let out = tempfile::tempdir().unwrap();
    let counter = out.path().join("counter.txt");
    let mut child = kiln()
        .env("KILN_TEST_COUNTER", &counter)
        .env("KILN_TEST_SLOW", "1")
        .args(["build", "--experimental", "--recipe"])
        .arg(staging("counted"))
        .arg("--output-dir")
        .arg(out.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = out.path().join("bld/kiln_counted/work/started");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() {
        assert!(std::time::Instant::now() < deadline, "staging script never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(cache_entries(&out.path().join("build_cache")).is_empty());
    build_counted(out.path(), &counter, &[]);
    assert_eq!(runs(&counter), 2, "killed run + the rebuild");
    assert_eq!(cache_entries(&out.path().join("build_cache")).len(), 1);
}

#[test]
fn render_only_shows_staging_caches_and_inheritance() {
    let o = kiln()
        .args(["build", "--experimental", "--render-only", "--recipe"])
        .arg(staging("basic"))
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rendered: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let entries = rendered.as_array().unwrap();
    assert_eq!(entries.len(), 2, "staging outputs get no entry of their own");
    for e in entries {
        assert_eq!(e["recipe"]["staging_caches"][0]["name"], "mypackage-build");
        assert_eq!(
            e["recipe"]["inherits_from"],
            json!({"cache_name": "mypackage-build", "inherit_run_exports": true})
        );
    }
}

#[test]
fn bad_staging_recipes_fail_with_located_errors() {
    let cases: &[(&str, &[&str])] = &[
        ("about", &["about.yaml:7:5", "staging outputs cannot have `about`"]),
        (
            "tests-key",
            &["tests-key.yaml:7:5", "staging outputs cannot have `tests`"],
        ),
        (
            "run-requirements",
            &[
                "run-requirements.yaml:9:7",
                "`run` is not allowed in staging requirements",
            ],
        ),
        (
            "unknown-inherit",
            &[
                "unknown-inherit.yaml:11:14",
                "staging cache 'missing' not found. Available caches: core, extras",
            ],
        ),
        ("duplicate", &["duplicate.yaml:7:", "two staging outputs are named `s`"]),
        (
            "name-clash",
            &[
                "name-clash.yaml:7:",
                "package output `clash` has the name of a staging output",
            ],
        ),
        (
            "cycle",
            &[
                "cycle.yaml:",
                "staging outputs inherit from each other in a cycle: a -> b -> a",
            ],
        ),
    ];
    for (case, needles) in cases {
        let out = tempfile::tempdir().unwrap();
        let o = build(&staging(&format!("bad/{case}.yaml")), out.path(), &["--experimental"]);
        eprintln!("case {case}");
        assert_failed_with(&o, out.path(), needles);
    }
}

/// The kept host prefix of a build directory.
fn kept_host_prefix(build_dir: &Path) -> PathBuf {
    fs::read_dir(build_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("host_env"))
        .expect("host prefix kept with --keep-build")
}

/// Every file and symlink below `dir`, relative, outside `conda-meta`.
fn tree(dir: &Path) -> Vec<String> {
    files_outside(dir, "conda-meta")
}

#[test]
fn script_less_inheritors_are_packaged_from_the_entry_without_a_restore() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let recipe_path = dir.path().join("recipe.yaml");
    fs::copy(staging("direct/recipe.yaml"), &recipe_path).unwrap();
    let out = dir.path().join("out");
    // A package directory a killed run left behind is swept.
    let leftover = out.join("bld/.pkg/direct-lib-hb0f4dca_0-99999999");
    fs::create_dir_all(&leftover).unwrap();
    let o = build_staging(&recipe_path, &out, &[]);
    assert!(!leftover.exists());
    let log = stderr(&o);
    assert!(!log.contains("restored staging"), "{log}");
    // direct-data's link into lib/ brings its target along (not packaged).
    for (output, n, links) in [("direct-lib", 2, 1), ("direct-data", 4, 3)] {
        let line = log
            .lines()
            .find(|l| l.contains(&format!("{output}-1.0.0-{H}: placed")))
            .unwrap_or_else(|| panic!("{log}"));
        assert!(
            line.contains(&format!("placed {n} of the 5 paths of staging direct-build"))
                && line.contains(&format!("{links} hard links"))
                && line.contains("nothing else restored"),
            "{line}"
        );
    }
    // The first archive is written while the second output builds.
    let second_starts = log.find("direct-data-1.0.0-hb0f4dca_0: preparing directories").unwrap();
    let first_lands = log.find("direct-lib-1.0.0-hb0f4dca_0.conda (").unwrap();
    assert!(second_starts < first_lands, "{log}");

    // A kept build directory holds the last output's files only, as
    // copies that share nothing with the cache entry.
    let o = build_staging(&recipe_path, &out, &["--keep-build"]);
    assert!(stderr(&o).contains("0 hard links"), "{}", stderr(&o));
    let entry = cache_entries(&out.join("build_cache")).remove(0);
    let prefix = kept_host_prefix(&out.join("bld/kiln_direct"));
    assert_eq!(
        tree(&prefix),
        vec![
            "include/header.h",
            "lib/config.txt",
            "share/cfg-link.txt",
            "share/v.cfg"
        ]
    );
    let ino = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_ne!(
        ino(&prefix.join("include/header.h")),
        ino(&entry.join("prefix/include/header.h"))
    );
    // `post_process` changed its file; the entry keeps the original.
    assert_eq!(
        fs::read_to_string(prefix.join("share/v.cfg")).unwrap(),
        "version=new-was-old\n"
    );
    assert_eq!(
        fs::read_to_string(entry.join("prefix/share/v.cfg")).unwrap(),
        "version=old\n"
    );
    // The link's target was there: the link is described by its target's hash.
    let data = extracted(&out, &format!("linux-64/direct-data-1.0.0-{H}.conda"));
    let config = fs::read(prefix.join("lib/config.txt")).unwrap();
    assert_eq!(
        paths_json(data.path())["share/cfg-link.txt"]["sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&config))
    );

    let lib_name = format!("linux-64/direct-lib-1.0.0-{H}.conda");
    let lib = extracted(&out, &lib_name);
    assert_eq!(content_files(lib.path()), vec!["lib/config.txt", "lib/link.txt"]);
    let paths = paths_json(lib.path());
    assert_eq!(paths["lib/config.txt"]["file_mode"], "text");
    assert_eq!(paths["lib/link.txt"]["path_type"], "softlink");
    // The license came from the entry's work directory.
    assert_eq!(
        fs::read_to_string(lib.path().join("info/licenses/LICENSE")).unwrap(),
        "MIT License\n"
    );
    assert_eq!(
        fs::read_to_string(data.path().join("share/v.cfg")).unwrap(),
        "version=new-was-old\n"
    );

    // The same output with a script of its own (a full restore) packages
    // the same bytes.
    let text = fs::read_to_string(&recipe_path).unwrap().replace(
        "    build:\n      files:\n        - lib/**",
        "    build:\n      script:\n        - echo restored\n      files:\n        - lib/**",
    );
    fs::write(&recipe_path, text).unwrap();
    let o = build_staging(&recipe_path, &out, &[]);
    let log = stderr(&o);
    assert!(
        log.contains("cache hit") && log.contains("restored staging direct-build"),
        "{log}"
    );
    let restored = extracted(&out, &lib_name);
    assert_eq!(paths_json(restored.path()), paths);
    for f in ["lib/config.txt", "info/licenses/LICENSE"] {
        assert_eq!(
            fs::read(restored.path().join(f)).unwrap(),
            fs::read(lib.path().join(f)).unwrap(),
            "{f}"
        );
    }
}
