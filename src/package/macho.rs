//! Mach-O relocation (macOS), by the rules ELF files follow: the install
//! name (`LC_ID_DYLIB`) and every linked library (`LC_LOAD_DYLIB` and
//! kin) inside the host prefix become `@rpath/…` (relative to `lib/`) or
//! `@loader_path/…`; `LC_RPATH` entries inside the prefix become
//! `@loader_path`-relative, entries outside it are removed unless
//! `rpath_allowlist` keeps them, and the `rpaths` directories are added.
//! Load commands are rewritten with arwen (as `install_name_tool` does),
//! after checking that the header has room for them; every architecture
//! of a universal (fat) file is planned and edited on its own, and a code
//! signature is computed again afterwards (see [`super::codesign`]).

use std::path::Path;

use goblin::mach::load_command::CommandVariant;
use goblin::mach::{Mach, MachO};
use miette::{miette, Result};

use super::codesign::{self, Signature};
use super::contents::relative_path;
use super::glob::GlobList;
use crate::recipe::model::DynamicLinking;

/// One load-command edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Set `LC_ID_DYLIB`.
    Id(String),
    /// Change a linked library's name.
    Library { old: String, new: String },
    /// Change a run path.
    ChangeRpath { old: String, new: String },
    /// Remove a run path.
    RemoveRpath(String),
    /// Add a run path.
    AddRpath(String),
}

/// Whether `data` starts like a Mach-O file (thin or fat, either byte order).
pub fn has_magic(data: &[u8]) -> bool {
    data.get(..4).is_some_and(|m| {
        matches!(
            u32::from_be_bytes([m[0], m[1], m[2], m[3]]),
            0xfeed_facf | 0xcffa_edfe | 0xfeed_face | 0xcefa_edfe | 0xcafe_babe
        )
    })
}

/// Whether `data` is a Mach-O file (thin or fat) goblin can read.
pub fn is_macho(data: &[u8]) -> bool {
    // 0xcafebabe is also a Java class file's magic; goblin tells them apart.
    has_magic(data) && first_arch(data).is_ok()
}

/// A relocated Mach-O file.
#[derive(Debug)]
pub struct Relocated {
    /// The new file contents (same size as before).
    pub bytes: Vec<u8>,
    /// The edits, per architecture that needed any.
    pub edits: Vec<Edit>,
    /// What happened to the code signatures (the strongest change over all
    /// architectures).
    pub signature: Signature,
}

/// Relocate the Mach-O file `rel` (relative to `prefix`): plan and apply
/// the edits of each architecture, then sign it again. `None` when
/// nothing needs to change.
pub fn relocate(
    data: &[u8],
    prefix: &Path,
    rel: &Path,
    config: &DynamicLinking,
    allow: &GlobList,
) -> Result<Option<Relocated>> {
    // The byte ranges of the thin files: the whole file, or each architecture.
    let ranges: Vec<(usize, usize)> = match Mach::parse(data).map_err(|e| miette!("not a readable Mach-O file: {e}"))? {
        Mach::Binary(_) => vec![(0, data.len())],
        Mach::Fat(fat) => {
            let arches = fat
                .arches()
                .map_err(|e| miette!("a malformed universal Mach-O file: {e}"))?;
            let mut ranges = Vec::new();
            for (i, arch) in arches.iter().enumerate() {
                // Static archives inside a universal file have no load commands to edit.
                if matches!(fat.get(i), Ok(goblin::mach::SingleArch::MachO(_))) {
                    let (start, size) = (arch.offset as usize, arch.size as usize);
                    if start.checked_add(size).is_none_or(|end| end > data.len()) {
                        return Err(miette!("architecture {i} lies outside the file"));
                    }
                    ranges.push((start, size));
                }
            }
            ranges
        }
    };
    let mut out: Option<Relocated> = None;
    for (start, size) in ranges {
        let thin = &data[start..start + size];
        let edits = plan(thin, prefix, rel, config, allow)?;
        if edits.is_empty() {
            continue;
        }
        let mut bytes = apply(thin, &edits, rel)?;
        if bytes.len() != size {
            return Err(miette!(
                "{}: editing the load commands changed the file's size",
                rel.display()
            ));
        }
        let signature =
            codesign::resign(&mut bytes).map_err(|e| e.wrap_err(format!("{}: code signature", rel.display())))?;
        let done = out.get_or_insert_with(|| Relocated {
            bytes: data.to_vec(),
            edits: Vec::new(),
            signature: Signature::Unsigned,
        });
        done.bytes[start..start + size].copy_from_slice(&bytes);
        for edit in edits {
            if !done.edits.contains(&edit) {
                done.edits.push(edit);
            }
        }
        done.signature = done.signature.max(signature);
    }
    Ok(out)
}

