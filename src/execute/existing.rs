//! `--skip-existing`: an output whose package (same name, version and
//! build string) is already in the output directory (`local`) or in any
//! channel (`all`) is not built; its dependants find the existing package
//! in the channels.

use miette::{miette, Result};
use rattler_conda_types::Subdir;

use super::Built;
use crate::build::BuildOptions;
use crate::cli::SkipExisting;
use crate::environment::LazyEnvironments;
use crate::plan::PlannedOutput;

/// The existing package of `p`, when `--skip-existing` says to use it.
pub fn existing(p: &PlannedOutput, opts: &BuildOptions, envs: &LazyEnvironments) -> Result<Option<Built>> {
    if opts.skip_existing == SkipExisting::None {
        return Ok(None);
    }
    let id = p.identifier();
    let name = p.output.package.name.as_normalized().to_string();
    let version = p.output.package.version.as_str().to_string();
    let stem = format!("{name}-{version}-{}", p.build_string);
    let skipped = |path: std::path::PathBuf, where_: String| {
        crate::ui::print_line(&format!("✔ {id}: {stem} exists {where_}, not built (--skip-existing)"));
        Some(Built {
            path,
            name: name.clone(),
            files: Vec::new(),
            staging_keys: Vec::new(),
            origin: super::Origin::Existing,
            seconds: 0.0,
        })
    };
    for ext in [".conda", ".tar.bz2"] {
        let path = opts.output_dir.join(&p.subdir).join(format!("{stem}{ext}"));
        if path.is_file() {
            return Ok(skipped(path, "in the output directory".to_string()));
        }
    }
    if opts.skip_existing == SkipExisting::All {
        let platform: Subdir = p.subdir.parse().map_err(|e| miette!("{e}"))?;
        let spec = format!("{name} =={version} {}", p.build_string);
        if let Some(r) = envs.get()?.find(platform, &spec)?.into_iter().next() {
            // Credentials in a channel URL never reach the log.
            let channel = r.channel.as_deref().unwrap_or_default();
            let channel = match url::Url::parse(channel) {
                Ok(url) => crate::redact::url_for_display(&url),
                Err(_) => crate::redact::mask(channel).into_owned(),
            };
            let path = std::path::PathBuf::from(r.url.to_string());
            return Ok(skipped(path, format!("in {channel}")));
        }
    }
    Ok(None)
}
