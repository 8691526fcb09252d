"""A wheel that works outside the checkout: built with ``pip wheel``, installed in a fresh venv
(dependencies from this machine, nothing downloaded), it lists and runs the bundled scenarios."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import polars as pl
import pytest

from sum_abm.bundled import bundled, bundled_dir

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert r.returncode == 0, f"{cmd}: {r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


@pytest.mark.slow
def test_wheel_ships_and_runs_the_bundled_scenarios(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    # Build from a copy of the sources: pip builds in the source tree (build/, *.egg-info), and the
    # checkout must stay untouched. Symlinks are followed, so the copy holds real files.
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "*.so")
    for name in ("sum_abm", "dashboards"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", ".", "-w", dist], src, env)
    (wheel,) = dist.glob("sum_abm-*.whl")

    # The bundled files are in the wheel as real files, under the package; the learners' compiled
    # loops were built for it (the copy held no built module).
    with zipfile.ZipFile(wheel) as zf:
        assert any(
            n.startswith("sum_abm/learners/_kernels.") and n.endswith(".so") for n in zf.namelist()
        )
        shipped = {n for n in zf.namelist() if n.startswith("sum_abm/scenarios/")}
        for name in shipped:  # a regular file, not a symbolic link
            assert (zf.getinfo(name).external_attr >> 16) & 0o170000 != 0o120000, name
    top = bundled_dir()
    want = {f"sum_abm/scenarios/{p.relative_to(top).as_posix()}" for p in top.rglob("*.toml")}
    assert len(want) >= 20 and shipped == want

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--system-site-packages", venv], tmp_path, env)
    py, cli = venv / "bin" / "python", venv / "bin" / "sum-abm"
    _run(
        [py, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--no-index", wheel],
        tmp_path,
        env,
    )

    elsewhere = tmp_path / "elsewhere"  # outside the checkout: no scenarios/ folder around
    elsewhere.mkdir()
    code = "import sum_abm.learners._kernels as k; print(k.__file__)"
    where = _run([py, "-c", code], elsewhere, env).stdout
    assert Path(where.strip()).is_relative_to(venv), f"the venv imports {where.strip()}"

    listed = _run([cli, "scenarios"], elsewhere, env).stdout.split("\n\n")
    names = {line.split()[0] for line in listed[0].splitlines() if line.strip()}
    assert names == {p.stem for p in bundled()}  # then the sweeps, games and designs
    assert "quickstart_sweep" in listed[1] and "quickstart_game" in listed[2]

    _run([cli, "run", "quickstart", "--set", "data.n_rows=600", "--out", "X"], elsewhere, env)
    for frame in ("transactions", "timeseries", "agents", "summary"):
        assert pl.read_parquet(elsewhere / "X" / f"{frame}.parquet").height > 0
    assert (elsewhere / "X" / "report.html").stat().st_size > 100_000  # dashboards shipped too


def test_bundled_files_resolve_by_name_from_anywhere(tmp_path, monkeypatch):
    from sum_abm.bundled import resolve
    from sum_abm.errors import InputError

    monkeypatch.chdir(tmp_path)  # no scenarios/ folder here: only the package's files can answer
    assert resolve("quickstart") == bundled_dir() / "quickstart.toml"
    assert resolve("quickstart.toml") == bundled_dir() / "quickstart.toml"
    assert resolve("quickstart_sweep", "sweep") == bundled_dir("sweep") / "quickstart_sweep.toml"
    assert resolve("quickstart_game", "game").parent == bundled_dir("game")
    mine = tmp_path / "quickstart.toml"  # a file the user names wins over the bundled one
    mine.write_text("")
    assert resolve("quickstart.toml") == Path("quickstart.toml")
    with pytest.raises(InputError, match="^nowhere: no such scenario file .*sum-abm scenarios"):
        resolve("nowhere")
    with pytest.raises(InputError, match="^quickstart: no such game file"):
        resolve("quickstart", "game")
