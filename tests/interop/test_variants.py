"""A variant matrix read back by py-rattler.

kiln builds the seed's example (tests/recipes/variants/split): a staging
output against libfoo 1.0 and 2.0 and a package on top for python 3.10,
3.11 and 3.12. py-rattler's solver must then find, for any python/libfoo
pair a user asks for, the variant built for exactly that pair: the
repodata, build strings and `depends` kiln wrote have to agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interop_common import REPO_ROOT, build_against_fixtures, solve_and_install

SPLIT = REPO_ROOT / "tests" / "recipes" / "variants" / "split"


@pytest.fixture(scope="module")
def built(kiln: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(fixture channel, channel with the foo-py variants) built by kiln."""
    return build_against_fixtures(kiln, tmp_path_factory, SPLIT)


@pytest.mark.parametrize(("python", "libfoo"), [("3.10", "1"), ("3.11", "2"), ("3.12", "1")])
def test_rattler_picks_the_variant_built_for_the_requested_pair(built, tmp_path: Path, python: str, libfoo: str):
    fixtures, out = built
    prefix = tmp_path / "env"
    specs = ["foo-py", f"python {python}.*", f"libfoo {libfoo}.*"]
    records = solve_and_install([out, fixtures], specs, prefix, tmp_path)
    foo = records["foo-py"]
    assert str(foo.build).startswith("py" + python.replace(".", "") + "h"), foo.build
    assert f"libfoo >={libfoo}.0,<{int(libfoo) + 1}.0a0" in foo.depends
    assert str(records["libfoo"].version) == f"{libfoo}.0"
    built_against = (prefix / "share" / "foo" / "built-against.h").read_text()
    assert built_against == f'#define LIBFOO_VERSION "{libfoo}.0"\n'
    assert (prefix / "share" / "foo" / "python.txt").read_text().startswith(f"Python {python}.0 ")
