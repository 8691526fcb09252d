"""Sweep throughput: the same short runs serially in-process versus on local Ray (every core).

    python3 benchmarks/sweeps.py [--runs 400] [--workers N]

Both sides go through the sweep engine (``run_many``: validation, seeds, Parquet parts written
atomically, the runs table read back at the end). Ray's start-up (a fixed 3-5 s per sweep, which
is why sweeps of at most 4 runs stay in-process) and the workers' warm-up (imports, generated data)
are timed separately from the steady state. Prints runs per second for each, the Ray path's
per-run overhead in core time, and ends with ``speedup sweeps: <x>x`` (steady state; target: at
least 0.85 x the core count, per-run overhead under 5 ms).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sum_abm.scenario import load_scenario
from sum_abm.sweeps import run_many
from sum_abm.sweeps.engine import init_ray, shutdown_ray

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="Ray workers (default: every core)"
    )
    args = ap.parse_args()
    base = load_scenario(
        ROOT / "scenarios" / "quickstart.toml",
        {"data.n_rows": 600, "run.max_time_s": 10 * 86_400, "learner.kind": "multinomial_nb"},
    )
    n, cores = args.runs, args.workers
    points = [{"mechanism.cost_weight": 1 + i} for i in range(n)]
    warm = [{"mechanism.cost_weight": 100_000 + i} for i in range(4 * cores)]  # points of their own
    with tempfile.TemporaryDirectory() as d:
        run_many(
            base, warm[:1], Path(d) / "warm-serial", serial=True, baseline=False
        )  # imports, data cache
        t = time.perf_counter()
        run_many(base, points, Path(d) / "serial", serial=True, baseline=False)
        serial = time.perf_counter() - t

        t = time.perf_counter()
        init_ray(None, cores)
        startup = time.perf_counter() - t
        t = time.perf_counter()
        run_many(
            base, warm, Path(d) / "warm-ray", serial=False, baseline=False
        )  # worker imports + data
        warmup = time.perf_counter() - t
        t = time.perf_counter()
        run_many(base, points, Path(d) / "ray", serial=False, baseline=False)
        ray_s = time.perf_counter() - t
        shutdown_ray()
    print(
        f"serial in-process: {n} runs in {serial:.2f} s = {n / serial:.1f} runs/s ({serial / n * 1e3:.1f} ms per run)"
    )
    print(
        f"ray start-up: {startup:.2f} s; worker warm-up ({len(warm)} runs, imports and generated data): {warmup:.2f} s"
    )
    print(
        f"ray ({cores} workers, steady state): {n} runs in {ray_s:.2f} s = {n / ray_s:.1f} runs/s"
    )
    print(
        f"ray overhead per run: {(ray_s * cores - serial) / n * 1e3:.1f} ms of core time (target < 5 ms)"
    )
    total = startup + warmup + ray_s
    print(
        f"ray including start-up and warm-up: {n} runs in {total:.2f} s = {n / total:.1f} runs/s "
        f"({serial / total:.2f}x serial)"
    )
    print(
        f"speedup sweeps: {serial / ray_s:.2f}x (steady state; target >= {0.85 * cores:.2f}x on {cores} cores)"
    )


if __name__ == "__main__":
    main()
