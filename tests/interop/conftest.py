"""Shared fixtures for kiln's Python interop tests.

A session fixture builds every recipe under ``recipes/`` with the kiln binary
into two channels, one per package format (``.conda`` and ``.tar.bz2``). The
tests then check those channels with independent conda tooling:
conda-package-handling, py-rattler and conda-index.

The kiln binary is ``$KILN_BIN`` if set, else ``<repo>/target/debug/kiln``.
A missing binary is a test failure, never a skip.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from interop_common import BUILD_TIMEOUT_S, FORMATS, RECIPES, RECIPES_DIR, kiln_bin


@pytest.fixture(scope="session")
def kiln() -> Path:
    path = kiln_bin()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"kiln binary not found or not executable at {path} "
            "(set KILN_BIN or run `cargo build` first)",
            pytrace=False,
        )
    return path


def _run_kiln_build(kiln: Path, recipe: Path, out: Path, fmt: str, cwd: Path) -> None:
    cmd = [
        str(kiln),
        "build",
        "--recipe",
        str(recipe),
        "--output-dir",
        str(out),
        "--package-format",
        fmt,
    ]
    try:
        proc = subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"kiln build timed out after {BUILD_TIMEOUT_S}s: {cmd}\n{e}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(
            f"kiln build failed (exit {proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def channels(kiln: Path, tmp_path_factory) -> dict[str, Path]:
    """{package format: channel dir} with all interop recipes built by kiln."""
    result = {}
    for fmt in FORMATS:
        out = tmp_path_factory.mktemp(f"channel-{fmt.replace('.', '')}")
        cwd = tmp_path_factory.mktemp(f"cwd-{fmt.replace('.', '')}")
        for recipe in RECIPES:
            _run_kiln_build(kiln, RECIPES_DIR / recipe, out, fmt, cwd)
        result[fmt] = out
    return result


@pytest.fixture(params=list(FORMATS), ids=lambda f: f)
def fmt(request) -> str:
    return request.param


@pytest.fixture
def channel(channels, fmt) -> Path:
    return channels[fmt]
