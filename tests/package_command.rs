//! `kiln package inspect` and `kiln package extract` on packages the real
//! `kiln` binary built, in both formats, and on bad input.

mod common;

use std::fs;

use common::*;
use sha2::Digest;

const RECIPE: &str = "package: {name: inspected, version: '2.1'}\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - echo hello > $PREFIX/share/hello.txt\nrequirements:\n  run: [python >=3.8]\nabout:\n  summary: A package to inspect\n  license: MIT\n";

fn package(fmt: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(dir.path(), "inspected", RECIPE);
    let out = dir.path().join("out");
    build_ok(&recipe, &out, &["--package-format", fmt, "--no-test"]);
    let pkg = packages(&out).remove(0);
    (dir, pkg)
}

#[test]
fn inspect_and_extract_read_both_formats() {
    for fmt in ["conda", "tar.bz2"] {
        let (dir, pkg) = package(fmt);
        let o = kiln().args(["package", "inspect", "--json"]).arg(&pkg).run().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["index"]["name"], "inspected");
        assert_eq!(v["index"]["version"], "2.1");
        assert_eq!(v["index"]["depends"], serde_json::json!(["python >=3.8"]));
        assert_eq!(v["about"]["summary"], "A package to inspect");
        assert_eq!(v["paths"][0]["_path"], "share/hello.txt");
        let bytes = fs::read(&pkg).unwrap();
        assert_eq!(v["sha256"], hex::encode(sha2::Sha256::digest(&bytes)));
        assert_eq!(v["size"], bytes.len() as u64);

        let o = kiln().args(["package", "inspect"]).arg(&pkg).run().unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.starts_with("inspected-2.1-"), "{text}");
        assert!(
            text.contains("python >=3.8") && text.contains("share/hello.txt"),
            "{text}"
        );

        let target = dir.path().join("x");
        let extract = || {
            kiln()
                .args(["package", "extract"])
                .arg(&pkg)
                .arg(&target)
                .run()
                .unwrap()
        };
        let o = extract();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(fs::read_to_string(target.join("share/hello.txt")).unwrap(), "hello\n");
        assert!(target.join("info/index.json").is_file());

        // Never over existing files.
        let o = extract();
        let log = stderr(&o);
        assert!(!o.status.success() && log.contains("is not empty"), "{log}");
        assert!(!log.contains("panicked"), "{log}");
    }
}

#[test]
fn bad_package_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_zip = dir.path().join("broken-1.0-0.conda");
    fs::write(&not_a_zip, b"not a zip").unwrap();
    let text = dir.path().join("notes.txt");
    fs::write(&text, b"x").unwrap();
    let missing = dir.path().join("missing-1.0-0.conda");
    for (file, needle) in [
        (&not_a_zip, "cannot read info/index.json"),
        (&text, "is not a conda package"),
        (&missing, "no such file"),
    ] {
        let o = kiln().args(["package", "inspect"]).arg(file).run().unwrap();
        let log = stderr(&o);
        assert!(!o.status.success(), "{log}");
        assert!(log.contains(needle) && !log.contains("panicked"), "{needle}: {log}");
    }
}
