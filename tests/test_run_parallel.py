"""The clean baseline in a second process (``run(..., parallel_baseline=True)``, ``sum-abm run``'s
default on two or more cores): the same Parquet files and summary as the serial order, the same
errors, progress for both runs, and no process left behind by an error or a Ctrl-C."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from sum_abm.errors import InputError
from sum_abm.market.run import run
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
SHORT = ["--set", "run.max_time_s=259200"]  # three simulated days: the attacker still trades
linux = pytest.mark.skipif(sys.platform != "linux", reason="fork and /proc are Linux's")
RUN_MODULE = sys.modules["sum_abm.market.run"]  # the package's ``run`` attribute is the function


def hashes(folder: Path) -> dict[str, str]:
    return {
        f.name: hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(Path(folder).glob("*.parquet"))
    }


def sum_abm(*args: object, code: str = "", **kw) -> subprocess.CompletedProcess:
    """``sum-abm ARGS`` in a new interpreter (a fresh process, as a user starts it); ``code`` runs
    first (a fault to inject)."""
    prog = f"{code}\nfrom sum_abm.cli import main\nmain()"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", prog, *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT, **kw)


@linux
def test_fork_is_used_only_before_polars_starts_its_thread_pool():
    # A child forked after polars has run a parallel operation hangs at its own first one.
    code = (
        "from sum_abm.market.run import fork_is_safe\n"
        "import polars as pl\n"
        "before = fork_is_safe()\n"
        "pl.DataFrame({'a': list(range(100_000))}).group_by(pl.col('a') % 7).len()\n"
        "print(before, fork_is_safe())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=True,
    )
    assert out.stdout.split() == ["True", "False"]


@pytest.mark.slow
@linux
def test_cli_default_forks_the_baseline_and_writes_the_same_files_as_the_serial_order(tmp_path):
    par = sum_abm("run", QUICKSTART, *SHORT, "--no-report", "--out", tmp_path / "par")
    ser = sum_abm(
        "run", QUICKSTART, *SHORT, "--no-report", "--out", tmp_path / "ser", "--serial-baseline"
    )
    assert par.returncode == 0 and ser.returncode == 0, par.stderr + ser.stderr
    files = hashes(tmp_path / "par")
    assert "baseline_timeseries.parquet" in files and files == hashes(tmp_path / "ser")
    assert "clean baseline: run in a second process" in par.stdout
    assert "second process" not in ser.stdout

    def lines(out: str) -> list[str]:  # what the user reads, wall times and folders aside
        skip = ("s wall", "results:", "clean baseline:")
        return [x for x in out.splitlines() if not any(s in x for s in skip)]

    assert lines(par.stdout) == lines(ser.stdout) and "attack: accuracy drop" in par.stdout


@pytest.mark.slow
def test_spawned_baseline_gives_the_serial_results_and_reports_both_runs(tmp_path, monkeypatch):
    sc = load_scenario(QUICKSTART, {"run.max_time_s": 259_200})
    serial_seen: list[tuple[str, float]] = []
    serial = run(sc, progress=lambda label, f: serial_seen.append((label, f)))
    # this process has used polars: a fork would hang, so a new interpreter runs the baseline
    monkeypatch.setattr(RUN_MODULE, "fork_is_safe", lambda: False)
    seen: list[tuple[str, float]] = []
    par = run(sc, parallel_baseline=True, progress=lambda label, f: seen.append((label, f)))
    assert par.baseline.peak_rss_mb > 50 and serial.baseline.peak_rss_mb is None
    serial.write(tmp_path / "ser")
    par.write(tmp_path / "par")
    assert hashes(tmp_path / "par") == hashes(tmp_path / "ser")
    assert par.summary.equals(serial.summary)
    assert par.summary["accuracy_drop_final"][0] is not None
    for frame in ("transactions", "timeseries", "agents", "summary"):
        assert getattr(par.baseline, frame).equals(getattr(serial.baseline, frame)), frame
    # both runs show progress, and each ends where the serial order's ends
    for label in ("baseline", "run"):
        mine = [f for lab, f in seen if lab == label]
        theirs = [f for lab, f in serial_seen if lab == label]
        assert mine and mine[-1] == theirs[-1] > 0, label
    assert seen[0] == ("baseline", 0.0)  # shown as started before the attacked run reports


@pytest.mark.slow
def test_a_spawned_baseline_that_cannot_load_its_data_says_so_in_one_line(tmp_path, monkeypatch):
    rows = pl.DataFrame(
        {"x1": [float(i % 7) for i in range(200)], "x2": [float(i % 3) for i in range(200)]}
    ).with_columns(label=(pl.col("x1") > 3).cast(pl.Int64))
    data = tmp_path / "rows.csv"
    rows.write_csv(data)
    sc = load_scenario(
        QUICKSTART,
        {"data.kind": "csv", "data.path": str(data), "data.label_column": "label"},
    )
    from sum_abm.data import load_dataset

    ds = load_dataset(sc.data, sc.learner.kind, sc.name)  # read with polars: no fork after this
    assert not RUN_MODULE.fork_is_safe() or sys.platform != "linux"
    data.unlink()  # the new interpreter loads the scenario's data itself, and finds none
    with pytest.raises(InputError, match=r"data\.path: no such file") as err:
        run(sc, dataset=ds, parallel_baseline=True)
    assert "\n" not in str(err.value)


INJECT = """
import sys
from sum_abm.market.model import MarketModel
from sum_abm.errors import InputError
_run = MarketModel.run
def run(self, progress=None):
    if not self.scenario.attacker_groups:  # the clean baseline only
        raise {exc}
    return _run(self, progress)
