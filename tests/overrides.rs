//! Command-line overrides (`--build-number`, `--build-string-prefix`,
//! `--channel-priority`, `--exclude-newer`): the real `kiln` binary,
//! asserting what lands in `info/index.json` and which channel packages a
//! build environment gets.

mod common;

use std::fs;
use std::path::Path;

use common::*;

const PLAIN: &str =
    "package: {name: numbered, version: '1.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/n]\n";

/// The one package of `name` in `out` with build number `n`: its index.json.
fn index_of(out: &Path, name: &str, n: u64) -> serde_json::Value {
    for p in packages(out) {
        let x = extract(&p);
        let index = json(&x.path().join("info/index.json"));
        if index["name"] == name && index["build_number"] == n {
            return index;
        }
    }
    panic!("no {name} with build number {n} in {}", out.display());
}

#[test]
fn build_number_is_set_or_bumped_from_the_output_channel() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(dir.path(), "numbered", PLAIN);
    let out = dir.path().join("out");
    build_ok(&recipe, &out, &["--build-number", "3"]);
    let index = index_of(&out, "numbered", 3);
    assert!(index["build"].as_str().unwrap().ends_with("_3"), "{index}");

    // +1 on a channel that holds build 3 gives build 4, under both spellings.
    build_ok(&recipe, &out, &["--build-number", "+1"]);
    let index = index_of(&out, "numbered", 4);
    assert!(index["build"].as_str().unwrap().ends_with("_4"), "{index}");
    build_ok(&recipe, &out, &["--build-num", "+2"]);
    index_of(&out, "numbered", 6);
    assert_eq!(packages(&out).len(), 3);

    // With nothing of that name and version in the channel, +N keeps the recipe's number.
    let fresh = dir.path().join("fresh");
    build_ok(&recipe, &fresh, &["--build-number", "+1"]);
    index_of(&fresh, "numbered", 0);

    let o = build(&recipe, &dir.path().join("bad"), &["--build-number", "x1"]);
    assert_failed_with(
        &o,
        &dir.path().join("bad"),
        &["`x1` is not a build number: use N (e.g. 3) or +N"],
    );
}

#[test]
fn build_string_prefix_starts_every_build_string() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(dir.path(), "numbered", PLAIN);
    let out = dir.path().join("out");
    build_ok(&recipe, &out, &["--build-string-prefix", "cuda_"]);
    let index = index_of(&out, "numbered", 0);
    let string = index["build"].as_str().unwrap();
    assert!(string.starts_with("cuda_h") && string.ends_with("_0"), "{string}");
    assert!(packages(&out)[0]
        .to_string_lossy()
        .ends_with(&format!("-{string}.conda")));

    let o = build(&recipe, &out, &["--build-string-prefix", "a-b"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("`a-b` cannot start a build string"),
        "{}",
        stderr(&o)
    );
}

/// A channel at `dir` holding `dep` `version` built at `epoch` (seconds).
fn dep_channel(dir: &Path, version: &str, epoch: &str) -> String {
    let recipe = write_recipe(
        &dir.join("recipes"),
        &format!("dep-{version}"),
        &format!(
            "package: {{name: dep, version: '{version}'}}\nbuild:\n  noarch: generic\n  script:\n    - mkdir -p $PREFIX/share\n    - echo {version} > $PREFIX/share/dep.txt\n"
        ),
    );
    let out = dir.join("channel");
    let o = build_with_env(&recipe, &out, &[], &[("SOURCE_DATE_EPOCH", epoch)]);
    assert!(o.status.success(), "{}", stderr(&o));
    // As if the channel had indexed (received) it then, too.
    let repodata = out.join("noarch/repodata.json");
    let mut index = json(&repodata);
    for record in index["packages.conda"].as_object_mut().unwrap().values_mut() {
        record["indexed_timestamp"] = serde_json::json!(epoch.parse::<u64>().unwrap() * 1000);
    }
    fs::write(&repodata, index.to_string()).unwrap();
    url::Url::from_directory_path(&out).unwrap().to_string()
}

/// Build a recipe whose host environment has `dep`; the version it got.
fn dep_seen(dir: &Path, out_name: &str, args: &[&str]) -> String {
    let recipe = write_recipe(
        dir,
        "user",
        "package: {name: user, version: '1.0'}\nrequirements:\n  host: [dep]\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - cp $PREFIX/share/dep.txt $PREFIX/share/seen.txt\n",
    );
    let out = dir.join(out_name);
    build_ok(&recipe, &out, args);
    let pkg = packages(&out)
        .into_iter()
        .find(|p| p.to_string_lossy().contains("user-"))
        .unwrap();
    let x = extract(&pkg);
    fs::read_to_string(x.path().join("share/seen.txt"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn channel_priority_and_exclude_newer_choose_the_channel_packages() {
    let dir = tempfile::tempdir().unwrap();
    // 2020-01-01 and 2024-06-01.
    let old = dep_channel(&dir.path().join("a"), "1.0", "1577836800");
    let new = dep_channel(&dir.path().join("b"), "2.0", "1717200000");

    // Strict (the default): the first channel that has `dep` wins.
    assert_eq!(dep_seen(dir.path(), "o1", &["-c", &old, "-c", &new]), "1.0");
    // Disabled: the best version from any channel.
    let args = ["-c", &old, "-c", &new, "--channel-priority", "disabled"];
    assert_eq!(dep_seen(dir.path(), "o2", &args), "2.0");
    // ... unless it was built after the cutoff.
    let args = [
        "-c",
        &old,
        "-c",
        &new,
        "--channel-priority",
        "disabled",
        "--exclude-newer",
        "2022-01-01",
    ];
    assert_eq!(dep_seen(dir.path(), "o3", &args), "1.0");
    let args = ["-c", &new, "--exclude-newer", "2022-01-01T00:00:00Z"];
    let o = build(&dir.path().join("user"), &dir.path().join("o4"), &args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("uploaded after the cutoff date"), "{}", stderr(&o));

    // Packages in the output directory are used whatever their date.
    let out = dir.path().join("o5");
    let lib = write_recipe(
        dir.path(),
        "lib",
        "package: {name: dep, version: '3.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, echo 3.0 > $PREFIX/share/dep.txt]\n",
    );
    build_ok(&lib, &out, &[]);
    assert_eq!(
        dep_seen(dir.path(), "o5", &["-c", &new, "--exclude-newer", "2001-01-01"]),
        "3.0"
    );

    let o = build(&dir.path().join("user"), &out, &["--exclude-newer", "soon"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("invalid cutoff `soon`"), "{}", stderr(&o));
}