/// The edits that relocate the thin Mach-O file `rel` (relative to `prefix`).
pub fn plan(data: &[u8], prefix: &Path, rel: &Path, config: &DynamicLinking, allow: &GlobList) -> Result<Vec<Edit>> {
    let macho = MachO::parse(data, 0).map_err(|e| miette!("not a readable Mach-O file: {e}"))?;
    let prefix_text = prefix.to_string_lossy();
    let dir = rel.parent().unwrap_or(Path::new(""));
    let inside = |p: &str| {
        p.strip_prefix(prefix_text.as_ref())
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
            .map(|rest| rest.trim_start_matches('/').to_string())
    };
    let loader = |to: &Path| match relative_path(dir, to) {
        p if p == Path::new(".") => "@loader_path".to_string(),
        p => format!("@loader_path/{}", p.display()),
    };
    // A library inside the prefix: `@rpath/` + its path below `lib/`, else `@loader_path/…`.
    let library_name = |path: &str| match path.strip_prefix("lib/") {
        Some(below) => format!("@rpath/{below}"),
        None => loader(Path::new(path)),
    };
    let mut edits = Vec::new();
    if let Some(id) = macho.name.and_then(inside) {
        edits.push(Edit::Id(library_name(&id)));
    }
    for lib in macho.libs.iter().skip(1) {
        if let Some(p) = inside(lib) {
            edits.push(Edit::Library {
                old: lib.to_string(),
                new: library_name(&p),
            });
        }
    }
    let mut kept: Vec<String> = Vec::new();
    for rpath in &macho.rpaths {
        let new = if let Some(p) = inside(rpath) {
            Some(loader(Path::new(&p)))
        } else if rpath.starts_with("@loader_path") || rpath.starts_with("@executable_path") || allow.is_match(rpath) {
            Some(rpath.to_string())
        } else {
            None
        };
        match new {
            Some(n) if kept.contains(&n) => edits.push(Edit::RemoveRpath(rpath.to_string())),
            Some(n) if n != *rpath => {
                edits.push(Edit::ChangeRpath {
                    old: rpath.to_string(),
                    new: n.clone(),
                });
                kept.push(n);
            }
            Some(n) => kept.push(n),
            None => edits.push(Edit::RemoveRpath(rpath.to_string())),
        }
    }
    for r in &config.rpaths {
        let wanted = loader(Path::new(r.trim_end_matches('/')));
        if !kept.contains(&wanted) {
            edits.push(Edit::AddRpath(wanted.clone()));
            kept.push(wanted);
        }
    }
    Ok(edits)
}

