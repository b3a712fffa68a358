//! Source archives: a `path` source that is an archive is extracted (every
//! format kiln reads, a single top-level folder stripped, `file_name` keeps
//! the file), and hostile archives are refused with nothing written outside
//! the work directory. Archives are made by the test (Python's tarfile and
//! zipfile, the zstd crate); the real `kiln` binary builds them.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// A recipe with one `path` source (`extra` adds source keys) whose script
/// copies the work directory's `listing` of files into the package.
fn archive_recipe(dir: &Path, name: &str, archive: &str, extra: &str) -> std::path::PathBuf {
    write_recipe(
        dir,
        name,
        &format!(
            "package: {{name: {name}, version: '1.0'}}\nsource:\n  path: ../{archive}\n{extra}build:\n  script:\n    - mkdir -p $PREFIX/share\n    - find . -type f -not -name 'conda_build*' | sort > $PREFIX/share/listing.txt\n    - cp -r . $PREFIX/share/tree\n"
        ),
    )
}

fn listing(out: &Path) -> String {
    let x = extract(&packages(out)[0]);
    fs::read_to_string(x.path().join("share/listing.txt")).unwrap()
}

#[test]
fn archives_in_every_format_are_extracted_with_the_top_folder_stripped() {
    let dir = tempfile::tempdir().unwrap();
    python(
        dir.path(),
        r##"
import io, tarfile, zipfile
def add(t, name, data, mode=0o644):
    info = tarfile.TarInfo(name); info.size = len(data); info.mode = mode
    t.addfile(info, io.BytesIO(data))
for ext, mode in [("tar", "w"), ("tar.gz", "w:gz"), ("tgz", "w:gz"), ("tar.bz2", "w:bz2")]:
    with tarfile.open(f"lib-1.0.{ext}", mode) as t:
        add(t, "lib-1.0/src/lib.c", b"int f(void) { return 1; }\n")
        add(t, "lib-1.0/configure", b"#!/bin/sh\n", 0o755)
with tarfile.open("plain.tar", "w") as t:
    add(t, "lib-1.0/src/lib.c", b"x\n")
with tarfile.open("modes.tar.gz", "w:gz") as t:
    add(t, "m/bin/tool", b"#!/bin/sh\n", 0o4777)
    info = tarfile.TarInfo("m/ro"); info.type = tarfile.DIRTYPE; info.mode = 0o555; t.addfile(info)
    add(t, "m/ro/inside.txt", b"ro\n")
    info = tarfile.TarInfo("m/lib/libx.so"); info.type = tarfile.SYMTYPE; info.linkname = "../bin/tool"; t.addfile(info)
with zipfile.ZipFile("zlinks.zip", "w") as z:
    z.writestr("z/real.txt", "real\n")
    info = zipfile.ZipInfo("z/link.txt"); info.external_attr = (0o120777 << 16)
    z.writestr(info, "real.txt")
with zipfile.ZipFile("lib-1.0.zip", "w") as z:
    z.writestr("lib-1.0/src/lib.c", "int f(void) { return 1; }\n")
    z.writestr("lib-1.0/configure", "#!/bin/sh\n")
with zipfile.ZipFile("two-tops.zip", "w") as z:
    z.writestr("a/one.txt", "1\n")
    z.writestr("b/two.txt", "2\n")
"##,
    );
    let tar = fs::read(dir.path().join("plain.tar")).unwrap();
    let zst = zstd::encode_all(&tar[..], 3).unwrap();
    fs::write(dir.path().join("lib-1.0.tar.zst"), zst).unwrap();

    for (i, archive) in [
        "lib-1.0.tar",
        "lib-1.0.tar.gz",
        "lib-1.0.tgz",
        "lib-1.0.tar.bz2",
        "lib-1.0.zip",
    ]
    .iter()
    .enumerate()
    {
        let r = archive_recipe(dir.path(), &format!("fmt{i}"), archive, "");
        let out = dir.path().join(format!("out{i}"));
        build_ok(&r, &out, &[]);
        assert_eq!(listing(&out), "./configure\n./src/lib.c\n", "{archive}");
        let x = extract(&packages(&out)[0]);
        let configure = x.path().join("share/tree/configure");
        if archive.contains("tar") || archive.contains("tgz") {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&configure).unwrap().permissions().mode();
            assert!(mode & 0o111 != 0, "{archive}: modes are kept");
        }
    }
    let r = archive_recipe(dir.path(), "zst", "lib-1.0.tar.zst", "");
    build_ok(&r, &dir.path().join("out-zst"), &[]);
    assert_eq!(listing(&dir.path().join("out-zst")), "./src/lib.c\n");

    // Modes lose setuid and group/other write; a read-only folder still
    // gets its files; links that stay inside are kept, in tars and zips.
    let r = archive_recipe(dir.path(), "modes", "modes.tar.gz", "");
    build_ok(&r, &dir.path().join("out-modes"), &[]);
    assert_eq!(listing(&dir.path().join("out-modes")), "./bin/tool\n./ro/inside.txt\n");
    let x = extract(&packages(&dir.path().join("out-modes"))[0]);
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(x.path().join("share/tree/bin/tool"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "setuid and world-write dropped: {mode:o}");
    }
    assert_eq!(
        fs::read_link(x.path().join("share/tree/lib/libx.so")).unwrap(),
        Path::new("../bin/tool")
    );
    let r = archive_recipe(dir.path(), "zlinks", "zlinks.zip", "");
    build_ok(&r, &dir.path().join("out-zlinks"), &[]);
    let x = extract(&packages(&dir.path().join("out-zlinks"))[0]);
    assert_eq!(
        fs::read_link(x.path().join("share/tree/link.txt")).unwrap(),
        Path::new("real.txt")
    );

    // Two top-level folders: nothing is stripped.
    let r = archive_recipe(dir.path(), "tops", "two-tops.zip", "");
    build_ok(&r, &dir.path().join("out-tops"), &[]);
    assert_eq!(listing(&dir.path().join("out-tops")), "./a/one.txt\n./b/two.txt\n");

    // `filter` keeps what it selects, after the top folder is stripped.
    let r = archive_recipe(dir.path(), "filtered", "lib-1.0.tar.gz", "  filter: [src/]\n");
    build_ok(&r, &dir.path().join("out-filtered"), &[]);
    assert_eq!(listing(&dir.path().join("out-filtered")), "./src/lib.c\n");

    // `file_name` keeps the archive as a file.
    let r = archive_recipe(dir.path(), "kept", "lib-1.0.tar.gz", "  file_name: kept.tar.gz\n");
    build_ok(&r, &dir.path().join("out-kept"), &[]);
    assert_eq!(listing(&dir.path().join("out-kept")), "./kept.tar.gz\n");
}

