"""Sweeps: expansion and stable ids, one-line errors, serial = Ray, kill-and-resume, a dying worker,
and a real Ray cluster started by the test (stopped by its PID, never `ray stop`)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import pytest

from sum_abm.errors import InputError
from sum_abm.scenario import load_scenario
from sum_abm.sweeps import (
    RayExecutor,
    SerialExecutor,
    chunking,
    load_agents,
    load_executions,
    load_failures,
    load_sweep,
    load_sweep_file,
    run_many,
    store,
)
from sum_abm.sweeps.spec import SweepSpec, expand, runs_for
from sum_abm.sweeps.task import RunTask

# Every test here runs sweeps (most on Ray) or a process: the whole file is in the slow lane.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from sum_abm.cli import main; main()"]
TINY = {"data.n_rows": [800], "run.max_time_s": [1_728_000]}


def write_sweep(
    tmp: Path,
    grid: dict,
    zip_: dict | None = None,
    reps: int = 1,
    extra: str = "",
    base: str | None = None,
) -> Path:
    def toml_val(v):
        return (
            "["
            + ", ".join(
                repr(x).replace("'", '"').replace("True", "true").replace("False", "false")
                for x in v
            )
            + "]"
        )

    lines = [
        f'base = "{base or ROOT / "scenarios" / "quickstart.toml"}"',
        "seed = 5",
        f"replications = {reps}",
        extra,
        "[grid]",
    ]
    lines += [f'"{k}" = {toml_val(v)}' for k, v in grid.items()]
    lines += ["[zip]"] + [f'"{k}" = {toml_val(v)}' for k, v in (zip_ or TINY).items()]
    p = tmp / "sweep.toml"
    p.write_text("\n".join(lines) + "\n")
    return p


def table(d: Path) -> pl.DataFrame:
    return load_sweep(d).collect().sort("run_id")


def test_expansion_ids_and_seeds_are_stable():
    spec = SweepSpec(
        base="x",
        seed=3,
        replications=2,
        grid={"a": [1, 2], "b": ["x"]},
        zip={"c": [1, 2], "d": [3, 4]},
    )
    pts = expand(spec)
    assert len(pts) == 4 and {"a": 1, "b": "x", "c": 2, "d": 4} in pts
    runs = runs_for(pts, 2, 3)
    assert len({r.run_id for r in runs}) == 8 and len({r.seed for r in runs}) == 8
    bigger = runs_for(expand(spec.model_copy(update={"grid": {"a": [1, 2, 3], "b": ["x"]}})), 2, 3)
    old = {r.run_id: r.seed for r in runs}
    assert all(old[r.run_id] == r.seed for r in bigger if r.run_id in old) and len(bigger) == 12
    assert set(old) <= {r.run_id for r in bigger}
    rnd = SweepSpec.model_validate(
        {
            "base": "x",
            "seed": 1,
            "random": {
                "count": 5,
                "params": {
                    "p": {"dist": "loguniform", "low": 1, "high": 100},
                    "q": {"dist": "choice", "values": ["u", "v"]},
                },
            },
        }
    )
    draws = expand(rnd)
    assert len(draws) == 5 and all(1 <= d["p"] < 100 and d["q"] in "uv" for d in draws)
    assert draws == expand(rnd)  # deterministic from the root seed
    more = SweepSpec.model_validate(
        {
            "base": "x",
            "seed": 1,
            "random": {
                "count": 8,
                "params": {
                    "p": {"dist": "loguniform", "low": 1, "high": 100},
                    "q": {"dist": "choice", "values": ["u", "v"]},
                    "r": {"dist": "integer", "low": 2, "high": 4},
                },
            },
        }
    )
    grown = expand(more)
    assert [
        {k: d[k] for k in ("p", "q")} for d in grown[:5]
    ] == draws  # more draws, one more parameter: same old draws
    assert {d["r"] for d in grown} <= {2, 3, 4} and all(isinstance(d["r"], int) for d in grown)
    grid_zip = SweepSpec(
        base="x",
        grid={"a": [1, 2, 3]},
        zip={"b": [1, 2], "c": [3, 4]},
        random={"count": 2, "params": {"d": {"dist": "uniform", "low": 0, "high": 1}}},
    )
    assert len(expand(grid_zip)) == 3 * 2 * 2  # grid x zip rows x draws


def test_chunk_size_follows_measured_run_times():
    cs = chunking.chunk_size
    assert cs([], 1000, 2) == 1  # nothing measured yet: one run per chunk
    assert cs([0.5, 0.4, 0.6], 1000, 2) == 1  # long runs (>= 0.25 s): one run per chunk
    assert cs([0.05] * 10, 1000, 2) == 6  # 50 ms runs: 0.25 s of work (+1) per chunk
    assert cs([0.05] * 10, 20, 2) == 5  # the tail: at least two chunks per worker remain
    assert cs([0.05] * 10, 3, 2) == 1
    assert cs([1e-6] * 10, 10**6, 2) == chunking.MAX_CHUNK
    assert cs([9.0] * 64 + [0.01] * 65, 1000, 2) == 26  # the median of the last 64 runs counts


@pytest.mark.parametrize(
    "grid, expected",
    [
        ({"mechanism.speed": [1]}, "mechanism.speed: names no scenario field"),
        ({"mechanism.cost_weight": []}, "grid.mechanism.cost_weight: empty list"),
        ({"agents.attacker.count": [0]}, "agents[1].count: expected a value >= 1, got 0"),
        ({"data.n_rows": [900]}, "zip.data.n_rows: also varied in [grid]"),
        ({"seed": [1, 2]}, "seed: the sweep sets each run's seed itself"),
        (
            {
                "mechanism.cost_weight": [1],
                "__extra": '[random]\ncount = 2\n[random.params]\n"run.seed" = '
                '{ dist = "integer", low = 0.5, high = 3 }',
            },
            "integer needs whole-number bounds",
        ),
        (
            {
                "mechanism.cost_weight": [1],
                "__extra": '[random]\ncount = 2\n[random.params]\n"chain.gas_price" = '
                '{ dist = "integer", low = 1, high = 1e30 }',
            },
            "integer needs bounds that fit a 64-bit integer",
        ),
        (
            {
                "mechanism.cost_weight": [1],
                "__extra": '[random]\ncount = 100000000\n[random.params]\n"chain.gas_price" = '
                '{ dist = "integer", low = 1, high = 3 }',
            },
            "random.count: expected a value <= 100000",
        ),
        (
            {"mechanism.cost_weight": [1], "__base": "nowhere.toml"},
            "base: no scenario file 'nowhere.toml'",
        ),
    ],
)
def test_bad_sweeps_fail_before_running(tmp_path, grid, expected):
    grid = dict(grid)
    f = write_sweep(tmp_path, grid, extra=grid.pop("__extra", ""), base=grid.pop("__base", None))
    with pytest.raises(InputError, match=expected.replace("[", r"\[").replace("]", r"\]")) as err:
        load_sweep_file(f)
    assert str(err.value).startswith(str(f))
    r = subprocess.run(
        CLI + ["sweep", str(f), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        r.returncode == 2
        and len(r.stderr.strip().splitlines()) == 1
        and not (tmp_path / "o" / "runs").exists()
    )


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    temp = tempfile.mkdtemp(
        prefix="ray", dir="/tmp"
    )  # Ray's socket paths must stay under 107 bytes
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=temp,
        _node_ip_address="127.0.0.1",
    )
    yield ray
    ray.shutdown()


@pytest.mark.ray
def test_serial_and_ray_give_identical_parquet_content(tmp_path, ray_local):
    f = write_sweep(
        tmp_path, {"mechanism.cost_weight": [1, 4], "agents.attacker.count": [1, 2]}, reps=2
    )
    from sum_abm import sweep

    a = sweep(f, tmp_path / "serial", serial=True)
    b = sweep(f, tmp_path / "ray", executor=RayExecutor())
    assert len(a) == 8 and a.equals(b)  # the returned tables (built from the returned rows)
    assert table(tmp_path / "serial").equals(table(tmp_path / "ray"))
    assert a.equals(table(tmp_path / "serial"))  # ... equal the parts read back
    ex = load_executions(tmp_path / "ray")
    assert ex.height == 8 and set(ex["executor"]) == {"ray"} and ex["run_id"].n_unique() == 8
    assert ex["pid"].n_unique() >= 1 and ex["node_id"].str.len_chars().min() > 0
    assert set(load_executions(tmp_path / "serial")["executor"]) == {"serial"}
    ag_a = load_agents(tmp_path / "serial").collect().sort("run_id", "agent_id")
    ag_b = load_agents(tmp_path / "ray").collect().sort("run_id", "agent_id")
    assert (
        ag_a.equals(ag_b) and ag_a.height == 8 * 4 + 4 * 1 + 4 * 2
    )  # 4 honest + 1 or 2 attackers per run
    # run_many: arbitrary points through the same engine (the game-theory entry point)
    from sum_abm.scenario import load_scenario

    base = load_scenario(
        ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 1_728_000}
    )
    t = run_many(
        base,
        [{"mechanism.cost_weight": 2}],
        tmp_path / "many",
        replications=2,
        root_seed=1,
        serial=True,
    )
    assert len(t) == 2 and set(t["mechanism.cost_weight"]) == {2}


SMALL = {"data.n_rows": 800, "run.max_time_s": 1_728_000}


@pytest.mark.ray
def test_a_run_that_raises_is_recorded_and_the_sweep_goes_on(tmp_path, ray_local):
    # A point that passes every check before the runs but raises when its market starts (a bounty
    # provider whose allowance cannot pay the set-up's gas): the run raises, lands in
    # failures.parquet, and the other runs finish.
    base = load_scenario(ROOT / "scenarios" / "quickstart.toml", SMALL)
    broke = {"mechanism.kind": "prediction_market", "chain.gas_price": 3}
    points = [
        {"mechanism.cost_weight": 1},
        {**broke, "mechanism.provider_gas_allowance": 1},
        {"mechanism.cost_weight": 2},
    ]
    frames = {}
    for mode, ex in (("serial", SerialExecutor()), ("ray", RayExecutor())):
        t = run_many(base, points, tmp_path / mode, root_seed=4, executor=ex, baseline=False)
        assert t.height == 2 and sorted(t["mechanism.cost_weight"].to_list()) == [1, 2]
        f = load_failures(tmp_path / mode)
        assert (
            f.height == 1
            and f["error_type"][0] == "InputError"
            and "provider_gas_allowance: 1 tokens do not pay the gas" in f["message"][0]
        )
        assert '"mechanism.kind": "prediction_market"' in f["parameters"][0]
        assert "Traceback" in f["traceback"][0]
        frames[mode] = (t.sort("run_id"), f.drop("traceback"))
    assert frames["serial"][0].equals(frames["ray"][0]) and frames["serial"][1].equals(
        frames["ray"][1]
    )
    # Resume retries the failed run only: the finished ones are not redone, the failure stays one row.
    calls = []
    run_many(
        base,
        points,
        tmp_path / "serial",
        root_seed=4,
        serial=True,
        baseline=False,
        resume=True,
        progress=lambda d, f, n: calls.append((d, f, n)),
    )
    assert (
        calls[0] == (2, 0, 3)
        and calls[-1] == (3, 1, 3)
        and load_failures(tmp_path / "serial").height == 1
    )
    assert load_failures(tmp_path / "nothing").height == 0


@pytest.mark.ray
def test_short_runs_travel_in_chunks_with_identical_results(tmp_path, ray_local, monkeypatch):
    base = load_scenario(
        ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 86_400}
    )
    points = [{"mechanism.cost_weight": w} for w in range(1, 25)]
    serial = run_many(base, points, tmp_path / "serial", root_seed=2, serial=True, baseline=False)
    monkeypatch.setattr(chunking, "CHUNK_S", 10.0)  # every run counts as short here
    steps = []
    ex = RayExecutor()
    chunked = run_many(
        base,
        points,
        tmp_path / "ray",
        root_seed=2,
        executor=ex,
        baseline=False,
        progress=lambda d, f, n: steps.append(d),
    )
    assert ex.chunk_sizes[0] == 1 and max(ex.chunk_sizes) > 1  # chunks once runs were timed
    assert sum(ex.chunk_sizes) == 24 and steps == list(range(25))  # each run reported on its own
    assert chunked.sort("run_id").equals(serial.sort("run_id"))
    assert (
        load_agents(tmp_path / "ray")
        .collect()
        .sort("run_id", "agent_id")
        .equals(load_sweep(tmp_path / "serial", "agents").collect().sort("run_id", "agent_id"))
    )


@dataclasses.dataclass(frozen=True)
class DiesOnce:
    """A run task whose worker process dies (``os._exit``) the first time it reaches ``victim``:
    a crashed worker, injected by the test."""

    inner: RunTask
    marker: str
    victim: str

    def warm(self) -> None:
        self.inner.warm()

    def __call__(self, run):
        if run.run_id == self.victim and not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            os._exit(1)
        return self.inner(run)


@dataclasses.dataclass(frozen=True)
class ThreadProbe:
    """A run task that reports its worker's thread settings (in the outcome's ``host`` field)."""

    def __call__(self, run):
        import polars
        from threadpoolctl import threadpool_info

        from sum_abm.sweeps.outcome import RunOutcome

        seen = {k: os.environ.get(k) for k in ("POLARS_MAX_THREADS", "OMP_NUM_THREADS")}
        seen["polars"] = polars.thread_pool_size()
        seen["blas"] = max((p["num_threads"] for p in threadpool_info()), default=1)
        return RunOutcome(run, host=json.dumps(seen))


@pytest.mark.ray
def test_ray_workers_run_with_one_thread_per_pool(ray_local):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    runs = runs_for([{"x": 1}, {"x": 2}], 1, 0)
    with RayExecutor() as ex:
        seen = [json.loads(o.host) for o in ex.map(ThreadProbe(), runs)]
    assert len(seen) == 2 and all(
        s == {"POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "polars": 1, "blas": 1}
        for s in seen
    ), seen


@pytest.mark.ray
def test_a_worker_that_dies_is_replaced_and_its_runs_retried_once(tmp_path, ray_local):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import tests
    base = load_scenario(ROOT / "scenarios" / "quickstart.toml", SMALL)
    runs = runs_for([{"mechanism.cost_weight": w} for w in range(1, 9)], 1, 3)
    out = tmp_path / "o"
    store.SweepStore(out)  # the folder the workers write their parts into
    marker = tmp_path / "died"
    # Chunks of two: the victim is second in the first chunk, whose first run is already written.
    task = DiesOnce(RunTask(base, baseline=False, out=str(out)), str(marker), runs[1].run_id)
    ex = RayExecutor()
    ex.durations = [0.001]
    try:
        outcomes = list(ex.map(task, runs))
    finally:
        ex.close()
    assert marker.exists() and ex.chunk_sizes[0] == 2  # a worker really died, mid-chunk
    assert sorted(o.run.run_id for o in outcomes) == sorted(r.run_id for r in runs)  # once each
    assert all(o.ok and o.written for o in outcomes)
    reused = [o.run.run_id for o in outcomes if o.reused]
    assert reused == [runs[0].run_id]  # finished before the death: not run again
    serial = {o.run.run_id: o.summary for o in SerialExecutor().map(task.inner, runs)}
    assert all(o.summary.equals(serial[o.run.run_id]) for o in outcomes)


def _script(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter (``python -c code args...``); its last line, as JSON."""
    r = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


