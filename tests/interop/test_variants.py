"""A variant matrix read back by py-rattler.

kiln builds the seed's example (tests/recipes/variants/split): a staging
output against libfoo 1.0 and 2.0 and a package on top for python 3.10,
3.11 and 3.12. py-rattler's solver must then find, for any python/libfoo
pair a user asks for, the variant built for exactly that pair: the
repodata, build strings and `depends` kiln wrote have to agree.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import rattler
from rattler import Gateway

from interop_common import NATIVE_SUBDIR, REPO_ROOT, build_fixture_channel, run_kiln

SPLIT = REPO_ROOT / "tests" / "recipes" / "variants" / "split"


@pytest.fixture(scope="module")
def built(kiln: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(fixture channel, channel with the foo-py variants) built by kiln."""
    fixtures = tmp_path_factory.mktemp("fixture-channel")
    out = tmp_path_factory.mktemp("split-channel")
    cache = tmp_path_factory.mktemp("kiln-cache")
    build_fixture_channel(kiln, fixtures, cache)
    run_kiln(kiln, "--recipe", str(SPLIT), "--output-dir", str(out), "--experimental", "-c", fixtures.as_uri(), cache=cache)
    return fixtures, out


@pytest.mark.parametrize(("python", "libfoo"), [("3.10", "1"), ("3.11", "2"), ("3.12", "1")])
def test_rattler_picks_the_variant_built_for_the_requested_pair(built, tmp_path: Path, python: str, libfoo: str):
    fixtures, out = built
    prefix = tmp_path / "env"

    async def solve_and_install():
        records = await rattler.solve(
            sources=[out.as_uri(), fixtures.as_uri()],
            specs=["foo-py", f"python {python}.*", f"libfoo {libfoo}.*"],
            gateway=Gateway(cache_dir=tmp_path / "repodata"),
            platforms=[NATIVE_SUBDIR, "noarch"],
        )
        await rattler.install(records, target_prefix=prefix, cache_dir=tmp_path / "pkgs", show_progress=False)
        return records

    records = {r.name.normalized: r for r in asyncio.run(solve_and_install())}
    foo = records["foo-py"]
    assert str(foo.build).startswith("py" + python.replace(".", "") + "h"), foo.build
    assert f"libfoo >={libfoo}.0,<{int(libfoo) + 1}.0a0" in foo.depends
    assert str(records["libfoo"].version) == f"{libfoo}.0"
    built_against = (prefix / "share" / "foo" / "built-against.h").read_text()
    assert built_against == f'#define LIBFOO_VERSION "{libfoo}.0"\n'
    assert (prefix / "share" / "foo" / "python.txt").read_text().startswith(f"Python {python}.0 ")