#[test]
fn hostile_archives_are_refused_and_nothing_is_written_outside() {
    let dir = tempfile::tempdir().unwrap();
    python(
        dir.path(),
        r#"
import io, tarfile, zipfile
def tar(name, build):
    with tarfile.open(name, "w:gz") as t:
        build(t)
def add(t, name, data=b"evil\n"):
    info = tarfile.TarInfo(name); info.size = len(data)
    t.addfile(info, io.BytesIO(data))
def link(t, name, target, kind):
    info = tarfile.TarInfo(name); info.type = kind; info.linkname = target
    t.addfile(info)
tar("dotdot.tar.gz", lambda t: (add(t, "pkg/ok.txt", b"ok\n"), add(t, "pkg/../../evil-dotdot.txt")))
tar("absolute.tar.gz", lambda t: add(t, "/tmp/kiln-evil-absolute.txt"))
tar("symlink.tar.gz", lambda t: (link(t, "pkg/escape", "../../..", tarfile.SYMTYPE), add(t, "pkg/escape/evil-symlink.txt")))
tar("hardlink.tar.gz", lambda t: link(t, "pkg/hard", "../../../evil-hardlink.txt", tarfile.LNKTYPE))
with zipfile.ZipFile("slip.zip", "w") as z:
    z.writestr("pkg/ok.txt", "ok\n")
    z.writestr("../../evil-zip.txt", "evil\n")
# A link that is lexically inside but, through another link, points out.
tar("through.tar.gz", lambda t: (link(t, "s", ".", tarfile.SYMTYPE), link(t, "s/s/s/l", "../../../evil-through", tarfile.SYMTYPE)))
# Inside the top folder, but out once the top folder is stripped.
tar("strip.tar.gz", lambda t: (add(t, "pkg/ok.txt", b"ok\n"), link(t, "pkg/up", "..", tarfile.SYMTYPE)))
def zlink(z, name, target):
    info = zipfile.ZipInfo(name); info.external_attr = (0o120777 << 16)
    z.writestr(info, target)
with zipfile.ZipFile("zlink.zip", "w") as z:
    z.writestr("pkg/ok.txt", "ok\n")
    zlink(z, "pkg/out", "../../../evil-zlink")
# A link to a file outside, then a file entry of the same name written through it.
import os
open("victim.txt", "w").write("safe\n")
with zipfile.ZipFile("through-link.zip", "w") as z:
    zlink(z, "pkg/f", os.path.abspath("victim.txt"))
    z.writestr("pkg/./f", "evil\n")
"#,
    );
    for (i, (archive, entry)) in [
        ("dotdot.tar.gz", "pkg/../../evil-dotdot.txt"),
        ("absolute.tar.gz", "/tmp/kiln-evil-absolute.txt"),
        ("symlink.tar.gz", "pkg/escape"),
        ("hardlink.tar.gz", "pkg/hard"),
        ("slip.zip", "../../evil-zip.txt"),
        ("through.tar.gz", "`l`"),
        ("strip.tar.gz", "`up`"),
        ("zlink.zip", "pkg/out"),
        ("through-link.zip", "pkg/f"),
    ]
    .iter()
    .enumerate()
    {
        let r = archive_recipe(dir.path(), &format!("evil{i}"), archive, "");
        let out = dir.path().join(format!("out{i}"));
        let o = build(&r, &out, &["--keep-build"]);
        assert_failed_with(&o, &out, &["recipe.yaml:3:7", "refusing to extract", entry]);
        // The work directory holds nothing of the archive.
        let work = out.join(format!("bld/kiln_evil{i}/work"));
        let left: Vec<_> = walkdir::WalkDir::new(&work)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .collect();
        assert!(left.is_empty(), "{archive}: {left:?}");
    }
    let evil: Vec<String> = walkdir::WalkDir::new(dir.path())
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.path().display().to_string())
        .filter(|p| p.contains("evil-"))
        .collect();
    assert!(evil.is_empty(), "written outside: {evil:?}");
    assert!(!Path::new("/tmp/kiln-evil-absolute.txt").exists());
    assert_eq!(fs::read_to_string(dir.path().join("victim.txt")).unwrap(), "safe\n");
}
