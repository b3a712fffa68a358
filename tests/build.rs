//! End-to-end builds: the real `kiln` binary on recipes in `tests/recipes/`,
//! asserting what lands in the packages and the channel.

mod common;

use std::fs;

use common::*;
use serde_json::json;

// Hash inputs and their build-string hashes, derived by hand:
//   sha1('{"target_platform": "linux-64"}')[:7] == "b0f4dca"
//   sha1('{"target_platform": "noarch"}')[:7]   == "4616a5c"
// (JSON with sorted keys and Python's `json.dumps` separators, as rattler-build hashes.)
const LINUX64_HASH: &str = "b0f4dca";
const NOARCH_HASH: &str = "4616a5c";

#[test]
fn single_output_package_contents_and_metadata() {
    assert_eq!(subdir(), "linux-64", "these expectations are written for linux-64");
    let out = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    build_ok(&recipe("single"), out.path(), &["-c", &channel]);
    let name = format!("single-pkg-2.1.0-h{LINUX64_HASH}_3.conda");
    assert_eq!(package_names(out.path()), vec![name.clone()]);
    let pkg = extract(&out.path().join("linux-64").join(&name));
    let d = pkg.path();

    assert_eq!(
        content_files(d),
        vec!["share/single/data.txt", "share/single/major.txt", "share/single/os.txt"]
    );
    assert_eq!(
        fs::read_to_string(d.join("share/single/major.txt")).unwrap(),
        "major=2\n"
    );
    assert_eq!(fs::read_to_string(d.join("share/single/os.txt")).unwrap(), "linux\n");

    let index = json(&d.join("info/index.json"));
    assert_eq!(index["name"], "single-pkg");
    assert_eq!(index["version"], "2.1.0");
    assert_eq!(index["build"], format!("h{LINUX64_HASH}_3"));
    assert_eq!(index["build_number"], 3);
    assert_eq!(index["subdir"], "linux-64");
    assert_eq!(index["arch"], "x86_64");
    assert_eq!(index["platform"], "linux");
    assert_eq!(index["depends"], json!(["python >=3.8"]));
    assert_eq!(index["constrains"], json!(["openssl >=3"]));
    assert_eq!(index["license"], "BSD-3-Clause");
    assert!(
        index["timestamp"].as_i64().unwrap() > 1_000_000_000_000,
        "timestamp is in milliseconds"
    );
    // An independent typed reader accepts it.
    <rattler_conda_types::package::IndexJson as rattler_conda_types::package::PackageFile>::from_path(
        d.join("info/index.json"),
    )
    .expect("rattler reads index.json");

    let paths = paths_json(d);
    assert_eq!(paths.len(), 3);
    let data = &paths["share/single/data.txt"];
    assert_eq!(data["path_type"], "hardlink");
    assert_eq!(
        data["sha256"],
        "65df5ea47c47fe2e1534835d36a1a98386bed25b197943ac80bf80aa9c41019a"
    );
    assert_eq!(data["size_in_bytes"], 13);
    assert!(data.get("prefix_placeholder").is_none());
    <rattler_conda_types::package::PathsJson as rattler_conda_types::package::PackageFile>::from_path(
        d.join("info/paths.json"),
    )
    .expect("rattler reads paths.json");

    let about = json(&d.join("info/about.json"));
    assert_eq!(about["home"], "https://example.org/single");
    assert_eq!(about["dev_url"], "https://example.org/single/src");
    assert_eq!(about["summary"], "A single-output test package");
    assert_eq!(about["description"], "Longer text.\n");
    assert_eq!(about["extra"]["recipe-maintainers"], json!(["someone"]));

    assert_eq!(
        fs::read_to_string(d.join("info/hash_input.json")).unwrap(),
        r#"{"target_platform": "linux-64"}"#
    );
    assert_eq!(
        fs::read_to_string(d.join("info/files")).unwrap(),
        "share/single/data.txt\nshare/single/major.txt\nshare/single/os.txt\n"
    );
    assert_eq!(
        json(&d.join("info/run_exports.json")),
        json!({"weak": ["single-pkg >=2.1.0"]})
    );
    assert_eq!(
        fs::read_to_string(d.join("info/recipe/recipe.yaml")).unwrap(),
        fs::read_to_string(recipe("single/recipe.yaml")).unwrap()
    );
    assert!(
        d.join("info/recipe/data.txt").is_file(),
        "the recipe directory is included"
    );
    let rendered = fs::read_to_string(d.join("info/recipe/rendered_recipe.yaml")).unwrap();
    let rendered: serde_json::Value = serde_yaml_ng::from_str(&rendered).unwrap();
    assert_eq!(rendered["recipe"]["package"]["name"], "single-pkg");
    assert_eq!(rendered["recipe"]["build"]["string"], format!("h{LINUX64_HASH}_3"));
    assert_eq!(rendered["recipe"]["requirements"]["build"], json!(["make >=4"]));
    assert_eq!(
        fs::read_to_string(d.join("info/licenses/LICENSE.txt")).unwrap(),
        "BSD 3-Clause License\n"
    );
    assert!(d.join("info/tests/tests.yaml").is_file());

    let repodata = json(&out.path().join("linux-64/repodata.json"));
    assert_eq!(repodata["packages.conda"][&name]["depends"], json!(["python >=3.8"]));
    assert!(out.path().join("noarch/repodata.json").is_file());
    assert!(
        !out.path().join("bld/kiln_single-pkg").exists(),
        "build dir removed after success"
    );
}

