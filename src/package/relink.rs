//! Run-path relocation of ELF files before packaging: every RPATH/RUNPATH
//! entry inside the host prefix becomes `$ORIGIN`-relative, entries
//! outside it are dropped unless `rpath_allowlist` keeps them, and
//! `$ORIGIN` entries stay. With `dynamic_linking.rpaths` set, the prefix
//! entries are replaced by those directories (relative to the prefix).
//!
//! The new value is written into the dynamic string table in place (padded
//! with NULs) when it fits, which it almost always does because the build
//! prefix is long; otherwise `patchelf` from the build environment or
//! `PATH` sets it. Files are replaced through a temporary copy and a
//! rename, so a hard link into a cache is never written through.

use std::path::{Path, PathBuf};

use goblin::elf::dynamic::{DT_RPATH, DT_RUNPATH};
use miette::{miette, IntoDiagnostic, Result};

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
/// `prefix`). `build_prefix` is searched for `patchelf` first.
pub fn relink(prefix: &Path, build_prefix: &Path, files: &[PathBuf], config: &DynamicLinking) -> Result<Vec<Relinked>> {
    let only = match &config.binary_relocation {
        BinaryRelocation::None => return Ok(Vec::new()),
        BinaryRelocation::All => None,
        BinaryRelocation::Only(globs) => Some(matcher(globs.iter().map(|g| g.pattern.as_str()))?),
    };
    let allow = matcher(config.rpath_allowlist.iter().map(|g| g.pattern.as_str()))?;
    let mut done = Vec::new();
    for rel in files {
        if only.as_ref().is_some_and(|m| !m.is_match(rel)) {
            continue;
        }
        let path = prefix.join(rel);
        let Ok(meta) = path.symlink_metadata() else { continue };
        if !meta.is_file() || !is_elf(&path) {
            continue;
        }
        let data = fs_err::read(&path).into_diagnostic()?;
        let Some(found) = run_paths(&data) else { continue };
        let changes: Vec<(usize, String, String)> = found
            .into_iter()
            .map(|(offset, old)| {
                let new = rewrite(&old, prefix, rel, config, &allow);
                (offset, old, new)
            })
            .filter(|(_, old, new)| old != new)
            .collect();
        if changes.is_empty() {
            continue;
        }
        if changes.iter().all(|(_, old, new)| new.len() <= old.len()) {
            let mut patched = data;
            for (offset, old, new) in &changes {
                patched[*offset..offset + old.len()].fill(0);
                patched[*offset..offset + new.len()].copy_from_slice(new.as_bytes());
            }
            crate::disk::replace_file(&path, &patched)?;
        } else {
            patchelf(build_prefix, &path, &changes[0].2)?;
        }
        done.extend(changes.into_iter().map(|(_, old, new)| Relinked {
            file: rel.clone(),
            old,
            new,
        }));
    }
    Ok(done)
}

fn matcher<'a>(globs: impl Iterator<Item = &'a str>) -> Result<globset::GlobSet> {
    let mut b = globset::GlobSetBuilder::new();
    for g in globs {
        b.add(globset::Glob::new(g).map_err(|e| miette!("invalid glob `{g}`: {e}"))?);
    }
    b.build().into_diagnostic()
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"\x7fELF")
}

/// The file offset and text of each RPATH/RUNPATH value; `None` for files
/// goblin cannot read as ELF (object files, truncated files).
fn run_paths(data: &[u8]) -> Option<Vec<(usize, String)>> {
    let elf = goblin::elf::Elf::parse(data).ok()?;
    let dynamic = elf.dynamic.as_ref()?;
    let strtab = dynamic.info.strtab as u64;
    // The string table's address, as a file offset.
    let base = elf
        .program_headers
        .iter()
        .find(|p| {
            p.p_type == goblin::elf::program_header::PT_LOAD && p.p_vaddr <= strtab && strtab < p.p_vaddr + p.p_filesz
        })
        .map(|p| (strtab - p.p_vaddr + p.p_offset) as usize)?;
    let mut out = Vec::new();
    for d in &dynamic.dyns {
        if d.d_tag != DT_RPATH && d.d_tag != DT_RUNPATH {
            continue;
        }
        let start = base + d.d_val as usize;
        let end = start + data.get(start..)?.iter().position(|&b| b == 0)?;
        out.push((start, String::from_utf8_lossy(&data[start..end]).into_owned()));
    }
    Some(out)
}

