//! Variants: the real `kiln` binary on recipes with variant configs,
//! asserting how many packages and staging builds the matrix gives, their
//! build strings and `info/hash_input.json`, and what lands in `depends`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{json, Value};
use sha1::{Digest, Sha1};

fn variants(rel: &str) -> PathBuf {
    recipe(&format!("variants/{rel}"))
}

/// `info/index.json` and `info/hash_input.json` of every package in `out`
/// whose name is `name`, with the extracted directory.
fn built(out: &Path, name: &str) -> Vec<(Value, Value, tempfile::TempDir)> {
    packages(out)
        .into_iter()
        .filter(|p| {
            let file = p.file_name().unwrap().to_string_lossy().into_owned();
            file.rsplitn(3, '-').nth(2) == Some(name)
        })
        .map(|p| {
            let d = extract(&p);
            (
                json(&d.path().join("info/index.json")),
                json(&d.path().join("info/hash_input.json")),
                d,
            )
        })
        .collect()
}

/// The build-string hash as rattler-build and conda-build compute it:
/// `hashlib.sha1(json.dumps(variant, sort_keys=True).encode()).hexdigest()[:7]`.
fn python_hash(variant: &Value) -> String {
    let text = python_json(variant);
    hex(&Sha1::digest(text.as_bytes()))[..7].to_string()
}

/// `json.dumps(v, sort_keys=True)` for the flat objects variants are.
fn python_json(v: &Value) -> String {
    let map = v.as_object().unwrap();
    let keys: BTreeSet<&String> = map.keys().collect();
    let items: Vec<String> = keys.iter().map(|k| format!("{}: {}", json!(k), map[*k])).collect();
    format!("{{{}}}", items.join(", "))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `build_configuration.variant` of each entry `--render-only` printed.
fn rendered_variants(o: &std::process::Output) -> Vec<Value> {
    let rendered: Value = serde_json::from_slice(&o.stdout).unwrap();
    rendered
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["build_configuration"]["variant"].clone())
        .collect()
}

