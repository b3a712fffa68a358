"""Constants and helpers shared by kiln's Python interop tests (see conftest.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import rattler

INTEROP_DIR = Path(__file__).resolve().parent
REPO_ROOT = INTEROP_DIR.parent.parent
RECIPES_DIR = INTEROP_DIR / "recipes"
CONDA_SHIM_DIR = INTEROP_DIR / "conda_shim"

# --package-format value -> file extension kiln must produce.
FORMATS = {"conda": ".conda", "tar.bz2": ".tar.bz2"}

# Subdir of packages that are not noarch (kiln builds for the host platform).
NATIVE_SUBDIR = str(rattler.Subdir.current())

# What the recipes under recipes/ must produce. "files" maps each path in the
# package (outside info/) to its kind: "file", "exe" (executable file),
# "text-prefix" (file holding the build prefix, so recorded with a text prefix
# placeholder) or ("softlink", target).
EXPECTED_PACKAGES = {
    "interop-hello": {
        "version": "1.2.3",
        "subdir": "noarch",
        "noarch": "generic",
        "depends": [],
        "files": {
            "share/interop-hello/greeting.txt": "text-prefix",
            "share/interop-hello/link.txt": ("softlink", "greeting.txt"),
            "bin/interop-hello": "exe",
        },
        "contents": {
            "bin/interop-hello": b"#!/bin/sh\necho hi\n",
        },
    },
    "interop-lib": {
        "version": "0.1.0",
        "subdir": NATIVE_SUBDIR,
        "noarch": None,
        "depends": [],
        "files": {"lib/libfoo.txt": "file"},
        "contents": {"lib/libfoo.txt": b"lib\n"},
    },
    "interop-headers": {
        "version": "0.1.0",
        "subdir": NATIVE_SUBDIR,
        "noarch": None,
        "depends": ["interop-lib"],
        "files": {"include/foo.h": "file"},
        "contents": {"include/foo.h": b"header\n"},
    },
}

# Recipes to build, in order (directories under recipes/).
RECIPES = ["hello", "multi"]

BUILD_TIMEOUT_S = 600


FIXTURE_RECIPES = REPO_ROOT / "tests" / "fixtures" / "channel"


def run_kiln(kiln: Path, *args: str, cache: Path, env: dict[str, str] | None = None) -> None:
    """`kiln build ARGS` with a private cache (and `env` added to its
    environment); fails the test on error."""
    import pytest

    cmd = [str(kiln), "build", *args]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env={"PATH": "/usr/bin:/bin", "KILN_CACHE_DIR": str(cache), "NO_COLOR": "1", **(env or {})},
    )
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stderr}", pytrace=False)


def build_fixture_channel(kiln: Path, out: Path, cache: Path) -> None:
    """Build the stand-in channel (tests/fixtures/channel) into `out`."""
    run_kiln(kiln, "--recipe-dir", str(FIXTURE_RECIPES), "--output-dir", str(out), cache=cache)


def build_against_fixtures(kiln: Path, tmp_path_factory, recipe: Path) -> tuple[Path, Path]:
    """Build the fixture channel, then `recipe` (with --experimental)
    against it; returns (fixture channel, channel with the recipe's packages)."""
    fixtures = tmp_path_factory.mktemp("fixture-channel")
    out = tmp_path_factory.mktemp(f"{recipe.name}-channel")
    cache = tmp_path_factory.mktemp("kiln-cache")
    build_fixture_channel(kiln, fixtures, cache)
    args = ["--recipe", str(recipe), "--output-dir", str(out), "--experimental", "-c", fixtures.as_uri()]
    run_kiln(kiln, *args, cache=cache)
    return fixtures, out


def solve_and_install(channels: list[Path], specs: list[str], prefix: Path, work: Path) -> dict:
    """py-rattler solves `specs` from `channels` and installs them into
    `prefix` (caches under `work`); returns the records by name."""
    import asyncio

    async def run():
        records = await rattler.solve(
            sources=[c.as_uri() for c in channels],
            specs=specs,
            gateway=rattler.Gateway(cache_dir=work / "repodata"),
            platforms=[NATIVE_SUBDIR, "noarch"],
        )
        await rattler.install(records, target_prefix=prefix, cache_dir=work / "pkgs", show_progress=False)
        return records

    return {r.name.normalized: r for r in asyncio.run(run())}


def kiln_bin() -> Path:
    env = os.environ.get("KILN_BIN")
    if env:
        return Path(env)
    return REPO_ROOT / "target" / "debug" / "kiln"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def md5_file(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def load_json(path: Path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def package_files(channel: Path) -> list[Path]:
    """Every package file in the channel's subdirs (kiln's bld/ work dir excluded)."""
    out = []
    for subdir in sorted(channel.iterdir()):
        if not subdir.is_dir() or subdir.name == "bld" or subdir.name.startswith("."):
            continue
        for f in sorted(subdir.iterdir()):
            if f.is_file() and (f.name.endswith(".conda") or f.name.endswith(".tar.bz2")):
                out.append(f)
    return out


def find_package(channel: Path, name: str, ext: str) -> Path:
    exp = EXPECTED_PACKAGES[name]
    pattern = f"{name}-{exp['version']}-*{ext}"
    hits = sorted((channel / exp["subdir"]).glob(pattern))
    everywhere = sorted(p for p in channel.glob(f"*/{pattern}") if p.parent.name != "bld")
    assert len(hits) == 1, (
        f"expected exactly one {pattern} in {channel / exp['subdir']}, found {hits}; "
        f"matches in any subdir: {everywhere}"
    )
    return hits[0]
