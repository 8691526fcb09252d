"""One run of a sweep as a picklable task, and its typed outcome.

A :class:`RunTask` holds what every run of a sweep shares (the base scenario, whether to run the
clean baseline, the folder local workers write into); calling it with a :class:`RunSpec` runs that
point and returns a :class:`RunOutcome` — its rows or its failure, never an exception for an error
of the run itself (a deterministic error belongs in the failures table, not in a retry loop).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from sum_abm.errors import InputError
from sum_abm.scenario import Scenario
from sum_abm.sweeps.outcome import RunOutcome, failure_row
from sum_abm.sweeps.spec import RunSpec
from sum_abm.sweeps.store import run_part, write_parts

_DATASETS: dict[str, Any] = {}  # per process: the runs of a sweep share their loaded data


def dataset_for(scenario: Scenario) -> Any:
    """The scenario's data set, loaded once per process (generated data also comes from the disk
    cache of :mod:`sum_abm.data`)."""
    from sum_abm.data import load_dataset

    key = json.dumps([scenario.data.model_dump(mode="json"), scenario.learner.kind], sort_keys=True)
    ds = _DATASETS.get(key)
    if ds is None:
        if len(_DATASETS) >= 8:
            _DATASETS.clear()
        ds = _DATASETS[key] = load_dataset(scenario.data, scenario.learner.kind, scenario.name)
    return ds


def check_data(base: Scenario, runs: list[RunSpec], source: str) -> None:
    """What only the data can tell, checked before any run: each distinct data set of ``runs``
    (with its learner and mechanism settings) is loaded as the runs will load it (the checks of
    :func:`sum_abm.data.load_dataset`) and checked as a run would be built on it
    (:func:`~sum_abm.market.contract_setup.check_setup`). The first problem raises a one-line
    :class:`InputError` naming ``source`` and the point, so a bad value refuses the sweep (exit 2)
    instead of failing every run that uses it."""
    from sum_abm.market.contract_setup import check_setup
    from sum_abm.scenario import split_path

    seen: set[str] = set()
    for run in runs:
        on_data = {
            k: v
            for k, v in run.overrides.items()
            if split_path(k)[0] in ("data", "learner", "mechanism")
        }
        tag = json.dumps(on_data, sort_keys=True, default=str)
        if tag in seen:  # the rest of the overrides cannot change what the data allows
            continue
        seen.add(tag)
        scenario = base.with_overrides(run.overrides, source=source)
        try:
            check_setup(scenario, dataset_for(scenario))
        except InputError as exc:
            point = ", ".join(f"{k} = {json.dumps(v, default=str)}" for k, v in on_data.items())
            where = f"the point {{{point}}}" if point else "the base scenario"
            raise InputError(f"{source}: {where}: {exc}") from None


def _param_columns(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in overrides.items()}


@dataclass(frozen=True)
class RunTask:
    """Runs one point of a sweep: ``base`` with the run's overrides, seeded by the run.

    ``out``: a sweep folder this process can write (local workers): the parts are written here and
    only the one-row summary travels back. ``baseline``: also run the clean baseline of scenarios
    with attackers.
    """

    base: Scenario
    baseline: bool = True
    out: str | None = None

    def warm(self) -> None:
        """Load the base scenario's data and simulate one second of it without its baseline, so
        that the first real run pays no import (the learner's libraries are imported lazily) and
        no data loading; the warm-up's results are discarded."""
        from sum_abm.market.run import run as run_scenario

        with contextlib.suppress(Exception):  # a base that cannot run: its runs will say why
            short = self.base.with_overrides({"run.max_time_s": 1})
            run_scenario(short, 0, baseline=False, dataset=dataset_for(short))

    def __call__(self, run: RunSpec) -> RunOutcome:
        """Run ``run``; a run error becomes the outcome's failure row (never raised)."""
        from sum_abm.market.run import run as run_scenario

        t0 = time.perf_counter()
        where = {"host": socket.gethostname(), "pid": os.getpid()}
        if self.out is not None and run_part(Path(self.out), run.run_id).exists():
            # An earlier attempt (a retried chunk after its worker died) finished this run.
            summary = pl.read_parquet(run_part(Path(self.out), run.run_id))
            return RunOutcome(run, summary=summary, written=True, reused=True, **where)
        meta = {"run_id": run.run_id, "replication": run.replication, "seed": run.seed}
        try:
            scenario = self.base.with_overrides(run.overrides)
            res = run_scenario(
                scenario, run.seed, baseline=self.baseline, dataset=dataset_for(scenario)
            )
        except Exception as exc:  # noqa: BLE001 - every run error is recorded, the sweep goes on
            fail = failure_row(run, type(exc).__name__, str(exc), traceback.format_exc())
            return RunOutcome(run, failure=fail, wall_s=time.perf_counter() - t0, **where)
        lit = {**meta, **_param_columns(run.overrides)}
        summary = res.summary.with_columns(*(pl.lit(v).alias(k) for k, v in lit.items()))
        agents = res.agents.with_columns(*(pl.lit(v).alias(k) for k, v in lit.items()))
        order = list(lit)
        summary = summary.select(order + [c for c in summary.columns if c not in lit])
        agents = agents.select(order + [c for c in agents.columns if c not in lit])
        if self.out is not None:
            write_parts(Path(self.out), summary, agents)
            return RunOutcome(
                run, summary=summary, written=True, wall_s=time.perf_counter() - t0, **where
            )
        return RunOutcome(
            run, summary=summary, agents=agents, wall_s=time.perf_counter() - t0, **where
        )
