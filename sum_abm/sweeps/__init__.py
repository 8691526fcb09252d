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

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sum_abm.sweeps.engine import (
        execute,
        run_many,
        shared_executor,
        sweep,
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
    "sweep": "engine",
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