# The task class of the subprocess scripts below (pickled by value: it lives in their __main__).
_FIRST_ON_RAY = """
import dataclasses, os, time
from pathlib import Path

from sum_abm.sweeps.task import RunTask


@dataclasses.dataclass(frozen=True)
class FirstOnRay:
    # The driver's runs wait (up to 2 s each) until a Ray actor has begun a run (it writes the
    # marker): Ray joins part-way on any machine, however slowly Ray starts there. With ``die``,
    # that actor dies there (os._exit): a crashed worker.
    inner: RunTask
    marker: str
    driver: int
    die: bool = False

    def warm(self):
        self.inner.warm()

    def __call__(self, run):
        if os.getpid() == self.driver:
            end = time.time() + 2
            while not os.path.exists(self.marker) and time.time() < end:
                time.sleep(0.05)
        elif not os.path.exists(self.marker):
            Path(self.marker).write_text(str(os.getpid()))
            if self.die:
                os._exit(1)
        return self.inner(run)
"""


_BESIDE = (
    _FIRST_ON_RAY
    + """
import json, sys
from pathlib import Path

import ray.cloudpickle

from sum_abm.scenario import load_scenario
from sum_abm.sweeps import AutoExecutor, SerialExecutor
from sum_abm.sweeps.spec import runs_for
from sum_abm.sweeps.store import SweepStore
from sum_abm.sweeps.task import RunTask


ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
out, marker = Path(sys.argv[1]), sys.argv[2]
base = load_scenario(sys.argv[3], {"data.n_rows": 800, "run.max_time_s": 86_400})
runs = runs_for([{"mechanism.cost_weight": w} for w in range(1, 31)], 1, 7)
SweepStore(out)
task = FirstOnRay(RunTask(base, baseline=False, out=str(out)), marker, os.getpid())
said = []
with AutoExecutor(workers=2, probe=False, notify=said.append) as auto:
    outcomes = list(auto.map(task, runs))
    actors, chunks = auto.ray.n_workers, list(auto.ray.chunk_sizes)
serial = {o.run.run_id: o.summary for o in SerialExecutor().map(task.inner, runs)}
print(json.dumps({
    "ids": [o.run.run_id for o in outcomes],
    "expected": [r.run_id for r in runs],
    "where": [o.executor for o in outcomes],
    "pids": sorted({o.pid for o in outcomes}),
    "driver": os.getpid(),
    "equal": all(o.ok and o.summary.equals(serial[o.run.run_id]) for o in outcomes),
    "actors": actors,
    "said": said,
    "chunks": chunks,
}))
"""
)


