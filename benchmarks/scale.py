"""S1 (DRT + reference perceptron) with 10, 100 and 1,000 agents (80 % Good, 20 % Bad).

Each size runs as one whole ``sum-abm run --no-report --no-baseline`` process (imports, data from
the disk cache, the run, Parquet output); printed per size: wall seconds, CPU seconds (user +
system: on a shared machine the steadier figure), contract calls, microseconds per call, peak RSS.
With ``--against DIR`` each size also runs with the code of another checkout (``PYTHONPATH=DIR``)
right after, and the CPU-time and RSS ratios are printed. The last line is
``scale 1000 agents: <s> s``.

    python3 benchmarks/scale.py [--sizes 10 100 1000] [--seed 1] [--against ../main]

Not a test: the figures depend on the machine (targets: 1,000 agents within 10 s and 600 MB, and
at most twice the 10-agent run's microseconds per call).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
S1 = ROOT / "scenarios" / "reference_drt_perceptron.toml"
# ``sum-abm`` as the console script runs it, from whichever checkout PYTHONPATH names (an older
# one may have only ``main``); not the script on PATH, which may be a version manager's shim.
SUM_ABM = [
    sys.executable,
    "-c",
    "import sum_abm.cli as c; getattr(c, 'console', c.main)()",
]


def run_size(n: int, seed: int, code: Path | None = None) -> tuple[float, float, int, float]:
    """(wall seconds, CPU seconds, calls, peak RSS MB) of one ``sum-abm run`` of S1 with ``n``
    agents, with the code of checkout ``code`` (default: whatever ``sum_abm`` imports)."""
    good, bad = n - n // 5, n // 5
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    with tempfile.TemporaryDirectory(prefix="sumabm-scale") as out:
        argv = [*SUM_ABM, "run", str(S1), "--seed", str(seed), "--out", out]
        argv += ["--no-report", "--no-baseline"]
        argv += ["--set", f"agents.Good.count={good}", "--set", f"agents.Bad.count={bad}"]
        t = time.perf_counter()
        # cwd: the out folder, so that `-c` (which puts the cwd first on sys.path) imports the
        # checkout PYTHONPATH names, not the one the benchmark was started from
        proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=out
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{n} agents failed: {proc.stderr.read().decode()}")
        calls = pl.read_parquet(Path(out) / "summary.parquet")["calls"][0]
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, int(calls), usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--against", type=Path, help="another checkout to compare with, size by size")
    args = ap.parse_args()
    per_call = {}
    last = None
    for n in args.sizes:
        wall, cpu, calls, rss = run_size(n, args.seed)
        per_call[n] = 1e6 * wall / max(1, calls)
        print(
            f"{n} agents ({n - n // 5} Good, {n // 5} Bad): {wall:.2f} s, CPU {cpu:.2f} s, "
            f"{calls:,} calls, {per_call[n]:.1f} us per call, peak RSS {rss:.0f} MB"
        )
        if args.against is not None:
            w0, c0, calls0, r0 = run_size(n, args.seed, args.against.resolve())
            print(
                f"  {args.against}: {w0:.2f} s, CPU {c0:.2f} s, {calls0:,} calls, peak RSS "
                f"{r0:.0f} MB; CPU {cpu / c0:.2f}x, RSS {rss / r0:.2f}x of it"
            )
        last = (n, wall)
    first = args.sizes[0]
    for n in args.sizes[1:]:
        print(f"us per call {n} / {first} agents: {per_call[n] / per_call[first]:.2f}")
    if last is not None:
        print(f"scale {last[0]} agents: {last[1]:.2f} s")


if __name__ == "__main__":
    main()
