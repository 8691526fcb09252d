"""The sweep folder: parts, manifest, failures, the executions log, the folder lock and the loaders.

Layout of a sweep folder::

    DIR/sweep.json              the sweep file, code version, and the expansion (ids, overrides, seeds)
    DIR/runs/<run_id>.parquet   one row per run: parameters (dotted names) + its summary
    DIR/agents/<run_id>.parquet the run's agents rows, with the same parameter columns
    DIR/failures.parquet        runs that raised: id, parameters, error type, message, traceback
    DIR/executions.jsonl        where and how long each run executed (host, pid, Ray node, seconds)
    DIR/.lock                   held (``flock``) by the process running a sweep into DIR

Every part is written atomically the moment its run finishes, so an interrupted sweep (Ctrl-C, a
killed driver) leaves a folder that ``--resume`` completes without repeating finished runs. The
executions log is kept apart from the parts so that the parts depend only on the runs' seeds.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import polars as pl

from sum_abm import schema
from sum_abm.atomic import write_parquet_atomic, write_text_atomic
from sum_abm.errors import InputError, first_line
from sum_abm.market.results import versions
from sum_abm.scenario import Scenario
from sum_abm.sweeps.outcome import RunOutcome
from sum_abm.sweeps.spec import RunSpec

FAILURE_SCHEMA = schema.dtypes("sweep_failures")
EXECUTIONS = "executions.jsonl"


def canonical(obj: Any) -> str:
    """Sorted-key JSON: the form in which scenarios and overrides are compared."""
    return json.dumps(obj, sort_keys=True, default=str)


# -- one sweep at a time per folder -------------------------------------------------------------
_HELD: dict[
    str, tuple[int, int]
] = {}  # folder -> (fd of its lock file, depth): re-entrant per process


@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.lock`` for the block, or raise a one-line :class:`InputError` when another process
    holds it. ``flock`` locks die with their process, so a killed driver never leaves a stuck lock;
    the same process may enter again (the command line locks before it calls the engine)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (expected a sweep output folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"{out}: cannot create the output folder ({exc.strerror or exc})"
        ) from None
    key = str(out.resolve())
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
    else:
        fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise InputError(
                f"{out}: another sweep is running into this folder ({holder}); wait for it, "
                f"or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}".encode())
        _HELD[key] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _HELD[key]
        if depth > 1:
            _HELD[key] = (fd, depth - 1)
        else:
            del _HELD[key]
            os.close(fd)  # releases the flock


# -- checks before anything runs ----------------------------------------------------------------
def check_out(
    out: Path,
    resume: bool,
    base: Scenario | None = None,
    runs: list[RunSpec] | None = None,
    *,
    whole: bool = False,
) -> None:
    """Refuse to mix a new sweep into a folder that holds results, unless resuming; refuse to resume
    into a folder whose runs came from another base scenario, or (``runs``: this sweep's) another
    root seed: a run keeps its id under a new seed, so its old part would be taken as done.
    ``whole``: ``runs`` are a sweep file's every run, and a folder holding runs outside them (the
    file has fewer points or replications now) is refused too: its tables would mix them in."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (expected a sweep output folder)")
    if out.exists() and any((out / "runs").glob("*.parquet")) and not resume:
        raise InputError(
            f"{out}: already holds sweep results; use --resume to complete it or choose another --out"
        )
    old = read_manifest(out) if resume else None
    if (
        old
        and base is not None
        and "base_scenario" in old
        and old["base_scenario"] != json.loads(canonical(base.to_dict()))
    ):
        raise InputError(
            f"{out}: its runs come from another base scenario than this sweep's; "
            f"choose another --out (resume only completes the same sweep or a grown one)"
        )
    if old and runs:
        seeds = {e.get("run_id"): e.get("seed") for e in old.get("runs", [])}
        if any(r.run_id in seeds and seeds[r.run_id] != r.seed for r in runs):
            raise InputError(
                f"{out}: its runs were seeded from another root seed than this sweep's; "
                f"choose another --out (resume only completes the same sweep or a grown one)"
            )
        extra = set(seeds) - {r.run_id for r in runs} if whole else set()
        if extra:
            raise InputError(
                f"{out}: holds {len(extra)} runs this sweep does not have (fewer points or "
                f"replications, or other values); choose another --out (resume only completes "
                f"the same sweep or a grown one)"
            )


