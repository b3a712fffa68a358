//! Package layout details: empty directories the build made are kept in
//! the archive (not in `paths.json`), also through a staging cache hit,
//! and `files` selects them like files.

mod common;

use common::*;

const RECIPE: &str = r#"recipe:
  name: hollow
  version: '1.0'
outputs:
  - staging:
      name: make-dirs
    build:
      script:
        - mkdir -p $PREFIX/var/cache/hollow $PREFIX/share/hollow/empty $PREFIX/share/skipped
        - echo data > $PREFIX/share/hollow/data.txt
  - package:
      name: hollow
    inherit: make-dirs
    build:
      files:
        exclude: [share/skipped]
"#;

#[test]
fn empty_directories_are_kept_in_the_archive_but_not_in_paths_json() {
    let dir = tempfile::tempdir().unwrap();
    let r = write_recipe(dir.path(), "hollow", RECIPE);
    let out = dir.path().join("out");
    for (run, format) in [("miss", "conda"), ("hit", "tar.bz2")] {
        let o = build_ok(&r, &out, &["--experimental", "--package-format", format]);
        assert!(stderr(&o).contains(&format!("cache {run}")), "{run}: {}", stderr(&o));
        let pkg = packages(&out)
            .into_iter()
            .find(|p| {
                p.to_string_lossy()
                    .ends_with(if format == "conda" { ".conda" } else { ".tar.bz2" })
            })
            .unwrap();
        let x = extract(&pkg);
        assert!(x.path().join("var/cache/hollow").is_dir(), "{run}");
        assert!(x.path().join("share/hollow/empty").is_dir(), "{run}");
        assert!(!x.path().join("share/skipped").exists(), "{run}: excluded by `files`");
        let paths: Vec<String> = paths_json(x.path()).into_keys().collect();
        assert_eq!(paths, ["share/hollow/data.txt"], "{run}");
    }
}
