//! Code signatures of relocated Mach-O files. A signature's code
//! directories hash every page of the file up to the signature, load
//! commands included, and macOS kills an arm64 process whose pages do not
//! match; so after the load commands change, every code directory's page
//! hashes are computed again, as `codesign -f -s -` would. The special
//! slots (requirements, entitlements, `Info.plist`) do not cover load
//! commands and stay. A signature made with a developer identity cannot
//! be redone without its key: it becomes an ad hoc one, as conda-build
//! and rattler-build leave it, and the caller warns.
//!
//! The formats are Apple's `cs_blobs.h`: a big-endian super blob whose
//! index points at code directories and at most one CMS blob.

use goblin::mach::load_command::CommandVariant;
use goblin::mach::MachO;
use miette::{miette, Result};
use sha2::Digest;

const SUPER_BLOB: u32 = 0xfade_0cc0;
const CODE_DIRECTORY: u32 = 0xfade_0c02;
const CMS_WRAPPER: u32 = 0xfade_0b01;
/// `CS_ADHOC`: the code directory is not covered by a CMS signature.
const FLAG_ADHOC: u32 = 0x2;

/// What [`resign`] did to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signature {
    /// The file has no code signature.
    Unsigned,
    /// The page hashes were computed again; an ad hoc signature stays valid.
    Rehashed,
    /// A developer identity's signature was replaced by an ad hoc one.
    MadeAdHoc,
}

/// Recompute the code signature of the thin Mach-O file `data` in place
/// (the file's size and the signature's place do not change).
pub fn resign(data: &mut [u8]) -> Result<Signature> {
    let Some((start, size)) = signature_range(data)? else {
        return Ok(Signature::Unsigned);
    };
    let end = start
        .checked_add(size)
        .filter(|&e| e <= data.len())
        .ok_or_else(|| miette!("the code signature lies outside the file"))?;
    if be32(data, start)? != SUPER_BLOB {
        return Err(miette!("the code signature is not a signature super blob"));
    }
    let count = be32(data, start + 8)? as usize;
    let mut directories = Vec::new();
    let mut identity = false;
    for i in 0..count {
        let blob = start + be32(data, start + 16 + 8 * i)? as usize;
        if blob + 8 > end {
            return Err(miette!("a code signature blob lies outside the signature"));
        }
        match be32(data, blob)? {
            CODE_DIRECTORY => directories.push(blob),
            CMS_WRAPPER if be32(data, blob + 4)? > 8 => {
                // An identity's signature over the old code directory: make
                // it an empty wrapper, which is what an ad hoc signature has.
                let len = (be32(data, blob + 4)? as usize).min(end - blob);
                data[blob + 8..blob + len].fill(0);
                data[blob + 4..blob + 8].copy_from_slice(&8u32.to_be_bytes());
                identity = true;
            }
            _ => {}
        }
    }
    if directories.is_empty() {
        return Err(miette!("the code signature has no code directory"));
    }
    for cd in directories {
        rehash(data, cd, start)?;
        if identity {
            let flags = be32(data, cd + 12)? | FLAG_ADHOC;
            data[cd + 12..cd + 16].copy_from_slice(&flags.to_be_bytes());
        }
    }
    Ok(if identity {
        Signature::MadeAdHoc
    } else {
        Signature::Rehashed
    })
}

/// Whether every page hash of every code directory matches `data` (for tests
/// and for checking a file before trusting its signature format).
pub fn verify(data: &[u8]) -> Result<bool> {
    let mut copy = data.to_vec();
    if resign(&mut copy)? == Signature::MadeAdHoc {
        return Ok(false);
    }
    Ok(copy == data)
}

/// `LC_CODE_SIGNATURE`'s file offset and size.
fn signature_range(data: &[u8]) -> Result<Option<(usize, usize)>> {
    let macho = MachO::parse(data, 0).map_err(|e| miette!("not a readable Mach-O file: {e}"))?;
    Ok(macho.load_commands.iter().find_map(|lc| match &lc.command {
        CommandVariant::CodeSignature(c) => Some((c.dataoff as usize, c.datasize as usize)),
        _ => None,
    }))
}