/// The new run path for the file `rel` (relative to `prefix`): its
/// `$ORIGIN` entries and prefix entries (made relative), then the
/// configured search paths (`lib/` by default), then the outside entries
/// `rpath_allowlist` keeps. A custom `rpaths` replaces the prefix entries.
fn rewrite(old: &str, prefix: &Path, rel: &Path, config: &DynamicLinking, allow: &globset::GlobSet) -> String {
    let dir = rel.parent().unwrap_or(Path::new(""));
    let prefix_text = prefix.to_string_lossy();
    let custom = config.rpaths != DynamicLinking::default().rpaths;
    let mut entries: Vec<String> = Vec::new();
    let mut kept = Vec::new();
    for entry in old.split(':').filter(|e| !e.is_empty()) {
        if entry.starts_with("$ORIGIN") || entry.starts_with("${ORIGIN}") {
            entries.push(entry.to_string());
        } else if let Some(rest) = entry.strip_prefix(prefix_text.as_ref()) {
            if !custom {
                entries.push(origin(dir, Path::new(rest.trim_start_matches('/'))));
            }
        } else if allow.is_match(entry) {
            kept.push(entry.to_string());
        } else {
            tracing::debug!("dropping run path entry {entry} (outside the prefix, not in rpath_allowlist)");
        }
    }
    entries.extend(
        config
            .rpaths
            .iter()
            .map(|r| origin(dir, Path::new(r.trim_end_matches('/')))),
    );
    entries.extend(kept);
    let mut seen = std::collections::BTreeSet::new();
    entries.retain(|e| seen.insert(e.clone()));
    entries.join(":")
}

/// `$ORIGIN/…` leading from the directory `from` to `to` (both relative to the prefix).
fn origin(from: &Path, to: &Path) -> String {
    match super::contents::relative_path(from, to) {
        p if p == Path::new(".") => "$ORIGIN".to_string(),
        p => format!("$ORIGIN/{}", p.display()),
    }
}

fn patchelf(build_prefix: &Path, path: &Path, value: &str) -> Result<()> {
    let in_build = build_prefix.join("bin/patchelf");
    let exe = if in_build.is_file() {
        in_build
    } else {
        PathBuf::from("patchelf")
    };
    let out = std::process::Command::new(&exe)
        .args(["--set-rpath", value])
        .arg(path)
        .output()
        .map_err(|e| {
            miette!(
                help = "add `patchelf` to the build requirements",
                "{}: the new run path `{value}` is longer than the old one and patchelf cannot run: {e}",
                path.display()
            )
        })?;
    if !out.status.success() {
        return Err(miette!(
            "{}: patchelf --set-rpath failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_paths() {
        assert_eq!(origin(Path::new("bin"), Path::new("lib")), "$ORIGIN/../lib");
        assert_eq!(origin(Path::new("lib"), Path::new("lib")), "$ORIGIN");
        assert_eq!(origin(Path::new("lib/python3.11/x"), Path::new("lib")), "$ORIGIN/../..");
    }

    #[test]
    fn entries_are_mapped_dropped_or_kept() {
        let prefix = Path::new("/b/host_env_placehold");
        let config = DynamicLinking::default();
        let none = matcher(std::iter::empty()).unwrap();
        let old = "/b/host_env_placehold/lib:/usr/lib/x86_64:$ORIGIN/../share";
        assert_eq!(
            rewrite(old, prefix, Path::new("bin/tool"), &config, &none),
            "$ORIGIN/../lib:$ORIGIN/../share"
        );
        let allow = matcher(["/usr/lib/**"].into_iter()).unwrap();
        assert_eq!(
            rewrite(old, prefix, Path::new("bin/tool"), &config, &allow),
            "$ORIGIN/../lib:$ORIGIN/../share:/usr/lib/x86_64"
        );
        assert_eq!(
            rewrite("/opt/x", prefix, Path::new("bin/tool"), &config, &none),
            "$ORIGIN/../lib"
        );
        let custom = DynamicLinking {
            rpaths: vec!["lib/".into(), "lib/extra".into()],
            ..DynamicLinking::default()
        };
        assert_eq!(
            rewrite(
                "/b/host_env_placehold/lib",
                prefix,
                Path::new("lib/libx.so"),
                &custom,
                &none
            ),
            "$ORIGIN:$ORIGIN/extra"
        );
    }
}
