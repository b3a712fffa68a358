//! The output directory as a channel: the real `kiln` binary builds into
//! it, and the tests check `repodata.json` against the package files
//! (size, SHA-256, MD5) as packages are added, rebuilt under the same
//! name, copied in by other tools and deleted.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use sha2::Digest;

const RECIPE: &str = "package: {name: indexed, version: '1.0'}\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - echo CONTENT > $PREFIX/share/indexed.txt\n";

fn recipe_with(dir: &Path, name: &str, content: &str) -> std::path::PathBuf {
    write_recipe(
        dir,
        name,
        &RECIPE
            .replace("CONTENT", content)
            .replace("name: indexed", &format!("name: {name}")),
    )
}

/// The `packages.conda` entries of a subdir's repodata.
fn entries(out: &Path, subdir: &str) -> serde_json::Map<String, serde_json::Value> {
    json(&out.join(subdir).join("repodata.json"))["packages.conda"]
        .as_object()
        .cloned()
        .unwrap_or_default()
}

/// Every entry's size, SHA-256 and MD5 match its file.
fn assert_entries_match_files(out: &Path, subdir: &str) {
    for (name, record) in entries(out, subdir) {
        let bytes = fs::read(out.join(subdir).join(&name)).unwrap();
        assert_eq!(record["size"], bytes.len() as u64, "{name}");
        assert_eq!(record["sha256"], hex::encode(sha2::Sha256::digest(&bytes)), "{name}");
        assert_eq!(
            record["md5"],
            hex::encode(rattler_digest::compute_bytes_digest::<rattler_digest::Md5>(&bytes)),
            "{name}"
        );
        assert_eq!(record["subdir"], subdir);
    }
}

#[test]
fn the_index_follows_added_rebuilt_foreign_and_deleted_packages() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let sub = subdir();
    let first = build_ok(&recipe_with(dir.path(), "indexed", "one"), &out, &[]);
    assert!(
        stderr(&first).contains("1 package(s) read, 0 dropped, 0 kept"),
        "{}",
        stderr(&first)
    );
    let name = "indexed-1.0-hb0f4dca_0.conda";
    assert_eq!(entries(&out, sub).keys().collect::<Vec<_>>(), vec![name]);
    assert_entries_match_files(&out, sub);
    assert!(out.join("noarch/repodata.json").is_file());
    let mode = fs::metadata(out.join(sub).join(name)).unwrap().permissions().mode();
    assert_eq!(
        mode & 0o777,
        0o644,
        "packages are readable by whoever serves the channel"
    );

    // A package another tool put into the channel is indexed; the rebuilt
    // package (same file name, new content) gets its new checksums; the
    // first one is kept as it was indexed.
    let elsewhere = dir.path().join("elsewhere");
    build_ok(&recipe_with(dir.path(), "foreign", "x"), &elsewhere, &[]);
    let foreign = "foreign-1.0-hb0f4dca_0.conda";
    fs::copy(elsewhere.join(sub).join(foreign), out.join(sub).join(foreign)).unwrap();
    let old_sha = entries(&out, sub)[name]["sha256"].clone();
    let second = build_ok(&recipe_with(dir.path(), "indexed", "two"), &out, &[]);
    let log = stderr(&second);
    assert!(log.contains("2 package(s) read, 0 dropped, 0 kept"), "{log}");
    let listed = entries(&out, sub);
    assert_eq!(listed.keys().collect::<Vec<_>>(), vec![foreign, name]);
    assert_ne!(listed[name]["sha256"], old_sha, "the rebuilt package's checksum is new");
    assert_entries_match_files(&out, sub);

    // A deleted package leaves the index; an unchanged one is not read again.
    fs::remove_file(out.join(sub).join(foreign)).unwrap();
    build_ok(&recipe_with(dir.path(), "other", "y"), &out, &[]);
    let listed = entries(&out, sub);
    assert_eq!(
        listed.keys().collect::<Vec<_>>(),
        vec![name, "other-1.0-hb0f4dca_0.conda"]
    );
    assert_entries_match_files(&out, sub);
}

#[test]
fn an_unreadable_file_in_the_channel_is_left_out_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    fs::create_dir_all(out.join(subdir())).unwrap();
    fs::write(out.join(subdir()).join("broken-1.0-0.conda"), b"not a zip").unwrap();
    let o = build_ok(&recipe_with(dir.path(), "indexed", "one"), &out, &[]);
    let log = stderr(&o);
    assert!(
        log.contains("broken-1.0-0.conda is left out of the channel index: it cannot be read as a package"),
        "{log}"
    );
    assert_eq!(
        entries(&out, subdir()).keys().collect::<Vec<_>>(),
        vec!["indexed-1.0-hb0f4dca_0.conda"]
    );
}
