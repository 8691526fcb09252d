"""S1 (DRT + reference perceptron) with 10, 100 and 1,000 agents (80 % Good, 20 % Bad).

Each size runs as one whole ``sum-abm run --no-report --no-baseline`` process (imports, data from
the disk cache, the run, Parquet output); printed per size: wall seconds, CPU seconds (user +
system: on a shared machine the steadier figure), contract calls, microseconds per call, peak RSS.
With ``--against DIR`` each size also runs with the code of another checkout (``PYTHONPATH=DIR``)
right after, and the CPU-time and RSS ratios are printed (with a note when only one of the two
has its compiled kernels built: a plain ``git clone`` has none until it is installed).
``--pairs K`` (with ``--against``) runs K such pairs per size, alternating which goes first, and
prints the median and the range of the CPU ratios: this machine's speed drifts by 20-40 % over
minutes, more than most changes move the run, so one pair decides little. The last line is
``scale 1000 agents: <s> s`` (the median of the size's own runs).

    python3 benchmarks/scale.py [--sizes 10 100 1000] [--seed 1] [--against ../main [--pairs 5]]

Not a test: the figures depend on the machine (targets: 1,000 agents within 10 s and 600 MB, and
at most twice the 10-agent run's microseconds per call).
"""

from __future__ import annotations

import argparse
import os
import statistics
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
    env = code_env(code)
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


def code_env(code: Path | None) -> dict[str, str]:
    """The environment that makes a child process import the checkout ``code`` (default: whatever
    ``sum_abm`` imports)."""
    env = dict(os.environ)
    if code is not None:
        env["PYTHONPATH"] = str(code)
    return env


def kernels_built(code: Path | None) -> str:
    """``True``/``False``: whether the compiled kernels import with the code of checkout ``code``
    (the project's own answer, ``sum_abm.learners._compiled.BUILT``); ``?`` when it cannot tell."""
    probe = "import sum_abm.learners._compiled as c; print(getattr(c, 'BUILT', '?'))"
    # cwd: a folder without sum_abm, as in run_size
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env=code_env(code),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else "?"


def warn_unlike_kernels(other: Path) -> None:
    """Say so when only one side of a comparison has the compiled kernels: without them a run
    takes the numpy fallbacks (a plain ``git clone`` has none until it is installed), and the
    ratios would measure the build, not the code."""
    mine, theirs = kernels_built(None), kernels_built(other)
    if {mine, theirs} == {"True", "False"}:
        side = other if theirs == "False" else "this checkout"
        print(
            f"note: {side} runs without its compiled kernels (the numpy fallbacks), so the "
            "ratios below compare builds as well as code"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--against", type=Path, help="another checkout to compare with, size by size")
    ap.add_argument(
        "--pairs", type=int, default=1, help="with --against: alternating pairs per size"
    )
    args = ap.parse_args()
    if min(args.sizes) < 1 or args.pairs < 1:
        ap.error("--sizes and --pairs must be at least 1")
    if args.pairs > 1 and args.against is None:
        ap.error("--pairs needs --against")
    if args.against is not None and not (args.against / "sum_abm" / "__init__.py").is_file():
        ap.error(f"--against {args.against}: no sum_abm package there")
    other = None if args.against is None else args.against.resolve()
    if other is not None:
        warn_unlike_kernels(other)
    per_call = {}
    last = None
    for n in args.sizes:
        walls, ratios = [], []
        for k in range(args.pairs):
            # alternate the order: a drift of the machine's speed favours neither side
            first_mine = k % 2 == 0 or other is None
            if not first_mine:
                theirs = run_size(n, args.seed, other)
            wall, cpu, calls, rss = run_size(n, args.seed)
            walls.append(wall)
            print(
                f"{n} agents ({n - n // 5} Good, {n // 5} Bad): {wall:.2f} s, CPU {cpu:.2f} s, "
                f"{calls:,} calls, {1e6 * wall / max(1, calls):.1f} us per call, "
                f"peak RSS {rss:.0f} MB"
            )
            if other is None:
                continue
            if first_mine:
                theirs = run_size(n, args.seed, other)
            w0, c0, calls0, r0 = theirs
            ratios.append(cpu / c0)
            print(
                f"  {args.against}: {w0:.2f} s, CPU {c0:.2f} s, {calls0:,} calls, peak RSS "
                f"{r0:.0f} MB; CPU {cpu / c0:.2f}x, RSS {rss / r0:.2f}x of it"
            )
        if len(ratios) > 1:
            print(
                f"  CPU ratio over {len(ratios)} pairs: median {statistics.median(ratios):.2f}x "
                f"(range {min(ratios):.2f}-{max(ratios):.2f}x)"
            )
        wall = statistics.median(walls)
        per_call[n] = 1e6 * wall / max(1, calls)
        last = (n, wall)
    first = args.sizes[0]
    for n in args.sizes[1:]:
        print(f"us per call {n} / {first} agents: {per_call[n] / per_call[first]:.2f}")
    if last is not None:
        print(f"scale {last[0]} agents: {last[1]:.2f} s")


if __name__ == "__main__":
    main()
