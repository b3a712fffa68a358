//! Run-path relocation of ELF files before packaging, as conda-build and
//! rattler-build do it: every RPATH/RUNPATH entry inside the host prefix
//! becomes `$ORIGIN`-relative, the `dynamic_linking.rpaths` directories
//! (default `lib/`) are added, `$ORIGIN` entries that stay inside the
//! prefix are kept, and entries outside it are dropped unless
//! `rpath_allowlist` keeps them, all in their original order.
//!
//! The new value is written over the old string in the dynamic string
//! table (NUL-padded) when it fits and no other dynamic entry shares those
//! bytes; it almost always fits, because the build prefix is long.
//! Otherwise the file is rebuilt with room for it (arwen; `patchelf` from
//! the build environment or `PATH` if that fails), keeping RPATH as RPATH.
//! A binary without a run path that needs more than glibc gets the
//! `rpaths` directories. Either way the file is replaced by a new one (a
//! copy, then a rename), so a hard link into a cache is never written
//! through.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use miette::{miette, IntoDiagnostic, Result};

use super::elf::{is_elf, is_system_library, Dynamic, RunPath};
use super::glob::GlobList;
use crate::recipe::model::{BinaryRelocation, DynamicLinking};

/// One rewritten run path, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relinked {
    /// The file, relative to the prefix.
    pub file: PathBuf,
    /// The value before.
    pub old: String,
    /// The value written.
    pub new: String,
}

/// Rewrite the run paths of the ELF files among `files` (relative to
/// `prefix`). `build_prefix` is searched for `patchelf` first. Returns one
/// entry per changed file.
pub fn relink(prefix: &Path, build_prefix: &Path, files: &[PathBuf], config: &DynamicLinking) -> Result<Vec<Relinked>> {
    let globs = |g| GlobList::new(g).map_err(|(msg, _)| miette!("{msg}"));
    let only = match &config.binary_relocation {
        BinaryRelocation::None => return Ok(Vec::new()),
        BinaryRelocation::All => None,
        BinaryRelocation::Only(list) => Some(globs(list)?),
    };
    let allow = globs(&config.rpath_allowlist)?;
    let mut done = Vec::new();
    for rel in files {
        if only.as_ref().is_some_and(|m| !m.is_match(&rel.to_string_lossy())) {
            continue;
        }
        let path = prefix.join(rel);
        let Ok(meta) = path.symlink_metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        if !is_elf(&path) {
            if first_bytes(&path).is_some_and(|m| super::macho::has_magic(&m)) {
                let data = fs_err::read(&path).into_diagnostic()?;
                if super::macho::is_macho(&data) {
                    done.extend(relink_macho(prefix, rel, &path, &data, config, &allow)?);
                }
            }
            continue;
        }
        let data = fs_err::read(&path).into_diagnostic()?;
        let Some(found) = Dynamic::parse(&data) else { continue };
        if found.run_paths.is_empty() {
            // Nothing to rewrite; a binary that needs more than glibc gets
            // the configured directories (as conda-build gives it).
            let new = rewrite(b"", prefix, rel, config, &allow);
            if new.is_empty() || found.needed.iter().all(|n| is_system_library(n)) {
                continue;
            }
            set_run_path(build_prefix, &path, &data, &new, false)?;
            done.push(Relinked {
                file: rel.clone(),
                old: String::new(),
                new: String::from_utf8_lossy(&new).into_owned(),
            });
            continue;
        }
        let changes: Vec<(RunPath, Vec<u8>)> = found
            .run_paths
            .into_iter()
            .map(|rp| {
                let new = rewrite(&rp.bytes, prefix, rel, config, &allow);
                (rp, new)
            })
            .filter(|(rp, new)| rp.bytes != *new)
            .collect();
        let Some((first, first_new)) = changes.first() else {
            continue;
        };
        if changes
            .iter()
            .all(|(rp, new)| new.len() <= rp.bytes.len() && !rp.shared)
        {
            let mut patched = data;
            for (rp, new) in &changes {
                patched[rp.offset..rp.offset + rp.bytes.len()].fill(0);
                patched[rp.offset..rp.offset + new.len()].copy_from_slice(new);
            }
            crate::disk::replace_file(&path, &patched)?;
        } else {
            set_run_path(build_prefix, &path, &data, first_new, first.is_rpath)?;
        }
        done.push(Relinked {
            file: rel.clone(),
            old: String::from_utf8_lossy(&first.bytes).into_owned(),
            new: String::from_utf8_lossy(first_new).into_owned(),
        });
    }
    Ok(done)
}

