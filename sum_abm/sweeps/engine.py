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

import contextlib
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from sum_abm import schema
from sum_abm.atomic import write_parquet_atomic, write_text_atomic
from sum_abm.errors import InputError
from sum_abm.market.results import versions
from sum_abm.scenario import Scenario
from sum_abm.sweeps.spec import RunSpec

SERIAL_MAX_RUNS = 4  # smaller sweeps run in-process: Ray's start-up (3-4 s) would dominate
BATCH_BELOW_S = (
    0.020  # runs shorter than this (median, seconds) travel in batches: a task costs ~1 ms
)
BATCH_TARGET_S = 0.050  # a batch of short runs lasts about this long (seconds)
MAX_BATCH = 256
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


def execute_run(
    base: Scenario, run: RunSpec, baseline: bool = True, out: str | None = None
) -> dict[str, Any]:
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

    t0 = time.perf_counter()

    params = _param_columns(run.overrides)
    meta = {"run_id": run.run_id, "replication": run.replication, "seed": run.seed}
    try:
        scenario = base.with_overrides(run.overrides)
        res = run_scenario(scenario, run.seed, baseline=baseline, dataset=_dataset_for(scenario))
    except Exception as exc:  # a deterministic error belongs in the failures table, not a retry
        return {
            "failure": failure_row(run, type(exc).__name__, str(exc), traceback.format_exc()),
            "wall_s": time.perf_counter() - t0,
        }
    lit = {**meta, **params}
    summary = res.summary.with_columns(*(pl.lit(v).alias(k) for k, v in lit.items()))
    agents = res.agents.with_columns(*(pl.lit(v).alias(k) for k, v in lit.items()))
    order = list(lit)
    result = {
        "summary": summary.select(order + [c for c in summary.columns if c not in lit]),
        "agents": agents.select(order + [c for c in agents.columns if c not in lit]),
    }
    if out is not None:
        write_parts(Path(out), result)
        return {"written": run.run_id, "wall_s": time.perf_counter() - t0}
    return {**result, "wall_s": time.perf_counter() - t0}


def execute_batch(
    base: Scenario, runs: list[RunSpec], baseline: bool = True, out: str | None = None
) -> list[dict[str, Any]]:
    """Run several short runs in one task (see :func:`execute_run`). With ``out``, a run whose part
    already exists is skipped: a batch retried after its worker died does not redo finished runs."""
    results = []
    for run in runs:
        if out is not None and (Path(out) / "runs" / f"{run.run_id}.parquet").exists():
            results.append({"written": run.run_id, "skipped": True})
            continue
        results.append(execute_run(base, run, baseline, out))
    return results


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

    def clean_temporaries(self) -> int:
        """Remove temporary files a killed writer left behind (``.<name>.<random>``); returns how many."""
        n = 0
        for sub in ("runs", "agents", "."):
            for p in (self.out / sub).glob(".*.parquet.*"):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def write(self, result: dict[str, Any]) -> bool:
        """Store one run's result; returns False for a failure."""
        if "failure" in result:
            fail = result["failure"]
            self.failures = [f for f in self.failures if f["run_id"] != fail["run_id"]] + [fail]
            self._write_failures()
            return False
        rid = result["written"] if "written" in result else write_parts(self.out, result)
        if any(
            f["run_id"] == rid for f in self.failures
        ):  # a resumed run that failed before succeeded now
            self.failures = [f for f in self.failures if f["run_id"] != rid]
            self._write_failures()
        return True

    def _write_failures(self) -> None:
        path = self.out / "failures.parquet"
        if self.failures:
            write_parquet_atomic(pl.DataFrame(self.failures, schema=FAILURE_SCHEMA), path)
        else:
            path.unlink(missing_ok=True)


FAILURE_SCHEMA = schema.dtypes("sweep_failures")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def write_manifest(
    out: Path, sweep_text: str, source: str, base: Scenario, runs: list[RunSpec]
) -> None:
    """``sweep.json``: the sweep file, the code version, the base scenario and the expansion. On resume
    the expansion is the union of the earlier one and this one (a grown grid keeps its old runs)."""
    out.mkdir(parents=True, exist_ok=True)
    entries = {
        r.run_id: {
            "run_id": r.run_id,
            "overrides": r.overrides,
            "replication": r.replication,
            "seed": r.seed,
        }
        for r in runs
    }
    old = read_manifest(out)
    if old:
        entries = {**{e["run_id"]: e for e in old.get("runs", [])}, **entries}
    manifest = {
        "source": source,
        "sweep_file": sweep_text,
        "versions": versions(),
        "code_revision": code_revision(),
        "base_scenario": json.loads(_canonical(base.to_dict())),
        "runs": list(entries.values()),
    }
    write_text_atomic(
        out / "sweep.json", json.dumps(manifest, indent=1, sort_keys=True, default=str)
    )


