"""The typed outcome of one run of a sweep, and the failure row it carries when the run raised."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import polars as pl

from sum_abm.sweeps.spec import RunSpec


@dataclass
class RunOutcome:
    """What one run returns to the driver.

    ``summary`` is its one runs-table row (run_id, replication, seed, parameters, summary columns)
    and ``agents`` its agent rows — ``agents`` is None when ``written`` (the worker wrote both
    parts into the sweep folder itself). ``failure`` is its ``failures.parquet`` row when it raised.
    ``wall_s`` is its duration in seconds; ``host``, ``pid`` and ``node_id`` (Ray's, or "") say
    where it ran; ``reused`` marks a run whose parts an earlier attempt had already written.
    """

    run: RunSpec
    summary: pl.DataFrame | None = None
    agents: pl.DataFrame | None = None
    failure: dict[str, Any] | None = None
    written: bool = False
    wall_s: float = 0.0
    host: str = ""
    pid: int = 0
    node_id: str = ""
    executor: str = ""
    reused: bool = False

    @property
    def ok(self) -> bool:
        return self.failure is None


def failure_row(run: RunSpec, error_type: str, message: str, tb: str) -> dict[str, Any]:
    """One row of ``failures.parquet``."""
    return {
        "run_id": run.run_id,
        "replication": run.replication,
        "seed": run.seed,
        "parameters": json.dumps(run.overrides, sort_keys=True, default=str),
        "error_type": error_type,
        "message": message,
        "traceback": tb,
    }
