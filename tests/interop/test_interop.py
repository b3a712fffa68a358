"""Interop tests: packages and channels written by kiln, checked with other conda tools.

- conda-package-handling extracts every package; its metadata must describe
  exactly what is in it.
- py-rattler reads the channel's repodata, solves and installs packages into
  a fresh prefix (prefix placeholders get replaced).
- conda-index re-indexes a copy of the channel; its repodata must agree with
  the repodata kiln wrote.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import conda_package_handling.api as cph
import pytest
import rattler
from rattler import Channel, ChannelConfig, Gateway, PackageFormatSelection, SparseRepoData

from interop_common import (
    CONDA_SHIM_DIR,
    EXPECTED_PACKAGES,
    FORMATS,
    NATIVE_SUBDIR,
    find_package,
    kiln_bin,
    load_json,
    md5_file,
    package_files,
    sha256_file,
)

PACKAGE_NAMES = sorted(EXPECTED_PACKAGES)
SUBDIRS = sorted({"noarch", NATIVE_SUBDIR})
# Fields that kiln's repodata (its incremental indexer) and conda-index's must agree on.
REPODATA_FIELDS = [
    "name",
    "version",
    "build",
    "build_number",
    "depends",
    "subdir",
    "sha256",
    "md5",
    "size",
]
# spec to install -> names the solve must return
INSTALL_CASES = {
    "interop-hello": {"interop-hello"},
    "interop-headers": {"interop-headers", "interop-lib"},
}


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def names_in_subdir(subdir: str) -> set[str]:
    return {n for n, e in EXPECTED_PACKAGES.items() if e["subdir"] == subdir}


def split_file_name(file_name: str) -> tuple[str, str, str, str]:
    """`name-version-build.ext` -> (name, version, build, ext)."""
    for ext in FORMATS.values():
        if file_name.endswith(ext):
            stem = file_name[: -len(ext)]
            break
    else:
        raise AssertionError(f"not a conda package file name: {file_name}")
    name, version, build = stem.rsplit("-", 2)
    return name, version, build, ext


def walk_payload(root: Path) -> dict[str, Path]:
    """Relative path -> absolute path of every file/symlink under root, outside info/."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        if rel_dir.parts[:1] == ("info",):
            continue
        for d in list(dirnames):
            p = Path(dirpath) / d
            if p.is_symlink():  # symlinks to directories are payload entries too
                found[(rel_dir / d).as_posix()] = p
        for f in filenames:
            found[(rel_dir / f).as_posix()] = Path(dirpath) / f
    return found


# --------------------------------------------------------------------------
# The binary and the channel layout
# --------------------------------------------------------------------------


def test_kiln_binary_exists():
    path = kiln_bin()
    assert path.is_file(), f"kiln binary missing at {path} (set KILN_BIN or run cargo build)"
    assert os.access(path, os.X_OK), f"kiln binary at {path} is not executable"


def test_channel_layout(channel: Path, fmt: str):
    ext = FORMATS[fmt]
    files = package_files(channel)
    got = sorted(f"{f.parent.name}/{split_file_name(f.name)[0]}" for f in files)
    want = sorted(f"{e['subdir']}/{n}" for n, e in EXPECTED_PACKAGES.items())
    assert got == want, f"packages in {channel}: {[str(f) for f in files]}"
    for f in files:
        assert f.name.endswith(ext), f"--package-format {fmt} produced {f.name}"
        assert f.stat().st_size > 0
    for subdir in SUBDIRS:
        repodata = channel / subdir / "repodata.json"
        assert repodata.is_file(), f"missing {repodata}"
        data = load_json(repodata)
        assert data.get("info", {}).get("subdir") == subdir, data.get("info")