fn read(dir: &Path, rel: &str) -> String {
    std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The seed's example: the staging output uses `libfoo` (2 values), the
/// package on top adds `python` (3 values): 2 staging builds, 6 packages,
/// each built from the staging cache of its own libfoo. A package that uses
/// no key is built once, and a key nothing uses does not multiply.
#[test]
fn staging_runs_once_per_libfoo_and_is_reused_across_pythons() {
    let out = tempfile::tempdir().unwrap();
    let channel = fixture_channel_url();
    let args = ["--experimental", "-c", channel.as_str()];
    let o = build_ok(&variants("split"), out.path(), &args);
    let log = stderr(&o);
    assert_eq!(log.matches(": cached ").count(), 2, "{log}");
    assert!(log.contains("staging foo-core (libfoo=1.0): cached"), "{log}");
    assert!(log.contains("staging foo-core (libfoo=2.0): cached"), "{log}");
    let cache = out.path().join("build_cache");
    assert_eq!(cache_entries(&cache).len(), 2);
    let list = kiln()
        .args(["cache", "list", "--staging-cache-dir"])
        .arg(&cache)
        .run()
        .unwrap();
    let table = String::from_utf8_lossy(&list.stdout);
    for v in ["libfoo=1.0", "libfoo=2.0"] {
        assert_eq!(table.matches(v).count(), 1, "{table}");
    }

    let py = built(out.path(), "foo-py");
    assert_eq!(py.len(), 6, "{:?}", package_names(out.path()));
    let strings: BTreeSet<String> = py.iter().map(|(i, _, _)| i["build"].as_str().unwrap().into()).collect();
    assert_eq!(strings.len(), 6, "distinct build strings: {strings:?}");
    let mut combos = BTreeSet::new();
    for (index, hash_input, dir) in &py {
        let libfoo = hash_input["libfoo"].as_str().unwrap();
        let python = hash_input["python"].as_str().unwrap();
        combos.insert((libfoo.to_string(), python.to_string()));
        // Only the keys the output uses (its own and its staging output's).
        assert_eq!(
            hash_input,
            &json!({"flavor": "fast", "libfoo": libfoo, "python": python, "target_platform": subdir()})
        );
        let expected = format!("py{}h{}_0", python.replace('.', ""), python_hash(hash_input));
        assert_eq!(index["build"], json!(expected));
        let major: u32 = libfoo.split('.').next().unwrap().parse().unwrap();
        let depends: Vec<&str> = index["depends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_str().unwrap())
            .collect();
        assert!(
            depends.contains(&format!("libfoo >={libfoo},<{}.0a0", major + 1).as_str()),
            "{depends:?}"
        );
        let abi = format!("python_abi {python}.* *_cp{}", python.replace('.', ""));
        assert!(depends.contains(&abi.as_str()), "{depends:?}");
        // The staged files were built against this libfoo, the package script ran with this python.
        let d = dir.path();
        assert_eq!(
            read(d, "share/foo/built-against.h"),
            format!("#define LIBFOO_VERSION \"{libfoo}\"\n")
        );
        assert!(read(d, "share/foo/python.txt").starts_with(&format!("Python {python}.0 ")));
        // The staging script saw only its own variant keys; the package script sees its own.
        let staging_env = read(d, "share/foo/staging-env.txt");
        assert!(staging_env.contains(&format!("\nlibfoo={libfoo}\n")), "{staging_env}");
        assert!(!staging_env.contains("flavor="), "{staging_env}");
        assert!(!staging_env.contains("unused_key="), "{staging_env}");
        let package_env = read(d, "share/foo/package-env.txt");
        assert!(package_env.contains("\nflavor=fast\n"), "{package_env}");
    }
    assert_eq!(combos.len(), 6);

    let docs = built(out.path(), "foo-docs");
    assert_eq!(docs.len(), 1, "an output without variant keys is built once");
    assert_eq!(docs[0].1, json!({"target_platform": "noarch"}));

    // A second run reuses both staging caches and gives the same packages.
    let before = package_names(out.path());
    let o = build_ok(&variants("split"), out.path(), &args);
    let log = stderr(&o);
    assert_eq!(log.matches(": cached ").count(), 0, "{log}");
    assert_eq!(log.matches("cache hit staging_").count(), 2, "{log}");
    assert_eq!(package_names(out.path()), before);

    // Changing keys the staging output does not use (python, flavor) keeps
    // its cache entries valid.
    let other = tempfile::tempdir().unwrap();
    let cache_arg = cache.to_string_lossy().into_owned();
    let mut more = args.to_vec();
    more.extend([
        "--staging-cache-dir",
        &cache_arg,
        "--variant",
        "python=3.11",
        "--variant",
        "flavor=slow",
    ]);
    let o = build_ok(&variants("split"), other.path(), &more);
    let log = stderr(&o);
    assert_eq!(log.matches(": cached ").count(), 0, "{log}");
    assert_eq!(log.matches("cache hit staging_").count(), 2, "{log}");
    assert_eq!(built(other.path(), "foo-py").len(), 2);
}

/// Keys used only through Jinja (directly and via `context`) multiply the
/// matrix; zipped keys advance together; `--render-only` prints each
/// variant; the build strings are rattler-build's.
#[test]
fn zip_keys_and_keys_used_only_through_jinja() {
    let out = tempfile::tempdir().unwrap();
    let o = build_ok(&variants("jinja"), out.path(), &["--render-only"]);
    assert_eq!(
        rendered_variants(&o),
        [
            json!({"api": "v1", "level": 1, "target_platform": subdir()}),
            json!({"api": "v2", "level": 2, "target_platform": subdir()}),
            json!({"api": "v3", "level": 3, "target_platform": subdir()}),
        ]
    );

    // A key named only in `build.string` (rendered at plan time) is used too.
    let jinja_config = variants("jinja/variants.yaml");
    let o = build_ok(
        &variants("build-string.yaml"),
        out.path(),
        &["--render-only", "-m", jinja_config.to_str().unwrap()],
    );
    let rendered: Value = serde_json::from_slice(&o.stdout).unwrap();
    let strings: Vec<String> = rendered
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let v = &r["build_configuration"]["variant"];
            assert_eq!(v.as_object().unwrap().len(), 2, "api and target_platform: {v}");
            let expected = format!("{}_h{}_0", v["api"].as_str().unwrap(), python_hash(v));
            assert_eq!(r["recipe"]["build"]["string"], json!(expected));
            expected
        })
        .collect();
    assert_eq!(strings.len(), 3);

    build_ok(&variants("jinja"), out.path(), &[]);
    let mut got: BTreeMap<String, (String, String)> = BTreeMap::new();
    for (index, hash_input, dir) in built(out.path(), "jinja-variants") {
        got.insert(
            index["build"].as_str().unwrap().to_string(),
            (read(dir.path(), "share/jv/label.txt"), python_json(&hash_input)),
        );
    }
    if subdir() == "linux-64" {
        // The hashes, derived by hand as rattler-build does:
        //   hashlib.sha1(b'{"api": "v1", "level": 1, "target_platform": "linux-64"}').hexdigest()[:7] == "94ea1d6"
        //   hashlib.sha1(b'{"api": "v2", "level": 2, "target_platform": "linux-64"}').hexdigest()[:7] == "a56233c"
        //   hashlib.sha1(b'{"api": "v3", "level": 3, "target_platform": "linux-64"}').hexdigest()[:7] == "ad91744"
        // (`level` is an unquoted integer in variants.yaml, so it hashes as a JSON number.)
        let expected: BTreeMap<String, (String, String)> = [
            ("h94ea1d6_0", "v1-1", 1, "v1"),
            ("ha56233c_0", "v2-2", 2, "v2"),
            ("had91744_0", "v3-3", 3, "v3"),
        ]
        .into_iter()
        .map(|(b, label, level, api)| {
            (
                b.to_string(),
                (
                    format!("{label}\n"),
                    format!(r#"{{"api": "{api}", "level": {level}, "target_platform": "linux-64"}}"#),
                ),
            )
        })
        .collect();
        assert_eq!(got, expected);
    } else {
        assert_eq!(got.len(), 3);
    }
}

/// `-m` files apply after the recipe's variants.yaml, later ones replacing
/// keys of earlier ones; conda_build_config.yaml selectors are evaluated.
#[test]
fn later_variant_files_override_earlier_ones() {
    let out = tempfile::tempdir().unwrap();
    let first = variants("overrides/first.yaml");
    let second = variants("overrides/second.yaml");
    let args = ["-m", first.to_str().unwrap(), "-m", second.to_str().unwrap()];
    build_ok(&variants("jinja"), out.path(), &args);
    let labels: BTreeSet<String> = built(out.path(), "jinja-variants")
        .iter()
        .map(|(_, _, d)| read(d.path(), "share/jv/label.txt"))
        .collect();
    // api/level from second.yaml, still zipped by the recipe's variants.yaml.
    assert_eq!(labels, BTreeSet::from(["q1-8\n".to_string(), "q2-9\n".to_string()]));

    let out = tempfile::tempdir().unwrap();
    let cbc = variants("overrides/conda_build_config.yaml");
    let o = build_ok(&variants("jinja"), out.path(), &["-m", cbc.to_str().unwrap()]);
    // A selector kiln cannot evaluate (conda-forge's `os.environ...`) is false, with a warning.
    assert!(
        stderr(&o).contains("conda_build_config.yaml:5: selector `[os.environ.get(\"CF_CUDA_ENABLED\", \"False\") == \"True\"]` is treated as false"),
        "{}",
        stderr(&o)
    );
    let got = built(out.path(), "jinja-variants");
    assert_eq!(got.len(), 1);
    let expected_api = if cfg!(target_os = "linux") {
        "linux_api"
    } else {
        "other_api"
    };
    assert_eq!(
        read(got[0].2.path(), "share/jv/label.txt"),
        format!("{expected_api}-4\n")
    );
    assert_eq!(read(got[0].2.path(), "share/jv/env.txt"), format!("{expected_api} 4\n"));

    // conda_build_config.yaml next to a recipe is read when there is no variants.yaml.
    let out = tempfile::tempdir().unwrap();
    build_ok(&variants("cbc"), out.path(), &[]);
    let blas: BTreeSet<String> = built(out.path(), "cbc-variants")
        .iter()
        .map(|(_, _, d)| read(d.path(), "share/cbc/blas.txt"))
        .collect();
    let mut expected = BTreeSet::from(["openblas\n".to_string()]);
    if cfg!(target_arch = "x86_64") {
        expected.insert("mkl\n".to_string());
    }
    if cfg!(target_os = "macos") {
        expected.insert("accelerate\n".to_string());
    }
    assert_eq!(blas, expected);

    // Without the recipe's own file, no zip: 2 api × 2 level from second.yaml.
    let out = tempfile::tempdir().unwrap();
    let o = build_ok(
        &variants("jinja"),
        out.path(),
        &[
            "--render-only",
            "--ignore-recipe-variants",
            "-m",
            second.to_str().unwrap(),
        ],
    );
    let rendered: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rendered.as_array().unwrap().len(), 4, "2 api × 2 level, unzipped");

    // `--variant` comes last; its values are strings (they hash as such).
    let o = build_ok(
        &variants("jinja"),
        out.path(),
        &[
            "--render-only",
            "-m",
            second.to_str().unwrap(),
            "--variant",
            "level=5,6",
        ],
    );
    assert_eq!(
        rendered_variants(&o),
        [
            json!({"api": "q1", "level": "5", "target_platform": subdir()}),
            json!({"api": "q2", "level": "6", "target_platform": subdir()}),
        ]
    );
}

