"""Parameter sweeps: sweep files, stable run ids and seeds, serial or Ray execution to Parquet parts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from sum_abm.sweeps.engine import execute, load_agents, load_runs, run_many
from sum_abm.sweeps.spec import RunSpec, Sweep, load_sweep_file, run_id, run_seed


def sweep(path: str | Path, out: str | Path, *, address: str | None = None, workers: int | None = None,
          resume: bool = False, serial: bool | None = None, progress: Any = None) -> pl.DataFrame:
    """Run a sweep file into ``out``; returns the runs table (one row per run)."""
    sw = load_sweep_file(path)
    return execute(sw.base, sw.runs, Path(out), sweep_text=Path(path).read_text(), source=str(path),
                   address=address, workers=workers, resume=resume, serial=serial, progress=progress)


def load_sweep(out: str | Path) -> pl.LazyFrame:
    """A LazyFrame over a sweep directory's runs: parameter columns + summary columns."""
    return load_runs(out)


__all__ = ["RunSpec", "Sweep", "load_agents", "load_sweep", "load_sweep_file", "run_id", "run_many", "run_seed", "sweep"]
