//! What a `kiln build` run did, recipe by recipe: the closing lines on
//! stderr and the `--markdown-summary` table.

use std::path::{Path, PathBuf};

use miette::{IntoDiagnostic, Result};

use crate::commands::human_bytes;
use crate::execute::Packaged;

/// What became of one recipe.
pub enum Outcome {
    /// Its packages, built now or found existing.
    Built(Vec<Packaged>),
    /// It failed; the first line of the error.
    Failed(String),
    /// It was not tried, for this reason.
    Skipped(String),
}

/// The outcome of every recipe the run tried, in build order.
#[derive(Default)]
pub struct Report {
    entries: Vec<(PathBuf, Outcome)>,
    /// What stopped the run, when no recipe's failure says it already.
    error: Option<String>,
}

impl Report {
    /// Record what became of `recipe`.
    pub fn add(&mut self, recipe: &Path, outcome: Outcome) {
        self.entries.push((recipe.to_path_buf(), outcome));
    }

    /// Record what stopped the run (unless it is a recipe's failure, listed already).
    pub fn run_failed(&mut self, error: &miette::Report) {
        let line = first_line(error);
        if !self
            .entries
            .iter()
            .any(|(_, o)| matches!(o, Outcome::Failed(e) if *e == line))
        {
            self.error = Some(line);
        }
    }

    /// Record that `recipe` failed with `error`.
    pub fn failed(&mut self, recipe: &Path, error: &miette::Report) {
        self.add(recipe, Outcome::Failed(first_line(error)));
    }

    /// The recipes that were not built, with why.
    fn not_built(&self) -> impl Iterator<Item = (&Path, String)> {
        self.entries.iter().filter_map(|(path, outcome)| match outcome {
            Outcome::Built(_) => None,
            Outcome::Failed(e) => Some((path.as_path(), format!("failed: {e}"))),
            Outcome::Skipped(why) => Some((path.as_path(), format!("not built: {why}"))),
        })
    }

    fn packages(&self) -> impl Iterator<Item = &Packaged> {
        self.entries.iter().flat_map(|(_, outcome)| match outcome {
            Outcome::Built(p) => p.as_slice(),
            _ => &[],
        })
    }

    /// The package files of this run on this machine: built now, kept by
    /// `--skip-unchanged` or found in the output directory.
    pub fn local_packages(&self) -> Vec<PathBuf> {
        self.packages()
            .filter(|p| p.path.is_file())
            .map(|p| p.path.clone())
            .collect()
    }

    /// Print the closing lines; an error when a recipe was not built.
    pub fn finish(&self, output_dir: &Path) -> Result<()> {
        let count = self.packages().filter(|p| p.built).count();
        crate::ui::print_line(&format!("kiln built {count} package(s) into {}", output_dir.display()));
        let not_built: Vec<(&Path, String)> = self.not_built().collect();
        if not_built.is_empty() {
            return Ok(());
        }
        crate::ui::print_line(&format!("{} recipe(s) were not built:", not_built.len()));
        for (path, why) in &not_built {
            crate::ui::print_line(&format!("  {}: {why}", path.display()));
        }
        Err(miette::miette!(
            help = "the errors are shown above, each where its recipe failed",
            "{} of {} recipes were not built",
            not_built.len(),
            self.entries.len()
        ))
    }

    /// Append the `--markdown-summary` table of the run to `file`.
    pub fn write_markdown(&self, file: &Path) -> Result<()> {
        use std::io::Write;
        let title = match self.entries.as_slice() {
            [(path, _)] => format!("`{}`", path.display()),
            all => format!("{} recipes", all.len()),
        };
        let mut text = format!(
            "### kiln build: {title}\n\n| package | subdir | size | time | |\n| --- | --- | ---: | ---: | --- |\n"
        );
        for p in self.packages() {
            text.push_str(&row(p));
        }
        if let Some(e) = &self.error {
            text.push_str(&format!("\n**Failed:** {e}\n"));
        }
        let not_built: Vec<(&Path, String)> = self.not_built().collect();
        if !not_built.is_empty() {
            text.push_str("\n**Not built:**\n\n");
            for (path, why) in not_built {
                text.push_str(&format!("- `{}`: {why}\n", path.display()));
            }
        }
        text.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| miette::miette!("cannot write the summary to {}: {e}", file.display()))?;
        f.write_all(text.as_bytes()).into_diagnostic()
    }
}

/// The first line of an error, secrets masked.
fn first_line(error: &miette::Report) -> String {
    let text = error.to_string();
    let text = crate::redact::mask(&text);
    text.lines().next().unwrap_or_default().to_string()
}

/// One package's table row.
fn row(p: &Packaged) -> String {
    let name = p
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let subdir = p
        .path
        .parent()
        .and_then(Path::file_name)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let size = std::fs::metadata(&p.path)
        .map(|m| human_bytes(m.len()))
        .unwrap_or_else(|_| "-".into());
    let (time, what) = match p.built {
        true => (format!("{:.1} s", p.seconds), "built"),
        false => ("-".to_string(), "existing package used"),
    };
    format!("| `{name}` | {subdir} | {size} | {time} | {what} |\n")
}