@pytest.mark.ray
def test_a_local_sweep_runs_in_the_driver_and_on_ray_beside_it(tmp_path):
    """A fresh local Ray on 2 cores: this process is one worker and Ray starts one actor for the
    other core; the driver runs runs while Ray starts, the actor joins part-way, every run once,
    results equal to serial ones."""
    got = _script(
        _BESIDE,
        str(tmp_path / "o"),
        str(tmp_path / "m"),
        str(ROOT / "scenarios" / "quickstart.toml"),
    )
    assert got["actors"] == 1  # 2 cores: the driver and one actor
    assert sorted(got["ids"]) == sorted(got["expected"])  # every run once
    assert set(got["where"]) == {"driver", "ray"} and got["equal"]
    assert len(got["pids"]) == 2 and got["driver"] in got["pids"]
    assert sum(got["chunks"]) == got["where"].count("ray")
    assert len(got["said"]) == 1 and "1 warm Ray worker and this process" in got["said"][0]


_HELPER = (
    _FIRST_ON_RAY
    + """
import json, signal, sys
from pathlib import Path

from sum_abm.scenario import load_scenario
from sum_abm.sweeps import AutoExecutor, SerialExecutor
from sum_abm.sweeps.spec import runs_for
from sum_abm.sweeps.store import SweepStore
from sum_abm.sweeps.task import RunTask


mode, out, marker = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
base = load_scenario(sys.argv[4], {"data.n_rows": 800, "run.max_time_s": 2 * 86_400})
runs = runs_for([{"mechanism.cost_weight": w} for w in range(1, 61)], 1, 9)
SweepStore(out)
inner = RunTask(base, baseline=False, out=str(out))
task = FirstOnRay(inner, marker, os.getpid(), die=mode == "actor")
said, outcomes, helper = [], [], None
with AutoExecutor(workers=2, probe=False, notify=said.append) as auto:
    for o in auto.map(task, runs):
        outcomes.append(o)
        if mode == "helper" and o.executor == "ray" and helper is None:
            helper = auto.ray._proc.pid
            os.kill(helper, signal.SIGKILL)  # the helper (and the Ray it started) dies part-way
    kind = type(auto.ray).__name__
serial = {o.run.run_id: o.summary for o in SerialExecutor().map(inner, runs)}
print(json.dumps({
    "kind": kind,
    "ids": [o.run.run_id for o in outcomes],
    "expected": [r.run_id for r in runs],
    "where": [o.executor for o in outcomes],
    "ok": all(o.ok for o in outcomes),
    "equal": all(o.summary.equals(serial[o.run.run_id]) for o in outcomes),
    "said": said,
    "died": os.path.exists(marker),
}))
"""
)


def _helper_script(tmp_path, mode: str) -> dict:
    return _script(
        _HELPER,
        mode,
        str(tmp_path / "o"),
        str(tmp_path / "died"),
        str(ROOT / "scenarios" / "quickstart.toml"),
    )


@pytest.mark.ray
def test_an_actor_of_the_ray_helper_that_dies_is_replaced_and_its_runs_retried(tmp_path):
    """A fresh local Ray lives in a helper process: an actor that dies there is replaced, its
    chunk's runs come back to the driver's queue and run again; every run once, equal to serial."""
    got = _helper_script(tmp_path, "actor")
    assert got["kind"] == "RayHelper" and got["died"]  # an actor of the helper really died
    assert sorted(got["ids"]) == sorted(got["expected"])  # every run once
    assert got["ok"] and got["equal"]


@pytest.mark.ray
def test_a_ray_helper_that_dies_leaves_its_runs_to_the_driver(tmp_path):
    """The helper process killed part-way (SIGKILL): the driver says so in one line, takes back
    the runs the helper had not returned and runs them itself; every run once, equal to serial."""
    got = _helper_script(tmp_path, "helper")
    assert got["kind"] == "RayHelper"
    assert sorted(got["ids"]) == sorted(got["expected"]) and got["ok"] and got["equal"]
    assert "ray" in got["where"]
    ended = [line for line in got["said"] if "helper process ended" in line]
    assert len(ended) == 1 and "continue in this process" in ended[0], got["said"]


