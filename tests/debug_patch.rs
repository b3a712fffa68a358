//! `kiln debug` and `kiln create-patch`: the real `kiln` binary sets up a
//! build without running it, the work directory is changed (a modified, a
//! deleted and a new file), and the patch it writes is applied back by the
//! recipe's `patches` in a real build.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;

const RECIPE: &str = "package: {name: patched, version: '1.0'}\nsource:\n  path: ../upstream\nPATCHES\nbuild:\n  script:\n    - mkdir -p $PREFIX/share\n    - cp a.txt $PREFIX/share/\n    - if [ -f b.txt ]; then cp b.txt $PREFIX/share/; fi\n    - if [ -f c.txt ]; then cp c.txt $PREFIX/share/; fi\n";

fn recipe_text(patches: &[&str]) -> String {
    let list = match patches {
        [] => String::new(),
        p => format!("  patches: [{}]", p.join(", ")),
    };
    RECIPE.replace(
        "PATCHES\n",
        &if list.is_empty() {
            String::new()
        } else {
            format!("{list}\n")
        },
    )
}

/// `kiln debug`; returns the work directory it printed.
fn debug(recipe: &Path, out: &Path) -> PathBuf {
    let o = kiln()
        .args(["debug", "--recipe"])
        .arg(recipe)
        .arg("--output-dir")
        .arg(out)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("kiln create-patch --directory"), "{}", stderr(&o));
    PathBuf::from(String::from_utf8(o.stdout).unwrap().trim())
}

fn create_patch(work: &Path, args: &[&str]) -> std::process::Output {
    kiln()
        .args(["create-patch", "--directory"])
        .arg(work)
        .args(args)
        .run()
        .unwrap()
}

