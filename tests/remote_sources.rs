//! `url` and `git` sources and `patches`, through the real `kiln` binary:
//! archives served from 127.0.0.1 by a server that counts requests (mirror
//! fallback, retries, checksums, the source cache, `--allow-insecure-host`),
//! every archive format, bare git repositories made by the test (tag,
//! branch, rev, depth, submodules, a damaged cache), patches with detected
//! strip levels, and the staging key over all of them.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sha2::{Digest, Sha256};

fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(fs::read(path).unwrap()))
}

/// A tarball `name` whose single top folder holds `src/lib.c` and `README`.
fn make_tarball(dir: &Path, name: &str, body: &str) {
    python(
        dir,
        &format!(
            r#"
import io, tarfile
mode = {{"gz": "w:gz", "xz": "w:xz", "bz2": "w:bz2"}}["{name}".rsplit(".", 1)[1]]
with tarfile.open("{name}", mode) as t:
    for n, data in [("lib-1.0/src/lib.c", b"{body}\n"), ("lib-1.0/README", b"readme\n")]:
        info = tarfile.TarInfo(n); info.size = len(data); t.addfile(info, io.BytesIO(data))
"#
        ),
    );
}

/// A recipe whose script records the work directory (`share/listing.txt`,
/// `share/tree/`).
fn recipe_with_source(dir: &Path, name: &str, source: &str) -> PathBuf {
    write_recipe(
        dir,
        name,
        &format!(
            "package: {{name: {name}, version: '1.0'}}\nsource:\n{source}build:\n  script:\n    - mkdir -p $PREFIX/share\n    - find . -path ./.git -prune -o -type f -not -name 'conda_build*' -print | sort > $PREFIX/share/listing.txt\n    - cp -r . $PREFIX/share/tree\n    - rm -rf $PREFIX/share/tree/.git\n"
        ),
    )
}

fn listing(out: &Path) -> String {
    let x = extract(&packages(out)[0]);
    fs::read_to_string(x.path().join("share/listing.txt")).unwrap()
}