# --------------------------------------------------------------------------
# conda-package-handling: extract and check package metadata
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", PACKAGE_NAMES)
def test_extract_with_cph(channel: Path, fmt: str, name: str, tmp_path: Path):
    exp = EXPECTED_PACKAGES[name]
    pkg = find_package(channel, name, FORMATS[fmt])

    if fmt == "conda":
        # conda's v2 container: a zip holding metadata.json plus info- and pkg- zstd tarballs.
        stem = pkg.name[: -len(".conda")]
        with zipfile.ZipFile(pkg) as zf:
            members = set(zf.namelist())
            assert members == {
                "metadata.json",
                f"info-{stem}.tar.zst",
                f"pkg-{stem}.tar.zst",
            }, members
            meta = json.loads(zf.read("metadata.json"))
            assert meta.get("conda_pkg_format_version") == 2, meta

    dest = tmp_path / "extracted"
    cph.extract(str(pkg), dest_dir=str(dest))

    # info/index.json agrees with the file name and the subdir the file is in.
    index = load_json(dest / "info" / "index.json")
    fn_name, fn_version, fn_build, _ = split_file_name(pkg.name)
    assert index["name"] == fn_name == name
    assert index["version"] == fn_version == exp["version"]
    assert index["build"] == fn_build
    assert isinstance(index["build_number"], int)
    assert fn_build.endswith(f"_{index['build_number']}") or fn_build.endswith(
        str(index["build_number"])
    ), (fn_build, index["build_number"])
    assert index["subdir"] == pkg.parent.name == exp["subdir"]
    assert index.get("noarch") == exp["noarch"], index
    depends = index.get("depends", [])
    assert sorted(d.split()[0] for d in depends) == sorted(exp["depends"]), depends

    # info/paths.json lists exactly the payload (everything outside info/).
    paths_json = load_json(dest / "info" / "paths.json")
    assert paths_json.get("paths_version") == 1, paths_json.get("paths_version")
    entries = {e["_path"]: e for e in paths_json["paths"]}
    assert len(entries) == len(paths_json["paths"]), "duplicate _path in paths.json"
    file_entries = {p: e for p, e in entries.items() if e["path_type"] != "directory"}
    on_disk = walk_payload(dest)
    assert sorted(file_entries) == sorted(on_disk), "paths.json vs extracted payload"
    assert sorted(on_disk) == sorted(exp["files"]), "payload vs expected files"
    for p, e in entries.items():
        if e["path_type"] == "directory":
            assert (dest / p).is_dir() and not (dest / p).is_symlink(), p

    if (dest / "info" / "files").is_file():
        listed = [line for line in (dest / "info" / "files").read_text().splitlines() if line]
        assert sorted(listed) == sorted(file_entries), "info/files vs paths.json"

    for rel, kind in exp["files"].items():
        e = entries[rel]
        path = dest / rel
        if isinstance(kind, tuple):
            assert kind[0] == "softlink"
            assert e["path_type"] == "softlink", e
            assert path.is_symlink(), f"{rel} should be a symlink after extraction"
            assert os.readlink(path) == kind[1]
            target_bytes = path.resolve().read_bytes()
            link_bytes = os.readlink(path).encode()
            # Tools differ in what they hash for a softlink (target contents or
            # the link text); whatever is recorded must be one of those.
            if e.get("sha256") is not None:
                assert e["sha256"] in {
                    sha256_of(target_bytes),
                    sha256_of(link_bytes),
                }, e
            if e.get("size_in_bytes") is not None:
                assert e["size_in_bytes"] in {len(target_bytes), len(link_bytes)}, e
            continue

        assert e["path_type"] == "hardlink", e
        assert path.is_file() and not path.is_symlink(), rel
        data = path.read_bytes()
        assert e["sha256"] == sha256_of(data), f"sha256 of {rel}"
        assert e["size_in_bytes"] == len(data), f"size of {rel}"
        if kind == "exe":
            assert path.stat().st_mode & stat.S_IXUSR, f"{rel} lost its executable bit"
        if kind == "text-prefix":
            placeholder = e.get("prefix_placeholder")
            assert placeholder, f"{rel} contains the build prefix but has no prefix_placeholder: {e}"
            assert e.get("file_mode") == "text", e
            assert data == f"hello from {placeholder}\n".encode(), data
        else:
            assert "prefix_placeholder" not in e, e
        if rel in exp.get("contents", {}):
            assert data == exp["contents"][rel], rel