def code_revision() -> str | None:
    """The git commit of the sum_abm checkout (``+dirty`` with uncommitted changes under sum_abm/),
    or None for an installed copy without git."""
    import subprocess

    pkg = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "-C", str(pkg), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(pkg), "status", "--porcelain", "--untracked-files=no", "--", "."],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def read_manifest(out: str | Path) -> dict[str, Any] | None:
    """The parsed ``sweep.json`` of a sweep folder, or None when there is none (or it is unreadable)."""
    f = Path(out) / "sweep.json"
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


Progress = Callable[[int, int, int], None]  # (done, failed, total)


def run_serial(
    base: Scenario,
    todo: list[RunSpec],
    writer: SweepWriter,
    progress: Progress | None,
    total: int,
    done0: int,
    baseline: bool = True,
) -> None:
    """Run ``todo`` one after the other in this process, writing each result as it finishes."""
    done, failed = done0, 0
    for run in todo:
        ok = writer.write(execute_run(base, run, baseline))
        done += 1
        failed += 0 if ok else 1
        if progress:
            progress(done, failed, total)


_OWN_TEMP_DIRS: list[str] = []  # temp dirs of the local Ray instances this process started


def shutdown_ray() -> None:
    """Stop the Ray this process started (local or connected) and remove its session folders."""
    import shutil

    import ray

    ray.shutdown()
    while _OWN_TEMP_DIRS:
        shutil.rmtree(_OWN_TEMP_DIRS.pop(), ignore_errors=True)


def ray_running() -> bool:
    """True when this process is already connected to Ray (a notebook, a test fixture): no start-up to pay."""
    import sys

    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