# -- the manifest -------------------------------------------------------------------------------
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
        "base_scenario": json.loads(canonical(base.to_dict())),
        "runs": list(entries.values()),
    }
    write_text_atomic(
        out / "sweep.json", json.dumps(manifest, indent=1, sort_keys=True, default=str)
    )


def read_manifest(out: str | Path) -> dict[str, Any] | None:
    """The parsed ``sweep.json`` of a sweep folder, or None when there is none (or it is unreadable)."""
    f = Path(out) / "sweep.json"
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def code_revision() -> str | None:
    """The git commit of the sum_abm checkout (``+dirty`` with uncommitted changes under sum_abm/),
    or None for an installed copy without git."""
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


# -- parts, failures, executions ----------------------------------------------------------------
def readable(part: Path) -> bool:
    """Whether a Parquet part exists and its footer (schema and row groups) can be read."""
    try:
        pl.read_parquet_schema(part)
    except (pl.exceptions.PolarsError, OSError):
        return False
    return True


def run_part(out: Path, run_id: str) -> Path:
    """Where a run's row lives; its existence marks the run done (it is written last)."""
    return Path(out) / "runs" / f"{run_id}.parquet"


def write_parts(out: Path, summary: pl.DataFrame, agents: pl.DataFrame) -> None:
    """Write one run's agents and runs parts atomically (runs last: it marks the run done)."""
    rid = summary["run_id"][0]
    write_parquet_atomic(agents, Path(out) / "agents" / f"{rid}.parquet")
    write_parquet_atomic(summary, run_part(out, rid))


