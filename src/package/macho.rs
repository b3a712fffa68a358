//! Mach-O relocation (macOS), by the rules ELF files follow: the install
//! name (`LC_ID_DYLIB`) and every linked library (`LC_LOAD_DYLIB` and
//! kin) inside the host prefix become `@rpath/…` (relative to `lib/`) or
//! `@loader_path/…`; `LC_RPATH` entries inside the prefix become
//! `@loader_path`-relative, entries outside it are removed unless
//! `rpath_allowlist` keeps them, and the `rpaths` directories are added.
//! Load commands are rewritten with arwen (as `install_name_tool` does),
//! after checking that the header has room for them.

use std::path::Path;

use goblin::mach::{Mach, MachO};
use miette::{miette, Result};

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

/// The edits that relocate the Mach-O file `rel` (relative to `prefix`).
pub fn plan(data: &[u8], prefix: &Path, rel: &Path, config: &DynamicLinking, allow: &GlobList) -> Result<Vec<Edit>> {
    let macho = first_arch(data)?;
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

/// Apply `edits` to `data`; each edit is checked against the header space
/// first, so a file linked without enough padding is an error, not a
/// corrupted binary.
pub fn apply(data: &[u8], edits: &[Edit], file: &Path) -> Result<Vec<u8>> {
    let mut bytes = data.to_vec();
    for edit in edits {
        // A replaced command frees its own bytes first.
        let grows = match edit {
            Edit::AddRpath(new) => command_size(new),
            Edit::Library { old, new } | Edit::ChangeRpath { old, new } => {
                command_size(new).saturating_sub(command_size(old))
            }
            Edit::Id(new) => {
                let old = first_arch(&bytes)?.name.map(command_size).unwrap_or(0);
                command_size(new).saturating_sub(old)
            }
            Edit::RemoveRpath(_) => 0,
        };
        if grows > header_space(&bytes)? {
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

/// Bytes a load command holding `path` takes at most (header, string,
/// NUL, alignment to 8).
fn command_size(path: &str) -> usize {
    (24 + path.len() + 1).div_ceil(8) * 8
}

/// Free bytes between the load commands and the first section or segment
/// data, the smallest over all architectures.
fn header_space(data: &[u8]) -> Result<usize> {
    let space = |m: &MachO| -> usize {
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
    };
    match Mach::parse(data).map_err(|e| miette!("not a readable Mach-O file: {e}"))? {
        Mach::Binary(m) => Ok(space(&m)),
        Mach::Fat(fat) => {
            let mut min = usize::MAX;
            for arch in fat.into_iter() {
                if let Ok(goblin::mach::SingleArch::MachO(m)) = arch {
                    min = min.min(space(&m));
                }
            }
            Ok(min)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built by `tests/fixtures/macho/generate.sh` with rust-lld (ld64):
    /// libbar links libfoo; both have their install name, libfoo and a
    /// vendor directory as run paths, all under this prefix.
    const PREFIX: &str = "/opt/build/host_env_placehold_placehold";

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/macho")
                .join(name),
        )
        .unwrap()
    }

    fn none() -> GlobList {
        GlobList::new(&[]).unwrap()
    }

    #[test]
    fn fixtures_are_mach_o_and_elf_is_not() {
        assert!(is_macho(&fixture("libbar.dylib")));
        assert!(!is_macho(b"\x7fELF\x02\x01\x01\0"));
        assert!(!is_macho(b"\xca\xfe\xba\xbe\0\0\0\x34 java class"));
    }

    #[test]
    fn prefix_paths_become_rpath_and_loader_path_relative() {
        let data = fixture("libbar.dylib");
        let config = DynamicLinking::default();
        let edits = plan(
            &data,
            Path::new(PREFIX),
            Path::new("lib/libbar.dylib"),
            &config,
            &none(),
        )
        .unwrap();
        assert_eq!(
            edits,
            vec![
                Edit::Id("@rpath/libbar.dylib".into()),
                Edit::Library {
                    old: format!("{PREFIX}/lib/libfoo.dylib"),
                    new: "@rpath/libfoo.dylib".into()
                },
                Edit::ChangeRpath {
                    old: format!("{PREFIX}/lib"),
                    new: "@loader_path".into()
                },
                Edit::RemoveRpath("/opt/vendor/lib".into()),
            ]
        );
        let out = apply(&data, &edits, Path::new("libbar.dylib")).unwrap();
        let m = first_arch(&out).unwrap();
        assert_eq!(m.name, Some("@rpath/libbar.dylib"));
        assert_eq!(m.libs[1..], ["@rpath/libfoo.dylib"]);
        assert_eq!(m.rpaths, ["@loader_path"]);
        // Nothing of the build prefix is left.
        assert!(!out.windows(PREFIX.len()).any(|w| w == PREFIX.as_bytes()));
        // Relocating again changes nothing.
        assert!(
            plan(&out, Path::new(PREFIX), Path::new("lib/libbar.dylib"), &config, &none())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn allowlisted_rpaths_stay_and_configured_ones_are_added() {
        let data = fixture("libbar.dylib");
        let config = DynamicLinking {
            rpaths: vec!["lib/".into(), "lib/plugins".into()],
            ..DynamicLinking::default()
        };
        let allow = {
            let g = crate::recipe::model::Glob {
                pattern: "/opt/vendor/**".into(),
                span: marked_yaml::Span::new_blank(),
            };
            GlobList::new(&[g]).map_err(|(m, _)| m).unwrap()
        };
        // From a file in bin/, the prefix's lib/ is `../lib`.
        let edits = plan(&data, Path::new(PREFIX), Path::new("bin/tool"), &config, &allow).unwrap();
        let out = apply(&data, &edits, Path::new("tool")).unwrap();
        let m = first_arch(&out).unwrap();
        assert_eq!(
            m.rpaths,
            ["@loader_path/../lib", "/opt/vendor/lib", "@loader_path/../lib/plugins"]
        );
    }

    #[test]
    fn a_header_without_room_is_an_error_not_a_broken_file() {
        let data = fixture("libbar.dylib");
        let long = format!("@loader_path/{}", "x".repeat(5000));
        let err = apply(&data, &[Edit::AddRpath(long)], Path::new("lib/libbar.dylib")).unwrap_err();
        assert!(format!("{err:?}").contains("headerpad_max_install_names"), "{err:?}");
    }
}
