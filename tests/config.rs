//! Configuration files (`--config-file`, `--no-config`, the default
//! locations) in rattler's `config.toml` format: the real `kiln` binary,
//! asserting which channels, mirrors and package format a build uses, and
//! that keys kiln does not support are refused at their line.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const USER: &str = "package: {name: user, version: '1.0'}\nrequirements:\n  host: [dep]\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - cp $PREFIX/share/dep.txt $PREFIX/share/seen.txt\n";

/// A channel directory at `dir/channel` holding noarch `dep` 1.0.
fn dep_channel(dir: &Path) -> PathBuf {
    let recipe = write_recipe(
        dir,
        "dep",
        "package: {name: dep, version: '1.0'}\nbuild:\n  noarch: generic\n  script: [mkdir -p $PREFIX/share, echo 1.0 > $PREFIX/share/dep.txt]\n",
    );
    let out = dir.join("channel");
    build_ok(&recipe, &out, &[]);
    out
}

fn write_config(dir: &Path, text: &str) -> String {
    let file = dir.join("config.toml");
    fs::write(&file, text).unwrap();
    file.to_string_lossy().into_owned()
}

#[test]
fn config_file_sets_default_channels_package_format_and_exclude_newer() {
    let dir = tempfile::tempdir().unwrap();
    let channel = url::Url::from_directory_path(dep_channel(dir.path())).unwrap();
    let recipe = write_recipe(dir.path(), "user", USER);
    let config = write_config(
        dir.path(),
        &format!("default-channels = [\"{channel}\"]\n\n[build]\npackage-format = \"tar-bz2:1\"\n"),
    );
    let out = dir.path().join("out");
    build_ok(&recipe, &out, &["--config-file", &config]);
    let pkg = packages(&out)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("user-"))
        .unwrap();
    assert!(pkg.to_string_lossy().ends_with(".tar.bz2"), "{}", pkg.display());
    let x = extract(&pkg);
    assert_eq!(fs::read_to_string(x.path().join("share/seen.txt")).unwrap(), "1.0\n");

    // The flag wins over the file.
    let out2 = dir.path().join("out2");
    build_ok(&recipe, &out2, &["--config-file", &config, "--package-format", "conda"]);
    assert!(packages(&out2).iter().all(|p| p.to_string_lossy().ends_with(".conda")));

    // exclude-newer from the file: dep was indexed just now.
    let config = write_config(
        dir.path(),
        &format!("default-channels = [\"{channel}\"]\nexclude-newer = \"2001-01-01\"\n"),
    );
    let o = build(&recipe, &dir.path().join("out3"), &["--config-file", &config]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cutoff"), "{}", stderr(&o));
}

#[test]
fn mirrors_from_the_config_serve_a_channel() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_http(&dep_channel(dir.path()));
    let recipe = write_recipe(dir.path(), "user", USER);
    // `.invalid` never resolves: only the mirror can answer.
    let config = write_config(
        dir.path(),
        &format!("[mirrors]\n\"https://channel.invalid/dep\" = [\"{served}/\"]\n"),
    );
    let out = dir.path().join("out");
    build_ok(
        &recipe,
        &out,
        &["--config-file", &config, "-c", "https://channel.invalid/dep"],
    );
    let pkg = packages(&out)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("user-"))
        .unwrap();
    let x = extract(&pkg);
    assert_eq!(fs::read_to_string(x.path().join("share/seen.txt")).unwrap(), "1.0\n");
}

#[test]
fn unsupported_configuration_keys_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        "plain",
        "package: {name: plain, version: '1'}\nbuild:\n  script: [true]\n",
    );
    let out = dir.path().join("out");
    for (text, line, key) in [
        (
            "default-channels = []\n\n[concurrency]\ndownloads = 3\n",
            3,
            "concurrency",
        ),
        ("tls-no-verify = true\n", 1, "tls-no-verify"),
    ] {
        let config = write_config(dir.path(), text);
        let o = build(&recipe, &out, &["--config-file", &config]);
        assert_failed_with(
            &o,
            &out,
            &[&format!(
                "config.toml:{line}: configuration key `{key}` is not supported yet"
            )],
        );
    }
    for (text, line, key) in [
        ("no-such-key = 1\n", 1, "no-such-key"),
        // rattler reads no snake_case spelling of this one.
        ("exclude_newer = \"7d\"\n", 1, "exclude_newer"),
        ("[build]\npackage-format = \"conda\"\ntypo = 1\n", 3, "build.typo"),
    ] {
        let config = write_config(dir.path(), text);
        let o = build(&recipe, &out, &["--config-file", &config]);
        let needle = format!("config.toml:{line}: `{key}` is not a configuration key");
        assert_failed_with(&o, &out, &[&needle]);
    }
    let config = write_config(
        dir.path(),
        "[exclude-newer]\ncutoff = \"7d\"\nexemptions = { dep = \"*\" }\n",
    );
    let o = build(&recipe, &out, &["--config-file", &config]);
    assert_failed_with(&o, &out, &["`exclude-newer` exemptions are not supported yet"]);
    let missing = dir.path().join("missing.toml").to_string_lossy().into_owned();
    let o = build(&recipe, &out, &["--config-file", &missing]);
    assert_failed_with(&o, &out, &["--config-file", "no such file"]);
}

#[test]
fn default_locations_apply_unless_no_config() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("kiln-home");
    fs::create_dir_all(&home).unwrap();
    fs::write(
        home.join("config.toml"),
        "default-channels = [\"file:///from-config/\"]\n",
    )
    .unwrap();
    let recipe = write_recipe(
        dir.path(),
        "plain",
        "package: {name: plain, version: '1'}\nbuild:\n  script: [true]\n",
    );
    let render = |extra: &[&str]| {
        let o = kiln()
            .env("KILN_HOME", &home)
            .args(["build", "--render-only", "--recipe"])
            .arg(&recipe)
            .args(extra)
            .run()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    assert!(render(&[]).contains("file:///from-config"));
    let plain = render(&["--no-config"]);
    assert!(
        !plain.contains("from-config") && plain.contains("conda-forge"),
        "{plain}"
    );
}
