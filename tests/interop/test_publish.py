"""`kiln publish` into a local channel, read back by tools kiln did not
write: py-rattler solves and installs from the published channel (and
picks the bumped build), conda-index indexes it to the same records."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from interop_common import BUILD_TIMEOUT_S, RECIPES_DIR, load_json, sha256_file, solve_and_install
from test_interop import _run_conda_index


def _publish(kiln: Path, out: Path, channel: Path, cache: Path, *extra: str) -> None:
    cmd = [
        str(kiln),
        "publish",
        "--recipe",
        str(RECIPES_DIR / "hello"),
        "--output-dir",
        str(out),
        "--to",
        channel.as_uri(),
        *extra,
    ]
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        env={"PATH": "/usr/bin:/bin", "KILN_CACHE_DIR": str(cache), "NO_COLOR": "1"},
    )
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stderr}"


def test_published_channel_is_read_by_rattler_and_conda_index(kiln: Path, tmp_path: Path):
    channel = tmp_path / "published"
    cache = tmp_path / "cache"
    _publish(kiln, tmp_path / "out1", channel, cache)
    _publish(kiln, tmp_path / "out2", channel, cache, "--build-number", "+1")

    records = solve_and_install([channel], ["interop-hello"], tmp_path / "prefix", tmp_path / "work")
    assert records["interop-hello"].build_number == 1
    assert (tmp_path / "prefix" / "share" / "interop-hello" / "greeting.txt").is_file()

    copy = tmp_path / "copy"
    shutil.copytree(channel, copy, ignore=lambda d, names: [n for n in names if n == ".kiln"])
    for f in copy.glob("*/repodata*"):
        f.unlink()
    _run_conda_index(copy)
    ours = load_json(channel / "noarch" / "repodata.json")["packages.conda"]
    theirs = load_json(copy / "noarch" / "repodata.json")["packages.conda"]
    assert sorted(ours) == sorted(theirs) and len(ours) == 2
    for name, record in ours.items():
        assert record["sha256"] == theirs[name]["sha256"] == sha256_file(channel / "noarch" / name)
        assert record["build_number"] == theirs[name]["build_number"]
