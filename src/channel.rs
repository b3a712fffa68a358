//! The output directory as a channel: after packages land in
//! `<out>/<subdir>/`, each subdir (and `noarch`) gets a `repodata.json`
//! written by `rattler_index`.

use std::path::Path;

use miette::{miette, Result};
use rattler_conda_types::Subdir;

/// Re-index `subdirs` of `output_dir` (plus `noarch`, always).
pub fn index(output_dir: &Path, subdirs: &[Subdir]) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| miette!("starting the indexer: {e}"))?;
    let mut all: Vec<Subdir> = subdirs.to_vec();
    if !all.contains(&Subdir::NoArch) {
        all.push(Subdir::NoArch);
    }
    for subdir in all {
        fs_err::create_dir_all(output_dir.join(subdir.as_str())).map_err(|e| miette!("{e}"))?;
        let config = rattler_index::IndexFsConfig {
            channel: output_dir.to_path_buf(),
            target_platform: Some(subdir),
            repodata_patch: None,
            write_zst: false,
            write_shards: false,
            repodata_revisions: Vec::new(),
            package_revision_assignment: rattler_index::PackageRevisionAssignment::default(),
            force: true,
            max_parallel: num_cpus::get().max(1),
            multi_progress: None,
        };
        rt.block_on(rattler_index::index_fs(config))
            .map_err(|e| miette!("indexing {}: {e:#}", output_dir.join(subdir.as_str()).display()))?;
    }
    // rattler_index stages its writes in `<channel>/.tmp`; do not leave it behind.
    let _ = std::fs::remove_dir(output_dir.join(".tmp"));
    Ok(())
}
