//! A real upstream C library, end to end: zstd's decompression library
//! (the C sources vendored in the `zstd-sys` crate, which every kiln build
//! has in cargo's registry) is packed as a release tarball, served from
//! 127.0.0.1, patched by the recipe, compiled once in a staging output
//! with the compiler from the build environment, and split into a library
//! and a headers package. A C program compiled against the packages then
//! decompresses a frame written by the Rust `zstd` crate and calls the
//! function the patch added.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use sha2::{Digest, Sha256};

/// `zstd/lib` of the `zstd-sys` version in Cargo.lock, in cargo's registry.
fn zstd_sources() -> PathBuf {
    let lock = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"zstd-sys\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("zstd-sys in Cargo.lock");
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let registry = home.join("registry/src");
    for index in fs::read_dir(&registry).unwrap() {
        let lib = index.unwrap().path().join(format!("zstd-sys-{version}/zstd/lib"));
        if lib.join("zstd.h").is_file() {
            return lib;
        }
    }
    panic!("zstd-sys {version} sources not found under {}", registry.display());
}

fn run(cmd: &mut Command) -> String {
    let o = cmd.run().unwrap();
    assert!(o.status.success(), "{cmd:?}: {}", stderr(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn zstd_builds_from_a_patched_release_tarball_and_works_when_installed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lib = zstd_sources();

    // The release tarball: `zstd-1.5.7/lib/...`, as upstream ships it.
    let www = d.join("www");
    fs::create_dir_all(&www).unwrap();
    let tarball = www.join("zstd-1.5.7.tar.gz");
    let recipe_dir = d.join("zstd");
    fs::create_dir_all(&recipe_dir).unwrap();
    // The patch adds a function, written against the real files with difflib.
    run(Command::new("python3").arg("-c").arg(format!(
        r#"
import difflib, tarfile
lib = "{lib}"
with tarfile.open("{tarball}", "w:gz") as t:
    t.add(lib, arcname="zstd-1.5.7/lib")
def diff(rel, old, new):
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "a/" + rel, "b/" + rel))
c = open(lib + "/common/zstd_common.c").read()
h = open(lib + "/zstd.h").read()
anchor = "ZSTDLIB_API unsigned ZSTD_versionNumber(void);\n"
assert anchor in h
patch = diff("lib/common/zstd_common.c", c, c + "\nunsigned ZSTD_kilnPatched(void) {{ return 42; }}\n")
patch += diff("lib/zstd.h", h, h.replace(anchor, anchor + "ZSTDLIB_API unsigned ZSTD_kilnPatched(void);\n"))
open("{patch}", "w").write(patch)
"#,
        lib = lib.display(),
        tarball = tarball.display(),
        patch = recipe_dir.join("add-kiln-function.patch").display(),
    )));
    let sha = hex::encode(Sha256::digest(fs::read(&tarball).unwrap()));
    let server = serve_http_logged(&www, 0);
    fs::write(
        recipe_dir.join("recipe.yaml"),
        format!(
            r#"context:
  version: "1.5.7"

recipe:
  name: zstd-split
  version: ${{{{ version }}}}

outputs:
  - staging:
      name: zstd-build
    source:
      url: {url}/zstd-${{{{ version }}}}.tar.gz
      sha256: {sha}
      patches:
        - add-kiln-function.patch
    requirements:
      build:
        - ${{{{ compiler('c') }}}}
    build:
      script:
        - mkdir -p $PREFIX/lib $PREFIX/include
        - $CC -O1 -fPIC -shared -DZSTD_DISABLE_ASM -Ilib -Ilib/common -Wl,-soname,libzstd.so.1 -o $PREFIX/lib/libzstd.so.1 lib/common/*.c lib/decompress/*.c
        - ln -s libzstd.so.1 $PREFIX/lib/libzstd.so
        - cp lib/zstd.h lib/zstd_errors.h $PREFIX/include/

  - package:
      name: libzstd
    inherit: zstd-build
    build:
      files:
        - lib/**

  - package:
      name: libzstd-devel
    inherit: zstd-build
    requirements:
      run:
        - ${{{{ pin_subpackage('libzstd', exact=True) }}}}
    build:
      files:
        - include/**
"#,
            url = server.url,
        ),
    )
    .unwrap();

    let out = d.join("out");
    let channel = fixture_channel_url();
    let args = [
        "--experimental",
        "--allow-insecure-host",
        "127.0.0.1",
        "-c",
        channel.as_str(),
    ];
    build_ok(&recipe_dir, &out, &args);
    assert_eq!(server.count("zstd-1.5.7.tar.gz"), 1);

    let pkgs = packages(&out);
    let find = |name: &str| {
        pkgs.iter()
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&format!("{name}-1.5.7-"))
            })
            .unwrap_or_else(|| panic!("{name} in {pkgs:?}"))
            .clone()
    };
    let lib_pkg = extract(&find("libzstd"));
    let dev_pkg = extract(&find("libzstd-devel"));
    assert_eq!(
        content_files(lib_pkg.path()),
        vec!["lib/libzstd.so", "lib/libzstd.so.1"]
    );
    assert_eq!(
        content_files(dev_pkg.path()),
        vec!["include/zstd.h", "include/zstd_errors.h"]
    );
    let paths = paths_json(lib_pkg.path());
    assert_eq!(paths["lib/libzstd.so"]["path_type"], "softlink");
    let rendered = fs::read_to_string(lib_pkg.path().join("info/recipe/rendered_recipe.yaml")).unwrap();
    assert!(
        rendered.contains(&sha),
        "the download's checksum is in finalized_sources"
    );

    // "Install" both packages into one prefix and use them from C.
    let prefix = d.join("prefix");
    for p in [&lib_pkg, &dev_pkg] {
        for f in content_files(p.path()) {
            let to = prefix.join(&f);
            fs::create_dir_all(to.parent().unwrap()).unwrap();
            let from = p.path().join(&f);
            if from.symlink_metadata().unwrap().file_type().is_symlink() {
                std::os::unix::fs::symlink(fs::read_link(&from).unwrap(), &to).unwrap();
            } else {
                fs::copy(&from, &to).unwrap();
            }
        }
    }
    let frame = zstd::encode_all(&b"hello from a kiln-built libzstd"[..], 19).unwrap();
    fs::write(d.join("frame.zst"), frame).unwrap();
    fs::write(
        d.join("use.c"),
        r#"#include <stdio.h>
#include <zstd.h>
int main(int argc, char **argv) {
    static char in[4096], out[4096];
    FILE *f = fopen(argv[1], "rb");
    size_t n = fread(in, 1, sizeof in, f);
    size_t m = ZSTD_decompress(out, sizeof out, in, n);
    if (ZSTD_isError(m)) { printf("error: %s\n", ZSTD_getErrorName(m)); return 1; }
    printf("%.*s|%u|%s\n", (int)m, out, ZSTD_kilnPatched(), ZSTD_versionString());
    return 0;
}
"#,
    )
    .unwrap();
    let exe = d.join("use");
    run(Command::new("cc")
        .arg(d.join("use.c"))
        .arg(format!("-I{}", prefix.join("include").display()))
        .arg(format!("-L{}", prefix.join("lib").display()))
        .args(["-lzstd", "-o"])
        .arg(&exe));
    let printed = run(Command::new(&exe)
        .arg(d.join("frame.zst"))
        .env("LD_LIBRARY_PATH", prefix.join("lib")));
    assert_eq!(printed, "hello from a kiln-built libzstd|42|1.5.7\n");
}