/// Apply `edits` to the thin Mach-O file `data`; each edit is checked
/// against the header space first, so a file linked without enough
/// padding is an error, not a corrupted binary.
pub fn apply(data: &[u8], edits: &[Edit], file: &Path) -> Result<Vec<u8>> {
    let mut bytes = data.to_vec();
    for edit in edits {
        let macho = MachO::parse(&bytes, 0).map_err(|e| miette!("{}: {e}", file.display()))?;
        // A replaced command frees its own bytes first.
        let freed = match edit {
            Edit::AddRpath(_) => 0,
            _ => existing_size(&macho, &bytes, edit),
        };
        let grows = match edit {
            Edit::RemoveRpath(_) => 0,
            _ => command_size(edit, macho.is_64).saturating_sub(freed),
        };
        if grows > header_space(&macho) {
            return Err(miette!(
                help = "link it with `-headerpad_max_install_names` (conda-forge's compilers do), or keep it out of relocation with `binary_relocation`",
                "{}: no room in the Mach-O header for the load command `{edit:?}`",
                file.display()
            ));
        }
        let mut c = arwen::macho::MachoContainer::parse(&bytes).map_err(|e| miette!("{}: {e}", file.display()))?;
        let done = match edit {
            Edit::Id(new) => c.change_install_id(new),
            Edit::Library { old, new } => c.change_install_name(old, new),
            Edit::ChangeRpath { old, new } => c.change_rpath(old, new),
            Edit::RemoveRpath(old) => c.remove_rpath(old),
            Edit::AddRpath(new) => c.add_rpath(new),
        };
        done.map_err(|e| miette!("{}: {edit:?}: {e}", file.display()))?;
        bytes = c.data;
    }
    Ok(bytes)
}

/// The first (or only) architecture of a Mach-O file.
fn first_arch(data: &[u8]) -> Result<MachO<'_>> {
    match Mach::parse(data).map_err(|e| miette!("not a readable Mach-O file: {e}"))? {
        Mach::Binary(m) => Ok(m),
        Mach::Fat(fat) => match fat.get(0) {
            Ok(goblin::mach::SingleArch::MachO(m)) => Ok(m),
            _ => Err(miette!("a fat Mach-O file without a readable first architecture")),
        },
    }
}

/// The size of the load command an edit writes, as arwen builds it: the
/// fixed part (12 bytes for `LC_RPATH`, 24 for a dylib command), the path
/// with its NUL padded to 4, the whole aligned to 8 (64-bit) or 4.
fn command_size(edit: &Edit, is_64: bool) -> usize {
    let (fixed, path) = match edit {
        Edit::Id(p) | Edit::Library { new: p, .. } => (24, p),
        Edit::ChangeRpath { new: p, .. } | Edit::AddRpath(p) | Edit::RemoveRpath(p) => (12, p),
    };
    let size = fixed + (path.len() + 1).next_multiple_of(4);
    size.next_multiple_of(if is_64 { 8 } else { 4 })
}

/// The size of the load command an edit replaces or removes (0 if absent).
fn existing_size(macho: &MachO, data: &[u8], edit: &Edit) -> usize {
    let string_at = |offset: usize| -> &[u8] {
        let rest = data.get(offset..).unwrap_or_default();
        &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())]
    };
    macho
        .load_commands
        .iter()
        .find(|lc| match (&lc.command, edit) {
            (CommandVariant::IdDylib(_), Edit::Id(_)) => true,
            (
                CommandVariant::LoadDylib(c)
                | CommandVariant::LoadWeakDylib(c)
                | CommandVariant::ReexportDylib(c)
                | CommandVariant::LoadUpwardDylib(c)
                | CommandVariant::LazyLoadDylib(c),
                Edit::Library { old, .. },
            ) => string_at(lc.offset + c.dylib.name as usize) == old.as_bytes(),
            (CommandVariant::Rpath(c), Edit::ChangeRpath { old, .. } | Edit::RemoveRpath(old)) => {
                string_at(lc.offset + c.path as usize) == old.as_bytes()
            }
            _ => false,
        })
        .map_or(0, |lc| lc.command.cmdsize())
}

/// Free bytes between the load commands and the first section or segment
/// data of a thin file.
fn header_space(m: &MachO) -> usize {
    let header = if m.is_64 { 32 } else { 28 };
    let used = header + m.header.sizeofcmds as usize;
    let mut end = usize::MAX;
    for seg in m.segments.iter() {
        if seg.fileoff > 0 && seg.filesize > 0 {
            end = end.min(seg.fileoff as usize);
        }
        for (section, _) in seg.sections().unwrap_or_default() {
            if section.offset > 0 {
                end = end.min(section.offset as usize);
            }
        }
    }
    end.saturating_sub(used)
}

#[cfg(test)]
#[path = "macho_tests.rs"]
mod tests;