def init_ray(address: str | None, workers: int | None) -> bool:
    """Start local Ray or connect to a cluster; returns True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    import logging

    # Ray's own INFO/WARNING lines would interleave with the progress bar; errors still show.
    opts: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
    }
    if address in (None, "local"):
        # A short temp dir: Ray's socket paths must stay under 107 bytes. Node IP 127.0.0.1 keeps
        # Ray's own traffic on loopback (its GCS and raylet still listen on every interface).
        opts["_temp_dir"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")
        _OWN_TEMP_DIRS.append(opts["_temp_dir"])
        ray.init(
            address="local",
            num_cpus=workers or os.cpu_count(),
            _node_ip_address="127.0.0.1",
            **opts,
        )
        return True
    check_address(address)
    # Ray's C++ client prints a warning line a second while the head refuses it (about 20 s): keep
    # them out of the terminal, and read them to say why in one line.
    with _stderr_captured() as captured:
        try:
            ray.init(address=address, **opts)  # a cluster: its own CPUs (num_cpus would raise)
            return True
        except Exception as exc:  # noqa: BLE001 - every connection failure becomes one line
            failure = exc
    chain, e = [], failure
    while e is not None and len(chain) < 8:
        chain.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    text = "\n".join(chain) + "\n" + captured.read()
    if any(k in text for k in ("InvalidAuthToken", "Unauthenticated", "AuthenticationError")):
        raise InputError(
            f"--address {address}: the Ray cluster refused this driver's authentication token: {AUTH_HELP}"
        ) from None
    raise InputError(
        f"--address {address}: cannot connect to the Ray cluster: {_first_line(failure)} "
        f"(if the head refuses drivers: {AUTH_HELP})"
    ) from None


# Ray >= 2.52 authenticates drivers with a token: the usual reason a reachable head refuses a driver.
AUTH_HELP = (
    "Ray >= 2.52 uses token authentication, so give this driver the cluster's token (RAY_AUTH_TOKEN, "
    "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token as on the head) or start head and driver with "
    "RAY_AUTH_MODE=disabled on a trusted network"
)


class _Captured:
    def __init__(self) -> None:
        self.text = ""

    def read(self) -> str:
        return self.text


@contextlib.contextmanager
def _stderr_captured() -> Iterator[_Captured]:
    """Redirect file descriptor 2 (where Ray's C++ core logs) to a temporary file for the block."""
    cap = _Captured()
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2 (embedded interpreters): nothing to capture
        yield cap
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield cap
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            cap.text = tmp.read().decode("utf-8", "replace")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_out(out: Path, resume: bool, base: Scenario | None = None) -> None:
    """Refuse to mix a new sweep into a folder that holds results, unless resuming; refuse to resume
    into a folder whose runs came from another base scenario."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (expected a sweep output folder)")
    if out.exists() and any((out / "runs").glob("*.parquet")) and not resume:
        raise InputError(
            f"{out}: already holds sweep results; use --resume to complete it or choose another --out"
        )
    if resume and base is not None:
        old = read_manifest(out)
        if (
            old
            and "base_scenario" in old
            and old["base_scenario"] != json.loads(_canonical(base.to_dict()))
        ):
            raise InputError(
                f"{out}: its runs come from another base scenario than this sweep's; "
                f"choose another --out (resume only completes the same sweep or a grown one)"
            )


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
        raise InputError(
            f"--address {address}: cannot connect to the Ray cluster: {exc} "
            f"(is a head running there? `ray start --head --port {port}` starts one)"
        ) from None


def batch_size(durations: list[float], remaining: int, cpus: int) -> int:
    """How many runs the next task carries: 1 while runs last ``BATCH_BELOW_S`` or more (or before
    any has finished), else enough for about ``BATCH_TARGET_S`` per task; never so many that the
    last tasks leave cores idle (at least two tasks per core for what remains)."""
    if len(durations) < 2:
        return 1
    recent = sorted(durations[-64:])
    median = recent[len(recent) // 2]
    if median >= BATCH_BELOW_S:
        return 1
    size = min(MAX_BATCH, int(BATCH_TARGET_S / max(median, 1e-4)) + 1)
    return max(1, min(size, remaining // (2 * max(cpus, 1))))


def run_ray(
    base: Scenario,
    todo: list[RunSpec],
    writer: SweepWriter,
    progress: Progress | None,
    total: int,
    done0: int,
    address: str | None,
    workers: int | None,
    baseline: bool = True,
    max_retries: int = 3,
) -> None:
    """One Ray task per run (short runs batched), a bounded window in flight, parts written as
    results arrive. A task whose worker dies is retried ``max_retries`` times; a run that raises is
    recorded in ``failures.parquet``."""
    import ray

    started = init_ray(address, workers)
    try:
        remote = ray.remote(max_retries=max_retries)(execute_batch)
        base_ref = ray.put(base)
        # Local workers share this filesystem: they write their own parts (the driver stays idle).
        out_for_workers = str(writer.out) if address in (None, "local") else None
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        window = 2 * cpus + 2
        batch_of: dict[Any, list[RunSpec]] = {}
        durations: list[float] = []
        pending: list[Any] = []
        queue = list(reversed(todo))  # pop() from the end = submit in expansion order
        done, failed = done0, 0
        while queue or pending:
            while queue and len(pending) < window:
                n = batch_size(durations, len(queue), cpus)
                batch = [queue.pop() for _ in range(min(n, len(queue)))]
                ref = remote.remote(base_ref, batch, baseline, out_for_workers)
                batch_of[ref] = batch
                pending.append(ref)
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                batch = batch_of.pop(ref)
                try:
                    results = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - the worker died more often than max_retries allows
                    results = [
                        {"failure": failure_row(r, type(exc).__name__, _first_line(exc), str(exc))}
                        for r in batch
                    ]
                for result in results:
                    if "wall_s" in result:
                        durations.append(result["wall_s"])
                    ok = writer.write(result)
                    done += 1
                    failed += 0 if ok else 1
                if progress:
                    progress(done, failed, total)
    finally:
        # Ctrl-C or an error: no ray.cancel of the pending tasks (cancelling then shutting down trips a
        # check in Ray 2.60's task manager); tasks owned by a driver that disconnects are dropped by Ray.
        if started:
            shutdown_ray()


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
    baseline: bool = True,
    progress: Progress | None = None,
    source: str = "run_many",
) -> pl.DataFrame:
    """Run arbitrary override sets (``points``) x ``replications`` through the sweep engine.

    The programmatic entry point (used by the game-theory layer): the same stable run ids
    (:func:`sum_abm.sweeps.spec.run_id`), seeds, Parquet parts, resume and Ray/serial execution as
    ``sum-abm sweep``.

    - ``base``: the scenario every point overrides; ``points``: ``[{dotted.path: value}, ...]``, each
      validated against ``base`` before anything runs (one-line :class:`InputError`).
    - ``out``: the sweep folder (``runs/``, ``agents/``, ``sweep.json``, ``failures.parquet``).
    - ``root_seed``: each run's seed is ``SeedSequence(root_seed, spawn_key=<its id>)``.
    - ``address``: ``None`` = local Ray on ``workers`` cores (default every core), or a cluster
      (``host:port``, ``auto``, ``ray://...``); ``serial=True`` runs in this process, ``None``
      decides (in-process for at most ``SERIAL_MAX_RUNS`` runs when no Ray is running).
    - ``resume``: skip runs whose part exists (to complete an interrupted call or add points; calls
      with the same ``base`` may share one folder); ``baseline``: also run the clean baseline of
      scenarios with attackers; ``progress(done, failed, total)`` is called as runs finish.

    Returns the runs table (one row per finished run in ``out``: parameters + summary columns).
    """
    from sum_abm.sweeps.spec import check_points, runs_for

    check_points(base, points, source)
    runs = runs_for(points, replications, root_seed)
    return execute(
        base,
        runs,
        Path(out),
        sweep_text="",
        source=source,
        address=address,
        workers=workers,
        resume=resume,
        serial=serial,
        baseline=baseline,
        progress=progress,
    )


def execute(
    base: Scenario,
    runs: list[RunSpec],
    out: Path,
    *,
    sweep_text: str,
    source: str,
    address: str | None,
    workers: int | None,
    resume: bool,
    serial: bool | None,
    baseline: bool = True,
    progress: Progress | None = None,
) -> pl.DataFrame:
    """Run ``runs`` into ``out`` (skipping finished ones when ``resume``); returns the runs table."""
    out = Path(out)
    check_out(out, resume, base)
    write_manifest(out, sweep_text, source, base, runs)
    writer = SweepWriter(out)
    writer.clean_temporaries()
    done_ids = writer.done_ids() if resume else set()
    todo = [r for r in runs if r.run_id not in done_ids]
    total, done0 = len(runs), len(runs) - len(todo)
    if progress:
        progress(done0, 0, total)
    use_serial = (
        serial
        if serial is not None
        else (address is None and len(todo) <= SERIAL_MAX_RUNS and not ray_running())
    )
    if todo:
        if use_serial:
            run_serial(base, todo, writer, progress, total, done0, baseline)
        else:
            run_ray(base, todo, writer, progress, total, done0, address, workers, baseline)
    return load_runs(out).collect() if any((out / "runs").glob("*.parquet")) else pl.DataFrame()


def _parts(out: str | Path, sub: str) -> list[Path]:
    d = Path(out)
    parts = sorted((d / sub).glob("*.parquet")) if (d / sub).is_dir() else []
    if not parts:
        raise InputError(f"{d}: not a sweep directory, or no run has finished (no {sub}/*.parquet)")
    return parts


def _scan(parts: list[Path]) -> pl.LazyFrame:
    """Parts may differ in columns (attack metrics only where a point has attackers) or types (a
    parameter given as 1 in one point and 2.5 in another): concatenated diagonally with supertypes,
    missing values null."""
    return pl.concat([pl.scan_parquet(p) for p in parts], how="diagonal_relaxed")


def load_runs(out: str | Path) -> pl.LazyFrame:
    """A LazyFrame over ``DIR/runs/*.parquet``: one row per finished run (run_id, replication,
    seed, the parameters by dotted path, then the run's summary columns)."""
    return _scan(_parts(out, "runs"))


def load_agents(out: str | Path) -> pl.LazyFrame:
    """A LazyFrame over ``DIR/agents/*.parquet``: every agent row of every finished run (run_id,
    replication, seed and parameter columns first, as in :func:`load_runs`)."""
    return _scan(_parts(out, "agents"))


def load_failures(out: str | Path) -> pl.DataFrame:
    """``DIR/failures.parquet`` (run_id, replication, seed, parameters as JSON, error_type, message,
    traceback); an empty frame when no run failed."""
    f = Path(out) / "failures.parquet"
    return pl.read_parquet(f) if f.exists() else pl.DataFrame(schema=FAILURE_SCHEMA)
