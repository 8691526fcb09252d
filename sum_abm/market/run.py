"""``run(scenario, seed)``: one market run (and its clean baseline when there are attackers).

The clean baseline (the scenario without its attackers, same seed) and the attacked run are
independent until the summary compares them, so with ``parallel_baseline`` the baseline runs in a
second process while this one runs the attacked market: the results are the same, byte for byte.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sum_abm.data import load_dataset
from sum_abm.errors import InputError
from sum_abm.market.mesa_core import Agent
from sum_abm.market.model import MarketModel
from sum_abm.market.notes import group_activity
from sum_abm.market.results import RunResult, collect, summarize
from sum_abm.scenario import Scenario, load_scenario, parse_scenario


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused (reference counting still frees everything else).

    A market run allocates hundreds of thousands of long-lived objects (stored contributions,
    samples, log columns) and makes almost no cyclic garbage, so the automatic collections it
    triggers find nothing, yet each full one walks the whole heap: in S1 about 5 % of the run
    (0.1-0.2 s). Whatever cyclic garbage the run leaves (its model) is collected after.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _simulate(
    scenario: Scenario,
    seed: int,
    dataset: Any,
    baseline: RunResult | None | Callable[[], RunResult],
    progress: Any = None,
) -> RunResult:
    """One market run. ``baseline``: its clean baseline's result, or a callable that waits for it
    (called once the run's frames are built; the wait is not counted in ``wall_time_s``)."""
    t0 = time.perf_counter()
    waited = 0.0
    with _collector_paused():
        model = MarketModel(scenario=scenario, seed=seed, dataset=dataset)
        try:
            model.run(progress)
            frames = collect(model)
            if callable(baseline):
                t1 = time.perf_counter()
                baseline = baseline()
                waited = time.perf_counter() - t1
            summary = summarize(model, frames, baseline)
            activity = group_activity(model)
        finally:
            # Mesa 3.3.1 keeps every model that created an agent alive in a class-level dict
            # (fixed upstream in 3.4.2); without this a Ray worker grows by megabytes per run.
            Agent._ids.pop(model, None)
    return RunResult(
        scenario=scenario,
        seed=seed,
        summary=summary,
        wall_time_s=time.perf_counter() - t0 - waited,
        baseline=baseline,
        activity=activity,
        **frames,
    )


COLLECT_ABOVE_TEST_CELLS = 2_000_000  # S1: 25,000 x 1,000; a sweep's quick start: 100s x 1,000


def run(
    scenario: Scenario | dict[str, Any] | str | Path,
    seed: int | None = None,
    *,
    baseline: bool = True,
    dataset: Any = None,
    progress: Any = None,
    parallel_baseline: bool = False,
) -> RunResult:
    """Run one scenario (a :class:`Scenario`, its fields as a dict, or a TOML path) with ``seed``
    (default: the scenario's). A dict becomes a validated :class:`Scenario` here, at the edge.

    When a group is an attacker and ``baseline`` is true, the same scenario and seed without the
    attacking groups is run first (or alongside), and the summary gains the attack-success columns.
    ``progress(label, fraction)`` is called as each run advances (for progress bars).

    ``parallel_baseline``: run that clean baseline in a second process at the same time as the
    attacked run (same results; the wall time is the longer run's, not the sum). For a process
    that has a core to spare (``sum-abm run``); never in a sweep's worker, which owns one core.
    ``dataset`` must then be the scenario's own data: a spawned process loads it again.
    """
    if isinstance(scenario, dict):
        scenario = parse_scenario(scenario, "<scenario dict>")
    elif not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    seed = scenario.seed if seed is None else int(seed)
    if dataset is None:
        dataset = load_dataset(scenario.data, scenario.learner.kind, scenario.name)
    on_run = (lambda f: progress("run", f)) if progress else None
    base = None
    if baseline and scenario.attacker_groups:
        if parallel_baseline:
            with BaselineProcess(scenario.without_attackers(), seed, dataset, progress) as pending:

                def both(f: float) -> None:  # the child's progress too, as the run reports its own
                    pending.poll()
                    on_run(f)

                return _simulate(scenario, seed, dataset, pending.result, on_run and both)
        cb = (lambda f: progress("baseline", f)) if progress else None
        base = _simulate(scenario.without_attackers(), seed, dataset, None, cb)
        # The finished model's agents point back at it: collected now, its learner, test-set
        # evaluator and contract storage are freed before the attacked run builds its own
        # (S1's peak RSS: 278 MB without this, 257 MB with it), instead of whenever the cyclic
        # collector next runs. A full collection costs ~30 ms in a process holding a sweep's heap
        # (400 short runs: +13 s), so only when the model is big: its evaluator grows with test
        # rows x features. Its objects were all made while the collector was paused, so they
        # are in the young generations: collecting those frees the same 69,000 objects in S1
        # without walking the whole heap (36 ms instead of 125 ms on 2 busy cores).
        if dataset.X_test.shape[0] * dataset.n_features >= COLLECT_ABOVE_TEST_CELLS:
            gc.collect(1)
    return _simulate(scenario, seed, dataset, base, on_run)


# -- the clean baseline in a second process ------------------------------------------------------
def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS says, else the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def fork_is_safe() -> bool:
    """Whether a forked child of this process may use polars (and so build a run's frames).

    Polars starts its thread pool at its first parallel operation; a child forked after that
    inherits a pool without threads and hangs at its own first one (measured: 29 of 30 forked
    children hung after the parent had used polars, none of 200 before). Only Linux names the
    threads where this can be checked (``polars-N``, and ``tokio-rt-worker`` of its I/O runtime);
    elsewhere a new interpreter is spawned instead. Numpy's OpenBLAS threads and polars'
    allocator threads, present from import, survive fork by their own fork handlers.
    """
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return False
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:  # pragma: no cover - /proc not mounted
        return False
    names = []
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:  # ended since the listing: no thread a child would inherit
            continue
    return not any(
        n.startswith("tokio-") or (n.startswith("polars-") and n[7:].isdigit()) for n in names
    )


class _RemoteTraceback(Exception):
    """The baseline process's traceback, chained as the cause of the exception it raised."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f"in the clean baseline's process:\n\n{self.tb}"


def _exit_with_parent(parent: int) -> None:
    """Have Linux kill this process when its parent dies (even by SIGKILL): no orphan runs on."""
    if sys.platform != "linux":  # pragma: no cover
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


@contextmanager
def _sigint_held() -> Iterator[None]:
    """SIGINT blocked in this thread while a baseline process starts: held pending, not lost
    (the parent gets it when the block ends), and the child starts with it blocked (the mask
    survives fork and exec) until it ignores it (_baseline_main). A terminal's Ctrl-C signals
    the whole group: one that reached a child just forked, in Python's at-fork hooks, printed a
    traceback under the parent's one-line message."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _baseline_main(
    conn: Any, parent: int, scenario: Scenario, seed: int, dataset: Any, report: bool
) -> None:
    """The second process: run the clean baseline, send ("result", RunResult) or ("error", exc,
    traceback), then ("peak_rss_mb", MB). Progress goes as ("progress", fraction), 1 % steps."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C stops it through the parent
    if hasattr(signal, "pthread_sigmask"):  # started blocked (_sigint_held): ignored from now on
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    _exit_with_parent(parent)
    try:
        if dataset is None:
            dataset = load_dataset(scenario.data, scenario.learner.kind, scenario.name)
        sent = -1

        def progress(f: float) -> None:
            nonlocal sent
            if int(f * 100) != sent:  # a hundred small messages at most: the pipe never fills
                sent = int(f * 100)
                conn.send(("progress", f))

        res = _simulate(scenario, seed, dataset, None, progress if report else None)
        conn.send(("result", res))
    except BaseException as exc:  # noqa: BLE001 - every error goes back to the parent
        tb = traceback.format_exc()
        try:
            conn.send(("error", exc, tb))
        except Exception:  # noqa: BLE001 - an exception that cannot be pickled: its text
            conn.send(("error", RuntimeError(f"{type(exc).__name__}: {exc}"), tb))
    import resource

    conn.send(("peak_rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))
    conn.close()


def _spawned_baseline() -> None:
    """Entry point of a spawned baseline process: its arguments come pickled on stdin."""
    import pickle
    from multiprocessing.connection import Connection

    fd, parent, scenario, seed, report = pickle.load(sys.stdin.buffer)
    _baseline_main(Connection(fd, readable=False), parent, scenario, seed, None, report)


class _Forked:
    """A forked child, with the part of :class:`subprocess.Popen`'s interface used here."""

    def __init__(self, child: Callable[[], None]) -> None:
        for stream in (sys.stdout, sys.stderr):  # else the child would print them again
            if stream is not None:
                stream.flush()
        self.returncode: int | None = None
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns into the caller's code
            code = 1
            try:
                # A thread of the parent (a progress bar redrawing) may hold the locks of its
                # stream objects at the fork: a warning printed here goes through fresh ones.
                sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - until os._exit
                sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
                child()
                code = 0
            finally:
                os._exit(code)

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            self.returncode = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.returncode

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)


