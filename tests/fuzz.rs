//! Fuzz-style robustness: thousands of mutated recipes and variant files
//! (from every recipe in the repository) go through the recipe and variant
//! parsers, the renderer and the planner in-process; each must give a
//! result or an error, never a panic. Deterministic (fixed seed) and
//! bounded, so CI stays fast and a failure is reproducible.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use kiln::recipe::{LoadOptions, RecipeSource};
use kiln::syntax::jinja::Platforms;
use kiln::variants;
use rattler_conda_types::Subdir;

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Text that tends to reach unusual paths of a YAML/Jinja/recipe parser.
const TOKENS: &[&str] = &[
    "~",
    "null",
    "\"\"",
    "{}",
    "[]",
    "- ",
    ": ",
    "${{",
    "}}",
    "${{ x }}",
    "${{ 1/0 }}",
    "${{ none.attr }}",
    "${{ compiler('c') }}",
    "${{ pin_subpackage('x', exact=True) }}",
    "${{ env.get('HOME') }}",
    "-1",
    "99999999999999999999999",
    "1e400",
    "&a",
    "*a",
    "!!str",
    "'",
    "\"",
    "\t",
    "\u{0}",
    "\u{feff}",
    "é",
    "#",
    "if: linux",
    "then: [a]",
    "else:",
    "staging:",
    "inherit: x",
    "package:",
    "outputs:",
    "cache:",
    "name: x",
    "version: 1.0",
    "script: x",
    "files: [x]",
    "skip: true",
    "use_keys: [q]",
    "zip_keys: [[a, b]]",
    "a: [1, 2]",
    "noarch: python",
    "run_exports: x",
    "pin_compatible",
    "from: nowhere",
    "\n  - ",
    "\n    ",
    "[[[[[[",
    "]]]",
];

fn mutate(text: &str, rng: &mut Rng) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    for _ in 0..1 + rng.below(3) {
        if lines.is_empty() {
            lines.push(String::new());
        }
        let i = rng.below(lines.len());
        match rng.below(8) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let l = lines[i].clone();
                lines.insert(i, l);
            }
            2 => {
                // Replace the value after a colon.
                if let Some(pos) = lines[i].find(':') {
                    let tok = TOKENS[rng.below(TOKENS.len())];
                    lines[i] = format!("{}: {tok}", &lines[i][..pos]);
                }
            }
            3 => {
                let tok = TOKENS[rng.below(TOKENS.len())];
                let at = floor_char(&lines[i], rng.below(lines[i].len() + 1));
                lines[i].insert_str(at, tok);
            }
            4 => {
                // Re-indent: YAML structure shifts.
                let n = rng.below(5);
                lines[i] = format!("{}{}", " ".repeat(n), lines[i].trim_start());
            }
            5 => {
                let at = floor_char(&lines[i], rng.below(lines[i].len() + 1));
                lines[i].truncate(at);
            }
            6 => {
                let j = rng.below(lines.len());
                lines.swap(i, j);
            }
            _ => {
                let tok = TOKENS[rng.below(TOKENS.len())];
                lines.insert(i, tok.to_string());
            }
        }
    }
    lines.join("\n")
}

fn floor_char(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn corpus(ext: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = ["tests/recipes", "tests/fixtures", "examples", "benches/recipes"]
        .iter()
        .flat_map(|d| walkdir::WalkDir::new(root.join(d)).into_iter().filter_map(|e| e.ok()))
        .map(|e| e.into_path())
        .filter(|p| p.to_string_lossy().ends_with(ext))
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

fn platforms() -> Platforms {
    Platforms {
        target: Subdir::Linux64,
        build: Subdir::Linux64,
        host: Subdir::Linux64,
    }
}

/// How far an input got.
#[derive(Debug, Default)]
struct Reached {
    parsed: usize,
    planned: usize,
}

/// Parse, read variants next to it, render and plan; errors are fine.
fn exercise(dir: &Path, reached: &mut Reached) {
    let Ok(source) = RecipeSource::read(&dir.join("recipe.yaml")) else {
        return;
    };
    reached.parsed += 1;
    let sources = variants::Sources {
        files: vec![],
        overrides: vec![],
        ignore_recipe_variants: false,
    };
    let Ok(config) = variants::load(source.dir(), &sources, platforms()) else {
        return;
    };
    let options = LoadOptions {
        platforms: platforms(),
        experimental: true,
    };
    if kiln::plan::plan(&source, options, &config, &Default::default()).is_ok() {
        reached.planned += 1;
    }
}

#[test]
fn mutated_recipes_and_variant_files_never_panic() {
    // Keep the output readable: a panic is reported below, with its input.
    std::panic::set_hook(Box::new(|_| {}));
    let recipes = corpus("recipe.yaml");
    let variant_files: Vec<String> = corpus("variants.yaml");
    assert!(recipes.len() > 20 && !variant_files.is_empty());
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(0x6b69_6c6e_2026);
    let mut failures = Vec::new();
    let mut reached = Reached::default();
    for round in 0..5000 {
        let recipe = mutate(&recipes[rng.below(recipes.len())], &mut rng);
        let variants = if round % 3 == 0 {
            Some(mutate(&variant_files[rng.below(variant_files.len())], &mut rng))
        } else {
            None
        };
        std::fs::write(dir.path().join("recipe.yaml"), &recipe).unwrap();
        let vpath = dir.path().join("variants.yaml");
        match &variants {
            Some(v) => std::fs::write(&vpath, v).unwrap(),
            None => {
                let _ = std::fs::remove_file(&vpath);
            }
        }
        if catch_unwind(AssertUnwindSafe(|| exercise(dir.path(), &mut reached))).is_err() {
            failures.push(format!(
                "--- recipe.yaml\n{recipe}\n--- variants.yaml\n{}",
                variants.unwrap_or_default()
            ));
        }
    }
    let _ = std::panic::take_hook();
    // The mutations must not be so wild that nothing gets past the parser.
    assert!(reached.parsed > 1000 && reached.planned > 300, "{reached:?}");
    eprintln!("{reached:?}");
    assert!(
        failures.is_empty(),
        "{} inputs panicked; the first:\n{}",
        failures.len(),
        failures[0]
    );
}