/// Compute the code-slot hashes of the code directory at `cd` again.
fn rehash(data: &mut [u8], cd: usize, signature: usize) -> Result<()> {
    let version = be32(data, cd + 8)?;
    let hash_offset = be32(data, cd + 16)? as usize;
    let slots = be32(data, cd + 28)? as usize;
    let mut limit = be32(data, cd + 32)? as u64;
    let hash_size = *data.get(cd + 36).ok_or_else(short)? as usize;
    let hash_type = *data.get(cd + 37).ok_or_else(short)?;
    let page_shift = *data.get(cd + 39).ok_or_else(short)?;
    if version >= 0x20100 && be32(data, cd + 44)? != 0 {
        return Err(miette!("scatter code directories are not supported yet"));
    }
    if limit == 0 && version >= 0x20300 {
        limit = u64::from(be32(data, cd + 56)?) << 32 | u64::from(be32(data, cd + 60)?);
    }
    let limit = usize::try_from(limit).map_err(|_| short())?;
    if limit > signature {
        return Err(miette!("the code directory covers the signature itself"));
    }
    let page = if page_shift == 0 {
        limit.max(1)
    } else {
        1usize << page_shift.min(31)
    };
    if slots != limit.div_ceil(page) {
        return Err(miette!(
            "the code directory has {slots} page hashes for {} pages",
            limit.div_ceil(page)
        ));
    }
    let first = cd + hash_offset;
    if first + slots * hash_size > data.len() {
        return Err(short());
    }
    for slot in 0..slots {
        let from = slot * page;
        let digest = digest(hash_type, &data[from..(from + page).min(limit)])?;
        if digest.len() < hash_size {
            return Err(miette!(
                "code directory hash size {hash_size} is too large for its hash type"
            ));
        }
        let at = first + slot * hash_size;
        data[at..at + hash_size].copy_from_slice(&digest[..hash_size]);
    }
    Ok(())
}

/// One page's hash, by the code directory's hash type.
fn digest(hash_type: u8, bytes: &[u8]) -> Result<Vec<u8>> {
    Ok(match hash_type {
        1 => sha1::Sha1::digest(bytes).to_vec(),
        // 3 is SHA-256 truncated to the directory's 20-byte hash size.
        2 | 3 => sha2::Sha256::digest(bytes).to_vec(),
        4 => sha2::Sha384::digest(bytes).to_vec(),
        other => return Err(miette!("code directory hash type {other} is not supported yet")),
    })
}

fn be32(data: &[u8], at: usize) -> Result<u32> {
    data.get(at..at + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(short)
}

fn short() -> miette::Report {
    miette!("the code signature is truncated")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm64() -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/macho/libbar-arm64.dylib");
        std::fs::read(path).unwrap()
    }

    /// `data` with its super blob rebuilt to also hold a CMS blob, as an
    /// identity's signature has.
    fn with_identity(data: &[u8]) -> Vec<u8> {
        let (start, _) = signature_range(data).unwrap().unwrap();
        let cd_at = start + be32(data, start + 16).unwrap() as usize;
        let cd = &data[cd_at..cd_at + be32(data, cd_at + 4).unwrap() as usize];
        let cms = [&CMS_WRAPPER.to_be_bytes()[..], &16u32.to_be_bytes(), b"identity"].concat();
        let index = 12 + 2 * 8;
        let length = (index + cd.len() + cms.len()) as u32;
        let mut blob = [
            SUPER_BLOB,
            length,
            2,
            0,
            index as u32,
            0x10000,
            (index + cd.len()) as u32,
        ]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect::<Vec<u8>>();
        blob.extend_from_slice(cd);
        blob.extend_from_slice(&cms);
        let mut out = data[..start].to_vec();
        out.extend_from_slice(&blob);
        // LC_CODE_SIGNATURE's datasize follows cmd, cmdsize and dataoff (little-endian, as the file).
        let macho = MachO::parse(data, 0).unwrap();
        let lc = macho
            .load_commands
            .iter()
            .find(|lc| matches!(lc.command, CommandVariant::CodeSignature(_)))
            .unwrap();
        out[lc.offset + 12..lc.offset + 16].copy_from_slice(&length.to_le_bytes());
        out
    }

    #[test]
    fn an_identity_signature_becomes_ad_hoc() {
        let mut data = with_identity(&arm64());
        assert!(!verify(&data).unwrap());
        assert_eq!(resign(&mut data).unwrap(), Signature::MadeAdHoc);
        // Now an ad hoc signature: empty CMS wrapper, CS_ADHOC, hashes valid.
        assert!(verify(&data).unwrap());
        assert!(!data.windows(8).any(|w| w == b"identity"));
        let (start, _) = signature_range(&data).unwrap().unwrap();
        let cd = start + be32(&data, start + 16).unwrap() as usize;
        assert_ne!(be32(&data, cd + 12).unwrap() & FLAG_ADHOC, 0);
    }

    #[test]
    fn unsigned_files_and_foreign_blobs_are_told_apart() {
        let unsigned = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/macho/libbar.dylib");
        let mut unsigned = std::fs::read(unsigned).unwrap();
        assert_eq!(resign(&mut unsigned).unwrap(), Signature::Unsigned);
        let mut data = arm64();
        let (start, _) = signature_range(&data).unwrap().unwrap();
        data[start] ^= 0xff;
        assert!(resign(&mut data).is_err());
    }
}
