"""Executors: where the runs of a sweep execute. One method, ``map(task, runs)``, as in radCAD.

- :class:`SerialExecutor` runs them one after the other in this process.
- :class:`RayExecutor` keeps one long-lived, warm Ray actor per core (local Ray, or every CPU of a
  cluster): each imports the simulator and loads the data once, then runs chunks of runs sized
  from the measured run times (about ``CHUNK_S`` seconds of work per chunk, one run per chunk for
  long runs). Every run still returns its own outcome; a run that raises comes back as a failure
  and the sweep goes on; an actor that dies is replaced and the runs of its unfinished chunks are
  retried (runs whose parts it had written are not run again).

``map`` yields :class:`RunOutcome` objects as runs finish, in no particular order.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from sum_abm.sweeps.outcome import RunOutcome, failure_row
from sum_abm.sweeps.raynode import PINNED_THREADS, first_line, init_ray, shutdown_ray
from sum_abm.sweeps.spec import RunSpec

Task = Callable[[RunSpec], RunOutcome]

CHUNK_S = 0.25  # seconds of work per chunk: a chunk's round trip (~1-2 ms) stays under 1 %
MAX_CHUNK = 256
IN_FLIGHT_PER_WORKER = 2  # one chunk running, one queued: a worker never waits for the driver


class Executor(Protocol):
    """Runs tasks over runs; yields each run's outcome as it finishes."""

    name: str
    writes_parts: bool  # True when its workers may write parts into the sweep folder themselves

    def map(self, task: Task, runs: Sequence[RunSpec]) -> Iterator[RunOutcome]: ...

    def close(self) -> None: ...


class SerialExecutor:
    """Every run in this process, in order."""

    name = "serial"
    writes_parts = False  # the driver records every outcome

    def map(self, task: Task, runs: Sequence[RunSpec]) -> Iterator[RunOutcome]:
        for run in runs:
            outcome = task(run)
            outcome.executor = self.name
            yield outcome

    def close(self) -> None:
        return None