class BaselineProcess:
    """The clean baseline run in a second process (a context manager: leaving it stops the process).

    Forked when :func:`fork_is_safe` (the child then shares the loaded data), else a new
    interpreter (``sys.executable``) that imports the package and loads the scenario's data itself
    (S1 as ``sum-abm run``: done ~1.2 s later, with ~2.4 s more CPU, than forked; unlike
    multiprocessing's spawn it never re-runs the caller's main script). ``progress(label, fraction)`` gets the child's progress as ``"baseline"`` whenever
    :meth:`poll` or :meth:`result` is called. The result's ``peak_rss_mb`` is the child's peak
    RSS; :attr:`start_method` (``"fork"`` or ``"spawn"``) says how it started.
    """

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        dataset: Any,
        progress: Any = None,
        start_method: str | None = None,
    ) -> None:
        self.start_method = start_method or ("fork" if fork_is_safe() else "spawn")
        self.progress = progress
        self._result: RunResult | None = None
        from multiprocessing import Pipe

        self._conn, child_end = Pipe(duplex=False)
        report = progress is not None
        parent = os.getpid()
        if self.start_method == "fork":

            def child() -> None:
                self._conn.close()  # the parent's end
                _baseline_main(child_end, parent, scenario, seed, dataset, report)

            with _sigint_held():
                self._proc: Any = _Forked(child)
        else:
            import pickle
            import subprocess

            fd = child_end.fileno()
            code = (
                f"import sys; sys.path[:0] = {sys.path!r}; "
                "from sum_abm.market.run import _spawned_baseline; _spawned_baseline()"
            )
            with _sigint_held():
                self._proc = subprocess.Popen(
                    [sys.executable, "-c", code], stdin=subprocess.PIPE, pass_fds=(fd,)
                )
            assert self._proc.stdin is not None
            with self._proc.stdin as args:
                pickle.dump((fd, parent, scenario, seed, report), args)
        child_end.close()  # only the child writes: its exit is then an end of file here
        if progress is not None:
            progress("baseline", 0.0)

    def __enter__(self) -> BaselineProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _message(self, block: bool) -> tuple[Any, ...] | None:
        if not block and not self._conn.poll():
            return None
        try:
            return self._conn.recv()
        except EOFError:
            code = self._proc.wait()
            raise RuntimeError(
                f"the clean baseline's process ended without a result (exit status {code})"
            ) from None

    def poll(self) -> None:
        """Pass on the progress the child reported so far (never waits)."""
        while self._result is None and (msg := self._message(block=False)) is not None:
            self._handle(msg)

    def _handle(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        if kind == "progress":
            if self.progress is not None:
                self.progress("baseline", msg[1])
        elif kind == "result":
            self._result = msg[1]
        elif kind == "error":
            self._finish()
            exc, tb = msg[1], msg[2]
            if isinstance(exc, InputError):  # one line for the user, as in the serial order
                raise exc
            raise exc from _RemoteTraceback(tb)

    def _finish(self) -> None:
        try:
            msg = self._conn.recv()
        except EOFError:  # the child ended before its last message: its peak is not known
            msg = None
        if msg and msg[0] == "peak_rss_mb" and self._result is not None:
            self._result.peak_rss_mb = msg[1]
        self._proc.wait()

    def result(self) -> RunResult:
        """Wait for the baseline's result (re-raising the child's error as the serial run would)."""
        while self._result is None:
            self._handle(self._message(block=True))
        self._finish()
        return self._result

    def close(self) -> None:
        """Stop the child if it still runs (an error or Ctrl-C in this process), and reap it."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._conn.close()
