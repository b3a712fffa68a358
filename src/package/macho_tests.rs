//! Tests of [`super`] on the fixtures of `tests/fixtures/macho`.

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

/// The thin architectures of a fixture, parsed.
fn arches(data: &[u8]) -> Vec<MachO<'_>> {
    match Mach::parse(data).unwrap() {
        Mach::Binary(m) => vec![m],
        Mach::Fat(fat) => (0..fat.narches)
            .map(|i| match fat.get(i).unwrap() {
                goblin::mach::SingleArch::MachO(m) => m,
                _ => panic!("not a Mach-O slice"),
            })
            .collect(),
    }
}

#[test]
fn relocation_recomputes_the_signature_ld64_made() {
    let data = fixture("libbar-arm64.dylib");
    // Our hashing agrees with the linker's: the untouched file verifies.
    assert!(codesign::verify(&data).unwrap());
    let done = relocate(
        &data,
        Path::new(PREFIX),
        Path::new("lib/libbar.dylib"),
        &DynamicLinking::default(),
        &none(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(done.signature, Signature::Rehashed);
    assert_eq!(done.bytes.len(), data.len());
    assert!(codesign::verify(&done.bytes).unwrap());
    // The edits changed hashed bytes, so the old signature would not have matched.
    let mut stale = done.bytes.clone();
    let sig = data.windows(4).position(|w| w == [0xfa, 0xde, 0x0c, 0xc0]).unwrap();
    stale[sig..].copy_from_slice(&data[sig..]);
    assert!(!codesign::verify(&stale).unwrap());
    let m = &arches(&done.bytes)[0];
    assert_eq!(m.rpaths, ["@loader_path"]);
    assert_eq!(m.libs[1..], ["@rpath/libfoo.dylib"]);
}

#[test]
fn each_architecture_of_a_universal_file_is_planned_on_its_own() {
    // The x86_64 slice has a vendor run path the arm64 slice lacks.
    let data = fixture("libbar-universal.dylib");
    assert!(is_macho(&data));
    let done = relocate(
        &data,
        Path::new(PREFIX),
        Path::new("lib/libbar.dylib"),
        &DynamicLinking::default(),
        &none(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(done.bytes.len(), data.len());
    assert!(done.edits.contains(&Edit::RemoveRpath("/opt/vendor/lib".into())));
    let slices = arches(&done.bytes);
    assert_eq!(slices.len(), 2);
    for m in &slices {
        assert_eq!(m.name, Some("@rpath/libbar.dylib"));
        assert_eq!(m.rpaths, ["@loader_path"]);
    }
    // The arm64 slice's signature matches its new bytes.
    let arm = match Mach::parse(&done.bytes).unwrap() {
        Mach::Fat(fat) => fat.arches().unwrap()[1],
        Mach::Binary(_) => unreachable!(),
    };
    assert!(codesign::verify(arm.slice(&done.bytes)).unwrap());
    assert!(!done.bytes.windows(PREFIX.len()).any(|w| w == PREFIX.as_bytes()));
}

#[test]
fn the_header_space_check_is_exact() {
    let data = fixture("libbar.dylib");
    let space = header_space(&arches(&data)[0]);
    // An LC_RPATH is 12 bytes and the path with its NUL, padded to 4, aligned to 8.
    let fits = format!("@loader_path/{}", "x".repeat(space - 12 - 1 - "@loader_path/".len()));
    assert_eq!(command_size(&Edit::AddRpath(fits.clone()), true), space);
    let out = apply(&data, &[Edit::AddRpath(fits.clone())], Path::new("libbar.dylib")).unwrap();
    assert_eq!(out.len(), data.len());
    assert!(arches(&out)[0].rpaths.contains(&fits.as_str()));
    let too_long = format!("{fits}x");
    assert!(apply(&data, &[Edit::AddRpath(too_long)], Path::new("libbar.dylib")).is_err());
}