#[test]
fn multi_output_inherits_top_level_and_splits_files() {
    let out = tempfile::tempdir().unwrap();
    build_ok(&recipe("multi"), out.path(), &["--package-format", "tar.bz2"]);
    assert_eq!(
        package_names(out.path()),
        vec![
            format!("libmulti-0.3.0-h{LINUX64_HASH}_1.tar.bz2"),
            format!("multi-devel-0.3.0-h{LINUX64_HASH}_1.tar.bz2"),
            format!("multi-doc-9.9-h{NOARCH_HASH}_7.tar.bz2"),
        ]
    );
    let lib = extract(
        &out.path()
            .join(format!("linux-64/libmulti-0.3.0-h{LINUX64_HASH}_1.tar.bz2")),
    );
    assert_eq!(
        content_files(lib.path()),
        vec!["lib/libmulti.so", "lib/libmulti.so.1.0"]
    );
    assert_eq!(paths_json(lib.path())["lib/libmulti.so"]["path_type"], "softlink");

    let devel = extract(
        &out.path()
            .join(format!("linux-64/multi-devel-0.3.0-h{LINUX64_HASH}_1.tar.bz2")),
    );
    assert_eq!(content_files(devel.path()), vec!["include/multi/multi.h"]);
    let index = json(&devel.path().join("info/index.json"));
    assert_eq!(index["depends"], json!(["libmulti ==0.3.0"]));
    assert_eq!(index["license"], "MIT", "about.license inherited from the top level");
    assert_eq!(json(&devel.path().join("info/about.json"))["summary"], "headers");

    let doc = extract(
        &out.path()
            .join(format!("noarch/multi-doc-9.9-h{NOARCH_HASH}_7.tar.bz2")),
    );
    assert_eq!(content_files(doc.path()), vec!["share/doc/multi.txt"]);
    let index = json(&doc.path().join("info/index.json"));
    assert_eq!(index["noarch"], "generic");
    assert_eq!(index["subdir"], "noarch");
    assert!(index.get("arch").is_none() && index.get("platform").is_none());
    assert_eq!(index["build_number"], 7);
    let repodata = json(&out.path().join("noarch/repodata.json"));
    assert!(repodata["packages"][format!("multi-doc-9.9-h{NOARCH_HASH}_7.tar.bz2")].is_object());
}

