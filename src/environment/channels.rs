//! Channel arguments (`-c NAME|URL|PATH`) → rattler channels, in priority
//! order, with the output directory first.

use std::path::Path;

use miette::{miette, Result};
use rattler_conda_types::{Channel, ChannelConfig};

/// The channel used when no `-c` is given.
pub const DEFAULT_CHANNEL: &str = "conda-forge";

/// The channels to solve against: the output directory (when given), then
/// `args` (or `conda-forge` when there are none).
pub fn resolve(args: &[String], output_dir: Option<&Path>) -> Result<Vec<Channel>> {
    let cwd = std::env::current_dir().map_err(|e| miette!("cannot read the current directory: {e}"))?;
    let config = ChannelConfig::default_with_root_dir(cwd.clone());
    let mut channels: Vec<Channel> = output_dir.map(directory_channel).transpose()?.into_iter().collect();
    let defaults = [DEFAULT_CHANNEL.to_string()];
    let args = if args.is_empty() { &defaults[..] } else { args };
    for arg in args {
        let looks_like_path = arg.starts_with('/') || arg.starts_with('.') || arg.starts_with('~');
        let channel = if looks_like_path || (!arg.contains("://") && cwd.join(arg).is_dir()) {
            let path = cwd.join(arg);
            if !path.is_dir() {
                miette::bail!(
                    help =
                        "pass a channel name (conda-forge), a URL (https://..., file://...) or an existing directory",
                    "channel `{arg}` is not a directory ({} does not exist)",
                    path.display()
                );
            }
            directory_channel(&std::fs::canonicalize(&path).unwrap_or(path))?
        } else {
            Channel::from_str(arg, &config).map_err(|e| {
                miette!(
                    help = "pass a channel name (conda-forge), a URL (https://..., file://...) or a directory",
                    "invalid channel `{arg}`: {e}"
                )
            })?
        };
        if !channels.iter().any(|c| c.base_url == channel.base_url) {
            channels.push(channel);
        }
    }
    Ok(channels)
}

/// How a channel is shown to the user: its URL, password and token masked.
pub fn display(channel: &Channel) -> String {
    crate::redact::url_for_display(channel.base_url.url())
        .trim_end_matches('/')
        .to_string()
}

/// How a channel is written into files: its URL without credentials.
pub fn for_file(channel: &Channel) -> String {
    crate::redact::url_for_file(channel.base_url.url())
        .trim_end_matches('/')
        .to_string()
}

fn directory_channel(path: &Path) -> Result<Channel> {
    Channel::try_from_directory(path).map_err(|e| miette!("cannot use {} as a channel: {e}", path.display()))
}