MarketModel.run = run
"""


@pytest.mark.slow
@linux
@pytest.mark.parametrize(
    "exc, status",
    [("InputError('baseline.toml: data: broken')", 2), ("ZeroDivisionError('boom')", 1)],
)
def test_a_failing_baseline_process_fails_the_run_as_the_serial_order_does(tmp_path, exc, status):
    code = INJECT.format(exc=exc)
    args = ("run", QUICKSTART, *SHORT, "--no-report")
    par = sum_abm(*args, "--out", tmp_path / "p", code=code)
    ser = sum_abm(*args, "--out", tmp_path / "s", "--serial-baseline", code=code)
    assert par.returncode == ser.returncode == status
    assert par.stderr.splitlines()[-1] == ser.stderr.splitlines()[-1]
    if status == 2:  # bad input: one line, no traceback
        assert par.stderr == ser.stderr
        assert par.stderr.strip() == "sum-abm: baseline.toml: data: broken"
    else:  # a bug: the traceback of where it happened, in the baseline's process
        remote = par.stderr.split("in the clean baseline's process:")[1]
        assert "in _baseline_main" in remote and "ZeroDivisionError: boom" in remote
    assert not (tmp_path / "p" / "summary.parquet").exists()


@linux
def test_a_forked_baseline_process_holds_ctrl_c_until_it_ignores_it(tmp_path, monkeypatch):
    """A Ctrl-C that reached the child between the fork and its ignoring SIGINT (in Python's
    at-fork hooks) printed a traceback under the parent's one-line message: the child starts
    with SIGINT blocked, and the parent's mask is as it was."""
    seen = tmp_path / "mask"

    def probe(conn, *args):  # stands in for the baseline run, in the child
        seen.write_text(str(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        conn.close()

    monkeypatch.setattr(RUN_MODULE, "_baseline_main", probe)
    before = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    proc = RUN_MODULE.BaselineProcess(load_scenario(QUICKSTART), 1, None, start_method="fork")
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == before
    assert proc._proc.wait() == 0
    proc._conn.close()
    assert seen.read_text() == "True"


def children(pid: int) -> list[int]:
    """The child processes of ``pid`` (none once it is gone), from each of its threads."""
    kids = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return kids
    for task in tasks:
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except FileNotFoundError:
            # a thread that ended between the listing and the read (seen in CI: Ray's and
            # Python's helper threads come and go); its children moved to another thread
            continue
    return kids


def gone(pid: int, within_s: float) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state == "Z":  # exited; its new parent (init) reaps it
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
@linux
@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_stopping_sum_abm_run_leaves_no_baseline_process(tmp_path, how):
    if how == "ctrl-c":
        prog = "from sum_abm.cli import main\nmain()"
        argv = [sys.executable, "-c", prog, "run", str(QUICKSTART), "--no-report"]
        argv += ["--out", str(tmp_path)]
    else:  # without progress the baseline's process sends nothing until its result is ready
        s1 = ROOT / "scenarios" / "reference_drt_perceptron.toml"  # a baseline of seconds
        prog = f"from sum_abm import run\nrun({str(s1)!r}, parallel_baseline=True)"
        argv = [sys.executable, "-c", prog]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    # a session of its own: a terminal's Ctrl-C signals the whole foreground group
    proc = subprocess.Popen(
        argv, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while not (kids := children(proc.pid)) and proc.poll() is None:
            assert time.monotonic() < deadline, "no baseline process started"
            time.sleep(0.02)
        assert kids, "sum-abm run ended before its baseline process was seen"
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 130  # as without a second process
            assert "sum-abm: interrupted" in err.decode().splitlines()  # one line, no traceback
            assert "Traceback" not in err.decode()
        else:  # killed without a chance to clean up: Linux takes the child down with it
            proc.kill()
            proc.wait(timeout=60)
        # gone at once: reaped before the parent exits, or killed by Linux as it dies (a baseline
        # left running would take seconds more)
        assert all(gone(k, within_s=1.0) for k in kids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
