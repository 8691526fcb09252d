"""Sweep speed: the same short runs serially in one process versus on every core, whole sweep.

    python3 benchmarks/sweeps.py [--runs 400] [--workers N] [--memory 2000]
    python3 benchmarks/sweeps.py --runs 0 --memory 2000      # the memory check alone

The sweep: the quick-start market at 600 rows, 10 simulated days, Naive Bayes, ``runs / 2`` deposit
weights x 2 replications (``scenarios/sweeps/quickstart_400.toml`` at 400 runs). Measured in this one
invocation, so that the ratios hold on a shared machine:

1. whole process: ``sum-abm sweep FILE --serial`` against ``sum-abm sweep FILE`` (every core), each
   a fresh process timed from launch to exit; the two tables must be equal; serial and parallel
   alternate for ``--rounds`` rounds and the best of each counts; with the CPU seconds of each
   side's processes (the driver, Ray's workers, Ray's own processes with the helper process that
   owns the local Ray), steadier than the clock on a shared machine (sampled while the driver
   runs: a helper stopping its Ray after the driver has exited is not counted);
2. whole sweep through the Python API (``sum_abm.sweep``), each in a fresh process, timed from the
   call to its return: data loading, Ray's start-up and the workers' warm-up included; with a
   breakdown of the parallel one (this process alone until Ray's warm workers join, both
   together until the last run, closing);
3. steady state: warm executors in this process (Ray already up, actors warm), and the Ray path's
   per-run overhead in core time.

Ends with ``speedup sweeps: <x>x`` (item 2; target >= 1.7x on 2 cores). ``--memory N`` also runs
an N-run sweep on every core and reports how much the sweep's processes (driver and Ray's) grow in
resident memory between 20 % and 100 % of the runs (target <= 150 MB), and that every run is
present once with no failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from sum_abm.cli import console; console()"]  # as `sum-abm`
# The whole sweep through the API in a fresh process: prints its seconds, then (JSON) when the
# last run finished and when Ray's warm workers joined (seconds from the call; None: never).
API = (
    "import json, sys, time; import sum_abm; t = time.perf_counter(); m = {{}}\n"
    "def said(line):\n"
    "    if 'warm Ray' in line: m['joined'] = time.perf_counter() - t\n"
    "def progress(done, failed, total):\n"
    "    if done == total: m['last'] = time.perf_counter() - t\n"
    "sum_abm.sweep(sys.argv[1], sys.argv[2], serial={serial}, workers={workers}, "
    "progress=progress, notify=said)\n"
    "print(json.dumps(m)); print(time.perf_counter() - t)"
)


def sweep_file(folder: Path, runs: int) -> Path:
    """The benchmark's sweep: ``runs // 2`` deposit weights x 2 replications, short runs."""
    weights = ", ".join(str(w) for w in range(1, runs // 2 + 1))
    f = folder / "bench_sweep.toml"
    f.write_text(
        f'name = "bench"\nbase = "{ROOT / "scenarios" / "quickstart.toml"}"\nseed = 11\n'
        f'replications = 2\n[grid]\n"mechanism.cost_weight" = [{weights}]\n'
        '[zip]\n"data.n_rows" = [600]\n"run.max_time_s" = [864000]\n'
        '"learner.kind" = ["multinomial_nb"]\n'
    )
    return f


def timed(cmd: list[str], cpu: dict[str, float] | None = None) -> tuple[float, str]:
    """Run ``cmd`` from the repository; returns (seconds from launch to exit, its stdout). With
    ``cpu``: also the CPU seconds of the process and of everything it started, sampled from /proc
    every 0.2 s (the last 0.2 s of a process may be missed), by kind (see :func:`cpu_kind`)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    seen: dict[tuple[int, int], tuple[str, float]] = {}  # (pid, start tick) -> (kind, CPU s)
    if cpu is not None:
        while p.poll() is None:
            procs = _processes()
            for pid in _tree(p.pid, procs):
                ppid, _, name, cpu_s, start = procs[pid]
                seen[(pid, start)] = (cpu_kind(pid, name, p.pid), cpu_s)
            time.sleep(0.2)
    stdout, stderr = p.communicate()
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:])}: exit {p.returncode}\n{stderr[-2000:]}")
    if cpu is not None:
        for kind, cpu_s in seen.values():
            cpu[kind] = cpu.get(kind, 0.0) + cpu_s
    return elapsed, stdout


def cpu_kind(pid: int, name: str, root: int) -> str:
    """Which part of a sweep a process is: the driver, a Ray worker (``ray::`` named after the
    actor), or one of Ray's own processes (GCS, raylet, agents, any monitor, and the helper process
    that owns a local Ray)."""
    if pid == root:
        return "driver"
    if name.startswith("ray::") and "Agent" not in name and not name.startswith("ray::Runtime"):
        return "Ray workers"
    return "Ray's own"


def table(out: Path) -> pl.DataFrame:
    from sum_abm.sweeps import load_sweep

    return load_sweep(out).collect().sort("run_id")


def steady_state(f: Path, workers: int, d: Path) -> None:
    """Warm executors in this process: runs per second with no start-up, and Ray's overhead."""
    from sum_abm.sweeps import RayExecutor, SerialExecutor, load_sweep_file
    from sum_abm.sweeps.task import RunTask

    sw = load_sweep_file(f)
    task = RunTask(sw.base, baseline=True)
    warm, runs = sw.runs[: 4 * workers], sw.runs
    list(SerialExecutor().map(task, warm[:2]))  # imports and data in this process
    t = time.perf_counter()
    serial_runs = sum(o.wall_s for o in SerialExecutor().map(task, runs))
    serial = time.perf_counter() - t
    ex = RayExecutor(workers=workers)
    t = time.perf_counter()
    ex.start(task)
    startup = time.perf_counter() - t
    t = time.perf_counter()
    list(ex.map(task, warm))  # the actors import, load the data and time their first runs
    warmup = time.perf_counter() - t
    ex.chunk_sizes.clear()
    t = time.perf_counter()
    ray_runs = sum(o.wall_s for o in ex.map(task, runs))
    ray_s = time.perf_counter() - t
    chunks = list(ex.chunk_sizes)
    ex.close()
    n = len(runs)
    print(
        f"steady state, serial: {n} runs in {serial:.2f} s = {n / serial:.1f} runs/s "
        f"({serial_runs / n * 1e3:.1f} ms per run)"
    )
    print(
        f"steady state, ray ({workers} warm workers): {n} runs in {ray_s:.2f} s = "
        f"{n / ray_s:.1f} runs/s ({ray_runs / n * 1e3:.1f} ms per run inside the workers; "
        f"chunks of {min(chunks)}-{max(chunks)} runs, {len(chunks)} chunks); "
        f"{serial / ray_s:.2f}x serial"
    )
    print(f"ray start-up {startup:.2f} s, actors' warm-up {warmup:.2f} s ({len(warm)} runs)")
    print(
        f"ray overhead per run: {(ray_s * workers - serial) / n * 1e3:.1f} ms of core time "
        f"(the workers' own run time differs from serial by "
        f"{(ray_runs - serial_runs) / n * 1e3:+.1f} ms per run)"
    )


def breakdown(out: Path, marks: dict, whole: float, serial: float) -> None:
    """Where the parallel whole sweep's time went: this process alone until Ray's warm workers
    joined (Ray's start-up and warm-up), both together until the last run, then closing (Ray's
    shutdown, the runs table). ``whole`` and ``serial``: the parallel and serial sweeps' seconds."""
    from sum_abm.sweeps import load_executions

    ex = load_executions(out)
    by = {e: ex.filter(ex["executor"] == e).height for e in ("driver", "ray")}
    joined, last = marks.get("joined"), marks.get("last", whole)
    if joined is None:
        print(f"  breakdown: Ray's workers never joined; {by['driver']} runs in this process")
        return
    print(
        f"  breakdown (parallel, best round): this process alone until Ray's warm workers joined "
        f"at {joined:.2f} s (start-up + warm-up), then together until the last run at "
        f"{last:.2f} s, closing {whole - last:.2f} s; runs here {by['driver']}, on Ray "
        f"{by['ray']} (two cores sharing the serial work perfectly after that join: "
        f"{joined + (serial - joined) / 2:.2f} s)"
    )


def _processes() -> dict[int, tuple[int, float, str, float, int]]:
    """Every process: pid -> (parent pid, resident MB, command, CPU seconds, start tick), from /proc."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            rest = stat.rsplit(")", 1)[1].split()
            rss = int((d / "statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
            cpu_s = (int(rest[11]) + int(rest[12])) / tick
            name = stat.split("(", 1)[1].rsplit(")", 1)[0]
            out[int(d.name)] = (int(rest[1]), rss, name, cpu_s, int(rest[19]))
        except (OSError, ValueError, IndexError):
            pass
    return out


def _tree(root: int, procs: dict[int, tuple]) -> set[int]:
    """``root`` and its descendants among ``procs``."""
    keep, grew = {root}, True
    while grew:
        new = {p for p, v in procs.items() if v[0] in keep and p not in keep}
        keep |= new
        grew = bool(new)
    return keep & set(procs)


def tree_rss(root: int) -> dict[int, tuple[str, float]]:
    """Resident memory (MB) of ``root`` and each of its descendants (the driver and the Ray it
    started): pid -> (command, MB)."""
    procs = _processes()
    return {p: (procs[p][2], procs[p][1]) for p in _tree(root, procs)}


def memory(n: int, workers: int, d: Path) -> None:
    """An n-run sweep on every core: the sweep's processes' resident memory at 20 % and 100 %."""
    from sum_abm.sweeps import load_failures, load_sweep_file, sweep

    (d / "mem").mkdir()
    f = sweep_file(d / "mem", n)
    marks: dict[str, dict[int, tuple[str, float]]] = {}

    def progress(done: int, failed: int, total: int) -> None:
        if "20%" not in marks and done >= 0.2 * total:
            marks["20%"] = tree_rss(os.getpid())
        if done == total:
            marks["100%"] = tree_rss(os.getpid())

    t = time.perf_counter()
    out = sweep(f, d / "mem_out", workers=workers, progress=progress)
    elapsed = time.perf_counter() - t
    ids = out["run_id"]
    expected = {r.run_id for r in load_sweep_file(f).runs}
    once = ids.n_unique() == len(ids) == n and set(ids) == expected
    at20, at100 = (sum(mb for _, mb in marks[k].values()) for k in ("20%", "100%"))
    print(
        f"memory, {n} runs in {elapsed:.1f} s: every run present once: {once}; "
        f"failed: {load_failures(d / 'mem_out').height}; driver + Ray processes "
        f"{at20:.0f} MB at 20 %, {at100:.0f} MB at 100 %: "
        f"{at100 - at20:+.0f} MB (target <= 150 MB)"
    )
    grew = sorted(
        ((mb - marks["20%"].get(p, (c, 0.0))[1], c, p) for p, (c, mb) in marks["100%"].items()),
        reverse=True,
    )
    print("  grew most: " + ", ".join(f"{c} ({p}) {g:+.0f} MB" for g, c, p in grew[:4]))


def cpu_line(cpus: dict[str, list[dict[str, float]]]) -> None:
    """CPU seconds of the whole-process sweeps (median round of each side): what Ray costs in CPU,
    which on a shared machine is steadier than the seconds on the clock."""

    def median(side: str, kind: str | None = None) -> float:
        vals = sorted(sum(c.values()) if kind is None else c.get(kind, 0.0) for c in cpus[side])
        return vals[len(vals) // 2]

    serial, par = median("s"), median("p")
    parts = ", ".join(f"{k} {median('p', k):.1f}" for k in ("driver", "Ray workers", "Ray's own"))
    print(
        f"  CPU seconds (median of {len(cpus['s'])} rounds): --serial {serial:.1f}; every core "
        f"{par:.1f} ({parts}): Ray adds {par - serial:+.1f} s of CPU, so at most "
        f"{serial / (par / 2):.2f}x on 2 cores (both busy from launch to exit)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="default: every core")
    ap.add_argument("--memory", type=int, default=0, help="also an N-run memory check (e.g. 2000)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating serial/parallel rounds")
    args = ap.parse_args()
    n, w = args.runs, args.workers
    print(f"{n} runs, {w} workers, machine load {os.getloadavg()[0]:.1f} (shared: ratios count)")
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if n == 0:  # --runs 0 --memory N: the memory check alone
            memory(args.memory, w, d)
            return
        f = sweep_file(d, n)
        # Warm the on-disk data cache once so neither side pays the generation.
        timed(CLI + ["sweep", str(f), "--out", str(d / "warm"), "--serial"])
        # Serial and parallel alternate (--rounds times, best of each): on a shared machine the
        # load drifts, and alternating keeps both sides under the same drift.
        cli = {"s": [], "p": []}
        cpus: dict[str, list[dict[str, float]]] = {"s": [], "p": []}
        api = {"s": [], "p": []}
        marks: dict[str, list[dict]] = {"s": [], "p": []}
        for k in range(args.rounds):
            for side, extra in (("s", ["--serial"]), ("p", ["--workers", str(w)])):
                out = d / f"cli_{side}{k}"
                cpus[side].append({})
                cmd = CLI + ["sweep", str(f), "--out", str(out), *extra]
                cli[side].append(timed(cmd, cpus[side][-1])[0])
            for side, serial in (("s", True), ("p", None)):
                code = API.format(serial=serial, workers=w if serial is None else None)
                _, text = timed([sys.executable, "-c", code, str(f), str(d / f"api_{side}{k}")])
                lines = text.strip().splitlines()
                api[side].append(float(lines[-1]))
                marks[side].append(json.loads(lines[-2]))
        same = table(d / "cli_s0").equals(table(d / "cli_p0"))
        cli_serial, cli_par = min(cli["s"]), min(cli["p"])
        api_serial, api_par = min(api["s"]), min(api["p"])
        print(
            f"whole process, sum-abm sweep: --serial {cli_serial:.2f} s, every core "
            f"{cli_par:.2f} s: {cli_serial / cli_par:.2f}x (target >= 1.6x); same table: {same} "
            f"(best of {args.rounds}: serial {', '.join(f'{t:.1f}' for t in cli['s'])}; "
            f"parallel {', '.join(f'{t:.1f}' for t in cli['p'])})"
        )
        cpu_line(cpus)
        steady_state(f, w, d)
        if args.memory:
            memory(args.memory, w, d)
        print(
            f"whole sweep (sum_abm.sweep, start-up and warm-up included): serial "
            f"{api_serial:.2f} s, every core {api_par:.2f} s"
        )
        best = api["p"].index(api_par)
        breakdown(d / f"api_p{best}", marks["p"][best], api_par, api_serial)
        print(f"speedup sweeps: {api_serial / api_par:.2f}x (target >= 1.7x on 2 cores)")


if __name__ == "__main__":
    main()