_PREPARED = """
import json, os, sys, time
from pathlib import Path

from sum_abm.scenario import load_scenario
from sum_abm.sweeps import AutoExecutor, executors
from sum_abm.sweeps.spec import runs_for
from sum_abm.sweeps.task import RunTask


def children(pid):
    out = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append((p / "comm").read_text().strip())
        except OSError:
            pass
    return out


base = load_scenario(sys.argv[1], {"data.n_rows": 800, "run.max_time_s": 86_400})
task = RunTask(base, baseline=False)
runs = runs_for([{"mechanism.cost_weight": w} for w in range(1, 5)], 1, 3)
got = {}
# A helper spawned for a sweep whose runs stay here: it never starts Ray, and stops at close().
with AutoExecutor(workers=2) as auto:
    auto.prepare()
    idle = auto._helper._proc
    where = [o.executor for o in auto.map(task, runs)]
    got["short"] = {"where": where, "ray": auto.ray is not None, "kids": children(idle.pid)}
got["short"]["exit"] = idle.wait(timeout=60)  # close() returns at once; the helper then exits
# A long sweep's count (these 4 runs counted as many): Ray starts at once, before map(), and
# map() adopts that helper.
executors.START_AT_ONCE_RUNS = len(runs)
with AutoExecutor(workers=2) as auto:  # a resumed sweep: what is left is known only in map()
    auto.prepare(len(runs), resume=True)
    got["resumed_begun"] = auto._helper._begun
with AutoExecutor(workers=2) as auto:
    auto.prepare(len(runs))
    helper = auto._helper
    deadline = time.time() + 120
    while "raylet" not in children(helper._proc.pid) and time.time() < deadline:
        time.sleep(0.05)
    got["long_kids_before_map"] = children(helper._proc.pid)
    outcomes = list(auto.map(task, runs))
    got["adopted"] = auto.ray is helper
    got["ids"] = sorted(o.run.run_id for o in outcomes) == sorted(r.run_id for r in runs)
print(json.dumps(got))
"""


@pytest.mark.ray
def test_a_prepared_helper_starts_ray_only_for_a_long_sweep(tmp_path):
    """``AutoExecutor.prepare()`` spawns the helper before the sweep is loaded: for runs that stay
    in this process it never starts Ray and ends at close(); given a long sweep's count it starts
    Ray at once (its raylet runs before ``map`` is called) and ``map`` uses that helper; not
    when the sweep resumes."""
    got = _script(_PREPARED, str(ROOT / "scenarios" / "quickstart.toml"))
    short = got["short"]
    assert set(short["where"]) == {"driver"} and not short["ray"]
    assert short["kids"] == [] and short["exit"] == 0  # no Ray process; stopped at close()
    assert got["resumed_begun"] is False
    assert "raylet" in got["long_kids_before_map"]
    assert got["adopted"] and got["ids"]


_NOT_STARTED = """
import json, shutil, sys, tempfile
from collections import deque
from pathlib import Path

from sum_abm.scenario import load_scenario
from sum_abm.sweeps.rayhelper import RayHelper
from sum_abm.sweeps.spec import runs_for
from sum_abm.sweeps.task import RunTask

# A task class in a folder this process added to its sys.path (as a notebook would).
d = Path(tempfile.mkdtemp())
(d / "driver_only_task.py").write_text(
    "import dataclasses\\n"
    "from sum_abm.sweeps.task import RunTask\\n\\n"
    "@dataclasses.dataclass(frozen=True)\\n"
    "class DriverOnly:\\n"
    "    inner: RunTask\\n\\n"
    "    def __call__(self, run):\\n"
    "        return self.inner(run)\\n"
)
sys.path.insert(0, str(d))
from driver_only_task import DriverOnly

base = load_scenario(sys.argv[1], {"data.n_rows": 800, "run.max_time_s": 86_400})
runs = runs_for([{"mechanism.cost_weight": w} for w in range(1, 5)], 1, 3)
task = DriverOnly(RunTask(base, baseline=False))
got = {}
for phase in ("on the path", "gone"):
    if phase == "gone":  # the module now exists only in this process: the actors cannot load it
        shutil.rmtree(d)
    said, outcomes = [], []
    helper = RayHelper(1, notify=said.append)
    helper.start(task)
    queue = deque(runs)
    chunks = helper.chunks(task, queue, others=1)  # waits until the helper has answered
    while True:  # every run on the actors; none sent at all when Ray did not start
        chunks.fill()
        if not chunks.in_flight:
            break
        outcomes += chunks.collect(block=True)
    proc = helper._proc
    helper.close()
    got[phase] = {
        "said": said,
        "left": len(queue),
        "busy": chunks.busy,
        "where": [o.executor for o in outcomes if o.ok],
        "exit": proc.wait(timeout=60),
    }
print(json.dumps(got))
"""


@pytest.mark.ray
def test_a_local_ray_that_does_not_start_leaves_the_runs_to_the_driver(tmp_path):
    """The helper and its actors import what the driver can (its sys.path, with a folder it
    added): a task class from there runs on the actors. Once that module exists only in the
    driver, the actors cannot warm up: the driver hears why in one line, and the chunks object
    takes no run, so the driver runs them."""
    got = _script(_NOT_STARTED, str(ROOT / "scenarios" / "quickstart.toml"))
    on_path = got["on the path"]
    assert on_path["said"] == [] and on_path["where"] == ["ray"] * 4 and on_path["exit"] == 0
    gone = got["gone"]
    assert len(gone["said"]) == 1, gone["said"]
    assert gone["said"][0].startswith("local Ray did not start (")
    assert "driver_only_task" in gone["said"][0]  # why: the module the actors could not import
    assert gone["said"][0].endswith("the runs continue in this process")
    assert [gone["left"], gone["busy"], gone["where"]] == [4, True, []]  # all still queued
    assert gone["exit"] == 1  # the helper said why, stopped its Ray and exited


_TWO_TASKS = (
    _FIRST_ON_RAY
    + """
import json, sys
from pathlib import Path

from sum_abm.scenario import load_scenario
from sum_abm.sweeps import AutoExecutor, SerialExecutor
from sum_abm.sweeps.spec import runs_for
from sum_abm.sweeps.task import RunTask


tmp = Path(sys.argv[2])
runs = runs_for([{"mechanism.cost_weight": w} for w in range(1, 13)], 1, 5)
got = []
with AutoExecutor(workers=2, probe=False) as auto:
    helpers = []
    for k, days in enumerate((1, 2)):  # two sweeps, two tasks (a game's successive profiles)
        base = load_scenario(sys.argv[1], {"data.n_rows": 800, "run.max_time_s": days * 86_400})
        inner = RunTask(base, baseline=False)
        task = FirstOnRay(inner, str(tmp / f"m{k}"), os.getpid())
        outcomes = list(auto.map(task, runs))
        serial = {o.run.run_id: o.summary for o in SerialExecutor().map(inner, runs)}
        helpers.append(id(auto.ray))
        got.append({
            "once": sorted(o.run.run_id for o in outcomes) == sorted(r.run_id for r in runs),
            "equal": all(o.ok and o.summary.equals(serial[o.run.run_id]) for o in outcomes),
            "ray": sum(o.executor == "ray" for o in outcomes),
            "kind": type(auto.ray).__name__,
        })
print(json.dumps({"sweeps": got, "one_helper": len(set(helpers)) == 1}))
"""
)


@pytest.mark.ray
def test_one_ray_helper_serves_successive_sweeps_with_their_own_tasks(tmp_path):
    """A game's successive sweeps share one fresh local Ray: the helper takes each new task, its
    actors run each sweep's runs with that sweep's task, results equal to serial ones."""
    got = _script(_TWO_TASKS, str(ROOT / "scenarios" / "quickstart.toml"), str(tmp_path))
    assert got["one_helper"]
    for s in got["sweeps"]:
        assert s["kind"] == "RayHelper" and s["once"] and s["equal"] and s["ray"] >= 1, got