#[test]
fn symlinks_relative_absolute_and_broken_are_kept() {
    let out = tempfile::tempdir().unwrap();
    build_ok(&recipe("symlinks"), out.path(), &[]);
    let pkg = extract(&packages(out.path())[0]);
    let d = pkg.path();
    assert_eq!(
        content_files(d),
        vec!["bin/absolute.txt", "lib/broken.txt", "lib/real.txt", "lib/relative.txt"]
    );
    assert_three_symlinks(d);
    assert_eq!(fs::read_to_string(d.join("bin/absolute.txt")).unwrap(), "target\n");
    let paths = paths_json(d);
    let target_sha = "c97ecfda4d205190b973232dcfdb0c29748521c2534dd866bcc782f30b086738";
    for link in ["lib/relative.txt", "bin/absolute.txt"] {
        assert_eq!(paths[link]["path_type"], "softlink");
        assert_eq!(paths[link]["sha256"], target_sha);
    }
    assert_eq!(paths["lib/broken.txt"]["path_type"], "softlink");
    assert_eq!(
        paths["lib/broken.txt"]["sha256"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(paths["lib/real.txt"]["path_type"], "hardlink");
}

#[test]
fn symlink_escaping_the_prefix_is_refused() {
    let out = tempfile::tempdir().unwrap();
    let o = build(&recipe("escape"), out.path(), &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("lib/passwd -> ../../../../etc/passwd points outside $PREFIX"),
        "{}",
        stderr(&o)
    );
    assert!(packages(out.path()).is_empty());
}

#[test]
fn files_containing_the_prefix_get_a_placeholder() {
    let out = tempfile::tempdir().unwrap();
    build_ok(&recipe("prefix"), out.path(), &["--keep-build"]);
    let pkg = extract(&packages(out.path())[0]);
    let paths = paths_json(pkg.path());
    let host_prefix = fs::read_dir(out.path().join("bld/kiln_prefixed"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("host_env"))
        .expect("host prefix kept with --keep-build");
    let host_prefix = host_prefix.to_string_lossy().into_owned();
    assert_eq!(host_prefix.len(), 255, "the host prefix is padded to 255 characters");
    let config = &paths["etc/config.txt"];
    assert_eq!(config["file_mode"], "text");
    assert_eq!(config["prefix_placeholder"], host_prefix.as_str());
    assert_eq!(
        fs::read_to_string(pkg.path().join("etc/config.txt")).unwrap(),
        format!("prefix={host_prefix}\n")
    );
    assert!(paths["etc/plain.txt"].get("prefix_placeholder").is_none());
    assert!(paths["etc/plain.txt"].get("file_mode").is_none());
    assert_eq!(paths["lib/blob.bin"]["file_mode"], "binary");
    assert_eq!(paths["lib/blob.bin"]["prefix_placeholder"], host_prefix.as_str());
}

#[test]
fn rebuilds_are_byte_identical() {
    for format in ["conda", "tar.bz2"] {
        let out = tempfile::tempdir().unwrap();
        let channel = fixture_channel_url();
        let args = ["--package-format", format, "-c", &channel];
        build_ok(&recipe("single"), out.path(), &args);
        let pkg = packages(out.path()).remove(0);
        let first = fs::read(&pkg).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        build_ok(&recipe("single"), out.path(), &args);
        assert_eq!(first, fs::read(&pkg).unwrap(), "{format} rebuild differs");
    }
}

#[test]
fn source_date_epoch_sets_the_timestamp() {
    let out = tempfile::tempdir().unwrap();
    let o = kiln()
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "--recipe"])
        .arg(recipe("symlinks"))
        .arg("--output-dir")
        .arg(out.path())
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let pkg = extract(&packages(out.path())[0]);
    assert_eq!(
        json(&pkg.path().join("info/index.json"))["timestamp"],
        1_700_000_000_000i64
    );
}

#[test]
fn noarch_script_file_and_custom_build_string() {
    let out = tempfile::tempdir().unwrap();
    build_ok(&recipe("noarch"), out.path(), &[]);
    let name = format!("noarch-data-0.1.0-custom_{NOARCH_HASH}_b0.conda");
    assert_eq!(package_names(out.path()), vec![name.clone()]);
    let pkg = extract(&out.path().join("noarch").join(name));
    assert_eq!(
        fs::read_to_string(pkg.path().join("share/noarch-data/data.txt")).unwrap(),
        "from-file-script\n"
    );
    assert!(
        out.path().join("linux-64/repodata.json").is_file(),
        "the build platform subdir is indexed too"
    );
}

#[test]
fn build_environment_is_isolated_and_secrets_are_masked() {
    let out = tempfile::tempdir().unwrap();
    let secret = "hunter2-secret-value";
    let o = kiln()
        .env("KILN_TEST_SECRET", secret)
        .env("KILN_TEST_LEAK", "oops")
        .args(["build", "--keep-build", "--recipe"])
        .arg(recipe("env"))
        .arg("--output-dir")
        .arg(out.path())
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let log = stderr(&o);
    assert!(!log.contains(secret), "secret leaked into the log");
    assert!(log.contains("secret is ********"), "{log}");
    let pkg = extract(&packages(out.path())[0]);
    let vars = fs::read_to_string(pkg.path().join("share/env/vars.txt")).unwrap();
    for expected in [
        "PKG_NAME=envcheck",
        "PKG_VERSION=4.5.6",
        "PKG_BUILDNUM=2",
        &format!("PKG_BUILD_STRING=h{LINUX64_HASH}_2"),
        &format!("PKG_HASH=h{LINUX64_HASH}"),
        "target_platform=linux-64",
        "SUBDIR=linux-64",
        "SHLIB_EXT=.so",
        "MY_SETTING=from-recipe",
        "CONDA_BUILD=1",
        "prefix_length=255",
        "leaked=unset",
    ] {
        assert!(vars.lines().any(|l| l == expected), "missing `{expected}` in:\n{vars}");
    }
    assert!(vars.contains(&format!(
        "RECIPE_DIR={}",
        recipe("env").canonicalize().unwrap().display()
    )));
    // The secret is nowhere on disk: not in the package, not in the kept work directory.
    for dir in [pkg.path().to_path_buf(), out.path().join("bld")] {
        for e in walkdir::WalkDir::new(&dir)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
        {
            let bytes = fs::read(e.path()).unwrap();
            assert!(
                !String::from_utf8_lossy(&bytes).contains(secret),
                "secret found in {}",
                e.path().display()
            );
        }
    }
}

#[test]
fn skipped_outputs_and_unmatched_globs() {
    let out = tempfile::tempdir().unwrap();
    let o = build_ok(&recipe("skip-and-select"), out.path(), &[]);
    assert_eq!(
        package_names(out.path()),
        vec![format!("kept-1.0.0-h{LINUX64_HASH}_0.conda")]
    );
    let log = stderr(&o);
    assert!(
        log.contains("recipe.yaml:14:11: `files` glob `share/nothing-matches-this/**` of kept matched no files"),
        "{log}"
    );
}

#[test]
fn render_only_prints_json_and_writes_nothing() {
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("not-created");
    let o = kiln()
        .args(["build", "--render-only", "--recipe"])
        .arg(recipe("multi"))
        .arg("--output-dir")
        .arg(&missing)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let rendered: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    let entries = rendered.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0]["recipe"]["package"]["name"], "libmulti");
    assert_eq!(entries[2]["recipe"]["package"]["name"], "multi-doc");
    assert_eq!(
        entries[0]["build_configuration"]["variant"],
        json!({"target_platform": "linux-64"})
    );
    assert_eq!(entries[0]["build_configuration"]["target_platform"], "linux-64");
    assert_eq!(entries[0]["build_configuration"]["hash"]["hash"], LINUX64_HASH);
    assert_eq!(entries[2]["build_configuration"]["hash"]["hash"], NOARCH_HASH);
    assert_eq!(entries[1]["recipe"]["requirements"]["run"], json!(["libmulti ==0.3.0"]));
    assert!(!missing.exists(), "--render-only must not create the output directory");
}

