"""The sweep engine: runs a list of runs into a sweep folder through an executor.

:func:`execute` (sweep files) and :func:`run_many` (arbitrary override sets: the game and design
layers) lock the folder, write the manifest, skip finished runs on resume, run the rest and return
the runs table built from the returned rows. Where the runs execute:

- ``executor=`` given, or one set for a block with :func:`use_executor`: that executor;
- ``serial=True``: this process (:class:`SerialExecutor`);
- otherwise :class:`AutoExecutor`: local, the first runs execute in this process and are timed
  (unless the sweep has ``START_AT_ONCE_RUNS`` runs or more: then Ray starts at once);
  when what remains is too short for Ray to win (under ``IN_PROCESS_BELOW_S`` seconds of work)
  the sweep finishes here and says so; else this process stays one of the workers for the whole
  sweep while a local Ray starts in a helper process with one warm actor per other core, which
  join as soon as they are ready (``sum-abm sweep`` and :func:`sum_abm.sweep` spawn that helper
  before they load the sweep: :func:`~sum_abm.sweeps.executors.prepared_auto`). With ``address``, a Ray cluster's actors. :func:`shared_executor` keeps one
  for many sweeps (a game's), so that Ray starts once.

Storage (parts, manifest, failures, executions log, loaders) lives in :mod:`sum_abm.sweeps.store`,
one run as a task and its outcome in :mod:`sum_abm.sweeps.task`, the executors in
:mod:`sum_abm.sweeps.executors` (the local Ray's helper process in :mod:`sum_abm.sweeps.rayhelper`,
the actors' body in :mod:`sum_abm.sweeps.rayworker`, chunk sizes in :mod:`sum_abm.sweeps.chunking`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from sum_abm.scenario import Scenario
from sum_abm.sweeps.executors import (
    AutoExecutor,
    Executor,
    RayExecutor,
    SerialExecutor,
    chunk_size,
    current_executor,
    use_executor,
)
from sum_abm.sweeps.outcome import RunOutcome, failure_row
from sum_abm.sweeps.raynode import (
    AUTH_HELP,
    check_address,
    init_ray,
    ray_running,
    shutdown_ray,
)
from sum_abm.sweeps.spec import RunSpec
from sum_abm.sweeps.store import (
    FAILURE_SCHEMA,
    SweepStore,
    check_out,
    code_revision,
    folder_lock,
    load_agents,
    load_executions,
    load_failures,
    load_runs,
    read_manifest,
    write_manifest,
)
from sum_abm.sweeps.task import RunTask, check_data

Progress = Callable[[int, int, int], None]  # (done, failed, total)
Notify = Callable[[str], None]


@contextlib.contextmanager
def shared_executor(address: str | None = None, workers: int | None = None) -> Iterator[Executor]:
    """One executor for every sweep started in the block (a game's successive profiles, a
    frontier's bisection steps): the one set with :func:`use_executor` if any, else an
    :class:`AutoExecutor` whose Ray, once a sweep is long enough to start it, serves the rest of
    the block and stops at its end."""
    current = current_executor()
    if current is not None:
        yield current
        return
    with AutoExecutor(address, workers) as ex, use_executor(ex):
        yield ex


def run_many(
    base: Scenario,
    points: list[dict[str, Any]],
    out: str | Path,
    *,
    replications: int = 1,
    root_seed: int = 0,
    address: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    serial: bool | None = None,
    executor: Executor | None = None,
    baseline: bool = True,
    progress: Progress | None = None,
    notify: Notify | None = None,
    source: str = "run_many",
) -> pl.DataFrame:
    """Run arbitrary override sets (``points``) x ``replications`` through the sweep engine.

    The programmatic entry point (used by the game-theory and design layers): the same stable run
    ids (:func:`sum_abm.sweeps.spec.run_id`), seeds, Parquet parts, resume and execution as
    ``sum-abm sweep``.

    - ``base``: the scenario every point overrides; ``points``: ``[{dotted.path: value}, ...]``, each
      validated against ``base`` before anything runs (one-line :class:`InputError`).
    - ``out``: the sweep folder (``runs/``, ``agents/``, ``sweep.json``, ``failures.parquet``,
      ``executions.jsonl``); one sweep at a time per folder (a second one is refused).
    - ``root_seed``: each run's seed is ``SeedSequence(root_seed, spawn_key=<its id>)``.
    - where: ``executor`` (or one set with :func:`use_executor`); ``serial=True``: this process;
      else local Ray on ``workers`` cores (default every core) when the runs are long enough to
      gain from it, or a cluster at ``address`` (``host:port``, ``auto``, ``ray://...``).
    - ``resume``: skip runs whose part exists (to complete an interrupted call or add points; calls
      with the same ``base`` may share one folder); ``baseline``: also run the clean baseline of
      scenarios with attackers; ``progress(done, failed, total)`` is called as runs finish;
      ``notify(line)`` hears where the runs execute.

    Returns the runs table (one row per finished run in ``out``: parameters + summary columns).
    """
    from sum_abm.sweeps.spec import check_points, runs_for

    check_points(base, points, source)
    runs = runs_for(points, replications, root_seed)
    return execute(
        base,
        runs,
        Path(out),
        source=source,
        address=address,
        workers=workers,
        resume=resume,
        serial=serial,
        executor=executor,
        baseline=baseline,
        progress=progress,
        notify=notify,
    )


def execute(
    base: Scenario,
    runs: list[RunSpec],
    out: Path,
    *,
    sweep_text: str = "",
    source: str = "execute",
    address: str | None = None,
    workers: int | None = None,
    resume: bool = False,
    serial: bool | None = None,
    executor: Executor | None = None,
    baseline: bool = True,
    progress: Progress | None = None,
    notify: Notify | None = None,
    whole: bool = False,
) -> pl.DataFrame:
    """Run ``runs`` into ``out`` (skipping finished ones when ``resume``); returns the runs table.
    Where they run: see the module docstring and :func:`run_many`. ``whole``: ``runs`` are a sweep
    file's every run (resume then refuses a folder holding others, see
    :func:`~sum_abm.sweeps.store.check_out`); a search adding batches to one folder is not."""
    out = Path(out)
    check_data(base, runs, source)
    with folder_lock(out):
        check_out(out, resume, base, runs, whole=whole)
        write_manifest(out, sweep_text, source, base, runs)
        store = SweepStore(out)
        store.clean_temporaries()
        done_ids = store.done_ids() if resume else set()
        if resume and notify:
            damaged = sorted(
                p.name for p in (out / "runs").glob("*.parquet") if p.stem not in done_ids
            )
            if damaged:
                notify(
                    f"{len(damaged)} finished run(s) whose parts cannot be read (runs/{damaged[0]}"
                    f"{', ...' if len(damaged) > 1 else ''}): running them again"
                )
        todo = [r for r in runs if r.run_id not in done_ids]
        counts = {"done": len(runs) - len(todo), "failed": 0, "total": len(runs)}
        if progress:
            progress(counts["done"], 0, counts["total"])

        def record(outcome: RunOutcome) -> None:
            ok = store.record(outcome)
            counts["done"] += 1
            counts["failed"] += 0 if ok else 1
            if progress:
                progress(counts["done"], counts["failed"], counts["total"])

        if todo:
            task = RunTask(base, baseline)
            chosen = executor or current_executor() or (SerialExecutor() if serial else None)
            if chosen is not None:
                _run_on(chosen, task, todo, out, record)
            else:
                auto = AutoExecutor(address, workers, probe=serial is None, notify=notify)
                with auto:
                    _run_on(auto, task, todo, out, record)
        return store.table()


def _for(executor: Executor, task: RunTask, out: Path) -> RunTask:
    """Workers that may write their runs' parts get the folder: the driver only records those."""
    return dataclasses.replace(task, out=str(out)) if executor.writes_parts else task


def _run_on(
    executor: Executor,
    task: RunTask,
    todo: list[RunSpec],
    out: Path,
    record: Callable[[RunOutcome], None],
) -> None:
    for outcome in executor.map(_for(executor, task, out), todo):
        record(outcome)


__all__ = [
    "AUTH_HELP",
    "AutoExecutor",
    "FAILURE_SCHEMA",
    "Executor",
    "RayExecutor",
    "RunOutcome",
    "RunTask",
    "SerialExecutor",
    "check_address",
    "check_out",
    "chunk_size",
    "code_revision",
    "current_executor",
    "execute",
    "failure_row",
    "init_ray",
    "load_agents",
    "load_executions",
    "load_failures",
    "load_runs",
    "ray_running",
    "read_manifest",
    "run_many",
    "shared_executor",
    "shutdown_ray",
    "use_executor",
]
