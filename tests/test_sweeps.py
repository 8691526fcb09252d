"""Sweeps: expansion and stable ids, one-line errors, serial = Ray, kill-and-resume, a dying worker,
and a real Ray cluster started by the test (stopped by its PID, never `ray stop`)."""

from __future__ import annotations

import json
import os
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
from sum_abm.sweeps import engine, load_agents, load_failures, load_sweep, load_sweep_file, run_many
from sum_abm.sweeps.spec import SweepSpec, expand, runs_for

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


def test_batch_size_batches_only_short_runs():
    assert engine.batch_size([], 1000, 2) == 1  # nothing measured yet: one run per task
    assert engine.batch_size([0.5, 0.4, 0.6], 1000, 2) == 1  # long runs: one task each
    assert (
        engine.batch_size([0.025] * 10, 1000, 2) == 1
    )  # at the threshold (20 ms) and above: one each
    assert engine.batch_size([0.005] * 10, 1000, 2) == 11  # 5 ms runs: ~50 ms per task
    assert (
        engine.batch_size([0.005] * 10, 20, 2) == 5
    )  # the tail: at least two tasks per core remain
    assert engine.batch_size([1e-6] * 10, 10**6, 2) == engine.MAX_BATCH


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
    sweep(f, tmp_path / "ray", serial=False)
    assert len(a) == 8
    assert table(tmp_path / "serial").equals(table(tmp_path / "ray"))
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
    # The data file exists when the sweep is validated but not where the run happens (a cluster node
    # without it): the run raises, lands in failures.parquet, and the other runs finish.
    base = load_scenario(ROOT / "scenarios" / "quickstart.toml", SMALL)
    gone = tmp_path / "gone.csv"
    points = [
        {"mechanism.cost_weight": 1},
        {"data.kind": "csv", "data.path": str(gone)},
        {"mechanism.cost_weight": 2},
    ]
    frames = {}
    for mode, serial in (("serial", True), ("ray", False)):
        t = run_many(base, points, tmp_path / mode, root_seed=4, serial=serial, baseline=False)
        assert t.height == 2 and sorted(t["mechanism.cost_weight"].to_list()) == [1, 2]
        f = load_failures(tmp_path / mode)
        assert (
            f.height == 1
            and f["error_type"][0] == "InputError"
            and "no such file" in f["message"][0]
        )
        assert '"data.kind": "csv"' in f["parameters"][0] and "Traceback" in f["traceback"][0]
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
def test_short_runs_travel_in_batches_with_identical_results(tmp_path, ray_local, monkeypatch):
    base = load_scenario(
        ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 86_400}
    )
    points = [{"mechanism.cost_weight": w} for w in range(1, 25)]
    serial = run_many(base, points, tmp_path / "serial", root_seed=2, serial=True, baseline=False)
    monkeypatch.setattr(engine, "BATCH_BELOW_S", 10.0)  # every run counts as short here
    monkeypatch.setattr(engine, "BATCH_TARGET_S", 10.0)
    steps = []
    batched = run_many(
        base,
        points,
        tmp_path / "ray",
        root_seed=2,
        serial=False,
        baseline=False,
        progress=lambda d, f, n: steps.append(d),
    )
    assert (
        max(b - a for a, b in zip(steps, steps[1:], strict=False)) > 1
    )  # some task carried several runs
    assert steps[-1] == 24 and batched.sort("run_id").equals(serial.sort("run_id"))
    assert (
        load_agents(tmp_path / "ray")
        .collect()
        .sort("run_id", "agent_id")
        .equals(load_sweep(tmp_path / "serial", "agents").collect().sort("run_id", "agent_id"))
    )


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
    r = subprocess.run(
        CLI + ["sweep", str(other), "--out", str(tmp_path / "o"), "--resume", "--serial"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        r.returncode == 2
        and "another base scenario" in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )
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
def test_ctrl_c_and_sigkill_of_a_ray_driver_then_resume(tmp_path, ray_local):
    """The default path (local Ray, workers writing their own parts): Ctrl-C part-way, resume,
    SIGKILL of the driver alone part-way, resume: every run once, content equal to an uninterrupted sweep."""
    short = {"data.n_rows": [800], "run.max_time_s": [432_000]}
    f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2, 3, 4, 5, 6, 7, 8]}, short, reps=2)
    cut = tmp_path / "cut"
    cmd = CLI + ["sweep", str(f), "--out", str(cut), "--workers", "2"]
    p = _start_and_wait(cmd, cut, 2)
    try:
        os.killpg(p.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
        _, err = p.communicate(timeout=120)
    finally:
        _stop_session(p.pid)
    assert p.returncode == 130 and "--resume" in err.strip().splitlines()[-1], err[-2000:]
    first = _parts(cut)
    assert 2 <= first < 16
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
    assert first + 2 <= before < 16
    r = subprocess.run(cmd + ["--resume", "--serial"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{16 - before} ran" in r.stdout or before == 16
    t = table(cut)
    assert t.height == 16 and t["run_id"].n_unique() == 16
    full = run_many(
        load_scenario(ROOT / "scenarios" / "quickstart.toml"),  # uninterrupted, on the test's Ray
        [
            {"mechanism.cost_weight": w, "data.n_rows": 800, "run.max_time_s": 432_000}
            for w in range(1, 9)
        ],
        tmp_path / "full",
        replications=2,
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


@pytest.mark.ray
def test_a_worker_that_dies_is_retried(tmp_path):
    f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2, 3, 4, 5]})
    marker = tmp_path / "killed"
    env = {**os.environ, "SUM_ABM_FAULT_KILL_ONCE": str(marker)}
    r = subprocess.run(
        CLI + ["sweep", str(f), "--out", str(tmp_path / "o"), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert marker.exists()  # a worker really died
    assert table(tmp_path / "o").height == 5 and not (tmp_path / "o" / "failures.parquet").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.ray
def test_sweep_on_a_ray_cluster_by_address(tmp_path):
    """A real head with Ray's token authentication: a driver with another token is refused in one
    line that explains the token; with the cluster's token the sweep runs there."""
    import secrets

    port = _free_port()
    temp = tempfile.mkdtemp(
        prefix="rayc", dir="/tmp"
    )  # Ray's socket paths must stay under 107 bytes
    token = secrets.token_hex(32)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    for k in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH"):
        env.pop(k, None)
    head = subprocess.Popen(
        [
            "ray",
            "start",
            "--head",
            "--block",
            "--port",
            str(port),
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            "2",
            "--include-dashboard=false",
            "--temp-dir",
            temp,
            "--disable-usage-stats",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 120
        while True:  # the head's GCS port answers once it accepts drivers
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() < deadline and head.poll() is None, "the Ray head did not start"
                time.sleep(0.2)
        f = write_sweep(tmp_path, {"mechanism.cost_weight": [1, 2, 3]})
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
        assert on_cluster.height == 3
        # The same points in-process: the same run ids, seeds and table (the cluster is no different).
        points = [{"mechanism.cost_weight": w, **SMALL} for w in (1, 2, 3)]
        base = load_scenario(ROOT / "scenarios" / "quickstart.toml")
        serial = run_many(base, points, tmp_path / "serial", root_seed=5, serial=True)
        assert on_cluster.equals(serial.sort("run_id"))
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # stop the head by its process id, never `ray stop`
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


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