/// Each bad recipe fails with a message naming the file and line, and
/// leaves no package behind.
#[test]
fn bad_input_fails_with_located_errors() {
    let cases: &[(&str, &[&str])] = &[
        ("malformed-yaml", &["malformed-yaml.yaml:", "invalid YAML"]),
        (
            "unknown-key",
            &["unknown-key.yaml:4:1", "unknown top-level key `requirments`"],
        ),
        ("invalid-jinja", &["invalid-jinja.yaml:6:7", "syntax error"]),
        (
            "undefined-variable",
            &["undefined-variable.yaml:5:12", "undefined variable `versoin`"],
        ),
        (
            "invalid-matchspec",
            &["invalid-matchspec.yaml:7:7", "invalid match spec `numpy >>=1.2`"],
        ),
        ("missing-name", &["missing-name.yaml:2:", "missing `package.name`"]),
        (
            "failing-script",
            &["failing-script.yaml:8:7", "command `false` exited with code 1"],
        ),
        ("duplicate-key", &["duplicate-key.yaml:3:3", "duplicate key `name`"]),
        (
            "bad-number",
            &["bad-number.yaml:5:11", "must be a non-negative integer"],
        ),
        (
            "pin-min-pin",
            &[
                "pin-min-pin.yaml:7:7",
                "`min_pin` is not supported; use `lower_bound` instead",
            ],
        ),
        (
            "pin-missing-output",
            &["pin-missing-output.yaml:7:7", "missing output `not-an-output`"],
        ),
        (
            "pin-compatible-not-in-host",
            &[
                "pin-compatible-not-in-host.yaml:7:7",
                "pin_compatible('zlib') needs `zlib` in the host (or build) environment",
            ],
        ),
        (
            "multi-top-requirements",
            &[
                "multi-top-requirements.yaml:4:1",
                "cannot have a top-level `requirements`",
            ],
        ),
    ];
    for (case, needles) in cases {
        let out = tempfile::tempdir().unwrap();
        let o = build(&recipe(&format!("bad/{case}.yaml")), out.path(), &[]);
        eprintln!("case {case}");
        assert_failed_with(&o, out.path(), needles);
        let leftovers: Vec<_> = walkdir::WalkDir::new(out.path())
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| {
                let n = e.file_name().to_string_lossy();
                n.ends_with(".conda") || n.ends_with(".tar.bz2") || n.ends_with(".partial")
            })
            .collect();
        assert!(leftovers.is_empty(), "{case} left {leftovers:?}");
    }
}

