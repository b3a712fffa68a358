"""A `noarch: python` package built by kiln, installed by py-rattler.

kiln packages the machine's own CPython as a real `python` (the fixture
recipe tests/fixtures/python-real) and builds the pure-Python project
tests/fixtures/hello-py with `${{ PYTHON }} -m pip install .` as
`noarch: python` with an entry point. py-rattler then installs it into a
fresh environment: the installer must put the files into that python's
site-packages and write the `hello-py` launcher from `info/link.json`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from interop_common import REPO_ROOT, run_kiln, solve_and_install

PYTHON_FIXTURE = REPO_ROOT / "tests" / "fixtures" / "python-real"
PROJECT = REPO_ROOT / "tests" / "fixtures" / "hello-py"
VERSION = "%d.%d.%d" % sys.version_info[:3]
MINOR = "%d.%d" % sys.version_info[:2]

RECIPE = f"""\
package: {{name: hello-py, version: "1.0"}}
source:
  path: {PROJECT}
build:
  noarch: python
  script: ${{{{ PYTHON }}}} -m pip install . --no-deps --no-build-isolation
  python:
    entry_points:
      - hello-py = hello.cli:main
requirements:
  host: [python, pip]
  run: [python]
"""


@pytest.fixture(scope="module")
def channels(kiln: Path, tmp_path_factory) -> tuple[Path, Path]:
    """(channel with the real python and pip, channel with hello-py)."""
    pychan = tmp_path_factory.mktemp("python-channel")
    out = tmp_path_factory.mktemp("hello-channel")
    cache = tmp_path_factory.mktemp("kiln-cache")
    exe = os.path.realpath(sys.executable)
    env = {
        "KILN_FIXTURE_PYTHON": exe,
        "KILN_FIXTURE_PYTHON_VERSION": VERSION,
        "SOURCE_DATE_EPOCH": "1700000000",
    }
    run_kiln(kiln, "--no-test", "--recipe", str(PYTHON_FIXTURE), "--output-dir", str(pychan), cache=cache, env=env)
    recipe = tmp_path_factory.mktemp("hello-recipe")
    (recipe / "recipe.yaml").write_text(RECIPE)
    run_kiln(kiln, "--no-test", "--recipe", str(recipe), "--output-dir", str(out), "-c", pychan.as_uri(), cache=cache)
    return pychan, out


def test_rattler_installs_the_noarch_package_and_writes_its_entry_point(channels, tmp_path: Path):
    pychan, out = channels
    prefix = tmp_path / "env"
    records = solve_and_install([out, pychan], ["hello-py", f"python =={VERSION}"], prefix, tmp_path)
    assert records["hello-py"].subdir == "noarch"
    site = prefix / "lib" / f"python{MINOR}" / "site-packages"
    assert (site / "hello" / "cli.py").is_file(), "installed into this python's site-packages"
    assert (site / "hello_py-1.0.dist-info" / "INSTALLER").read_text() == "conda\n"
    launcher = prefix / "bin" / "hello-py"
    assert launcher.is_file(), "py-rattler wrote the entry point from link.json"
    run = subprocess.run([str(launcher)], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"hello from hello-py on python {MINOR}\n"
    imported = subprocess.run(
        [str(prefix / "bin" / "python"), "-c", "import hello; print(hello.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.startswith(str(site)), imported.stdout
