//! Command-line surface: shell completions, the flags `kiln build --help`
//! lists, and `--render-only` writing nothing.

mod common;

use common::*;

#[test]
fn completion_scripts_name_the_subcommands_and_flags() {
    for shell in ["bash", "zsh", "fish"] {
        let o = kiln().args(["completion", shell]).run().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let text = String::from_utf8_lossy(&o.stdout);
        for word in ["skip-existing", "skip-unchanged", "package-format", "inspect"] {
            assert!(text.contains(word), "{shell}: {word} missing");
        }
    }
    let o = kiln().args(["completion", "cmd.exe"]).run().unwrap();
    assert!(!o.status.success());
    assert!(!stderr(&o).contains("panicked"));
}

#[test]
fn build_help_lists_the_maintainer_flags() {
    let o = kiln().args(["build", "--help"]).run().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    for flag in [
        "--skip-existing",
        "--skip-unchanged",
        "--no-include-recipe",
        "--markdown-summary",
        "--extra-meta",
        "--package-format",
        "--compression-threads",
    ] {
        assert!(text.contains(flag), "{flag} missing from kiln build --help");
    }
}

#[test]
fn render_only_never_creates_the_output_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("not-created");
    let o = build_ok(&recipe("single"), &out, &["--render-only"]);
    assert!(!o.stdout.is_empty());
    assert!(!out.exists());
}

#[test]
fn markdown_summary_lists_built_and_reused_packages() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let summary = dir.path().join("summary.md");
    let arg = summary.to_string_lossy().into_owned();
    let recipe = write_recipe(
        dir.path(),
        "summed",
        "package: {name: summed, version: '1.0'}\nbuild:\n  script: [mkdir -p $PREFIX/share, touch $PREFIX/share/s]\n",
    );
    build_ok(&recipe, &out, &["--markdown-summary", &arg]);
    let text = std::fs::read_to_string(&summary).unwrap();
    let pkg = packages(&out).remove(0);
    let name = pkg.file_name().unwrap().to_string_lossy().into_owned();
    assert!(text.contains("| package | subdir | size | time | |"), "{text}");
    let row = text
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains(subdir()) && row.ends_with("| built |"), "{row}");
    assert!(row.contains(" s |"), "{row}");

    // A second run appends; a reused package says so.
    build_ok(&recipe, &out, &["--markdown-summary", &arg, "--skip-existing"]);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(text.matches("### kiln build").count(), 2, "{text}");
    assert!(text.contains("| existing package used |"), "{text}");
}
