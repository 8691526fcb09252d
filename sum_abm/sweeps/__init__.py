"""Parameter sweeps: sweep files, stable run ids and seeds, serial or Ray execution to Parquet parts.

``sum_abm.sweep("scenarios/sweeps/quickstart_sweep.toml", "runs/qs")`` runs a sweep file (local Ray,
or in-process when tiny) and returns its runs table; ``sum_abm.load_sweep("runs/qs")`` is a polars
LazyFrame over the finished runs (one row per run: run_id, replication, seed, the parameters by
dotted path, then the summary columns); ``load_sweep(dir, "agents")`` the agents rows;
``load_failures(dir)`` the runs that raised, ``load_executions(dir)`` where each run executed.
:func:`run_many` runs arbitrary override sets through the same engine; an :class:`Executor`
(:class:`SerialExecutor`, :class:`RayExecutor`, :class:`AutoExecutor`) chooses where, for one call
or for a block (:func:`use_executor`; :func:`shared_executor` keeps one Ray for many sweeps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import polars as pl

from sum_abm.errors import InputError
from sum_abm.sweeps.engine import (
    execute,
    load_agents,
    load_executions,
    load_failures,
    load_runs,
    run_many,
    shared_executor,
    use_executor,
)
from sum_abm.sweeps.executors import AutoExecutor, Executor, RayExecutor, SerialExecutor
from sum_abm.sweeps.outcome import RunOutcome
from sum_abm.sweeps.spec import RunSpec, Sweep, load_sweep_file, run_id, run_seed


def sweep(
    path: str | Path,
    out: str | Path,
    *,
    address: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    serial: bool | None = None,
    executor: Executor | None = None,
    progress: Any = None,
    notify: Any = None,
) -> pl.DataFrame:
    """Run the sweep file ``path`` into the folder ``out``; returns the runs table (one row per run).

    ``address``: None = local Ray (``workers`` cores, default every core), or a cluster address;
    ``serial=True`` runs in this process (identical results), ``executor`` on the one given (see
    :mod:`sum_abm.sweeps.executors`); ``resume=True`` skips finished runs;
    ``progress(done, failed, total)`` is called as runs finish; ``notify(line)`` hears where the
    runs execute (in this process, on how many Ray workers). See ``sum-abm sweep --help``.
    """
    sw = load_sweep_file(path)
    return execute(
        sw.base,
        sw.runs,
        Path(out),
        sweep_text=Path(path).read_text(),
        source=str(path),
        address=address,
        workers=workers,
        resume=resume,
        serial=serial,
        executor=executor,
        progress=progress,
        notify=notify,
    )


def load_sweep(out: str | Path, table: Literal["runs", "agents"] = "runs") -> pl.LazyFrame:
    """A LazyFrame over a sweep folder: ``"runs"`` (default) has one row per finished run with the
    parameter and summary columns; ``"agents"`` has every agent row of every run (same leading columns)."""
    if table == "runs":
        return load_runs(out)
    if table == "agents":
        return load_agents(out)
    raise InputError(f"load_sweep: table: expected 'runs' or 'agents', got {table!r}")


__all__ = [
    "AutoExecutor",
    "Executor",
    "RayExecutor",
    "RunOutcome",
    "RunSpec",
    "SerialExecutor",
    "Sweep",
    "load_agents",
    "load_executions",
    "load_failures",
    "load_sweep",
    "load_sweep_file",
    "run_id",
    "run_many",
    "run_seed",
    "shared_executor",
    "sweep",
    "use_executor",
]
