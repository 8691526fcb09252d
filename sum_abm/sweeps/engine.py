"""Running sweeps: serial in-process, or one Ray task per run; streamed, resumable, fault tolerant.

Layout of a sweep directory::

    DIR/sweep.json              the sweep file, code version, and the expansion (ids, overrides, seeds)
    DIR/runs/<run_id>.parquet   one row per run: parameters (dotted names) + its summary
    DIR/agents/<run_id>.parquet the run's agents rows, with the same parameter columns
    DIR/failures.parquet        runs that raised: id, parameters, error type, message, traceback

Every part is written atomically the moment its run finishes, so an interrupted sweep (Ctrl-C, a
killed driver) leaves a directory that ``resume`` completes without repeating finished runs.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from sum_abm.errors import InputError
from sum_abm.market.results import versions, write_parquet_atomic, write_text_atomic
from sum_abm.scenario import Scenario
from sum_abm.sweeps.spec import RunSpec

SERIAL_MAX_RUNS = 4  # smaller sweeps run in-process: Ray's start-up (3-4 s) would dominate
_DATASETS: dict[str, Any] = {}  # per-process cache: runs of a sweep share their generated data


def _dataset_for(scenario: Scenario) -> Any:
    from sum_abm.data import load_dataset

    key = json.dumps([scenario.data.model_dump(mode="json"), scenario.learner.kind], sort_keys=True)
    ds = _DATASETS.get(key)
    if ds is None:
        if len(_DATASETS) >= 8:
            _DATASETS.clear()
        ds = _DATASETS[key] = load_dataset(scenario.data, scenario.learner.kind, scenario.name)
    return ds


def _param_columns(overrides: dict[str, Any]) -> dict[str, Any]:
    return {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in overrides.items()}


def execute_run(base: Scenario, run: RunSpec, baseline: bool = True, out: str | None = None) -> dict[str, Any]:
    """Run one point of a sweep and return its rows (or the failure); never raises for run errors.

    With ``out`` (a sweep folder this process can write, as local Ray workers can), the parts are
    written here and only ``{"written": run_id}`` travels back: the driver stays idle.

    Test hook: when ``SUM_ABM_FAULT_KILL_ONCE`` names a file that does not exist yet, the process
    creates it and dies (as a crashed worker would), so tests can check that Ray retries the run.
    """
    marker = os.environ.get("SUM_ABM_FAULT_KILL_ONCE")
    if marker and not os.path.exists(marker):
        Path(marker).write_text("killed once")
        os._exit(1)
    from sum_abm.market.run import run as run_scenario

    params = _param_columns(run.overrides)
    meta = {"run_id": run.run_id, "replication": run.replication, "seed": run.seed}
    try:
        scenario = base.with_overrides(run.overrides)
        res = run_scenario(scenario, run.seed, baseline=baseline, dataset=_dataset_for(scenario))
    except Exception as exc:  # a deterministic error belongs in the failures table, not a retry
        return {"failure": {**meta, "parameters": json.dumps(run.overrides, default=str), "error_type": type(exc).__name__,
                            "message": str(exc), "traceback": traceback.format_exc()}}
    lit = {**meta, **params}
    summary = res.summary.with_columns(*(pl.lit(v).alias(k) for k, v in lit.items()))
    agents = res.agents.with_columns(*(pl.lit(v).alias(k) for k, v in lit.items()))
    order = list(lit)
    result = {"summary": summary.select(order + [c for c in summary.columns if c not in lit]),
              "agents": agents.select(order + [c for c in agents.columns if c not in lit])}
    if out is not None:
        write_parts(Path(out), result)
        return {"written": run.run_id}
    return result


def write_parts(out: Path, result: dict[str, Any]) -> str:
    """Write one run's agents and runs parts atomically (runs last: it marks the run done)."""
    rid = result["summary"]["run_id"][0]
    write_parquet_atomic(result["agents"], out / "agents" / f"{rid}.parquet")
    write_parquet_atomic(result["summary"], out / "runs" / f"{rid}.parquet")
    return rid


