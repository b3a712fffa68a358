"""Packages built against real environments, read back by py-rattler.

kiln builds the stand-in channel (tests/fixtures/channel) and then the C
library recipe (tests/recipes/envs/clib), whose staging output compiles
with the fixture compiler against the fixture zlib. py-rattler then solves
and installs ``libclib`` from both channels: the run exports kiln wrote
into ``depends`` must pull zlib and libgcc in.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import rattler
from rattler import Gateway

from interop_common import NATIVE_SUBDIR, REPO_ROOT, build_fixture_channel, load_json, run_kiln

CLIB = REPO_ROOT / "tests" / "recipes" / "envs" / "clib"


@pytest.fixture(scope="module")
def built(kiln: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(fixture channel, channel with libclib) built by kiln."""
    fixtures = tmp_path_factory.mktemp("fixture-channel")
    out = tmp_path_factory.mktemp("clib-channel")
    cache = tmp_path_factory.mktemp("kiln-cache")
    build_fixture_channel(kiln, fixtures, cache)
    run_kiln(
        kiln,
        "--recipe",
        str(CLIB),
        "--output-dir",
        str(out),
        "--experimental",
        "-c",
        fixtures.as_uri(),
        cache=cache,
    )
    return fixtures, out


def test_rattler_installs_the_library_with_its_run_exports(built, tmp_path: Path):
    fixtures, out = built
    prefix = tmp_path / "env"

    async def solve_and_install():
        gateway = Gateway(cache_dir=tmp_path / "repodata")
        records = await rattler.solve(
            sources=[out.as_uri(), fixtures.as_uri()],
            specs=["libclib-headers"],
            gateway=gateway,
            platforms=[NATIVE_SUBDIR, "noarch"],
        )
        await rattler.install(records, target_prefix=prefix, cache_dir=tmp_path / "pkgs", show_progress=False)
        return records

    records = {r.name.normalized: r for r in asyncio.run(solve_and_install())}
    assert sorted(records) == ["libclib", "libclib-headers", "libgcc", "zlib"]

    lib = records["libclib"]
    assert sorted(lib.depends) == ["libgcc >=12", "zlib >=1.3,<2.0a0"]
    headers = records["libclib-headers"]
    assert f"libclib ==1.0.0 {lib.build}" in headers.depends

    assert (prefix / "lib" / "libclib.so").read_bytes()[:4] == b"\x7fELF"
    assert (prefix / "include" / "clib.h").is_file()
    assert (prefix / "include" / "zlib_fixture.h").is_file(), "zlib came in through libclib's depends"
    meta = load_json(prefix / "conda-meta" / f"libclib-1.0.0-{lib.build}.json")
    assert sorted(meta["depends"]) == ["libgcc >=12", "zlib >=1.3,<2.0a0"]
