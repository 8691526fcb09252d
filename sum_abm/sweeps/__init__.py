"""Parameter sweeps: sweep files, stable run ids and seeds, serial or Ray execution to Parquet parts.

``sum_abm.sweep("scenarios/sweeps/quickstart_sweep.toml", "runs/qs")`` runs a sweep file (local Ray,
or in-process when tiny) and returns its runs table; ``sum_abm.load_sweep("runs/qs")`` is a polars
LazyFrame over the finished runs (one row per run: run_id, replication, seed, the parameters by
dotted path, then the summary columns); ``load_sweep(dir, "agents")`` the agents rows;
``load_failures(dir)`` the runs that raised, ``load_executions(dir)`` where each run executed.
:func:`run_many` runs arbitrary override sets through the same engine; an :class:`Executor`
(:class:`SerialExecutor`, :class:`RayExecutor`, :class:`AutoExecutor`) chooses where, for one call
or for a block (:func:`use_executor`; :func:`shared_executor` keeps one Ray for many sweeps).

The names below are imported when first used, so that a module of this package that needs none of
them (the helper process that runs a local Ray, :mod:`sum_abm.sweeps.rayhelper`) starts without
polars, the scenarios and the simulator.
"""

from __future__ import annotations

import contextlib
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import polars as pl

    from sum_abm.sweeps.engine import (
        execute,
        run_many,
        shared_executor,
        use_executor,
    )
    from sum_abm.sweeps.executors import AutoExecutor, Executor, RayExecutor, SerialExecutor
    from sum_abm.sweeps.outcome import RunOutcome
    from sum_abm.sweeps.spec import RunSpec, Sweep, load_sweep_file, run_id, run_seed
    from sum_abm.sweeps.store import (
        load_agents,
        load_executions,
        load_failures,
        load_runs,
        load_sweep,
    )

# name -> the module of this package that defines it
_HOME = {
    "execute": "engine",
    "run_many": "engine",
    "shared_executor": "engine",
    "use_executor": "engine",
    "AutoExecutor": "executors",
    "Executor": "executors",
    "RayExecutor": "executors",
    "SerialExecutor": "executors",
    "RunOutcome": "outcome",
    "RunSpec": "spec",
    "Sweep": "spec",
    "load_sweep_file": "spec",
    "run_id": "spec",
    "run_seed": "spec",
    "load_agents": "store",
    "load_executions": "store",
    "load_failures": "store",
    "load_runs": "store",
    "load_sweep": "store",
}


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
    from sum_abm.sweeps.executors import current_executor, prepared_auto

    # A local Ray's helper process starts first: it imports Ray while this one loads the sweep.
    chosen = executor or current_executor()
    early = prepared_auto(address, workers, serial) if chosen is None else None
    with early or contextlib.nullcontext():
        from sum_abm.sweeps.engine import execute
        from sum_abm.sweeps.spec import load_sweep_file

        sw = load_sweep_file(path)
        if early is not None:
            early.notify = notify
            early.prepare(len(sw.runs), resume=resume)
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
            executor=chosen or early,
            progress=progress,
            notify=notify,
            whole=True,
        )


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))


__all__ = [
    "AutoExecutor",
    "Executor",
    "RayExecutor",
    "RunOutcome",
    "RunSpec",
    "SerialExecutor",
    "Sweep",
    "execute",
    "load_agents",
    "load_executions",
    "load_failures",
    "load_runs",
    "load_sweep",
    "load_sweep_file",
    "run_id",
    "run_many",
    "run_seed",
    "shared_executor",
    "sweep",
    "use_executor",
]
