//! Build and host environments: recipes whose requirements are solved
//! against a fixture channel (built by kiln from `tests/fixtures/channel`),
//! read as `file://` and over HTTP on 127.0.0.1, installed, activated, and
//! turned into run requirements.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn env_recipe(rel: &str) -> std::path::PathBuf {
    recipe(&format!("envs/{rel}"))
}

/// The one package in `out` named `name` (`name-<version>-<build>.*`).
fn package_named(out: &Path, name: &str) -> std::path::PathBuf {
    packages(out)
        .into_iter()
        .find(|p| {
            let f = p.file_name().unwrap().to_string_lossy();
            f.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .unwrap_or_else(|| panic!("no package {name} in {:?}", package_names(out)))
}

/// `info/index.json` of the package called `name` in `out`.
fn index_of(out: &Path, name: &str) -> Value {
    let d = extract(&package_named(out, name));
    json(&d.path().join("info/index.json"))
}

#[test]
fn c_library_compiled_in_staging_and_split_into_library_and_headers() {
    let out = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let args = ["--experimental", "-c", &channel];
    build_ok(&env_recipe("clib"), out.path(), &args);

    let lib = package_named(out.path(), "libclib");
    let d = extract(&lib);
    assert_eq!(content_files(d.path()), vec!["lib/libclib.so"]);
    let so = std::fs::read(d.path().join("lib/libclib.so")).unwrap();
    assert_eq!(&so[..4], b"\x7fELF", "the staging build compiled a real shared library");

    let index = json(&d.path().join("info/index.json"));
    let depends = strings(&index["depends"]);
    // zlib's weak export (host) and gcc's strong export (build), inherited from staging.
    assert!(depends.contains(&"zlib >=1.3,<2.0a0".to_string()), "{depends:?}");
    assert!(depends.contains(&"libgcc >=12".to_string()), "{depends:?}");
    assert!(!depends.iter().any(|d| d.starts_with("make")), "{depends:?}");
    // Constraint exports flow through staging the same way.
    assert_eq!(strings(&index["constrains"]), vec!["libgcc-ng >=12"]);

    let headers = package_named(out.path(), "libclib-headers");
    let h = extract(&headers);
    // Only what the staging script installed: zlib's header came from the
    // host environment and is not part of any package.
    assert_eq!(content_files(h.path()), vec!["include/clib.h"]);
    let hdepends = strings(&json(&h.path().join("info/index.json"))["depends"]);
    let lib_build = index["build"].as_str().unwrap();
    assert!(
        hdepends.contains(&format!("libclib ==1.0.0 {lib_build}")),
        "exact pin_subpackage: {hdepends:?}"
    );

    // The staging build is cached: a second run solves (the key includes the
    // resolved packages) but does not rebuild.
    let again = build_ok(&env_recipe("clib"), out.path(), &args);
    assert!(stderr(&again).contains("cache hit"), "{}", stderr(&again));
}

#[test]
fn run_exports_and_pin_compatible_over_http() {
    let out = tempfile::tempdir().unwrap();
    let url = serve_http(fixture_channel());
    build_ok(&env_recipe("runexports"), out.path(), &["-c", &url]);

    let index = index_of(out.path(), "uses-zlib");
    let depends = strings(&index["depends"]);
    assert_eq!(
        depends,
        vec!["zlib >=1.3,<1.4.0a0", "python_abi 3.12.* *_cp312", "zlib >=1.3,<2.0a0"],
        "pin_compatible first, then the weak exports of the host packages (by name)"
    );

    // A noarch package takes only the `noarch` run exports (python → python).
    let pure = index_of(out.path(), "pure");
    assert_eq!(pure["subdir"], "noarch");
    assert_eq!(strings(&pure["depends"]), vec!["python"]);

    // Repodata fetched over HTTP is cached on disk for the next run.
    let cached: Vec<_> = walkdir::WalkDir::new(cache_dir().join("repodata"))
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .collect();
    assert!(!cached.is_empty(), "no repodata cached under {}", cache_dir().display());
}

#[test]
fn staging_run_exports_are_filtered_at_staging_and_output_level() {
    let out = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    build_ok(&env_recipe("ignores"), out.path(), &["--experimental", "-c", &channel]);

    // from_package: [python] at the staging level drops python_abi for every
    // inheritor; pin_compatible resolves against the staging host env.
    assert_eq!(
        strings(&index_of(out.path(), "all-exports")["depends"]),
        vec!["zlib >=1.3,<1.4.0a0", "zlib >=1.3,<2.0a0"]
    );
    // by_name: [zlib] on top of the staging filter.
    assert_eq!(
        strings(&index_of(out.path(), "no-zlib")["depends"]),
        Vec::<String>::new()
    );
    // inherit: {run_exports: false}.
    assert_eq!(
        strings(&index_of(out.path(), "no-exports")["depends"]),
        Vec::<String>::new()
    );
    // An output's own host environment with both kinds of filter.
    assert_eq!(
        strings(&index_of(out.path(), "own-host")["depends"]),
        Vec::<String>::new()
    );
}

#[test]
fn an_output_depending_on_a_sibling_is_built_after_it() {
    let out = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let o = build_ok(&env_recipe("siblings"), out.path(), &["-c", &channel]);
    let log = stderr(&o);
    let libdep_at = log.find("libdep-1.2.3").unwrap();
    let app_at = log.find("app-1.2.3").unwrap();
    assert!(libdep_at < app_at, "libdep must be built first:\n{log}");

    let app = index_of(out.path(), "app");
    assert_eq!(strings(&app["depends"]), vec!["libdep >=1.2.3,<1.3.0a0"]);
    let pkg = package_named(out.path(), "app");
    let d = extract(&pkg);
    assert_eq!(
        content_files(d.path()),
        vec!["share/app/app.txt"],
        "libdep's files stay in libdep"
    );

    // The render output lists outputs in build order, with resolved packages.
    let o = kiln()
        .args(["build", "--render-only", "--with-solve", "--recipe"])
        .arg(env_recipe("siblings"))
        .arg("--output-dir")
        .arg(out.path())
        .args(["-c", &channel])
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rendered: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rendered[0]["recipe"]["package"]["name"], "libdep");
    assert_eq!(rendered[1]["recipe"]["package"]["name"], "app");
    let host = &rendered[1]["finalized_dependencies"]["host"]["resolved"];
    assert_eq!(host[0]["name"], "libdep");
    assert_eq!(host[0]["version"], "1.2.3");
}

#[test]
fn with_solve_shows_resolved_environments_and_needs_render_only() {
    let out = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let o = kiln()
        .args(["build", "--render-only", "--with-solve", "--experimental", "--recipe"])
        .arg(env_recipe("clib"))
        .arg("--output-dir")
        .arg(out.path().join("never-created"))
        .args(["-c", &channel])
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rendered: Value = serde_json::from_slice(&o.stdout).unwrap();
    let run = &rendered[0]["finalized_dependencies"]["run"];
    assert_eq!(strings(&run["depends"]), vec!["libgcc >=12", "zlib >=1.3,<2.0a0"]);
    assert!(!out.path().join("never-created").exists());

    let o = kiln()
        .args(["build", "--with-solve", "--recipe"])
        .arg(env_recipe("clib"))
        .run()
        .unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--render-only"), "{}", stderr(&o));
}

#[test]
fn with_solve_shows_exactly_the_run_requirements_the_build_writes() {
    // Nested staging: `base` exports zlib (host), `derived` exports libgcc
    // (build); `nested-all` inherits both through the chain.
    let out = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let o = kiln()
        .args(["build", "--render-only", "--with-solve", "--experimental", "--recipe"])
        .arg(env_recipe("nested-exports"))
        .arg("--output-dir")
        .arg(out.path())
        .args(["-c", &channel])
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rendered: Value = serde_json::from_slice(&o.stdout).unwrap();
    build_ok(
        &env_recipe("nested-exports"),
        out.path(),
        &["--experimental", "-c", &channel],
    );
    let entries = rendered.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    for e in entries {
        let name = e["recipe"]["package"]["name"].as_str().unwrap();
        let index = index_of(out.path(), name);
        let run = &e["finalized_dependencies"]["run"];
        assert_eq!(strings(&run["depends"]), strings(&index["depends"]), "{name} depends");
        assert_eq!(
            strings(&run["constraints"]),
            strings(&index["constrains"]),
            "{name} constrains"
        );
    }
    let all = index_of(out.path(), "nested-all");
    let depends = strings(&all["depends"]);
    for want in ["python", "libgcc >=12", "zlib >=1.3,<2.0a0"] {
        assert!(depends.contains(&want.to_string()), "{want} in {depends:?}");
    }
}

#[test]
fn a_cycle_between_outputs_is_an_error_naming_them() {
    let out = tempfile::tempdir().unwrap();
    let o = build(&env_recipe("bad/cycle.yaml"), out.path(), &[]);
    assert_failed_with(
        &o,
        out.path(),
        &["cycle detected in recipe outputs: first, second", "cycle.yaml:6:"],
    );
}

#[test]
fn an_unsatisfiable_requirement_explains_who_asked() {
    let out = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let o = build(&env_recipe("bad/unsatisfiable.yaml"), out.path(), &["-c", &channel]);
    assert_failed_with(
        &o,
        out.path(),
        &[
            "unsatisfiable.yaml:7:",
            "wants-new-zlib-1-",
            "cannot solve the host environment",
            "zlib >=9",
        ],
    );
}

#[test]
fn an_unreachable_or_missing_channel_fails_quickly_and_names_it() {
    let empty = tempfile::tempdir().unwrap();
    let not_a_channel = serve_http(empty.path());
    for (url, timeout) in [
        (closed_port_url(), None),
        (silent_server(), Some("2")),
        (not_a_channel, None),
    ] {
        let out = tempfile::tempdir().unwrap();
        let started = Instant::now();
        let env: Vec<(&str, &str)> = timeout.map(|t| ("KILN_NETWORK_TIMEOUT", t)).into_iter().collect();
        let o = build_with_env(&env_recipe("bad/needs-host.yaml"), out.path(), &["-c", &url], &env);
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "took {:?}",
            started.elapsed()
        );
        assert!(!o.status.success());
        let log = stderr(&o);
        assert!(log.contains("cannot read repodata from channel"), "{log}");
        assert!(log.contains(url.trim_end_matches('/')), "names {url}: {log}");
    }
}