def test_the_ray_helper_starts_without_the_simulator():
    """The helper process imports Ray, not polars or the simulator: importing its module (and the
    sweeps package) loads neither."""
    code = (
        "import sys, sum_abm.sweeps.rayhelper, sum_abm.sweeps.rayworker\n"
        "print(sorted(m for m in ('polars', 'numpy', 'sum_abm.scenario', 'sum_abm.market') "
        "if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


_AT_ONCE = """
import json, sys

from sum_abm.scenario import load_scenario
from sum_abm.sweeps import AutoExecutor, executors
from sum_abm.sweeps.spec import runs_for
from sum_abm.sweeps.task import RunTask

base = load_scenario(sys.argv[1], {"data.n_rows": 800, "run.max_time_s": 86_400})
runs = runs_for([{"mechanism.cost_weight": w} for w in range(1, 5)], 1, 3)
task = RunTask(base, baseline=False)
seen = {}
for at_once in (executors.START_AT_ONCE_RUNS, len(runs)):
    executors.START_AT_ONCE_RUNS = at_once
    with AutoExecutor(workers=2) as auto:
        seen[at_once] = [(o.run.run_id, auto.ray is not None) for o in auto.map(task, runs)]
print(json.dumps({"seen": list(seen.values()), "ids": [r.run_id for r in runs]}))
"""


@pytest.mark.ray
def test_a_long_sweep_starts_ray_before_its_first_run_ends(tmp_path):
    """Four short runs are timed first and stay in this process; the same four runs counted as
    many (``START_AT_ONCE_RUNS``) start Ray at once, before the first run here has finished."""
    got = _script(_AT_ONCE, str(ROOT / "scenarios" / "quickstart.toml"))
    probed, at_once = got["seen"]
    assert sorted(i for i, _ in probed) == sorted(got["ids"]) == sorted(i for i, _ in at_once)
    assert not any(started for _, started in probed)  # timed, too short: Ray never started
    assert all(started for _, started in at_once)  # Ray was starting when the first run ended


_LEAN = """
import json, os
from pathlib import Path

import ray
from ray._private import services
from ray._private.node import Node

from sum_abm.sweeps import raynode
from sum_abm.sweeps.raynode import init_ray, shutdown_ray

def children():
    out = {}
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == os.getpid():
                out[int(p.name)] = (p / "cmdline").read_bytes().replace(b"\\0", b" ").decode()
        except OSError:
            pass
    return out

RETRY = "RAY_raylet_client_connect_timeout_milliseconds"

@ray.remote
def pid():
    return os.getpid(), os.environ.get(RETRY)

awaited, await_registration = [], raynode._await_registration

def recorded(gcs_address, node_id):
    await_registration(gcs_address, node_id)
    state = ray._private.state.GlobalState()
    state._initialize_global_state(services._get_gcs_client_options(gcs_address))
    awaited.append((node_id, [n["NodeID"] for n in state.node_table() if n["Alive"]]))
    state.disconnect()

raynode._await_registration = recorded
api_server, get_node = Node.start_api_server, services.get_node
assert init_ray(None, 1)
kids = children()
worker, retry = ray.get(pid.remote())
node = ray.get_runtime_context().get_node_id()
shutdown_ray()
print(json.dumps({"kids": list(kids.values()), "worker": worker, "me": os.getpid(),
                  "alive_after": [k for k in kids if Path(f"/proc/{k}").exists()],
                  "restored": Node.start_api_server is api_server and services.get_node is get_node,
                  "retry": [retry, os.environ.get(RETRY)], "awaited": awaited, "node": node}))
"""


@pytest.mark.ray
def test_a_local_ray_starts_only_what_a_sweep_uses(tmp_path):
    """The local Ray a sweep starts has its GCS, raylet and workers, but no autoscaler monitor,
    log monitor or dashboard API server; its processes retry a local socket in 20 ms, not 1 s, and
    ray.init asks for its node once it has registered (Ray's query sleeps 1 s when it has not);
    Ray's node class and services, and this process's environment, are left as they were; all
    stop with it."""
    r = subprocess.run(
        [sys.executable, "-c", _LEAN], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    kids = " | ".join(got["kids"])
    assert "gcs_server" in kids and "raylet" in kids
    for absent in ("monitor.py", "log_monitor.py", "dashboard/dashboard.py"):
        assert absent not in kids
    assert got["worker"] != got["me"] and got["restored"]
    assert got["retry"] == ["20", None]  # in Ray's worker, not left in this process
    ((awaited, alive),) = got["awaited"]
    assert awaited == got["node"] and alive == [got["node"]]
    assert got["alive_after"] == []


_AGENTS = """
import json, os, time
from pathlib import Path

import ray
from ray._private import services

from sum_abm.sweeps.raynode import init_ray, shutdown_ray

def descendants():
    parent = {}
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit():
                parent[int(p.name)] = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            pass
    keep, grew = {os.getpid()}, True
    while grew:
        new = {c for c, pp in parent.items() if pp in keep and c not in keep}
        keep |= new
        grew = bool(new)
    out = {}
    for k in keep - {os.getpid()}:
        try:
            # the program and its first arguments (the raylet's later ones name the agents)
            out[k] = " ".join(Path(f"/proc/{k}/cmdline").read_bytes().decode().split("\\0")[:4])
        except OSError:
            pass
    return out

@ray.remote
def env(name):
    return os.environ.get(name)

start_process = services.start_ray_process
assert init_ray(None, 1)
before = descendants()
plain = ray.get(env.remote("SWEEP_TEST_VAR"))
with_env = ray.get(
    env.options(runtime_env={"env_vars": {"SWEEP_TEST_VAR": "42"}}).remote("SWEEP_TEST_VAR")
)
after = descendants()
shutdown_ray()
deadline = time.time() + 10
while time.time() < deadline and any(Path(f"/proc/{k}").exists() for k in after):
    time.sleep(0.2)
print(json.dumps({"before": list(before.values()), "after": list(after.values()),
                  "plain": plain, "with_env": with_env,
                  "alive_after": [after[k] for k in after if Path(f"/proc/{k}").exists()],
                  "restored": services.start_ray_process is start_process}))
"""


@pytest.mark.ray
def test_a_local_rays_agents_are_idle_stand_ins_that_hand_over_when_needed(tmp_path):
    """The raylet of the local Ray a sweep starts runs the idle agent in place of its dashboard and
    runtime-env agents (no Python process importing Ray for services a sweep does not use); a task
    with a runtime_env still gets it (Ray's runtime-env agent takes over the port); everything stops
    with Ray, and Ray's process launcher is left as it was."""
    r = subprocess.run(
        [sys.executable, "-c", _AGENTS], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    before, after = " | ".join(got["before"]), " | ".join(got["after"])
    assert "idle_agent.py dashboard" in before and "idle_agent.py runtime-env" in before
    for ray_agent in (
        "dashboard/agent.py",
        "runtime_env/agent/main.py",
        "Agent",
    ):  # Agent: its title
        assert ray_agent not in before
    assert got["plain"] is None and got["with_env"] == "42"
    assert "ray::RuntimeEnvAgent" in after and "idle_agent.py runtime-env" not in after
    assert got["alive_after"] == [] and got["restored"]


def test_only_the_agents_commands_are_replaced():
    """The raylet's other arguments, and an agent command without the options the idle agent
    needs, pass unchanged; the runtime-env stand-in keeps Ray's command to hand over to."""
    from sum_abm.sweeps.raynode import _idle_agent_flag

    assert _idle_agent_flag("--node_manager_port=0") == "--node_manager_port=0"
    odd = "--dashboard_agent_command=python agent.py --node-id=ab"
    assert _idle_agent_flag(odd) == odd
    ray_cmd = (
        "python -u /x/runtime_env/agent/main.py --node-id=ab --session-dir=/t/s --log-dir=/t/l"
    )
    got = _idle_agent_flag("--runtime_env_agent_command=" + ray_cmd)
    flag, command = got.split("=", 1)
    args = shlex.split(command)
    assert flag == "--runtime_env_agent_command" and args[2].endswith("idle_agent.py")
    assert args[3:6] == ["runtime-env", "--session-dir=/t/s", "--node-id=ab"]
    assert args[args.index("--") + 1 :] == shlex.split(ray_cmd)
    dash = _idle_agent_flag(
        "--dashboard_agent_command=python agent.py --node-id=ab --session-dir=/t"
    )
    assert "--" not in shlex.split(dash.split("=", 1)[1]) and "idle_agent.py dashboard" in dash


@pytest.mark.ray
def test_one_executor_serves_many_sweeps_and_stops_at_the_end(tmp_path, ray_local):
    """``shared_executor``: successive sweeps (a game's profiles) share one Ray executor and its
    warm actors; it closes when the block ends."""
    from sum_abm.sweeps import AutoExecutor, shared_executor

    base = load_scenario(
        ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 86_400}
    )
    seen = []
    with shared_executor() as ex:
        assert isinstance(ex, AutoExecutor)
        ex.probe = False  # Ray whatever the length: these runs are short
        for k, ws in enumerate(([1, 2], [3, 4, 5])):
            points = [{"mechanism.cost_weight": w} for w in ws]
            t = run_many(base, points, tmp_path / f"s{k}", root_seed=1, baseline=False)
            assert t.height == len(ws)
            seen.append((ex.ray, set(load_executions(tmp_path / f"s{k}")["executor"])))
            deadline = time.time() + 120
            while not ex.ray.ready() and time.time() < deadline:  # the actors warm up
                time.sleep(0.05)
        with shared_executor() as inner:
            assert inner is ex  # a nested block keeps the executor already set
    assert seen[0][0] is not None and seen[0][0] is seen[1][0]  # one Ray executor for both
    # The first sweep's runs may run here while the actors warm up; the second finds them warm
    # (and a Ray this process did not start: its actors take every run).
    assert seen[0][1] <= {"driver", "ray"} and seen[1][1] == {"ray"}
    assert ex.ray is None  # closed at the end of the block


def test_a_short_sweep_stays_in_process_and_says_so(tmp_path):
    # One simulated day: a run takes well under a second, so 3 runs cannot repay Ray's start-up.
    base = load_scenario(
        ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 86_400}
    )
    said = []
    t = run_many(
        base,
        [{"mechanism.cost_weight": w} for w in (1, 2, 3)],
        tmp_path / "o",
        root_seed=1,
        notify=said.append,
    )
    assert t.height == 3 and len(said) == 1 and "in this process" in said[0]
    ex = load_executions(tmp_path / "o")
    assert ex["executor"].to_list() == ["driver"] * 3 and ex["pid"].unique().to_list() == [
        os.getpid()
    ]


def test_resume_adds_grown_grid_points_and_refuses_another_base(tmp_path):
    f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2]})
    from sum_abm import sweep

    sweep(f, tmp_path / "o", serial=True)
    before = {p.name: p.read_bytes() for p in (tmp_path / "o" / "runs").iterdir()}
    f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2, 3]})
    calls = []
    t = sweep(
        f, tmp_path / "o", serial=True, resume=True, progress=lambda d, fl, n: calls.append(d)
    )
    assert calls == [2, 3] and t.height == 3  # only the new point ran
    assert all((tmp_path / "o" / "runs" / n).read_bytes() == b for n, b in before.items())
    manifest = json.loads((tmp_path / "o" / "sweep.json").read_text())
    assert len(manifest["runs"]) == 3 and "mechanism.cost_weight" in manifest["sweep_file"]
    assert (
        manifest["versions"]["sum_abm"] and len((manifest["code_revision"] or "x" * 40)[:40]) == 40
    )
    assert {r["run_id"]: r["seed"] for r in manifest["runs"]} == {
        r.run_id: r.seed for r in load_sweep_file(f).runs
    }
    other = write_sweep(
        tmp_path,
        {"mechanism.cost_weight": [1, 2, 3]},
        base=str(ROOT / "scenarios" / "attack_label_flip.toml"),
    )
    other = other.rename(tmp_path / "other.toml")

    def refusal(sweep_file: Path) -> str:
        """The one line ``sum-abm sweep FILE --resume`` into the folder answers (exit 2)."""
        r = subprocess.run(
            CLI + ["sweep", str(sweep_file), "--out", str(tmp_path / "o"), "--resume", "--serial"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        (line,) = r.stderr.strip().splitlines()
        assert r.returncode == 2
        return line

    assert "another base scenario" in refusal(other)
    # Another root seed keeps every run id: its old parts would pass for the new seed's runs.
    f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2, 3]})
    (tmp_path / "reseeded.toml").write_text(f.read_text().replace("seed = 5", "seed = 6"))
    assert "another root seed" in refusal(tmp_path / "reseeded.toml")
    with pytest.raises(InputError, match="another root seed"):
        sweep(tmp_path / "reseeded.toml", tmp_path / "o", serial=True, resume=True)
    assert json.loads((tmp_path / "o" / "sweep.json").read_text()) == manifest
    # A sweep file with fewer points than the folder holds is not this folder's sweep.
    shrunk = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2]})
    with pytest.raises(InputError, match="holds 1 runs this sweep does not have"):
        sweep(shrunk, tmp_path / "o", serial=True, resume=True)
    f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2, 3]})
    # A part damaged after it was written (a full disk, a partial copy) is a run to do again.
    full = load_sweep(tmp_path / "o").collect().sort("run_id")
    damaged = min((tmp_path / "o" / "runs").iterdir())
    damaged.write_bytes(damaged.read_bytes()[:100])
    said, calls = [], []
    t = sweep(
        f, tmp_path / "o", serial=True, resume=True, notify=said.append,
        progress=lambda d, fl, n: calls.append(d),
    )  # fmt: skip
    assert calls == [2, 3] and any(damaged.name in line for line in said), said
    assert t.equals(full)
    assert load_sweep(tmp_path / "o").collect().sort("run_id").equals(full.sort("run_id"))
    with pytest.raises(InputError, match="table: expected 'runs' or 'agents'"):
        load_sweep(tmp_path / "o", "failures")
    with pytest.raises(InputError, match="no runs/"):
        load_sweep(tmp_path / "empty")


