"""Sweep throughput: the same short runs serially in-process versus on local Ray (every core).

    python3 benchmarks/sweeps.py [--runs 400]

Prints runs per second for each, the per-run overhead of the Ray path, and ends with
``speedup sweeps: <x>x`` (target: at least 0.85 x the core count). Ray's start-up is included.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from sum_abm.scenario import load_scenario
from sum_abm.sweeps import run_many

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400)
    args = ap.parse_args()
    base = load_scenario(ROOT / "scenarios" / "quickstart.toml",
                         {"data.n_rows": 600, "run.max_time_s": 10 * 86_400, "learner.kind": "multinomial_nb"})
    points = [{"mechanism.cost_weight": 1 + i} for i in range(args.runs)]
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        run_many(base, points, Path(d) / "serial", serial=True, baseline=False)
        serial = time.perf_counter() - t
        t = time.perf_counter()
        run_many(base, points, Path(d) / "ray", serial=False, baseline=False)
        ray_s = time.perf_counter() - t
    n = args.runs
    print(f"serial: {n} runs in {serial:.1f} s = {n / serial:.1f} runs/s ({serial / n * 1e3:.1f} ms per run)")
    print(f"ray ({cores} cores, start-up included): {n} runs in {ray_s:.1f} s = {n / ray_s:.1f} runs/s")
    print(f"ray overhead per run: {(ray_s * cores - serial) / n * 1e3:.1f} ms of core time")
    print(f"speedup sweeps: {serial / ray_s:.2f}x (target >= {0.85 * cores:.2f}x on {cores} cores)")


if __name__ == "__main__":
    main()