# --------------------------------------------------------------------------
# py-rattler: read repodata, solve, install
# --------------------------------------------------------------------------


def _channel_obj(channel: Path) -> Channel:
    return Channel(channel.as_uri(), ChannelConfig())


@pytest.mark.parametrize("subdir", SUBDIRS)
def test_rattler_sparse_repodata(channel: Path, fmt: str, subdir: str):
    path = channel / subdir / "repodata.json"
    expected = names_in_subdir(subdir)
    with SparseRepoData(_channel_obj(channel), subdir, path) as sparse:
        assert sparse.subdir == subdir
        assert set(sparse.package_names(PackageFormatSelection.BOTH)) == expected
        records = sparse.load_all_records(PackageFormatSelection.BOTH)
    assert sorted(r.name.normalized for r in records) == sorted(expected)
    for r in records:
        exp = EXPECTED_PACKAGES[r.name.normalized]
        pkg = channel / subdir / r.file_name
        assert pkg.is_file(), f"repodata lists {r.file_name} which is not in {channel / subdir}"
        assert r.file_name.endswith(FORMATS[fmt])
        name, version, build, _ = split_file_name(r.file_name)
        assert (r.name.normalized, str(r.version), str(r.build)) == (name, version, build)
        assert str(r.version) == exp["version"]
        assert r.subdir == subdir
        assert sorted(d.split()[0] for d in r.depends) == sorted(exp["depends"])
        assert r.sha256 is not None and r.sha256.hex() == sha256_file(pkg), r.file_name
        assert r.md5 is not None and r.md5.hex() == md5_file(pkg), r.file_name
        assert r.size == pkg.stat().st_size, r.file_name
        assert r.url.endswith(f"/{subdir}/{r.file_name}"), r.url


def test_rattler_gateway_query(channel: Path, tmp_path: Path):
    async def query():
        gateway = Gateway(cache_dir=tmp_path / "repodata-cache")
        return await gateway.query(
            [channel.as_uri()],
            [NATIVE_SUBDIR, "noarch"],
            ["interop-headers"],
            recursive=True,
        )

    result = asyncio.run(query())
    records = [r for per_channel in result for r in per_channel]
    # recursive=True follows interop-headers' run dependency to interop-lib
    assert sorted(r.name.normalized for r in records) == ["interop-headers", "interop-lib"]


@pytest.mark.parametrize("spec", sorted(INSTALL_CASES))
def test_rattler_solve_and_install(channel: Path, fmt: str, spec: str, tmp_path: Path):
    prefix = tmp_path / "env"
    cache = tmp_path / "cache"

    async def solve_and_install():
        gateway = Gateway(cache_dir=cache / "repodata")
        records = await rattler.solve(
            sources=[channel.as_uri()],
            specs=[spec],
            gateway=gateway,
            platforms=[NATIVE_SUBDIR, "noarch"],
        )
        await rattler.install(
            records,
            target_prefix=prefix,
            cache_dir=cache / "pkgs",
            show_progress=False,
        )
        return records

    records = asyncio.run(solve_and_install())
    assert {r.name.normalized for r in records} == INSTALL_CASES[spec]
    for r in records:
        assert r.file_name.endswith(FORMATS[fmt]), r.file_name

    # conda-meta records for every installed package, listing its files.
    for r in records:
        name = r.name.normalized
        meta_path = prefix / "conda-meta" / f"{name}-{r.version}-{r.build}.json"
        assert meta_path.is_file(), sorted(p.name for p in (prefix / "conda-meta").iterdir())
        meta = load_json(meta_path)
        assert meta["name"] == name
        assert sorted(meta["files"]) == sorted(EXPECTED_PACKAGES[name]["files"])

    # installed payload
    for r in records:
        name = r.name.normalized
        for rel, kind in EXPECTED_PACKAGES[name]["files"].items():
            path = prefix / rel
            if isinstance(kind, tuple):
                assert path.is_symlink(), f"{rel} should be a symlink in the prefix"
                assert os.readlink(path) == kind[1]
                continue
            assert path.is_file(), f"{rel} not installed"
            if kind == "exe":
                assert os.access(path, os.X_OK), f"{rel} not executable"
            if kind == "text-prefix":
                # the placeholder was replaced by the new prefix
                assert path.read_text() == f"hello from {prefix}\n"
            expected_bytes = EXPECTED_PACKAGES[name]["contents"].get(rel)
            if expected_bytes is not None:
                assert path.read_bytes() == expected_bytes, rel

    if spec == "interop-hello":
        link = prefix / "share" / "interop-hello" / "link.txt"
        assert link.read_text() == f"hello from {prefix}\n"
        out = subprocess.run(
            [str(prefix / "bin" / "interop-hello")], capture_output=True, text=True, check=True
        )
        assert out.stdout == "hi\n"