/// `compiler()`/`stdlib()` use their `<lang>_compiler*`/`<lang>_stdlib*`
/// keys (and `CONDA_BUILD_SYSROOT` comes with a C compiler); a noarch python
/// output is built once; a key read only by `skip`
/// still expands the matrix.
#[test]
fn compiler_keys_noarch_python_and_skip() {
    let out = tempfile::tempdir().unwrap();
    let o = build_ok(&variants("special"), out.path(), &["--render-only"]);
    let rendered: Value = serde_json::from_slice(&o.stdout).unwrap();
    let got: Vec<(String, Value, Value)> = rendered
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["recipe"]["package"]["name"].as_str().unwrap().to_string(),
                r["build_configuration"]["variant"].clone(),
                r["recipe"]["requirements"].clone(),
            )
        })
        .collect();
    let t = subdir();
    let lib = |v: &str| {
        (
            "special-lib".to_string(),
            json!({
                "CONDA_BUILD_SYSROOT": "/opt/sysroot",
                "c_compiler": "gcc",
                "c_compiler_version": v,
                "c_stdlib": "sysroot",
                "c_stdlib_version": "2.17",
                "target_platform": t
            }),
            json!({"build": [format!("gcc_{t} ={v}"), format!("sysroot_{t} =2.17")]}),
        )
    };
    assert_eq!(
        got,
        [
            lib("12"),
            lib("13"),
            (
                "special-py".to_string(),
                json!({"target_platform": "noarch"}),
                json!({"host": ["python =3.10"]})
            ),
            (
                "special-skip".to_string(),
                json!({"python": "3.11", "target_platform": t}),
                json!({})
            ),
        ]
    );
}