def chunk_size(durations: Sequence[float], remaining: int, workers: int) -> int:
    """How many runs the next chunk carries: 1 before any run was measured or when runs last
    ``CHUNK_S`` or more; else about ``CHUNK_S`` seconds of runs (median of the last 64), never so
    many that the tail leaves workers idle (at least two chunks per worker for what remains)."""
    if not durations:
        return 1
    recent = sorted(durations[-64:])
    median = recent[len(recent) // 2]
    if median >= CHUNK_S:
        return 1
    size = min(MAX_CHUNK, int(CHUNK_S / max(median, 1e-4)) + 1)
    return max(1, min(size, remaining // (2 * max(workers, 1))))


class _Worker:
    """The body of a warm Ray actor: tasks are cached by key, so a task travels once per actor."""

    def __init__(self, driver_node: str) -> None:
        import ray

        # One thread per pool: the environment (runtime_env) set it at process start; BLAS may
        # have been loaded before (Ray imports numpy), so its pool is limited here as well.
        try:
            from threadpoolctl import threadpool_limits

            self._limits = threadpool_limits(1)
        except ImportError:  # pragma: no cover - scikit-learn brings threadpoolctl
            self._limits = None
        self.node_id = ray.get_runtime_context().get_node_id()
        self.on_driver_node = self.node_id == driver_node
        self.tasks: dict[str, Any] = {}

    def _task(self, key: str, box: list[Any]) -> Any:
        import ray

        if key not in self.tasks:
            if len(self.tasks) >= 4:
                self.tasks.clear()
            task = ray.get(box[0])
            if not self.on_driver_node and getattr(task, "out", None) is not None:
                task = dataclasses.replace(task, out=None)  # another machine: rows travel back
            self.tasks[key] = task
        return self.tasks[key]

    def warm(self, key: str, box: list[Any]) -> str:
        """Load the task and warm it up (imports, data); returns this actor's Ray node id."""
        task = self._task(key, box)
        if hasattr(task, "warm"):
            task.warm()
        return self.node_id

    def run_chunk(self, key: str, box: list[Any], runs: list[RunSpec]) -> list[RunOutcome]:
        task = self._task(key, box)
        out = []
        for run in runs:
            outcome = task(run)
            outcome.node_id, outcome.executor = self.node_id, "ray"
            out.append(outcome)
        return out


class RayExecutor:
    """Warm Ray actors, one per core. ``address`` None: a local Ray on ``workers`` cores (default
    every core); else a cluster (``host:port``, ``auto``, ``ray://...``) and one actor per CPU.

    :meth:`start` may run in the background (``background=True``) while the caller does useful
    work; :meth:`ready` says when the actors are warm. A run is attempted at most
    ``max_attempts`` times when its worker dies; then it is recorded as failed.
    """

    name = "ray"

    def __init__(
        self, address: str | None = None, workers: int | None = None, max_attempts: int = 3
    ) -> None:
        self.address = address
        self.workers = workers
        self.max_attempts = max_attempts
        self.local = address in (None, "local")
        # Workers on the driver's node write their runs' parts into the sweep folder themselves;
        # those on other nodes send the rows back (the folder lives on the driver's machine).
        self.writes_parts = True
        self.durations: list[float] = []  # measured run times (seconds), chunk sizes follow them
        self.chunk_sizes: list[int] = []  # runs per chunk sent, in order (what the sizing chose)
        self._started_ray = False
        self._actors: list[Any] = []
        self._warming: list[Any] = []
        self._keys: dict[int, tuple[str, list[Any], Task]] = {}  # the task kept: ids stay unique
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._up = False

    # -- start-up ---------------------------------------------------------------------------
    def start(self, task: Task | None = None, *, background: bool = False) -> None:
        """Start (or connect to) Ray and create the warm actors; with ``task``, warm them for it."""
        if self._up or self._thread is not None:
            return
        if not background:
            self._start(task)
            self._raise_start_error()
            return
        # The thread that starts Ray must outlive it: Ray's daemons (GCS, raylet) get SIGKILL when
        # the thread that spawned them exits (Linux's parent-death signal is per thread), so it
        # waits for close() after starting them.
        self._started = threading.Event()
        self._release = threading.Event()

        def body() -> None:
            try:
                self._start(task)
            finally:
                self._started.set()
            self._release.wait()

        self._thread = threading.Thread(target=body, name="ray-start", daemon=True)
        self._thread.start()

    def _start(self, task: Task | None) -> None:
        try:
            import ray

            self._started_ray = init_ray(self.address, self.workers)
            if self.local and self.workers:
                n = self.workers
            else:
                n = int(ray.cluster_resources().get("CPU", 1))
            n = max(1, n)
            actor = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_Worker)
            # The pinned thread counts at the actor's process start (polars sizes its pool on
            # import): also when this process joined a Ray it did not start.
            self._actor_cls = actor.options(
                scheduling_strategy="SPREAD", runtime_env={"env_vars": dict(PINNED_THREADS)}
            )
            self._driver_node = ray.get_runtime_context().get_node_id()
            self._actors = [self._actor_cls.remote(self._driver_node) for _ in range(n)]
            if task is not None:
                key, box = self._box(task)
                self._warming = [a.warm.remote(key, box) for a in self._actors]
            self._up = True
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            self._error = exc

    def _raise_start_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _join(self) -> None:
        """Wait until the background start has finished (the thread itself stays, see start)."""
        if self._thread is not None:
            self._started.wait()
        self._raise_start_error()

    def ready(self) -> bool:
        """True once Ray is up and the actors are warm (never blocks)."""
        if self._thread is not None and not self._started.is_set():
            return False
        if self._error is not None:
            return True  # map() raises it
        if not self._up:
            return False
        import ray

        done, _ = ray.wait(self._warming, num_returns=len(self._warming), timeout=0)
        return len(done) == len(self._warming)

    @property
    def n_workers(self) -> int:
        return len(self._actors)

    def _box(self, task: Task) -> tuple[str, list[Any]]:
        """The task in the object store once: actors fetch it by key (the list keeps Ray from
        resolving the reference on every call)."""
        import ray

        if id(task) not in self._keys:
            self._keys = {id(task): (uuid.uuid4().hex, [ray.put(task)], task)}
        key, box, _ = self._keys[id(task)]
        return key, box

    # -- running ----------------------------------------------------------------------------
    def map(self, task: Task, runs: Sequence[RunSpec]) -> Iterator[RunOutcome]:
        if self._thread is None and not self._up:
            self.start(task)
        self._join()
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        key, box = self._box(task)
        queue = deque(runs)
        attempts: dict[str, int] = {}
        gen = [0] * len(self._actors)
        in_flight: dict[Any, tuple[int, int, list[RunSpec]]] = {}
        per_actor = [0] * len(self._actors)
        while queue or in_flight:
            for i, actor in enumerate(self._actors):
                while queue and per_actor[i] < IN_FLIGHT_PER_WORKER:
                    n = chunk_size(self.durations, len(queue), len(self._actors))
                    chunk = [queue.popleft() for _ in range(min(n, len(queue)))]
                    self.chunk_sizes.append(len(chunk))
                    in_flight[actor.run_chunk.remote(key, box, chunk)] = (i, gen[i], chunk)
                    per_actor[i] += 1
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in ready:
                i, g, chunk = in_flight.pop(ref)
                per_actor[i] -= 1
                try:
                    outcomes = ray.get(ref)
                except RayTaskError as exc:  # the chunk itself broke (not a run): each run fails
                    for run in chunk:
                        yield self._failed(run, exc)
                    continue
                except RayActorError as exc:  # the worker died: replace it, retry its runs
                    if g == gen[i]:
                        self._replace(i)
                        gen[i] += 1
                    for run in reversed(chunk):
                        attempts[run.run_id] = attempts.get(run.run_id, 0) + 1
                        if attempts[run.run_id] >= self.max_attempts:
                            yield self._failed(run, exc)
                        else:
                            queue.appendleft(run)
                    continue
                for outcome in outcomes:
                    if not outcome.reused:
                        self.durations.append(outcome.wall_s)
                    yield outcome

    def _failed(self, run: RunSpec, exc: BaseException) -> RunOutcome:
        fail = failure_row(run, type(exc).__name__, first_line(exc), str(exc))
        return RunOutcome(run, failure=fail, executor=self.name)

    def _replace(self, i: int) -> None:
        import ray

        try:
            ray.kill(self._actors[i])
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._actors[i] = self._actor_cls.remote(self._driver_node)

    def close(self) -> None:
        """Stop the actors; stop Ray too when this executor started it."""
        if self._thread is not None:
            self._started.wait()
        self._error = None
        if self._up:
            import ray

            for a in self._actors:
                try:
                    ray.kill(a)
                except Exception:  # noqa: BLE001 - Ray already down
                    pass
        self._actors, self._warming, self._keys, self._up = [], [], {}, False
        if self._started_ray:
            self._started_ray = False
            shutdown_ray()
        if self._thread is not None:  # Ray is down: the thread that started it may end now
            self._release.set()
            self._thread.join()
            self._thread = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