# --------------------------------------------------------------------------
# conda-index: re-index a copy; must agree with kiln's repodata.json
# --------------------------------------------------------------------------


def _run_conda_index(channel_dir: Path) -> None:
    env = dict(os.environ)
    if importlib.util.find_spec("conda") is None:
        # conda is not on PyPI; give conda-index the few names it needs.
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in [str(CONDA_SHIM_DIR), env.get("PYTHONPATH", "")] if p
        )
    cmd = [
        sys.executable,
        "-m",
        "conda_index",
        str(channel_dir),
        "--no-current-repodata",
        "--no-channeldata",
        "--no-rss",
        "--threads",
        "1",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (
        f"conda-index failed ({proc.returncode}): {cmd}\n{proc.stdout}\n{proc.stderr}"
    )


def test_conda_index_agrees(channel: Path, fmt: str, tmp_path: Path):
    copy = tmp_path / "channel"
    shutil.copytree(
        channel,
        copy,
        symlinks=True,
        ignore=lambda d, names: [n for n in names if Path(d) == channel and n in ("bld", ".tmp")],
    )
    # Drop kiln's index so what we read afterwards is conda-index's own output.
    for f in copy.glob("*/repodata*"):
        f.unlink()
    for f in copy.glob("*/.cache"):
        shutil.rmtree(f)

    _run_conda_index(copy)

    for subdir in SUBDIRS:
        ours = load_json(channel / subdir / "repodata.json")
        theirs_path = copy / subdir / "repodata.json"
        assert theirs_path.is_file(), f"conda-index wrote no {theirs_path}"
        theirs = load_json(theirs_path)
        assert theirs.get("info", {}).get("subdir") == subdir

        total = 0
        for key in ("packages", "packages.conda"):
            a = ours.get(key, {}) or {}
            b = theirs.get(key, {}) or {}
            assert sorted(a) == sorted(b), f"{subdir} {key}: kiln={sorted(a)} conda-index={sorted(b)}"
            total += len(a)
            for fn in a:
                pkg = channel / subdir / fn
                for field in REPODATA_FIELDS:
                    va, vb = a[fn].get(field), b[fn].get(field)
                    if field == "depends":
                        va, vb = va or [], vb or []
                    assert va == vb, f"{subdir}/{fn} {field}: kiln={va!r} conda-index={vb!r}"
                assert a[fn]["sha256"] == sha256_file(pkg)
                assert a[fn]["md5"] == md5_file(pkg)
                assert a[fn]["size"] == pkg.stat().st_size
                # noarch is recorded the same way by both (absent for arch packages)
                assert a[fn].get("noarch") == b[fn].get("noarch"), fn
        assert total == len(names_in_subdir(subdir)), f"{subdir}: {total} packages indexed"
        ext_key = "packages.conda" if fmt == "conda" else "packages"
        assert len(ours.get(ext_key, {}) or {}) == len(names_in_subdir(subdir))