#[test]
fn a_missing_local_channel_is_a_clear_error() {
    let out = tempfile::tempdir().unwrap();
    let o = build(
        &env_recipe("bad/needs-host.yaml"),
        out.path(),
        &["-c", "./no/such/channel"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("channel `./no/such/channel` is not a directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn virtual_packages_come_from_the_machine_and_can_be_overridden() {
    let channel = fixture_channel_url();
    let out = tempfile::tempdir().unwrap();
    let o = build(&env_recipe("virtual"), out.path(), &["-c", &channel]);
    assert!(!o.status.success(), "no machine has glibc 99");
    assert!(stderr(&o).contains("__glibc >=99"), "{}", stderr(&o));

    let o = build_with_env(
        &env_recipe("virtual"),
        out.path(),
        &["-c", &channel],
        &[("CONDA_OVERRIDE_GLIBC", "100")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        strings(&index_of(out.path(), "needs-new-glibc")["depends"]),
        vec!["zlib >=1.3,<2.0a0"]
    );
}

#[test]
fn merged_environments_apply_run_exports_as_separate_ones_do() {
    // `kit` exports `zlib` strongly; zlib exports itself weakly. A build
    // dependency on `kit` thus puts zlib in the host environment, whose
    // weak export reaches the package, merged or not.
    let channel = fixture_channel_url();
    let out = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kit = write_recipe(
        dir.path(),
        "kit",
        "package: {name: kit, version: '1.0'}\nrequirements:\n  run_exports: {strong: [zlib]}\nbuild:\n  script: [mkdir -p $PREFIX/share, echo kit > $PREFIX/share/kit.txt]\n",
    );
    build_ok(&kit, out.path(), &["-c", &channel]);
    let mut depends = Vec::new();
    for merge in ["false", "true"] {
        let name = format!("uses-kit-{merge}");
        let text = format!(
            "package: {{name: {name}, version: '1.0'}}\nrequirements:\n  build: [kit]\nbuild:\n  merge_build_and_host_envs: {merge}\n  script: [test -f $PREFIX/include/zlib_fixture.h, mkdir -p $PREFIX/share, echo x > $PREFIX/share/{name}.txt]\n"
        );
        let recipe = write_recipe(dir.path(), &name, &text);
        build_ok(&recipe, out.path(), &["-c", &channel]);
        depends.push(strings(&index_of(out.path(), &name)["depends"]));
    }
    assert_eq!(depends[0], depends[1], "merged and separate environments disagree");
    assert!(depends[0].contains(&"zlib >=1.3,<2.0a0".to_string()), "{depends:?}");
}