/// `channel_targets` and `channel_sources` are part of every variant (as in
/// rattler-build); `channel_sources` sets the
/// channels and conflicts with `-c`.
#[test]
fn channel_targets_and_channel_sources() {
    let out = tempfile::tempdir().unwrap();
    let o = build_ok(&variants("channels"), out.path(), &["--render-only"]);
    let rendered: Value = serde_json::from_slice(&o.stdout).unwrap();
    let config = &rendered[0]["build_configuration"];
    assert_eq!(
        config["variant"],
        json!({
            "channel_sources": "conda-forge,bioconda",
            "channel_targets": "conda-forge main",
            "target_platform": subdir()
        })
    );
    assert_eq!(
        config["channels"],
        json!([
            "https://conda.anaconda.org/conda-forge",
            "https://conda.anaconda.org/bioconda"
        ])
    );
    let o = build(
        &variants("channels"),
        out.path(),
        &["--render-only", "-c", "conda-forge"],
    );
    assert_failed_with(
        &o,
        out.path(),
        &["channel_sources and channels cannot both be set at the same time"],
    );
}

/// An exact `pin_subpackage` on an output with several variants pins each
/// variant of the pinning output to the sibling of its own combination.
#[test]
fn exact_pins_follow_the_sibling_of_the_same_variant() {
    let out = tempfile::tempdir().unwrap();
    build_ok(&variants("exact-pin"), out.path(), &[]);
    let libs: BTreeMap<String, String> = built(out.path(), "liba")
        .iter()
        .map(|(i, _, d)| {
            (
                read(d.path(), "share/liba/api.txt"),
                i["build"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(libs.len(), 3);
    let plugins = built(out.path(), "liba-plugin");
    assert_eq!(plugins.len(), 3);
    let mut pinned = BTreeSet::new();
    for (index, hash_input, _) in &plugins {
        let dep = index["depends"][0].as_str().unwrap().to_string();
        let build = dep.strip_prefix("liba ==1.0.0 ").unwrap().to_string();
        assert!(libs.values().any(|b| *b == build), "{dep} pins a built liba");
        // The pin is part of the plugin's variant, so its hash differs per liba.
        assert_eq!(hash_input["liba"], json!(format!("1.0.0 {build}")));
        assert_eq!(index["track_features"], json!("liba-plugin-p-0 liba-plugin-p-1"));
        pinned.insert(build);
    }
    assert_eq!(pinned.len(), 3, "each plugin pins a different liba");
}

/// The reference's worked example: a noarch package with run `__unix` hashes
/// `{"__unix": "__unix", "target_platform": "noarch"}`, and a sibling
/// pinning it exactly hashes `{"rattler_build_demo": "1 unix_5600cae_0", ...}`.
#[test]
fn build_strings_match_rattler_builds_worked_example() {
    let out = tempfile::tempdir().unwrap();
    build_ok(&variants("demo"), out.path(), &[]);
    // hashlib.sha1(b'{"__unix": "__unix", "target_platform": "noarch"}').hexdigest()[:7] == "5600cae"
    // hashlib.sha1(b'{"rattler_build_demo": "1 unix_5600cae_0", "target_platform": "noarch"}').hexdigest()[:7] == "63d9094"
    assert_eq!(
        package_names(out.path()),
        [
            "rattler-build-demo-1-unix_5600cae_0.conda",
            "rattler-build-demo-pinned-1-h63d9094_0.conda",
        ]
    );
    let pinned = &built(out.path(), "rattler-build-demo-pinned")[0];
    assert_eq!(
        read(pinned.2.path(), "info/hash_input.json"),
        r#"{"rattler_build_demo": "1 unix_5600cae_0", "target_platform": "noarch"}"#
    );
}

/// Bad variant input fails with a message naming the file and line.
#[test]
fn bad_variant_input_fails_with_located_errors() {
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "jinja",
            &["-m", "bad/not-yaml.yaml"],
            &["not-yaml.yaml:4:1", "invalid YAML"],
        ),
        (
            "jinja",
            &["-m", "bad/zip-lengths.yaml"],
            &["zip-lengths.yaml:4:5", "zip_keys: `level` has 2 values but `api` has 3"],
        ),
        (
            "jinja",
            &["-m", "bad/selector/conda_build_config.yaml"],
            &["conda_build_config.yaml:3:1", "invalid selector `[linux and and osx]`"],
        ),
        (
            "jinja",
            &["-m", "bad/does-not-exist.yaml"],
            &["variant config", "does-not-exist.yaml does not exist"],
        ),
        (
            "bad/missing-key.yaml",
            &[],
            &[
                "missing-key.yaml:7:7",
                "undefined variable `blas_impl`",
                "variant config",
            ],
        ),
        (
            "bad/unknown-use-key.yaml",
            &[],
            &[
                "unknown-use-key.yaml:8:9",
                "`use_keys` names `blas_impl`, which is not in the variant config",
            ],
        ),
    ];
    for (recipe, args, needles) in cases {
        let out = tempfile::tempdir().unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                if a.starts_with("bad/") {
                    variants(a).to_string_lossy().into_owned()
                } else {
                    a.to_string()
                }
            })
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = build(&variants(recipe), out.path(), &args);
        assert_failed_with(&o, out.path(), needles);
    }
}