class SweepWriter:
    """Writes parts and failures of one sweep directory as runs finish."""

    def __init__(self, out: Path) -> None:
        self.out = out
        (out / "runs").mkdir(parents=True, exist_ok=True)
        (out / "agents").mkdir(exist_ok=True)
        self.failures: list[dict[str, Any]] = []
        f = out / "failures.parquet"
        if f.exists():
            self.failures = pl.read_parquet(f).to_dicts()

    def done_ids(self) -> set[str]:
        return {p.stem for p in (self.out / "runs").glob("*.parquet")}

    def write(self, result: dict[str, Any]) -> bool:
        """Store one run's result; returns False for a failure."""
        if "failure" in result:
            fail = result["failure"]
            self.failures = [f for f in self.failures if f["run_id"] != fail["run_id"]] + [fail]
            write_parquet_atomic(pl.DataFrame(self.failures), self.out / "failures.parquet")
            return False
        rid = result["written"] if "written" in result else write_parts(self.out, result)
        if any(f["run_id"] == rid for f in self.failures):
            self.failures = [f for f in self.failures if f["run_id"] != rid]
            write_parquet_atomic(pl.DataFrame(self.failures) if self.failures else pl.DataFrame({"run_id": []}),
                                 self.out / "failures.parquet")
        return True


def write_manifest(out: Path, sweep_text: str, source: str, base: Scenario, runs: list[RunSpec]) -> None:
    """``sweep.json``: the sweep file, the code version, and the expansion."""
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "source": source,
        "sweep_file": sweep_text,
        "versions": versions(),
        "base_scenario": base.to_dict(),
        "runs": [{"run_id": r.run_id, "overrides": r.overrides, "replication": r.replication, "seed": r.seed} for r in runs],
    }
    write_text_atomic(out / "sweep.json", json.dumps(manifest, indent=1, sort_keys=True, default=str))


Progress = Callable[[int, int, int], None]  # (done, failed, total)


def run_serial(base: Scenario, todo: list[RunSpec], writer: SweepWriter, progress: Progress | None, total: int,
               done0: int, baseline: bool = True) -> None:
    done, failed = done0, 0
    for run in todo:
        ok = writer.write(execute_run(base, run, baseline))
        done += 1
        failed += 0 if ok else 1
        if progress:
            progress(done, failed, total)


def init_ray(address: str | None, workers: int | None) -> bool:
    """Start local Ray or connect to a cluster; returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    import logging

    # Ray's own INFO/WARNING lines would interleave with the progress bar; errors still show.
    opts: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address in (None, "local"):
        # A short temp dir: Ray's socket paths must stay under 107 bytes. Node IP 127.0.0.1 keeps
        # Ray's own traffic on loopback (its GCS and raylet still listen on every interface).
        opts["_temp_dir"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        ray.init(address="local", num_cpus=workers or os.cpu_count(), _node_ip_address="127.0.0.1", **opts)
        return True
    check_address(address)
    try:
        ray.init(address=address, **opts)  # a cluster: its own CPUs (num_cpus would raise)
    except Exception as exc:  # noqa: BLE001 - every connection failure becomes one line
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        hint = ""
        if "auth" in text.lower() or "token" in text.lower():
            hint = (" (Ray >= 2.52 uses token authentication: share RAY_AUTH_TOKEN / ~/.ray/auth_token with the "
                    "cluster, or set RAY_AUTH_MODE=disabled on both sides)")
        raise InputError(f"--address {address}: cannot connect to the Ray cluster: {text}{hint}") from None
    return True


def check_out(out: Path, resume: bool) -> None:
    """Refuse to mix a new sweep into a folder that holds results, unless resuming."""
    if Path(out).exists() and any((Path(out) / "runs").glob("*.parquet")) and not resume:
        raise InputError(f"{out}: already holds sweep results; use --resume to complete it or choose another --out")


def check_address(address: str) -> None:
    """Fail fast, in one line, when a host:port cluster address does not answer (Ray itself retries
    for minutes). ``auto`` and ``ray://`` addresses are left to Ray."""
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except (OSError, ValueError) as exc:
        raise InputError(f"--address {address}: cannot connect to the Ray cluster: {exc}") from None