fn tree_file(out: &Path, rel: &str) -> String {
    let x = extract(&packages(out)[0]);
    fs::read_to_string(x.path().join("share/tree").join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn finalized_sources(out: &Path) -> serde_json::Value {
    let x = extract(&packages(out)[0]);
    let text = fs::read_to_string(x.path().join("info/recipe/rendered_recipe.yaml")).unwrap();
    let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
    v["finalized_sources"].clone()
}

/// `kiln build` with its own, empty cache directory.
fn build_in(cache: &Path, recipe: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    build_with_env(recipe, out, extra, &[("KILN_CACHE_DIR", cache.to_str().unwrap())])
}

const INSECURE: &[&str] = &["--allow-insecure-host", "127.0.0.1"];

#[test]
fn url_sources_fall_back_to_mirrors_verify_checksums_and_are_downloaded_once() {
    let dir = tempfile::tempdir().unwrap();
    let served_dir = dir.path().join("www");
    fs::create_dir_all(&served_dir).unwrap();
    make_tarball(&served_dir, "lib-1.0.tar.gz", "int f(void) { return 1; }");
    let sum = sha256(&served_dir.join("lib-1.0.tar.gz"));
    let server = serve_http_logged(&served_dir, 0);
    let cache = dir.path().join("cache");
    let src = format!(
        "  url:\n    - {0}/gone/lib-1.0.tar.gz\n    - {0}/lib-1.0.tar.gz\n  sha256: {sum}\n",
        server.url
    );
    let r = recipe_with_source(dir.path(), "mirrored", &src);

    // Plain HTTP needs the host named.
    let out = dir.path().join("refused");
    let o = build_in(&cache, &r, &out, &[]);
    assert_failed_with(
        &o,
        &out,
        &[
            "Failed to download from URL http://127.0.0.1",
            "plain HTTP is refused",
            "--allow-insecure-host 127.0.0.1",
        ],
    );
    assert_eq!(server.count("lib-1.0.tar.gz"), 0, "nothing was requested");

    // The first mirror is missing (404), the second serves the file.
    let out = dir.path().join("out1");
    let o = build_in(&cache, &r, &out, INSECURE);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(&out), "./README\n./src/lib.c\n");
    assert_eq!(server.count("gone/lib-1.0.tar.gz"), 1);
    assert_eq!(server.count("lib-1.0.tar.gz"), 2, "the missing mirror, then the file");
    let fin = finalized_sources(&out);
    assert_eq!(fin[0]["sha256"], sum.as_str(), "{fin}");

    // A second build, in another output directory, makes no request.
    let before = server.requests.lock().unwrap().len();
    let out = dir.path().join("out2");
    let o = build_in(&cache, &r, &out, INSECURE);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        server.requests.lock().unwrap().len(),
        before,
        "served from the source cache"
    );

    // A wrong checksum shows both digests and caches nothing.
    let wrong = "ab".repeat(32);
    let r = recipe_with_source(
        dir.path(),
        "wrongsum",
        &format!("  url: {}/lib-1.0.tar.gz\n  sha256: {wrong}\n", server.url),
    );
    let out = dir.path().join("out-wrong");
    let o = build_in(&cache, &r, &out, INSECURE);
    assert_failed_with(
        &o,
        &out,
        &[&format!("expected sha256: {wrong}"), &format!("actual sha256:   {sum}")],
    );
    let kept: Vec<String> = walkdir::WalkDir::new(cache.join("src_cache"))
        .into_iter()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.contains(&wrong) || p.contains(".download-"))
        .filter(|p| !p.ends_with(".lock"))
        .collect();
    assert!(kept.is_empty(), "nothing of a wrong download is kept: {kept:?}");

    // A `file_name` that leaves the work directory is refused before any download.
    let r = recipe_with_source(
        dir.path(),
        "escape",
        &format!("  url: {}/lib-1.0.tar.gz\n  file_name: ../../escape.tgz\n", server.url),
    );
    let out = dir.path().join("out-escape");
    let before = server.requests.lock().unwrap().len();
    let o = build_in(&cache, &r, &out, INSECURE);
    assert_failed_with(&o, &out, &["recipe.yaml", "leaves the work directory"]);
    assert_eq!(server.requests.lock().unwrap().len(), before);

    // A redirect to a host `--allow-insecure-host` does not name is not followed.
    let other = serve_http_logged(&served_dir, 0);
    fs::write(
        served_dir.join("moved.tar.gz.redirect"),
        format!("{}/lib-1.0.tar.gz", other.url.replace("127.0.0.1", "localhost")),
    )
    .unwrap();
    let r = recipe_with_source(
        dir.path(),
        "redirected",
        &format!("  url: {}/moved.tar.gz\n  sha256: {sum}\n", server.url),
    );
    let out = dir.path().join("out-redirected");
    let o = build_in(&dir.path().join("cache-redirect"), &r, &out, INSECURE);
    assert_failed_with(
        &o,
        &out,
        &["redirected to http://localhost", "--allow-insecure-host does not name"],
    );
    assert_eq!(other.count("lib-1.0.tar.gz"), 0);

    // md5 only, `file_name` (kept as a file) and `target_directory`.
    let md5 = hex::encode(md5_of(&served_dir.join("lib-1.0.tar.gz")));
    let r = recipe_with_source(
        dir.path(),
        "named",
        &format!(
            "  url: {}/lib-1.0.tar.gz\n  md5: {md5}\n  file_name: kept.tgz\n  target_directory: vendor/x\n",
            server.url
        ),
    );
    let out = dir.path().join("out-named");
    let o = build_in(&cache, &r, &out, INSECURE);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(listing(&out), "./vendor/x/kept.tgz\n");
}

fn md5_of(path: &Path) -> rattler_digest::Md5Hash {
    rattler_digest::compute_file_digest::<rattler_digest::Md5>(path).unwrap()
}