fn built_files(out: &Path) -> Vec<(String, String)> {
    let pkg = packages(out).into_iter().next().expect("a package");
    let x = extract(&pkg);
    let mut files: Vec<(String, String)> = fs::read_dir(x.path().join("share"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn debug_sets_up_and_create_patch_writes_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = dir.path().join("upstream");
    fs::create_dir_all(&upstream).unwrap();
    fs::write(upstream.join("a.txt"), "one\ntwo\nthree\n").unwrap();
    fs::write(upstream.join("b.txt"), "to be deleted\n").unwrap();
    fs::write(upstream.join("data.bin"), [0u8, 1, 2, 3]).unwrap();
    let recipe = write_recipe(dir.path(), "recipe", &recipe_text(&[]));
    let out = dir.path().join("out");

    // Set up, not run: the sources and script are there, no package is.
    let work = debug(&recipe, &out);
    assert_eq!(fs::read_to_string(work.join("a.txt")).unwrap(), "one\ntwo\nthree\n");
    let script = work.parent().unwrap().join("conda_build.sh");
    assert!(script.is_file());
    assert!(packages(&out).is_empty());
    // ... and the script runs by hand.
    let o = std::process::Command::new("bash").arg(&script).run().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // A modified, a deleted and a new file; a build product to leave out.
    fs::write(work.join("a.txt"), "one\n2\nthree\n").unwrap();
    fs::remove_file(work.join("b.txt")).unwrap();
    fs::write(work.join("c.txt"), "new file\n").unwrap();
    fs::write(work.join("junk.o"), [0u8, 1, 2]).unwrap();
    fs::write(work.join("data.bin"), [0u8, 9, 9, 9]).unwrap();

    let o = create_patch(&work, &["--add", "c.txt", "--dry-run"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    for needle in [
        "--- a/a.txt",
        "+++ b/a.txt",
        "-two",
        "+2",
        "--- a/b.txt",
        "+++ /dev/null",
        "--- /dev/null",
        "+++ b/c.txt",
        "+new file",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    assert!(!text.contains("junk.o") && !text.contains("data.bin"), "{text}");
    assert!(
        stderr(&o).contains("left out data.bin: a binary file"),
        "{}",
        stderr(&o)
    );
    assert!(!recipe.join("changes.patch").exists(), "--dry-run writes nothing");

    let o = create_patch(&work, &["--add", "c.txt", "--name", "fix"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("junk.o"), "{}", stderr(&o));
    assert_eq!(fs::read_to_string(recipe.join("fix.patch")).unwrap(), text);

    // The recipe lists it: a real build applies it.
    fs::write(recipe.join("recipe.yaml"), recipe_text(&["fix.patch"])).unwrap();
    let built = dir.path().join("built");
    build_ok(&recipe, &built, &[]);
    assert_eq!(
        built_files(&built),
        [
            ("a.txt".to_string(), "one\n2\nthree\n".to_string()),
            ("c.txt".to_string(), "new file\n".to_string())
        ]
    );

    // A second patch holds only what changed on top of the first.
    let work = debug(&recipe, &out);
    assert_eq!(fs::read_to_string(work.join("c.txt")).unwrap(), "new file\n");
    fs::write(work.join("a.txt"), "one\n2\n3\n").unwrap();
    let o = create_patch(&work, &["--name", "more"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let more = fs::read_to_string(recipe.join("more.patch")).unwrap();
    assert!(
        more.contains("-three") && more.contains("+3") && !more.contains("c.txt") && !more.contains("-two"),
        "{more}"
    );

    // Replacing `fix` needs --overwrite; the new one holds its changes too.
    let o = create_patch(&work, &["--name", "fix"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("fix.patch exists"), "{}", stderr(&o));
    let o = create_patch(&work, &["--name", "fix", "--overwrite", "--add", "c.txt"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let fix = fs::read_to_string(recipe.join("fix.patch")).unwrap();
    assert!(
        fix.contains("+++ b/c.txt") && fix.contains("+3") && fix.contains("-two"),
        "{fix}"
    );

    // Not a work directory kiln set up.
    let o = create_patch(dir.path(), &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is not a work directory kiln set up"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_work_directory_with_a_restored_staging_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        "staged",
        "recipe: {name: staged, version: '1.0'}\noutputs:\n  - staging:\n      name: core\n    build:\n      script: [mkdir -p $PREFIX/lib, echo made > $PREFIX/lib/a, echo made > made.txt]\n  - package:\n      name: staged-a\n    inherit: core\n    build:\n      script: [touch $PREFIX/lib/b]\n",
    );
    let out = dir.path().join("out");
    let o = kiln()
        .args(["debug", "--experimental", "--output", "staged-a", "--recipe"])
        .arg(&recipe)
        .arg("--output-dir")
        .arg(&out)
        .run()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("create-patch cannot make a patch of it"),
        "{}",
        stderr(&o)
    );
    let work = PathBuf::from(String::from_utf8(o.stdout).unwrap().trim());
    // The staging script's file is there: restored, not a source.
    assert!(work.join("made.txt").is_file());
    let o = create_patch(&work, &["--add", "*"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("holds a restored staging entry"), "{}", stderr(&o));
}

#[test]
fn debug_asks_which_output_of_several() {
    let dir = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        dir.path(),
        "two",
        "recipe: {name: two, version: '1.0'}\noutputs:\n  - package: {name: two-b}\n    build: {script: [true]}\n  - package: {name: two-a}\n    build: {script: [true]}\n",
    );
    let out = dir.path().join("out");
    let debug = |extra: &[&str]| {
        kiln()
            .args(["debug", "--recipe"])
            .arg(&recipe)
            .arg("--output-dir")
            .arg(&out)
            .args(extra)
            .run()
            .unwrap()
    };
    let o = debug(&[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("pass --output NAME, one of: two-a, two-b"),
        "{}",
        stderr(&o)
    );
    let o = debug(&["--output", "three"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("`three`: no recipe has an output of that name"),
        "{}",
        stderr(&o)
    );
    let o = debug(&["--render-only"]);
    assert!(
        stderr(&o).contains("--render-only does not apply to kiln debug"),
        "{}",
        stderr(&o)
    );
    let o = debug(&["--output", "two-a"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(packages(&out).is_empty(), "nothing is packaged");
}