def test_bundled_sweeps_validate():
    files = sorted(str(p) for p in (ROOT / "scenarios" / "sweeps").glob("*.toml"))
    assert len(files) >= 3
    r = subprocess.run(CLI + ["validate", *files], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    counts = {ln.split(":")[0].rsplit("/", 1)[-1]: ln for ln in r.stdout.splitlines()}
    assert "24 runs" in counts["quickstart_sweep.toml"]
    for f in files:
        sw = load_sweep_file(f)
        assert sw.spec.description and len({r.run_id for r in sw.runs}) == len(sw.runs)


def _session_pids(sid: int) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if os.getsid(int(d.name)) == sid:
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


def _parts(d: Path) -> int:
    return len(list((d / "runs").glob("*.parquet")))


def _start_and_wait(cmd: list[str], out: Path, parts: int) -> subprocess.Popen:
    """Start a sweep driver in a session of its own; return once ``out`` holds ``parts`` parts."""
    p = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 300
    while time.time() < deadline and _parts(out) < parts and p.poll() is None:
        time.sleep(0.05)
    return p


def _stop_session(sid: int) -> None:
    """Ray's processes outlive a SIGKILLed driver for a while: stop them by PID (they are in the
    session this test started), never with `ray stop`."""
    for pid in _session_pids(sid):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@pytest.mark.ray
@pytest.mark.slow
def test_ctrl_c_and_sigkill_of_a_ray_driver_then_resume(tmp_path, ray_local):
    """The default path (runs timed in-process, then local Ray with workers writing their own parts
    when the rest is long enough): a second driver on the folder is refused while the first runs;
    Ctrl-C part-way, resume, SIGKILL of the driver alone part-way (its folder lock dies with it),
    resume: every run once, content equal to an uninterrupted sweep."""
    short = {"data.n_rows": [800], "run.max_time_s": [1_728_000]}  # long enough for a second driver
    # 48 runs: enough that a resumed driver, whose workers write parts a chunk at a time, is
    # still part-way when it is killed
    n = 48
    f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2, 3, 4, 5, 6, 7, 8]}, short, reps=6)
    cut = tmp_path / "cut"
    cmd = CLI + ["sweep", str(f), "--out", str(cut), "--workers", "2"]
    p = _start_and_wait(cmd, cut, 2)
    try:
        # One sweep at a time per folder: a second driver on the same --out is refused in one line.
        second = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=120)
        assert p.poll() is None, "the first driver finished too soon for this check"
        assert second.returncode == 2 and len(second.stderr.strip().splitlines()) == 1
        assert "another sweep is running into this folder" in second.stderr, second.stderr
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
        _, err = p.communicate(timeout=120)
    finally:
        _stop_session(p.pid)
    assert p.returncode == 130 and "--resume" in err.strip().splitlines()[-1], err[-2000:]
    first = _parts(cut)
    assert 2 <= first < n
    # the message counts the parts on disk (no worker writes once the driver has stopped them)
    said = re.search(rf"interrupted: (\d+) of {n} runs", err)
    assert said and int(said[1]) == first, err[-2000:]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--resume" in r.stderr  # refuses to mix results silently
    assert len(r.stderr.strip().splitlines()) == 1
    p = _start_and_wait(cmd + ["--resume"], cut, first + 2)
    try:
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        _stop_session(p.pid)
    before = _parts(cut)
    assert first + 2 <= before < n
    r = subprocess.run(cmd + ["--resume", "--serial"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{n - before} ran" in r.stdout
    t = table(cut)
    assert t.height == n and t["run_id"].n_unique() == n
    full = run_many(
        load_scenario(ROOT / "scenarios" / "quickstart.toml"),  # uninterrupted, on the test's Ray
        [
            {"mechanism.cost_weight": w, "data.n_rows": 800, "run.max_time_s": 1_728_000}
            for w in range(1, 9)
        ],
        tmp_path / "full",
        replications=6,
        root_seed=5,
        serial=False,
    )
    assert t.equals(full.sort("run_id"))
    assert (
        load_agents(cut)
        .collect()
        .sort("run_id", "agent_id")
        .equals(load_agents(tmp_path / "full").collect().sort("run_id", "agent_id"))
    )
    assert not [
        q for sub in ("runs", "agents") for q in (cut / sub).iterdir() if q.name.startswith(".")
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_node(args: list[str], temp: str, env: dict) -> subprocess.Popen:
    """``ray start ... --block`` in a session of its own (stopped by its PID, never `ray stop`)."""
    return subprocess.Popen(
        ["ray", "start", "--block", "--temp-dir", temp, "--disable-usage-stats", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop_node(p: subprocess.Popen) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


@pytest.mark.ray
@pytest.mark.slow
def test_sweep_on_a_two_node_ray_cluster_by_address(tmp_path):
    """A real cluster of two nodes (a head and a worker node, each with its own temp dir, CPU and
    custom resource) with Ray's token authentication: a driver with another token is refused in one
    line that explains the token; with the cluster's token the sweep runs on both nodes and its
    table equals the serial one."""
    import secrets

    port = _free_port()
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    for k in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        env.pop(k, None)
    # Ray's socket paths must stay under 107 bytes: short temp dirs, one per node.
    t1, t2 = (tempfile.mkdtemp(prefix=p, dir="/tmp") for p in ("rayh", "rayw"))
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1"]
    head = _ray_node(
        ["--head", "--port", str(port), "--include-dashboard=false", "--resources", '{"node_a": 1}']
        + common,
        t1,
        env,
    )
    nodes = [head]
    try:
        deadline = time.time() + 120
        while True:  # the head's GCS port answers once it accepts nodes and drivers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and head.poll() is None, "the Ray head did not start"
                time.sleep(0.2)
        nodes.append(
            _ray_node(
                ["--address", f"127.0.0.1:{port}", "--resources", '{"node_b": 1}'] + common, t2, env
            )
        )
        probe = (
            "import ray; ray.init(address='{a}', logging_level='ERROR'); import time\n"
            "for _ in range(600):\n"
            "    if len([n for n in ray.nodes() if n['Alive']]) == 2: break\n"
            "    time.sleep(0.1)\n"
            "print(sorted(k for n in ray.nodes() if n['Alive'] for k in n['Resources'] if k.startswith('node_')))"
        )
        r = subprocess.run(
            [sys.executable, "-c", probe.format(a=f"127.0.0.1:{port}")],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert "['node_a', 'node_b']" in r.stdout, r.stderr[-2000:]  # both nodes joined
        f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2, 3, 4, 5, 6]})
        cmd = CLI + [
            "sweep",
            str(f),
            "--out",
            str(tmp_path / "o"),
            "--address",
            f"127.0.0.1:{port}",
        ]
        # (RAY_gcs_server_port_wait_time_s: Ray's driver retries a refused connection for 20 s; 3 s here.)
        bad = subprocess.run(
            cmd,
            env={
                **env,
                "RAY_AUTH_TOKEN": secrets.token_hex(32),
                "RAY_gcs_server_port_wait_time_s": "3",
            },
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr[-2000:]
        assert (
            "refused this driver's authentication token" in bad.stderr
            and "RAY_AUTH_TOKEN" in bad.stderr
        )
        assert not list((tmp_path / "o").glob("runs/*.parquet"))
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        on_cluster = table(tmp_path / "o")
        assert on_cluster.height == 6
        ex = load_executions(tmp_path / "o")
        assert ex.height == 6 and set(ex["executor"]) == {"ray"}
        assert ex["node_id"].n_unique() == 2  # runs executed on both nodes
        # The same points in-process: the same run ids, seeds and table (the cluster is no different).
        points = [{"mechanism.cost_weight": w, **SMALL} for w in range(1, 7)]
        base = load_scenario(ROOT / "scenarios" / "quickstart.toml")
        serial = run_many(base, points, tmp_path / "serial", root_seed=5, serial=True)
        assert on_cluster.equals(serial.sort("run_id"))
    finally:
        for p in reversed(nodes):  # the worker node first, then the head; by PID
            _stop_node(p)
        for t in (t1, t2):
            shutil.rmtree(t, ignore_errors=True)


def test_bad_cluster_address_is_one_line(tmp_path):
    f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2, 3, 4, 5, 6]})
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    r = subprocess.run(
        CLI
        + ["sweep", str(f), "--out", str(tmp_path / "o"), "--address", f"127.0.0.1:{_free_port()}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "cannot connect to the Ray cluster" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_wilson_interval_matches_the_closed_form():
    from sum_abm.sweeps.stats import wilson

    lo, hi = wilson(5, 10)
    assert round(lo, 4) == 0.2366 and round(hi, 4) == 0.7634  # the textbook 5 of 10 interval
    lo, hi = wilson(0, 12)
    z2 = 1.959964**2
    assert lo == 0.0 and abs(hi - z2 / (12 + z2)) < 1e-12  # k = 0: upper bound z²/(n + z²)
    lo, hi = wilson(12, 12)
    assert hi == 1.0 and abs(lo - 12 / (12 + z2)) < 1e-12
    a, b = wilson(3, 30), wilson(30, 300)
    assert a[0] < b[0] < 0.1 < b[1] < a[1]  # same share, more runs: a narrower interval
    assert all(x != x for x in wilson(0, 0))  # no runs: no interval (nan)


@pytest.mark.slow
def test_sweep_report_shows_every_run_and_k_of_n(tmp_path):
    """A categorical and a numeric parameter, 3 replications: the report has the k-of-n line with
    the counts of the runs table, boxes of every run per value (categories, no lines), and the
    ROI of every agent by group."""
    from dashboards.sweep_report import (
        build_sweep_report,
        distribution_figure,
        group_roi_figure,
        paid_figure,
        paid_rows,
    )

    base = load_scenario(ROOT / "scenarios" / "quickstart.toml", SMALL)
    points = [
        {"mechanism.cost_weight": w, "mechanism.semantics": sem}
        for w in (1, 8)
        for sem in ("solidity", "reference-python")
    ]
    runs = run_many(base, points, tmp_path / "o", replications=3, root_seed=9, serial=True)
    assert runs.height == 12
    params = ["mechanism.cost_weight", "mechanism.semantics"]
    t = paid_rows(runs, params)
    assert t.height == 4 and t["runs"].to_list() == [3, 3, 3, 3]
    for r in t.rows(named=True):
        d = runs.filter((pl.col(params[0]) == r[params[0]]) & (pl.col(params[1]) == r[params[1]]))
        assert r["paid"] == (d["attacker_roi"] > 0).sum()
        assert r["wilson_lo"] <= r["paid"] / 3 <= r["wilson_hi"]
    fig = paid_figure(runs, "mechanism.semantics", "mechanism.cost_weight")
    assert all(tr.mode == "markers+text" for tr in fig.data) and len(fig.data) == 2
    assert fig.layout.xaxis.type == "category"
    assert sorted(sum((list(tr.text) for tr in fig.data), [])) == sorted(
        f"{r['paid']}/{r['runs']}" for r in t.rows(named=True)
    )
    box = distribution_figure(runs, "mechanism.semantics", "attacker_roi")
    assert box.data[0].type == "box" and box.data[0].boxpoints == "all"
    assert len(box.data[0].y) == 12 and box.layout.xaxis.type == "category"
    agents = load_agents(tmp_path / "o").collect()
    g = group_roi_figure(agents)
    assert sum(len(tr.y) for tr in g.data) == agents.height  # one point per agent and run
    html = build_sweep_report(tmp_path / "o").read_text()
    assert "The attack paid in k of n runs" in html and "ROI by group" in html
    assert "every run by mechanism.semantics" in html


@pytest.mark.slow
def test_game_report_shows_every_replications_payoff(tmp_path):
    """The game report's spread: a box of every run per profile and role, and 'above zero in k of
    n runs' counted from the per-run payoffs the payoff table averages."""
    import dashboards.game_report as gr
    from sum_abm.bundled import resolve
    from sum_abm.game.empirical import load_game, run_payoffs
    from sum_abm.game.runner import run_game
    from sum_abm.sweeps import use_executor

    path = resolve("quickstart_game", "game")
    with use_executor(SerialExecutor()):
        run_game(path, tmp_path, reports=gr)
    game = load_game(path)
    table = pl.read_parquet(tmp_path / "payoffs.parquet")
    sections = dict(gr.payoff_spread_sections(game, table, tmp_path / "sweep"))
    box = sections["Payoff of deviant: every replication"]
    n_profiles = table["profile"].n_unique()
    assert box.data[0].type == "box" and box.data[0].boxpoints == "all"
    assert len(box.data[0].y) == n_profiles * game.spec.replications  # every run, not a mean
    per = run_payoffs(
        game, load_agents(tmp_path / "sweep").collect(), load_sweep(tmp_path / "sweep").collect()
    )
    above = sum(1 for (_, role), u in per.items() if role == "deviant" and u > 0)
    html = (tmp_path / "game_report.html").read_text()
    assert "Payoff above zero in k of n runs" in html and "every replication" in html
    k_table = sections["Payoff above zero in k of n runs"]
    assert k_table.count("<tr") - 1 == n_profiles * len(game.spec.roles)
    assert sum(1 for u in box.data[0].y if u > 0) == above  # the k of n line counts these runs


def test_run_many_refuses_a_point_the_data_refuses_before_any_run(tmp_path):
    """The game and design layers' entry: a value only the data can refuse (400 test pieces of
    a 400-row test set leave one empty) is one InputError naming the point; nothing is written."""
    from sum_abm.errors import InputError
    from sum_abm.scenario import load_scenario
    from sum_abm.sweeps import run_many

    base = load_scenario(Path(__file__).resolve().parents[1] / "scenarios/games/pm_small.toml")
    points = [{"mechanism.num_test_pieces": 10}, {"mechanism.num_test_pieces": 400}]
    with pytest.raises(InputError) as err:
        run_many(base, points, tmp_path / "out", serial=True, source="g.toml")
    msg = str(err.value)
    assert msg.startswith("g.toml: the point {mechanism.num_test_pieces = 400}: pm_small: ")
    assert "expected at most 399" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_cannot_be_made_is_one_input_error():
    from sum_abm.errors import InputError
    from sum_abm.scenario import load_scenario
    from sum_abm.sweeps import run_many

    base = load_scenario(Path(__file__).resolve().parents[1] / "scenarios/quickstart.toml")
    with pytest.raises(InputError, match=r"^/proc/no/such: cannot create the output folder \("):
        run_many(base, [{"mechanism.cost_weight": 2}], "/proc/no/such", serial=True)


def test_a_base_may_be_a_bundled_scenario_name(tmp_path):
    """As ``sum-abm run quickstart`` takes it: a sweep, game or design file anywhere can start
    from a bundled scenario without its path; a path relative to the file comes first."""
    f = tmp_path / "s.toml"
    f.write_text('base = "quickstart"\n[grid]\n"mechanism.cost_weight" = [1, 2]\n')
    sw = load_sweep_file(f)
    assert sw.base == load_scenario(ROOT / "scenarios" / "quickstart.toml") and len(sw.runs) == 2
    (tmp_path / "quickstart").write_text((ROOT / "scenarios" / "attack_sybil.toml").read_text())
    assert load_sweep_file(f).base.name == "attack_sybil"  # the file beside it wins
    f.write_text('base = "no_such_market"\n[grid]\n"mechanism.cost_weight" = [1]\n')
    with pytest.raises(InputError, match="no scenario file 'no_such_market'.*no bundled scenario"):
        load_sweep_file(f)


def test_a_parameter_given_as_ints_and_floats_has_one_type_in_every_part(cli, tmp_path):
    # Each run writes its own part: gas prices [0, 1e-05, 1] were Int32 in two parts and Float64
    # in one, and reading the parts together failed.
    spec = SweepSpec(base="x", seed=1, grid={"chain.gas_price": [0, 1e-05, 1], "b": [1, 2]})
    pts = expand(spec)
    assert {type(p["chain.gas_price"]) for p in pts} == {float} and {p["b"] for p in pts} == {1, 2}
    f = tmp_path / "gas.toml"
    f.write_text(
        f'base = "{ROOT / "scenarios" / "quickstart.toml"}"\nseed = 1\n[grid]\n'
        '"chain.gas_price" = [0, 1e-05, 1]\n"data.n_rows" = [800]\n"run.max_time_s" = [86400]\n'
    )
    r = cli("sweep", f, "--out", tmp_path / "o", "--workers", "1")
    assert r.returncode == 0, r.stderr
    parts = pl.read_parquet(tmp_path / "o" / "runs" / "*.parquet")
    assert parts.schema["chain.gas_price"] == pl.Float64
    assert sorted(parts["chain.gas_price"].to_list()) == [0.0, 1e-05, 1.0]
