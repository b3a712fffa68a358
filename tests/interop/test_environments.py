"""Packages built against real environments, read back by py-rattler.

kiln builds the stand-in channel (tests/fixtures/channel) and then the C
library recipe (tests/recipes/envs/clib), whose staging output compiles
with the fixture compiler against the fixture zlib. py-rattler then solves
and installs ``libclib`` from both channels: the run exports kiln wrote
into ``depends`` must pull zlib and libgcc in.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interop_common import REPO_ROOT, build_against_fixtures, load_json, solve_and_install

CLIB = REPO_ROOT / "tests" / "recipes" / "envs" / "clib"


@pytest.fixture(scope="module")
def built(kiln: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(fixture channel, channel with libclib) built by kiln."""
    return build_against_fixtures(kiln, tmp_path_factory, CLIB)


def test_rattler_installs_the_library_with_its_run_exports(built, tmp_path: Path):
    fixtures, out = built
    prefix = tmp_path / "env"
    records = solve_and_install([out, fixtures], ["libclib-headers"], prefix, tmp_path)
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