#[test]
fn colliding_license_files_and_case_only_paths_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("LICENSE"), "the upstream license\n").unwrap();
    let r = write_recipe(
        dir.path(),
        "collide",
        "package: {name: collide, version: '1.0'}\nsource:\n  path: ../src\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - echo a > $PREFIX/share/Readme\n    - echo b > $PREFIX/share/README\nabout:\n  license_file: LICENSE\n",
    );
    fs::write(r.join("LICENSE"), "the recipe's license\n").unwrap();
    let out = dir.path().join("out");
    let o = build_ok(&r, &out, &[]);
    let log = stderr(&o);
    assert!(log.contains("two different license files are named LICENSE"), "{log}");
    assert!(
        log.contains("share/README and share/Readme differ only in case"),
        "{log}"
    );
    let x = extract(&packages(&out)[0]);
    assert_eq!(
        fs::read_to_string(x.path().join("info/licenses/LICENSE")).unwrap(),
        "the recipe's license\n",
        "the recipe directory wins"
    );
}

#[test]
fn compression_threads_do_not_change_the_bytes_and_levels_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    // Half a megabyte of text, so that zstd has something to do.
    let r = write_recipe(
        dir.path(),
        "squeeze",
        "package: {name: squeeze, version: '1.0'}\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - for i in $(seq 1 20000); do echo \"line $i of some text\"; done > $PREFIX/share/text.txt\n",
    );
    let built = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name);
        build_ok(&r, &out, extra);
        let p = packages(&out);
        assert_eq!(p.len(), 1);
        std::fs::read(&p[0]).unwrap()
    };
    let default = built("default", &[]);
    let one = built("one-thread", &["--compression-threads", "1"]);
    assert!(default == one, "the thread count changed the package");
    let fast = built("fast", &["--package-format", "conda:1"]);
    let small = built("small", &["--package-format", "conda:max"]);
    assert!(
        fast.len() > small.len(),
        "level 1: {} bytes, level 22: {}",
        fast.len(),
        small.len()
    );
    let bz = built("bz", &["--package-format", "tar.bz2:1"]);
    assert_eq!(&bz[..3], b"BZh");

    let o = build(&r, &dir.path().join("bad"), &["--package-format", "tar.bz2:10"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("between 1 and 9"), "{}", stderr(&o));
    assert!(!dir.path().join("bad").exists(), "nothing is written for a bad flag");
}

#[test]
fn no_include_recipe_and_extra_meta_shape_info() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        "meta",
        "package: {name: meta, version: '1.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/m]\nextra:\n  maintainers: [someone]\n",
    );
    let out = dir.path().join("out");
    build_ok(
        &recipe,
        &out,
        &[
            "--no-include-recipe",
            "--extra-meta",
            "flow=ci",
            "--extra-meta",
            "run=42",
        ],
    );
    let pkg = extract(&packages(&out)[0]);
    assert!(!pkg.path().join("info/recipe").exists());
    let about = json(&pkg.path().join("info/about.json"));
    assert_eq!(about["extra"]["flow"], "ci");
    assert_eq!(about["extra"]["run"], "42");
    assert_eq!(about["extra"]["maintainers"], json!(["someone"]));

    // Without the flags: the recipe is stored, no extra keys.
    let out = dir.path().join("out2");
    build_ok(&recipe, &out, &[]);
    let pkg = extract(&packages(&out)[0]);
    assert!(pkg.path().join("info/recipe/recipe.yaml").is_file());
    assert!(json(&pkg.path().join("info/about.json"))["extra"].get("flow").is_none());

    let o = build(&recipe, &dir.path().join("out3"), &["--extra-meta", "novalue"]);
    assert!(
        !o.status.success() && stderr(&o).contains("is not KEY=VALUE"),
        "{}",
        stderr(&o)
    );
}