/// The first four bytes of a file, if it has them.
fn first_bytes(path: &Path) -> Option<[u8; 4]> {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .ok()?;
    Some(magic)
}

/// Relocate one Mach-O file (see [`super::macho`]); the log entry lists the edits.
fn relink_macho(
    prefix: &Path,
    rel: &Path,
    path: &Path,
    data: &[u8],
    config: &DynamicLinking,
    allow: &GlobList,
) -> Result<Option<Relinked>> {
    let Some(done) =
        super::macho::relocate(data, prefix, rel, config, allow).map_err(|e| e.wrap_err(rel.display().to_string()))?
    else {
        return Ok(None);
    };
    if done.signature == super::codesign::Signature::MadeAdHoc {
        tracing::warn!(
            "{}: its code signature was made with a developer identity and no longer matches after relocation; kiln replaced it with an ad hoc signature (sign it again after installing if an identity is needed)",
            rel.display()
        );
    }
    crate::disk::replace_file(path, &done.bytes)?;
    Ok(Some(Relinked {
        file: rel.to_path_buf(),
        old: String::from("(load commands)"),
        new: done
            .edits
            .iter()
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>()
            .join("; "),
    }))
}

/// The new run path for the file `rel` (relative to `prefix`).
fn rewrite(old: &[u8], prefix: &Path, rel: &Path, config: &DynamicLinking, allow: &GlobList) -> Vec<u8> {
    let dir = rel.parent().unwrap_or(Path::new(""));
    let prefix_bytes = prefix.as_os_str().as_bytes();
    let mut entries: Vec<Vec<u8>> = Vec::new();
    let mut push = |e: Vec<u8>| {
        if !e.is_empty() && !entries.contains(&e) {
            entries.push(e);
        }
    };
    let mut configured_added = false;
    for entry in old.split(|&b| b == b':').filter(|e| !e.is_empty()) {
        let text = String::from_utf8_lossy(entry);
        if let Some(rest) = text.strip_prefix("$ORIGIN").or_else(|| text.strip_prefix("${ORIGIN}")) {
            // Kept while it stays inside the prefix.
            if climbs_within(dir, rest) || allow.is_match(&text) {
                push(entry.to_vec());
            }
        } else if entry == prefix_bytes || entry.starts_with(&[prefix_bytes, b"/"].concat()) {
            let rest = String::from_utf8_lossy(&entry[prefix_bytes.len()..]).into_owned();
            push(origin(dir, Path::new(rest.trim_start_matches('/'))).into_bytes());
            if !configured_added {
                configured_added = true;
                for r in &config.rpaths {
                    push(origin(dir, Path::new(r.trim_end_matches('/'))).into_bytes());
                }
            }
        } else if allow.is_match(&text) {
            push(entry.to_vec());
        } else {
            tracing::debug!("dropping run path entry {text} (outside the prefix, not in rpath_allowlist)");
        }
    }
    if !configured_added {
        for r in &config.rpaths {
            push(origin(dir, Path::new(r.trim_end_matches('/'))).into_bytes());
        }
    }
    entries.join(&b':')
}