def run_ray(base: Scenario, todo: list[RunSpec], writer: SweepWriter, progress: Progress | None, total: int,
            done0: int, address: str | None, workers: int | None, baseline: bool = True, max_retries: int = 3) -> None:
    """One Ray task per run, a bounded window in flight, parts written as results arrive."""
    import ray

    started = init_ray(address, workers)
    try:
        remote = ray.remote(max_retries=max_retries)(execute_run)
        base_ref = ray.put(base)
        # Local workers share this filesystem: they write their own parts.
        out_for_workers = str(writer.out) if address in (None, "local") else None
        window = 2 * int(ray.cluster_resources().get("CPU", 1)) + 2
        pending: list[Any] = []
        run_of: dict[Any, str] = {}
        it = iter(todo)
        done, failed = done0, 0
        while True:
            while len(pending) < window:
                run = next(it, None)
                if run is None:
                    break
                ref = remote.remote(base_ref, run, baseline, out_for_workers)
                run_of[ref] = run.run_id
                pending.append(ref)
            if not pending:
                break
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died more often than max_retries allows
                    result = {"failure": {"run_id": run_of[ref], "replication": -1, "seed": -1,
                                          "parameters": "", "error_type": type(exc).__name__,
                                          "message": str(exc).splitlines()[0] if str(exc) else "", "traceback": ""}}
                ok = writer.write(result)
                done += 1
                failed += 0 if ok else 1
                if progress:
                    progress(done, failed, total)
    finally:
        if started:
            ray.shutdown()


def run_many(base: Scenario, points: list[dict[str, Any]], out: str | Path, *, replications: int = 1, root_seed: int = 0,
             address: str | None = None, workers: int | None = None, resume: bool = False, serial: bool | None = None,
             baseline: bool = True, progress: Progress | None = None, source: str = "run_many") -> pl.DataFrame:
    """Run arbitrary override sets (``points``) × ``replications`` through the sweep engine.

    For programmatic users (the game-theory layer): the same ids, seeds, Parquet parts, resume and
    Ray/serial execution as ``sum-abm sweep``. Returns the runs table (one row per finished run).
    """
    from sum_abm.sweeps.spec import runs_for

    for ov in points:
        base.with_overrides(ov, source=source)
    runs = runs_for(points, replications, root_seed)
    return execute(base, runs, Path(out), sweep_text="", source=source, address=address, workers=workers,
                   resume=resume, serial=serial, baseline=baseline, progress=progress)


def execute(base: Scenario, runs: list[RunSpec], out: Path, *, sweep_text: str, source: str, address: str | None,
            workers: int | None, resume: bool, serial: bool | None, baseline: bool = True,
            progress: Progress | None = None) -> pl.DataFrame:
    """Run ``runs`` into ``out`` (skipping finished ones when ``resume``); returns the runs table."""
    out = Path(out)
    check_out(out, resume)
    write_manifest(out, sweep_text, source, base, runs)
    writer = SweepWriter(out)
    done_ids = writer.done_ids() if resume else set()
    todo = [r for r in runs if r.run_id not in done_ids]
    total, done0 = len(runs), len(runs) - len(todo)
    if progress:
        progress(done0, 0, total)
    use_serial = serial if serial is not None else (address is None and len(todo) <= SERIAL_MAX_RUNS)
    if todo:
        if use_serial:
            run_serial(base, todo, writer, progress, total, done0, baseline)
        else:
            run_ray(base, todo, writer, progress, total, done0, address, workers, baseline)
    return load_runs(out).collect() if any((out / "runs").glob("*.parquet")) else pl.DataFrame()


def load_runs(out: str | Path) -> pl.LazyFrame:
    """A LazyFrame over ``DIR/runs/*.parquet``: one row per finished run (parameters + summary).

    Parts may differ in columns (e.g. attack metrics only where a point has attackers): they are
    concatenated diagonally, missing values null.
    """
    d = Path(out)
    parts = sorted((d / "runs").glob("*.parquet")) if (d / "runs").is_dir() else []
    if not parts:
        raise InputError(f"{d}: not a sweep directory, or no run has finished (no runs/*.parquet)")
    return pl.concat([pl.scan_parquet(p) for p in parts], how="diagonal_relaxed")


def load_agents(out: str | Path) -> pl.LazyFrame:
    """A LazyFrame over ``DIR/agents/*.parquet``: every agent row of every finished run."""
    d = Path(out)
    parts = sorted((d / "agents").glob("*.parquet")) if (d / "agents").is_dir() else []
    if not parts:
        raise InputError(f"{d}: not a sweep directory, or no run has finished (no agents/*.parquet)")
    return pl.concat([pl.scan_parquet(p) for p in parts], how="diagonal_relaxed")