#[test]
fn transient_server_errors_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    fs::create_dir_all(&www).unwrap();
    make_tarball(&www, "lib-1.0.tar.gz", "retry");
    let server = serve_http_logged(&www, 2);
    let r = recipe_with_source(
        dir.path(),
        "retried",
        &format!("  url: {}/lib-1.0.tar.gz\n", server.url),
    );
    let out = dir.path().join("out");
    let o = build_in(&dir.path().join("cache"), &r, &out, INSECURE);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("retrying"), "{}", stderr(&o));
    assert_eq!(server.count("lib-1.0.tar.gz"), 3, "two 503s, then the file");
    assert_eq!(tree_file(&out, "src/lib.c"), "retry\n");
}

#[test]
fn url_archives_in_xz_7z_and_conda_form_are_extracted() {
    let dir = tempfile::tempdir().unwrap();
    make_tarball(dir.path(), "lib-1.0.tar.xz", "xz");
    // A 7z archive with one top folder.
    let seven = dir.path().join("lib-1.0.7z");
    {
        let top = dir.path().join("seven/lib-1.0/src");
        fs::create_dir_all(&top).unwrap();
        fs::write(top.join("lib.c"), "seven\n").unwrap();
        sevenz_rust2::compress_to_path(dir.path().join("seven"), &seven).unwrap();
    }
    // A `.conda` package built by kiln is unpacked whole (info/ included).
    let pkg_recipe = write_recipe(
        dir.path(),
        "inner",
        "package: {name: inner, version: '2.0'}\nbuild:\n  script:\n    - mkdir -p $PREFIX/lib && echo inner > $PREFIX/lib/inner.txt\n",
    );
    build_ok(&pkg_recipe, &dir.path().join("inner-out"), &[]);
    let conda = packages(&dir.path().join("inner-out"))[0].clone();

    for (name, file, want) in [
        ("xz", dir.path().join("lib-1.0.tar.xz"), "./README\n./src/lib.c\n"),
        ("sevenz", seven, "./src/lib.c\n"),
        ("conda", conda, "./info/about.json\n"),
    ] {
        let url = url::Url::from_file_path(&file).unwrap();
        let r = recipe_with_source(
            dir.path(),
            &format!("fmt-{name}"),
            &format!("  url: {url}\n  sha256: {}\n", sha256(&file)),
        );
        let out = dir.path().join(format!("out-{name}"));
        build_ok(&r, &out, &[]);
        let l = listing(&out);
        assert!(l.contains(want), "{name}: {l}");
        if name == "conda" {
            assert!(l.contains("./lib/inner.txt") && l.contains("./info/index.json"), "{l}");
        }
    }
}

