//! Activation of the build and host prefixes for a build script: the bash
//! text that runs each prefix's `etc/conda/activate.d` scripts and puts its
//! `bin` on `PATH` (host first, then build, so `$BUILD_PREFIX/bin` wins).

use std::path::Path;

use miette::{miette, Result};
use rattler_conda_types::Subdir;
use rattler_shell::activation::{ActivationVariables, Activator, PathModificationBehavior};
use rattler_shell::shell::Bash;

/// Bash commands activating `host_prefix` then `build_prefix`.
pub fn script(host_prefix: &Path, host: Subdir, build_prefix: &Path, build: Subdir) -> Result<String> {
    let mut text = String::new();
    for (i, (prefix, platform)) in [(host_prefix, host), (build_prefix, build)].into_iter().enumerate() {
        if i == 1 && prefix == host_prefix {
            // Merged environments: one prefix, activated once.
            break;
        }
        let activator = Activator::from_path(prefix, Bash::default(), platform)
            .map_err(|e| miette!("cannot activate {}: {e}", prefix.display()))?;
        let vars = ActivationVariables {
            conda_prefix: None,
            path: None,
            path_modification_behavior: PathModificationBehavior::Prepend,
            current_env: Default::default(),
        };
        let result = activator
            .activation(vars)
            .map_err(|e| miette!("cannot activate {}: {e}", prefix.display()))?;
        let contents = result
            .script
            .contents()
            .map_err(|e| miette!("cannot write the activation of {}: {e}", prefix.display()))?;
        text.push_str(&contents);
        text.push('\n');
    }
    Ok(text)
}
