//! `package_contents` tests, checked against the list of files about to be
//! packaged (before the package is written): each `exists` glob must match
//! a file, no `not_exists` glob may, and under `strict` every file must be
//! matched by some `exists` glob. Globs are looked up where the kind says
//! (`include/`, `bin/`, `lib/`, site-packages), with the name variations
//! of CEP 20.3 (`foo` in `lib` matches `libfoo.so` and `libfoo.so.1`).

use globset::{GlobBuilder, GlobMatcher};

use crate::recipe::model::Glob;
use crate::recipe::package_tests::{ContentsTest, Presence};

/// What a failed check says, one line per problem.
pub fn check(
    test: &ContentsTest,
    paths: &[String],
    noarch_python: bool,
    target: rattler_conda_types::Subdir,
) -> std::result::Result<(), Vec<String>> {
    let macos = target.is_osx();
    let mut problems = Vec::new();
    let mut allowed: Vec<GlobMatcher> = Vec::new();
    let kinds: [(&str, &Presence); 5] = [
        ("files", &test.files),
        ("site_packages", &test.site_packages),
        ("bin", &test.bin),
        ("lib", &test.lib),
        ("include", &test.include),
    ];
    for (kind, presence) in kinds {
        for (glob, must_exist) in presence
            .exists
            .iter()
            .map(|g| (g, true))
            .chain(presence.not_exists.iter().map(|g| (g, false)))
        {
            let patterns = candidates(kind, &glob.pattern, noarch_python, macos);
            let matchers = match compile(&patterns) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(format!("`{kind}: {}` is not a valid glob: {e}", glob.pattern));
                    continue;
                }
            };
            let hits: Vec<&String> = paths
                .iter()
                .filter(|p| matchers.iter().any(|m| m.is_match(p.as_str())))
                .collect();
            match (must_exist, hits.is_empty()) {
                (true, true) => problems.push(format!(
                    "`{kind}: {}` matched no file of the package (looked for {})",
                    glob.pattern,
                    patterns.join(", ")
                )),
                (false, false) => problems.push(format!(
                    "`{kind}: {}` must match nothing, but the package has {}",
                    glob.pattern,
                    hits.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(", ")
                )),
                _ => {}
            }
            if must_exist {
                allowed.extend(matchers);
            }
        }
    }
    if test.strict {
        let extra: Vec<&String> = paths
            .iter()
            .filter(|p| !allowed.iter().any(|m| m.is_match(p.as_str())))
            .collect();
        if !extra.is_empty() {
            problems.push(format!(
                "`strict: true`, but no `exists` glob matches {}",
                extra.iter().map(|h| h.as_str()).collect::<Vec<_>>().join(", ")
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// The path globs a `kind` entry stands for.
fn candidates(kind: &str, glob: &str, noarch_python: bool, macos: bool) -> Vec<String> {
    let glob = glob.trim_start_matches("./");
    let last = glob.rsplit('/').next().unwrap_or(glob);
    let has_ext = last.contains('.');
    match kind {
        "include" if has_ext => vec![format!("include/{glob}")],
        "include" => vec![
            format!("include/{glob}"),
            format!("include/{glob}.h"),
            format!("include/{glob}.hpp"),
        ],
        "bin" => vec![format!("bin/{glob}")],
        // A name with an extension (`libz.a`, `pkgconfig/z.pc`) is taken as written.
        "lib" if has_ext => vec![format!("lib/{glob}")],
        "lib" if macos => vec![
            format!("lib/{glob}.dylib"),
            format!("lib/lib{glob}.dylib"),
            format!("lib/{glob}.*.dylib"),
            format!("lib/lib{glob}.*.dylib"),
        ],
        "lib" => vec![
            format!("lib/{glob}.so"),
            format!("lib/lib{glob}.so"),
            format!("lib/{glob}.so.*"),
            format!("lib/lib{glob}.so.*"),
        ],
        "site_packages" => {
            let roots: &[&str] = if noarch_python {
                &["site-packages"]
            } else {
                &["lib/python*/site-packages"]
            };
            let module = glob.contains('/') || glob.contains('*') || glob.ends_with(".py");
            roots
                .iter()
                .flat_map(|root| {
                    if module {
                        vec![format!("{root}/{glob}")]
                    } else {
                        let rel = glob.replace('.', "/");
                        vec![format!("{root}/{rel}.py"), format!("{root}/{rel}/__init__.py")]
                    }
                })
                .collect()
        }
        _ => vec![glob.to_string()],
    }
}

fn compile(patterns: &[String]) -> std::result::Result<Vec<GlobMatcher>, globset::Error> {
    patterns
        .iter()
        .map(|p| {
            // A folder (`foo/`) stands for everything below it.
            let p = if p.ends_with('/') { format!("{p}**") } else { p.clone() };
            Ok(GlobBuilder::new(&p).literal_separator(true).build()?.compile_matcher())
        })
        .collect()
}

/// Every glob of the test is valid; else the message and the glob.
pub fn validate(test: &ContentsTest) -> std::result::Result<(), (String, &Glob)> {
    let kinds = [
        ("files", &test.files),
        ("site_packages", &test.site_packages),
        ("bin", &test.bin),
        ("lib", &test.lib),
        ("include", &test.include),
    ];
    for (kind, presence) in kinds {
        for glob in presence.exists.iter().chain(&presence.not_exists) {
            compile(&candidates(kind, &glob.pattern, false, false))
                .map_err(|e| (format!("invalid `{kind}` glob `{}`: {e}", glob.pattern), glob))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str) -> Glob {
        Glob {
            pattern: p.into(),
            span: marked_yaml::Span::new_blank(),
        }
    }

    #[test]
    fn kinds_expand_names() {
        let paths: Vec<String> = [
            "include/foo.h",
            "lib/libfoo.so.1",
            "bin/tool",
            "lib/python3.11/site-packages/a/b.py",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let test = ContentsTest {
            include: Presence {
                exists: vec![glob("foo")],
                not_exists: vec![glob("bar")],
            },
            lib: Presence {
                exists: vec![glob("foo")],
                not_exists: vec![],
            },
            bin: Presence {
                exists: vec![glob("tool")],
                not_exists: vec![],
            },
            site_packages: Presence {
                exists: vec![glob("a.b")],
                not_exists: vec![],
            },
            strict: true,
            ..Default::default()
        };
        let linux = rattler_conda_types::Subdir::Linux64;
        assert_eq!(check(&test, &paths, false, linux), Ok(()));
        let mut more = paths.clone();
        more.push("share/extra.txt".into());
        let err = check(&test, &more, false, linux).unwrap_err();
        assert!(err[0].contains("share/extra.txt"), "{err:?}");
        let missing = ContentsTest {
            include: Presence {
                exists: vec![glob("nope.h")],
                not_exists: vec![],
            },
            ..Default::default()
        };
        assert!(check(&missing, &paths, false, linux).unwrap_err()[0].contains("include/nope.h"));
        assert_eq!(
            candidates("lib", "pkgconfig/z.pc", false, false),
            vec!["lib/pkgconfig/z.pc"]
        );
        assert_eq!(candidates("lib", "z", false, true)[1], "lib/libz.dylib");
    }
}
