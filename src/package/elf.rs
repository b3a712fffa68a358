//! Reading the dynamic section of ELF files: the libraries a binary needs
//! (`DT_NEEDED`) and its run paths (`DT_RPATH`/`DT_RUNPATH`),
//! with the file offsets relocation needs to rewrite them in place.

use std::path::Path;

use goblin::elf::dynamic::{DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME};

/// A run-path string in the file.
#[derive(Debug, Clone)]
pub struct RunPath {
    /// File offset of its first byte.
    pub offset: usize,
    /// Its bytes, without the NUL.
    pub bytes: Vec<u8>,
    /// DT_RPATH (as opposed to DT_RUNPATH).
    pub is_rpath: bool,
    /// Another dynamic string lies inside these bytes (the linker merged
    /// string tails), so they cannot be overwritten.
    pub shared: bool,
}

/// What the dynamic section of an ELF file says about linking.
#[derive(Debug, Clone, Default)]
pub struct Dynamic {
    /// `DT_NEEDED` entries, in order.
    pub needed: Vec<String>,
    /// `DT_RPATH` and `DT_RUNPATH` strings, in order.
    pub run_paths: Vec<RunPath>,
}

/// glibc's libraries (by soname prefix): part of every Linux system conda
/// supports, never shipped in packages.
const GLIBC: &[&str] = &[
    "ld-linux",
    "ld64.so",
    "libc.so",
    "libm.so",
    "libmvec.so",
    "libdl.so",
    "libpthread.so",
    "librt.so",
    "libutil.so",
    "libresolv.so",
    "libcrypt.so.1",
    "libnsl.so.1",
    "libanl.so",
    "libthread_db.so",
    "libBrokenLocale.so",
    "linux-vdso.so",
    "linux-gate.so",
];

/// Whether a `DT_NEEDED` name is one of glibc's libraries.
pub fn is_system_library(name: &str) -> bool {
    GLIBC.iter().any(|p| name.starts_with(p))
}

/// Whether the file starts with the ELF magic number.
pub fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == b"\x7fELF")
}

impl Dynamic {
    /// The dynamic section of `data`; `None` for files goblin cannot read as
    /// a dynamic ELF file or whose string table is out of range.
    pub fn parse(data: &[u8]) -> Option<Dynamic> {
        let elf = goblin::elf::Elf::parse(data).ok()?;
        let dynamic = elf.dynamic.as_ref()?;
        // goblin has already turned DT_STRTAB's address into a file offset.
        let strtab = dynamic.info.strtab;
        let strsz = dynamic.info.strsz;
        if strtab == 0 || strtab.checked_add(strsz)? > data.len() {
            return None;
        }
        let table = &data[strtab..strtab + strsz];
        let string_at = |value: u64| -> Option<(usize, &[u8])> {
            let start = usize::try_from(value).ok().filter(|s| *s < strsz)?;
            let len = table[start..].iter().position(|&b| b == 0)?;
            Some((start, &table[start..start + len]))
        };
        let strings: Vec<usize> = dynamic
            .dyns
            .iter()
            .filter(|d| [DT_NEEDED, DT_SONAME, DT_RPATH, DT_RUNPATH].contains(&d.d_tag))
            .filter_map(|d| usize::try_from(d.d_val).ok())
            .collect();
        let mut out = Dynamic::default();
        for d in &dynamic.dyns {
            match d.d_tag {
                // A string out of range is skipped, not fatal: the rest of
                // the file can still be read and relocated.
                DT_NEEDED => {
                    if let Some((_, name)) = string_at(d.d_val) {
                        out.needed.push(String::from_utf8_lossy(name).into_owned());
                    }
                }
                DT_RPATH | DT_RUNPATH => {
                    let Some((start, bytes)) = string_at(d.d_val) else {
                        continue;
                    };
                    let shared = strings.iter().any(|&o| o > start && o <= start + bytes.len());
                    out.run_paths.push(RunPath {
                        offset: strtab + start,
                        bytes: bytes.to_vec(),
                        is_rpath: d.d_tag == DT_RPATH,
                        shared,
                    });
                }
                _ => {}
            }
        }
        Some(out)
    }
}