/// Whether `$ORIGIN/rest`, seen from `dir` (relative to the prefix), stays inside it.
fn climbs_within(dir: &Path, rest: &str) -> bool {
    let mut depth = dir.components().count() as i64;
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => depth -= 1,
            _ => depth += 1,
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// `$ORIGIN/…` leading from the directory `from` to `to` (both relative to the prefix).
fn origin(from: &Path, to: &Path) -> String {
    match super::contents::relative_path(from, to) {
        p if p == Path::new(".") => "$ORIGIN".to_string(),
        p => format!("$ORIGIN/{}", p.display()),
    }
}

/// Set the run path of `path` (whose bytes are `data`) when it cannot be
/// written in place: the ELF file is rebuilt with room for the new string
/// (arwen, a Rust ELF and Mach-O editor). Should that fail,
/// `patchelf` (from the build environment or `PATH`) is tried.
fn set_run_path(build_prefix: &Path, path: &Path, data: &[u8], value: &[u8], is_rpath: bool) -> Result<()> {
    let rebuilt = (|| -> Result<Vec<u8>, arwen::elf::ElfError> {
        let mut elf = arwen::elf::ElfContainer::parse(data)?;
        elf.set_runpath(value)?;
        if is_rpath {
            elf.force_rpath()?;
        }
        let mut out = Vec::with_capacity(data.len() + 4096);
        elf.write(&mut out)?;
        Ok(out)
    })();
    match rebuilt {
        Ok(bytes) => crate::disk::replace_file(path, &bytes),
        Err(e) => {
            tracing::debug!(
                "{}: arwen cannot set the run path ({e}); trying patchelf",
                path.display()
            );
            patchelf(build_prefix, path, value, is_rpath)
                .map_err(|pe| miette!("{}: cannot set the run path: {e}; {pe}", path.display()))
        }
    }
}

/// Set the run path with patchelf, on a copy that then replaces the file.
fn patchelf(build_prefix: &Path, path: &Path, value: &[u8], is_rpath: bool) -> Result<()> {
    let in_build = build_prefix.join("bin/patchelf");
    let exe = if in_build.is_file() {
        in_build
    } else {
        PathBuf::from("patchelf")
    };
    let dir = path.parent().expect("a packaged file has a parent");
    let copy = tempfile::Builder::new()
        .prefix(".kiln-patchelf-")
        .tempfile_in(dir)
        .into_diagnostic()?;
    fs_err::copy(path, copy.path()).into_diagnostic()?;
    let value = std::ffi::OsStr::from_bytes(value);
    let mut cmd = std::process::Command::new(&exe);
    if is_rpath {
        cmd.arg("--force-rpath");
    }
    let out = cmd
        .arg("--set-rpath")
        .arg(value)
        .arg(copy.path())
        .output()
        .map_err(|e| {
            miette!(
                help = "add `patchelf` to the build requirements",
                "{}: the new run path `{}` does not fit in place and patchelf cannot run: {e}",
                path.display(),
                value.to_string_lossy()
            )
        })?;
    if !out.status.success() {
        return Err(miette!(
            "{}: patchelf --set-rpath failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    copy.persist(path)
        .map_err(|e| miette!("cannot replace {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::model::Glob;

    fn list(globs: &[&str]) -> GlobList {
        let globs: Vec<Glob> = globs
            .iter()
            .map(|g| Glob {
                pattern: g.to_string(),
                span: marked_yaml::Span::new_blank(),
            })
            .collect();
        GlobList::new(&globs).map_err(|(m, _)| m).unwrap()
    }

    fn rw(old: &str, rel: &str, config: &DynamicLinking, allow: &GlobList) -> String {
        let prefix = Path::new("/b/host_env_placehold");
        String::from_utf8(rewrite(old.as_bytes(), prefix, Path::new(rel), config, allow)).unwrap()
    }

    #[test]
    fn origin_paths() {
        assert_eq!(origin(Path::new("bin"), Path::new("lib")), "$ORIGIN/../lib");
        assert_eq!(origin(Path::new("lib"), Path::new("lib")), "$ORIGIN");
        assert_eq!(origin(Path::new("lib/python3.11/x"), Path::new("lib")), "$ORIGIN/../..");
    }

    #[test]
    fn entries_are_mapped_dropped_or_kept_in_order() {
        let config = DynamicLinking::default();
        let none = list(&[]);
        let old = "/usr/local/cuda/lib64:/b/host_env_placehold/lib:$ORIGIN/../share";
        assert_eq!(rw(old, "bin/tool", &config, &none), "$ORIGIN/../lib:$ORIGIN/../share");
        let allow = list(&["/usr/local/cuda/**"]);
        assert_eq!(
            rw(old, "bin/tool", &config, &allow),
            "/usr/local/cuda/lib64:$ORIGIN/../lib:$ORIGIN/../share"
        );
        assert_eq!(rw("/opt/x", "bin/tool", &config, &none), "$ORIGIN/../lib");
        // `$ORIGIN` entries that leave the prefix are dropped.
        assert_eq!(rw("$ORIGIN/../../../etc", "bin/tool", &config, &none), "$ORIGIN/../lib");
        // A custom `rpaths` is added after the prefix entries, which stay.
        let custom = DynamicLinking {
            rpaths: vec!["lib/".into(), "lib/extra".into()],
            ..DynamicLinking::default()
        };
        assert_eq!(
            rw("/b/host_env_placehold/lib/private", "lib/libx.so", &custom, &none),
            "$ORIGIN/private:$ORIGIN:$ORIGIN/extra"
        );
        assert_eq!(
            rw("/b/host_env_placehold", "bin/x", &config, &none),
            "$ORIGIN/..:$ORIGIN/../lib"
        );
    }
}
