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
