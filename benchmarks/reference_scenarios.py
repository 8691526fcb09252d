"""Re-run the reference simulator's published scenarios at full size and compare.

For S1 (DRT + reference perceptron), S2 (DRT + MultinomialNB) and S3 (prediction market, reference and
corrected rules) this prints wall time, peak memory, final balances and accuracy beside the reference
simulator's figures (REFERENCE_SCENARIOS.md, measured on 2 vCPU), and one line per scenario
``speedup <scenario>: <x>x`` = reference wall time / our wall time for one run (data generation and
the clean-baseline run excluded; each run in a fresh process so peak RSS is its own).

Measured in the same invocation, per scenario:

- ``sum-abm run <scenario> --no-report``: the whole process (imports, data from the disk cache,
  the clean baseline when the scenario has attackers, Parquet output), wall seconds and peak RSS
  (line ``process <scenario>: <s> s``); when the clean baseline ran in a second process at the same
  time, that process's peak RSS too (pages shared since the fork count in both);
- the same run with an empty fit cache (line ``cold <scenario>: <s> s``): the first run of a data
  set on a machine fits the initial model and the all-data model (for ``accuracy_all_data``) and
  caches them beside the generated data; every later run, in any process, restores them. The
  per-seed runs and the whole process run after it, on the cache it filled (a temporary folder of
  this invocation: the user's cache is left alone), so ``speedup`` is the figure of every run but a
  data set's first on a machine, and ``cold`` that first one's;
- the same run with ``run.naive_claims = true`` — the reference's call pattern, every claim the
  reference walk would send, rejected ones included — as a same-run baseline for the claim book
  (line ``naive <scenario>: <s> s (<x>x slower)``; ``--no-naive`` skips it: S1's takes minutes).

    python3 benchmarks/reference_scenarios.py [--seeds 1 2 3] [--only S1] [--no-naive]

Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCEN = {
    "S1": (
        "reference_drt_perceptron",
        624.0,
        "accuracy 0.718 -> 0.658; Good 17,684 / 18,376; Bad 2,315 / 1,624",
    ),
    "S2-NB": ("reference_drt_nb", 415.0, "accuracy 0.852 -> 0.852; Good 19,904; Bad 96"),
    "S3": ("reference_pm", 57.0, "both Bad profit (+5.4 %, +35.4 %); 17-20 % of the bounty paid"),
    "S3-corrected": (
        "reference_pm_corrected",
        57.0,
        "(reference has no corrected market; expected: Bad lose)",
    ),
}

CHILD = r"""
import json, resource, sys, time
from sum_abm.data import load_dataset
from sum_abm.market.run import run
from sum_abm.scenario import load_scenario
over = {"run.naive_claims": True} if sys.argv[3:] == ["naive"] else {}
sc = load_scenario(sys.argv[1], over)
ds = load_dataset(sc.data, sc.learner.kind, sc.name)
t = time.perf_counter()
r = run(sc, seed=int(sys.argv[2]), baseline=False, dataset=ds)
wall = time.perf_counter() - t
s = r.summary.row(0, named=True)
print(json.dumps({
    "wall_s": wall,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "balances": {g: round(v, 1) for g, v in zip(r.agents["group"], r.agents["end_balance"])},
    "roi": {g: round(v, 4) for g, v in zip(r.agents["group"], r.agents["roi"])},
    "accuracy": [round(s["accuracy_initial"], 3), round(s["accuracy_final"], 3)],
    "days": round(s["days"], 1), "calls": s["calls"],
    "bounty_paid_fraction": s.get("bounty_paid_fraction"),
}))
"""


#: The children's environment: this one with the benchmark's own cache folder (main()).
ENV = dict(os.environ)


def child(path: Path, seed: int, naive: bool = False) -> dict:
    """One in-process run in a fresh interpreter; its JSON line."""
    argv = [sys.executable, "-c", CHILD, str(path), str(seed)] + (["naive"] if naive else [])
    out = subprocess.run(argv, capture_output=True, text=True, check=True, env=ENV)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sum_abm_command() -> str:
    """The ``sum-abm`` console script of this interpreter (beside it), else the one on PATH.

    On PATH it may be a version manager's shim (pyenv: a bash script that execs ``pyenv exec``,
    measured at ~70 ms CPU per call on this machine), which is not part of the program.
    """
    own = Path(sys.executable).with_name("sum-abm")
    return str(own) if own.is_file() else "sum-abm"


def whole_process(path: Path, seed: int) -> tuple[float, float, float | None]:
    """Wall seconds and peak RSS (MB) of ``sum-abm run <path> --no-report``, and the peak RSS of
    the clean baseline's process when it ran in a second one (None otherwise)."""
    with tempfile.TemporaryDirectory(prefix="sumabm-bench") as out:
        argv = [sum_abm_command(), "run", str(path), "--seed", str(seed)]
        argv += ["--out", out, "--no-report"]
        t = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        _, status, usage = os.wait4(proc.pid, 0)  # the larger of its and its children's peaks
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            raise SystemExit(f"sum-abm run {path.name} failed: {proc.stderr.read().decode()}")
        side = re.search(
            r"clean baseline: run in a second process.* peak RSS (\d+) MB",
            proc.stdout.read().decode(),
        )
        return wall, usage.ru_maxrss / 1024, float(side[1]) if side else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1])
    ap.add_argument("--only", nargs="+", choices=list(SCEN), default=list(SCEN))
    ap.add_argument("--no-naive", action="store_true", help="skip the naive-walk baseline runs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="sumabm-cache") as cache:
        ENV["SUM_ABM_CACHE"] = cache  # one empty cache for this invocation (see the docstring)
        for key in args.only:
            scenario(key, args)


def scenario(key: str, args: argparse.Namespace) -> None:
    """The lines of one scenario (docstring)."""
    name, ref_wall, ref_outcome = SCEN[key]
    walls = []
    path = ROOT / "scenarios" / f"{name}.toml"
    cold = child(path, args.seeds[0])["wall_s"]
    print(
        f"cold {key}: {cold:.2f} s (seed {args.seeds[0]}, empty fit cache: the initial and "
        f"all-data fits computed; {ref_wall / cold:.0f}x the reference)"
    )
    for seed in args.seeds:
        res = child(path, seed)
        walls.append(res["wall_s"])
        print(
            f"{key} seed {seed}: {res['wall_s']:.2f} s wall, peak RSS {res['peak_rss_mb']:.0f} MB, "
            f"{res['days']} days, {res['calls']:,} calls, accuracy {res['accuracy'][0]} -> {res['accuracy'][1]}, "
            f"balances {res['balances']}, ROI {res['roi']}"
            + (
                f", bounty paid {res['bounty_paid_fraction']:.1%}"
                if res.get("bounty_paid_fraction") is not None
                else ""
            )
        )
    print(f"{key} reference: {ref_wall:.0f} s wall; {ref_outcome}")
    med = sorted(walls)[len(walls) // 2]
    seed = args.seeds[0]
    wall, rss, side = whole_process(path, seed)
    both = f" + {side:.0f} MB its clean baseline's process" if side is not None else ""
    print(
        f"process {key}: {wall:.2f} s (sum-abm run --no-report, seed {seed}; peak RSS {rss:.0f} MB{both})"
    )
    if not args.no_naive:
        naive = child(path, seed, naive=True)
        print(
            f"naive {key}: {naive['wall_s']:.2f} s, {naive['calls']:,} calls "
            f"({naive['wall_s'] / walls[0]:.1f}x the claim book's {walls[0]:.2f} s, seed {seed})"
        )
    print(f"speedup {key}: {ref_wall / med:.0f}x")


if __name__ == "__main__":
    main()