class SweepStore:
    """One sweep folder, written as runs finish: parts, failures, the executions log, and the runs
    table gathered from the returned rows (the parts of this sweep are never read back)."""

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        (self.out / "runs").mkdir(parents=True, exist_ok=True)
        (self.out / "agents").mkdir(exist_ok=True)
        f = self.out / "failures.parquet"
        self.failures: list[dict[str, Any]] = pl.read_parquet(f).to_dicts() if f.exists() else []
        # Each run's row as (schema key, values): a one-row frame costs tens of KB, a tuple of
        # values a few hundred bytes, and runs share a handful of schemas.
        self._schemas: dict[tuple, pl.Schema] = {}
        self.rows: dict[str, tuple[tuple, tuple]] = {}

    def done_ids(self) -> set[str]:
        """Ids of the runs whose runs part exists and, with its agents part, can be read: a part
        damaged after it was written (a full disk, a partial copy) marks a run to do again."""
        return {rid for rid in self._part_ids() if self._readable(rid)}

    def _part_ids(self) -> set[str]:
        return {p.stem for p in (self.out / "runs").glob("*.parquet")}

    def _readable(self, rid: str) -> bool:
        return readable(run_part(self.out, rid)) and readable(
            self.out / "agents" / f"{rid}.parquet"
        )

    def clean_temporaries(self) -> int:
        """Remove temporary files a killed writer left behind (``.<name>.<random>``); returns how many."""
        n = 0
        for sub in ("runs", "agents", "."):
            for p in (self.out / sub).glob(".*.parquet.*"):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def record(self, outcome: RunOutcome) -> bool:
        """Store one run's outcome (parts unless its worker wrote them, failure, execution line);
        returns False for a failure."""
        self._log_execution(outcome)
        rid = outcome.run.run_id
        if outcome.failure is not None:
            self.failures = [f for f in self.failures if f["run_id"] != rid] + [outcome.failure]
            self._write_failures()
            return False
        if not outcome.written:
            write_parts(self.out, outcome.summary, outcome.agents)
        self._keep(rid, outcome.summary)
        if any(f["run_id"] == rid for f in self.failures):  # a resumed run that failed before
            self.failures = [f for f in self.failures if f["run_id"] != rid]
            self._write_failures()
        return True

    def _keep(self, rid: str, summary: pl.DataFrame) -> None:
        key = tuple((name, str(dtype)) for name, dtype in summary.schema.items())
        self._schemas.setdefault(key, summary.schema)
        self.rows[rid] = (key, summary.row(0))

    def table(self) -> pl.DataFrame:
        """The runs table: the rows returned by this sweep's runs, plus the parts of runs finished
        before (resume), in run-id order — equal to :func:`load_runs` of the folder (columns in
        order of first appearance by run id, each at the supertype of its parts)."""
        # (only the parts of earlier runs are read: this sweep's rows came back with its runs)
        for rid in sorted(self._part_ids() - set(self.rows)):
            if self._readable(rid):
                self._keep(rid, pl.read_parquet(run_part(self.out, rid)))
        if not self.rows:
            return pl.DataFrame()
        ids = sorted(self.rows)
        order: dict[str, None] = {}
        groups: dict[tuple, list[tuple]] = {}
        for rid in ids:
            key, values = self.rows[rid]
            order.update(dict.fromkeys(self._schemas[key]))
            groups.setdefault(key, []).append(values)
        frames = [
            pl.DataFrame(rows, schema=self._schemas[key], orient="row")
            for key, rows in groups.items()
        ]
        return pl.concat(frames, how="diagonal_relaxed").select(list(order)).sort("run_id")

    def _log_execution(self, o: RunOutcome) -> None:
        line = {
            "run_id": o.run.run_id,
            "ok": o.failure is None,
            "host": o.host,
            "pid": o.pid,
            "node_id": o.node_id,
            "executor": o.executor,
            "wall_s": round(o.wall_s, 6),
            "reused": o.reused,
        }
        with open(self.out / EXECUTIONS, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    def _write_failures(self) -> None:
        path = self.out / "failures.parquet"
        if self.failures:
            write_parquet_atomic(pl.DataFrame(self.failures, schema=FAILURE_SCHEMA), path)
        else:
            path.unlink(missing_ok=True)


# -- loaders ------------------------------------------------------------------------------------
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
    if not f.exists():
        return pl.DataFrame(schema=FAILURE_SCHEMA)
    try:
        return pl.read_parquet(f)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{f}: not a readable failures file ({first_line(exc)})") from None


def load_executions(out: str | Path) -> pl.DataFrame:
    """``DIR/executions.jsonl``: one row per execution of a run (run_id, ok, host, pid, Ray node_id
    or "", executor, wall_s in seconds, reused = its part was found written by an earlier attempt)."""
    f = Path(out) / EXECUTIONS
    if not f.exists() or f.stat().st_size == 0:
        return pl.DataFrame(
            schema={
                "run_id": pl.String,
                "ok": pl.Boolean,
                "host": pl.String,
                "pid": pl.Int64,
                "node_id": pl.String,
                "executor": pl.String,
                "wall_s": pl.Float64,
                "reused": pl.Boolean,
            }
        )
    return pl.read_ndjson(f)


def load_sweep(out: str | Path, table: Literal["runs", "agents"] = "runs") -> pl.LazyFrame:
    """A LazyFrame over a sweep folder: ``"runs"`` (default) has one row per finished run with the
    parameter and summary columns; ``"agents"`` has every agent row of every run (same leading columns)."""
    if table == "runs":
        return load_runs(out)
    if table == "agents":
        return load_agents(out)
    raise InputError(f"load_sweep: table: expected 'runs' or 'agents', got {table!r}")