/// Make a git repository at `path` with one commit per (file, content),
/// returning the commits.
fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .run()
        .unwrap();
    assert!(o.status.success(), "git {args:?}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A bare clone of `work` at `dest`, ready for git's "dumb" HTTP protocol.
fn publish_bare(work: &Path, dest: &Path) {
    git(work, &["clone", "-q", "--bare", ".", dest.to_str().unwrap()]);
    git(dest, &["update-server-info"]);
}

fn commit(repo: &Path, file: &str, content: &str) -> String {
    fs::write(repo.join(file), content).unwrap();
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", file]);
    git(repo, &["rev-parse", "HEAD"])
}

#[test]
fn git_sources_check_out_tags_branches_revs_with_depth_and_submodules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A submodule repository and the main one.
    let sub = d.join("sub");
    fs::create_dir_all(&sub).unwrap();
    git(&sub, &["init", "-q", "-b", "main"]);
    commit(&sub, "sub.txt", "from the submodule\n");
    let repo = d.join("repo");
    fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    let c1 = commit(&repo, "version.txt", "1\n");
    git(&repo, &["tag", "v1"]);
    let c2 = commit(&repo, "version.txt", "2\n");
    git(&repo, &["submodule", "add", "-q", sub.to_str().unwrap(), "vendor/sub"]);
    git(&repo, &["commit", "-q", "-m", "submodule"]);
    git(&repo, &["checkout", "-q", "-b", "feature"]);
    let c4 = commit(&repo, "feature.txt", "feature\n");
    git(&repo, &["checkout", "-q", "main"]);
    let cache = d.join("cache");

    // A tag, by a path relative to the recipe directory; its commit is recorded.
    let r = recipe_with_source(d, "tagged", "  git: ../repo\n  tag: v1\n");
    let out = d.join("out-tag");
    let o = build_in(&cache, &r, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree_file(&out, "version.txt"), "1\n");
    assert_eq!(finalized_sources(&out)[0]["rev"], c1.as_str());

    // No reference: the default branch, with its submodule.
    let r = recipe_with_source(d, "head", "  git: ../repo\n");
    let out = d.join("out-head");
    let o = build_in(&cache, &r, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree_file(&out, "version.txt"), "2\n");
    assert_eq!(tree_file(&out, "vendor/sub/sub.txt"), "from the submodule\n");

    // A commit, and a branch with depth 1 (the script counts the history).
    let r = recipe_with_source(d, "revved", &format!("  git: {}\n  rev: {c2}\n", repo.display()));
    let out = d.join("out-rev");
    assert!(build_in(&cache, &r, &out, &[]).status.success());
    assert_eq!(tree_file(&out, "version.txt"), "2\n");
    let r = write_recipe(
        d,
        "shallow",
        &format!(
            "package: {{name: shallow, version: '1.0'}}\nsource:\n  git: file://{}\n  branch: feature\n  depth: 1\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - git rev-list --count HEAD > $PREFIX/share/count.txt\n    - cat vendor/sub/sub.txt feature.txt > $PREFIX/share/files.txt\n",
            repo.display()
        ),
    );
    let out = d.join("out-shallow");
    let o = build_in(&cache, &r, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let x = extract(&packages(&out)[0]);
    assert_eq!(fs::read_to_string(x.path().join("share/count.txt")).unwrap(), "1\n");
    assert_eq!(
        fs::read_to_string(x.path().join("share/files.txt")).unwrap(),
        "from the submodule\nfeature\n"
    );
    assert_eq!(finalized_sources(&out)[0]["rev"], c4.as_str());

    // `expected_commit` that does not match, and `tag` with `branch`.
    let r = recipe_with_source(
        d,
        "expected",
        &format!("  git: ../repo\n  tag: v1\n  expected_commit: {c2}\n"),
    );
    let out = d.join("out-expected");
    let o = build_in(&cache, &r, &out, &[]);
    assert_failed_with(&o, &out, &[&format!("resolved to commit {c1}"), "expected_commit"]);
    let r = recipe_with_source(d, "both", "  git: ../repo\n  tag: v1\n  branch: main\n");
    let o = build_in(&cache, &r, &d.join("out-both"), &[]);
    assert_failed_with(
        &o,
        &d.join("out-both"),
        &["recipe.yaml:5", "not both `tag` and `branch`"],
    );

    // A damaged cached clone is detected and fetched again.
    let clones: Vec<PathBuf> = fs::read_dir(cache.join("src_cache/git"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "git") && p.to_string_lossy().contains("repo-"))
        .collect();
    assert!(!clones.is_empty());
    for c in &clones {
        fs::remove_dir_all(c.join("objects")).unwrap();
        fs::create_dir_all(c.join("objects")).unwrap();
    }
    let r = recipe_with_source(d, "tagged2", "  git: ../repo\n  tag: v1\n");
    let out = d.join("out-damaged");
    let o = build_in(&cache, &r, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("fetching it again"), "{}", stderr(&o));
    assert_eq!(tree_file(&out, "version.txt"), "1\n");
}

#[test]
fn git_sources_are_fetched_over_http() {
    // A bare repository served as static files (git's "dumb" HTTP protocol).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let work = d.join("work");
    fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    let c = commit(&work, "hello.txt", "over http\n");
    git(&work, &["tag", "v2"]);
    let www = d.join("www");
    fs::create_dir_all(&www).unwrap();
    publish_bare(&work, &www.join("proj.git"));
    let server = serve_http_logged(&www, 0);
    let r = recipe_with_source(d, "overhttp", &format!("  git: {}/proj.git\n  tag: v2\n", server.url));
    // Plain HTTP needs the host named, as for downloads.
    let out = d.join("refused");
    let o = build_in(&d.join("cache"), &r, &out, &[]);
    assert_failed_with(&o, &out, &["plain HTTP is refused", "--allow-insecure-host 127.0.0.1"]);
    assert_eq!(server.requests.lock().unwrap().len(), 0);
    let out = d.join("out");
    let o = build_in(&d.join("cache"), &r, &out, INSECURE);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(tree_file(&out, "hello.txt"), "over http\n");
    assert_eq!(finalized_sources(&out)[0]["rev"], c.as_str());
    // Built again: the tag is in the cache, no request is made.
    let before = server.requests.lock().unwrap().len();
    assert!(build_in(&d.join("cache"), &r, &d.join("out2"), INSECURE)
        .status
        .success());
    assert_eq!(server.requests.lock().unwrap().len(), before);
}

#[test]
fn patches_apply_with_detected_strip_levels_and_a_failing_hunk_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = d.join("src");
    fs::create_dir_all(src.join("lib")).unwrap();
    fs::write(src.join("lib/a.c"), "int a(void) {\n  return 1;\n}\n").unwrap();
    fs::write(src.join("README"), "old readme\n").unwrap();
    fs::write(src.join("DELETE_ME"), "gone\n").unwrap();
    let r = d.join("patched");
    fs::create_dir_all(&r).unwrap();
    // -p1 (git style), -p0 (plain diff -u), a new file and a deletion.
    fs::write(
        r.join("p1.patch"),
        "diff --git a/lib/a.c b/lib/a.c\n--- a/lib/a.c\n+++ b/lib/a.c\n@@ -1,3 +1,3 @@\n int a(void) {\n-  return 1;\n+  return 2;\n }\n",
    )
    .unwrap();
    fs::write(
        r.join("p0.patch"),
        "--- README\n+++ README\n@@ -1 +1 @@\n-old readme\n+new readme\n",
    )
    .unwrap();
    fs::write(
        r.join("new.patch"),
        "--- /dev/null\n+++ b/lib/new.h\n@@ -0,0 +1,2 @@\n+#pragma once\n+int a(void);\n--- a/DELETE_ME\n+++ /dev/null\n@@ -1 +0,0 @@\n-gone\n",
    )
    .unwrap();
    let body = |patches: &str| {
        format!(
            "package: {{name: patched, version: '1.0'}}\nsource:\n  path: ../src\n  patches:\n{patches}build:\n  script:\n    - mkdir -p $PREFIX/share\n    - find . -type f -not -name 'conda_build*' | sort > $PREFIX/share/listing.txt\n    - cp -r . $PREFIX/share/tree\n"
        )
    };
    // A git rename with a change, applied to a read-only file.
    fs::write(src.join("lib/old.h"), "#define X 1\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(src.join("lib/old.h"), fs::Permissions::from_mode(0o444)).unwrap();
    }
    fs::write(
        r.join("rename.patch"),
        "diff --git a/lib/old.h b/lib/renamed.h\nsimilarity index 50%\nrename from lib/old.h\nrename to lib/renamed.h\n--- a/lib/old.h\n+++ b/lib/renamed.h\n@@ -1 +1 @@\n-#define X 1\n+#define X 2\n",
    )
    .unwrap();
    fs::write(
        r.join("recipe.yaml"),
        body("    - p1.patch\n    - p0.patch\n    - new.patch\n    - rename.patch\n"),
    )
    .unwrap();
    let out = d.join("out");
    build_ok(&r, &out, &[]);
    assert_eq!(listing(&out), "./README\n./lib/a.c\n./lib/new.h\n./lib/renamed.h\n");
    assert_eq!(tree_file(&out, "lib/renamed.h"), "#define X 2\n");
    assert_eq!(tree_file(&out, "lib/a.c"), "int a(void) {\n  return 2;\n}\n");
    assert_eq!(tree_file(&out, "README"), "new readme\n");
    assert_eq!(tree_file(&out, "lib/new.h"), "#pragma once\nint a(void);\n");
    assert_eq!(
        fs::read_to_string(src.join("lib/a.c")).unwrap(),
        "int a(void) {\n  return 1;\n}\n",
        "the original source is untouched"
    );

    // A hunk whose context is not there: the patch, the file and the hunk are named.
    fs::write(
        r.join("bad.patch"),
        "--- a/lib/a.c\n+++ b/lib/a.c\n@@ -1,3 +1,3 @@\n int b(void) {\n-  return 7;\n+  return 8;\n }\n",
    )
    .unwrap();
    fs::write(r.join("recipe.yaml"), body("    - bad.patch\n")).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(src.join("lib/old.h"), fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = d.join("out-bad");
    let o = build(&r, &out, &[]);
    assert_failed_with(&o, &out, &["bad.patch", "lib/a.c", "hunk #1", "return 7"]);

    // A patch that reaches outside the source directory is refused.
    fs::write(
        r.join("evil.patch"),
        "--- /dev/null\n+++ ../../evil.txt\n@@ -0,0 +1 @@\n+evil\n",
    )
    .unwrap();
    fs::write(r.join("recipe.yaml"), body("    - evil.patch\n")).unwrap();
    let out = d.join("out-evil");
    let o = build(&r, &out, &[]);
    assert_failed_with(&o, &out, &["evil.patch", "outside the source directory"]);
    assert!(!d.join("evil.txt").exists() && !out.join("evil.txt").exists());
}

#[test]
fn a_staging_output_is_rebuilt_when_its_archive_or_patch_changes_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_tarball(d, "lib-1.0.tar.gz", "one");
    make_tarball(d, "lib-1.1.tar.gz", "two");
    let r = d.join("staged");
    fs::create_dir_all(&r).unwrap();
    fs::write(
        r.join("fix.patch"),
        "--- a/README\n+++ b/README\n@@ -1 +1 @@\n-readme\n+patched\n",
    )
    .unwrap();
    let recipe = |archive: &str, mirrors: &str| {
        let file = d.join(archive);
        format!(
            "recipe: {{name: staged, version: '1.0'}}\noutputs:\n  - staging: {{name: staged-build}}\n    source:\n      url:\n{mirrors}        - {}\n      sha256: {}\n      patches: [fix.patch]\n    build:\n      script:\n        - mkdir -p $PREFIX/share\n        - cat src/lib.c README > $PREFIX/share/built.txt\n        - echo ran >> {}/runs.txt\n  - package: {{name: staged}}\n    inherit: staged-build\n",
            url::Url::from_file_path(&file).unwrap(),
            sha256(&file),
            d.display()
        )
    };
    let runs = || {
        fs::read_to_string(d.join("runs.txt"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let out = d.join("out");
    let build_now = |text: String| {
        fs::write(r.join("recipe.yaml"), text).unwrap();
        let o = build(&r, &out, &["--experimental"]);
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    build_now(recipe("lib-1.0.tar.gz", ""));
    assert_eq!(runs(), 1);
    let built = |out: &Path| {
        let x = extract(
            &packages(out)
                .into_iter()
                .max_by_key(|p| fs::metadata(p).unwrap().modified().unwrap())
                .unwrap(),
        );
        fs::read_to_string(x.path().join("share/built.txt")).unwrap()
    };
    assert_eq!(built(&out), "one\npatched\n");
    // Unchanged, and with a mirror added in front: a hit.
    build_now(recipe("lib-1.0.tar.gz", ""));
    build_now(recipe(
        "lib-1.0.tar.gz",
        "        - file:///nonexistent/lib-1.0.tar.gz\n",
    ));
    assert_eq!(runs(), 1, "mirrors do not change what is built");
    // Another archive: rebuilt.
    let log = build_now(recipe("lib-1.1.tar.gz", ""));
    assert_eq!(runs(), 2, "{log}");
    assert!(log.contains("sources"), "the miss names the sources: {log}");
    assert_eq!(built(&out), "two\npatched\n");
    // Another patch: rebuilt.
    fs::write(
        r.join("fix.patch"),
        "--- a/README\n+++ b/README\n@@ -1 +1 @@\n-readme\n+patched again\n",
    )
    .unwrap();
    build_now(recipe("lib-1.1.tar.gz", ""));
    assert_eq!(runs(), 3);
    assert_eq!(built(&out), "two\npatched again\n");
}

#[test]
fn concurrent_builds_download_a_source_once() {
    let dir = tempfile::tempdir().unwrap();
    let www = dir.path().join("www");
    fs::create_dir_all(&www).unwrap();
    make_tarball(&www, "lib-1.0.tar.gz", "shared");
    let server = serve_http_logged(&www, 0);
    let cache = dir.path().join("cache");
    let children: Vec<_> = (0..3)
        .map(|i| {
            let r = recipe_with_source(
                dir.path(),
                &format!("concurrent{i}"),
                &format!("  url: {}/lib-1.0.tar.gz\n", server.url),
            );
            kiln()
                .env("KILN_CACHE_DIR", &cache)
                .args(["build", "--allow-insecure-host", "127.0.0.1", "--recipe"])
                .arg(&r)
                .arg("--output-dir")
                .arg(dir.path().join(format!("out{i}")))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let o = wait_with_timeout(child);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(
        server.count("lib-1.0.tar.gz"),
        1,
        "one download serves all three builds"
    );
    for i in 0..3 {
        assert_eq!(tree_file(&dir.path().join(format!("out{i}")), "src/lib.c"), "shared\n");
    }
}

#[test]
fn credentials_in_source_urls_reach_no_log_package_or_cache() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let www = d.join("www");
    fs::create_dir_all(&www).unwrap();
    make_tarball(&www, "lib-1.0.tar.gz", "secret-free");
    let work = d.join("work");
    fs::create_dir_all(&work).unwrap();
    git(&work, &["init", "-q", "-b", "main"]);
    commit(&work, "hello.txt", "hello\n");
    publish_bare(&work, &www.join("proj.git"));
    let server = serve_http_logged(&www, 0);
    let with_password = server.url.replace("http://", "http://builder:s3cret-pa55@");
    let r = d.join("creds");
    fs::create_dir_all(&r).unwrap();
    fs::write(
        r.join("recipe.yaml"),
        format!(
            "recipe: {{name: creds, version: '1.0'}}\noutputs:\n  - staging: {{name: creds-build}}\n    source:\n      - url: {with_password}/lib-1.0.tar.gz\n      - git: {with_password}/proj.git\n        target_directory: proj\n    build:\n      script:\n        - mkdir -p $PREFIX/share\n        - cp src/lib.c proj/hello.txt $PREFIX/share/\n        - git -C proj remote -v\n  - package: {{name: creds}}\n    inherit: creds-build\n"
        ),
    )
    .unwrap();
    let out = d.join("out");
    let cache = d.join("cache");
    let o = build_with_env(
        &r,
        &out,
        &["--experimental", "--allow-insecure-host", "127.0.0.1", "-v"],
        &[("KILN_CACHE_DIR", cache.to_str().unwrap())],
    );
    let log = stderr(&o);
    assert!(o.status.success(), "{log}");
    assert!(
        !log.contains("s3cret-pa55"),
        "the password is masked in the log:\n{log}"
    );
    let x = extract(&packages(&out)[0]);
    assert_eq!(fs::read_to_string(x.path().join("share/hello.txt")).unwrap(), "hello\n");
    for place in [x.path(), out.as_path(), cache.as_path()] {
        let found = files_containing(place, "s3cret-pa55");
        assert!(found.is_empty(), "the password is in {found:?}");
    }
}
