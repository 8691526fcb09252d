"""Executors: where the runs of a sweep execute. One method, ``map(task, runs)``, as in radCAD.

- :class:`SerialExecutor` runs them one after the other in this process.
- :class:`RayExecutor` keeps one long-lived, warm Ray actor per core (local Ray, or every CPU of a
  cluster): each imports the simulator and loads the data once, then runs chunks of runs sized
  from the measured run times (about ``CHUNK_S`` seconds of work per chunk, one run per chunk for
  long runs). Every run still returns its own outcome; a run that raises comes back as a failure
  and the sweep goes on; an actor that dies is replaced and the runs of its unfinished chunks are
  retried (runs whose parts it had written are not run again). It runs Ray in this process: a
  cluster's driver, or a Ray this process already runs.
- :class:`AutoExecutor` chooses: this process, or this process and a fresh local Ray's actors,
  that Ray living in a helper process (:class:`sum_abm.sweeps.rayhelper.RayHelper`, the same
  actors, chunks and retries), or a cluster's actors through a :class:`RayExecutor`.

``map`` yields :class:`RunOutcome` objects as runs finish, in no particular order.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from sum_abm.sweeps.chunking import IN_FLIGHT_PER_WORKER, chunk_size, retry_or_give_up
from sum_abm.sweeps.rayhelper import RayHelper
from sum_abm.sweeps.raynode import (
    PINNED_THREADS,
    first_line,
    init_ray,
    ray_running,
    shutdown_ray,
)
from sum_abm.sweeps.rayworker import Worker

if TYPE_CHECKING:  # light to import: a command can prepare() a local Ray before loading the sweep
    from sum_abm.sweeps.outcome import RunOutcome
    from sum_abm.sweeps.spec import RunSpec

Task = Callable[["RunSpec"], "RunOutcome"]


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
            actor = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(Worker)
            # The pinned thread counts at the actor's process start (polars sizes its pool on
            # import): a local Ray this executor started passes them in the raylet's environment
            # (see init_ray); any other Ray gets them in the actor's runtime_env.
            env = {} if self._started_ray else {"runtime_env": {"env_vars": dict(PINNED_THREADS)}}
            self._actor_cls = actor.options(scheduling_strategy="SPREAD", **env)
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
        chunks = self.chunks(task, deque(runs))
        while chunks.busy:
            chunks.fill()
            yield from chunks.collect(block=True)

    def chunks(self, task: Task, queue: deque[RunSpec], others: int = 0) -> Chunks:
        """Chunks of ``queue``'s runs on the actors, without blocking: ``fill()`` sends, ``collect()``
        returns finished outcomes. ``others`` is how many other consumers (the driver) also take
        runs from ``queue``: the tail is sized for every consumer, so that all finish together."""
        if self._thread is None and not self._up:
            self.start(task)
        self._join()
        return Chunks(self, task, queue, others)

    def _failed(self, run: RunSpec, exc: BaseException) -> RunOutcome:
        from sum_abm.sweeps.outcome import RunOutcome, failure_row

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


# Ray's start-up (2.7-4.3 s) and its actor's warm-up (1-2 s) overlap runs in this process; below
# this much remaining work (seconds, measured) Ray cannot win and the sweep stays in-process.
IN_PROCESS_BELOW_S = 6.0
PROBE_RUNS = 2  # runs timed in this process before deciding (the first pays imports and data)
# A local sweep of this many runs starts Ray at once, beside its first runs here, instead of after
# timing them: even at 30 ms a run (the quick-start's short runs) they make IN_PROCESS_BELOW_S of
# work, and Ray's start-up then overlaps this process's imports. Measured on 2 shared cores, 400
# short runs: the actor joined earlier and ran ~2.5 s more of the runs (CPU seconds, 2 rounds).
# The price: that many runs of under 30 ms each pay Ray's start-up (seconds) for nothing.
START_AT_ONCE_RUNS = 200


class AutoExecutor:
    """Local sweeps where they run fastest, decided from measured run times; or a Ray cluster.

    Local (``address`` None): the first runs execute in this process and are timed; when what
    remains is under ``IN_PROCESS_BELOW_S`` seconds of work, the rest stays here too (``notify``
    says so); a sweep of ``START_AT_ONCE_RUNS`` runs or more skips that timing. Else this process
    stays one of the sweep's workers for the whole sweep while a local Ray starts in a helper
    process (:mod:`sum_abm.sweeps.rayhelper`: this interpreter never imports Ray) with one warm
    actor per other core (``workers`` cores in all, default every core); the actors take chunks as
    soon as they are warm, and the tail is sized so that all finish together. :meth:`prepare`
    spawns that helper before the sweep is loaded. A Ray this process did not start (a notebook's) takes every run once
    its actors are warm. ``probe=False``: Ray whatever the runs' length. With ``address``: the
    cluster's actors take every run.

    One instance may serve many sweeps (a game's successive profiles): Ray, once started, stays up
    with its warm actors until :meth:`close`.
    """

    name = "auto"
    writes_parts = True  # this process and local actors write parts; remote actors send rows

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        *,
        probe: bool = True,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.address, self.workers, self.probe, self.notify = address, workers, probe, notify
        self.local = address in (None, "local")
        self.durations: list[float] = []  # measured run times (seconds), here and on Ray
        self.ray: RayExecutor | RayHelper | None = None
        self._helper: RayHelper | None = None  # spawned by prepare(), not yet used
        self._joins = False  # this process takes runs beside Ray's actors

    def _cores(self) -> int:
        return self.workers or os.cpu_count() or 1

    def prepare(self, runs: int | None = None, *, resume: bool = False) -> None:
        """For a local sweep about to be loaded: spawn the helper process of a local Ray now, so
        that it imports Ray while this process loads the sweep; with ``runs`` (the sweep's count),
        start Ray at once when :meth:`map` would (``START_AT_ONCE_RUNS`` runs or more), unless the
        sweep is resumed (``resume``: what is left to run is known only then). Costs the helper's import
        (about 0.4 s of the other core) when the runs end up in this process."""
        if not self.local or self.ray is not None or self._cores() < 2 or ray_running():
            return
        if self._helper is None:
            self._helper = RayHelper(self._cores() - 1, notify=self.notify)
            self._helper.spawn()
        if runs is not None and not resume and (runs >= START_AT_ONCE_RUNS or not self.probe):
            self._helper.begin()

    def _say(self, line: str) -> None:
        if self.notify:
            self.notify(line)

    def _here(self, task: Task, queue: deque[RunSpec]) -> RunOutcome:
        outcome = task(queue.popleft())
        outcome.executor = "driver"
        if outcome.ok and not outcome.reused:
            self.durations.append(outcome.wall_s)
        return outcome

    def _probe(self, task: Task, queue: deque[RunSpec]) -> Iterator[RunOutcome]:
        """Run and time the first runs here; returns True when the rest should stay here too."""
        if hasattr(task, "warm"):
            task.warm()  # imports and data first, so that the timed runs measure runs
        n0, total = len(self.durations), len(queue)
        per_run = 0.0
        while (
            queue and len(self.durations) - n0 < PROBE_RUNS and total - len(queue) < 2 * PROBE_RUNS
        ):
            yield self._here(task, queue)
            per_run = min(self.durations[n0:], default=0.0)
            if per_run * len(queue) >= IN_PROCESS_BELOW_S:
                break  # clearly worth Ray: start it now rather than after more runs here
        if queue and per_run * len(queue) < IN_PROCESS_BELOW_S:
            self._say(
                f"{len(queue)} {'run' if len(queue) == 1 else 'runs'} left of about "
                f"{per_run:.2f} s each: running {'it' if len(queue) == 1 else 'them'} in this "
                f"process (Ray's start-up would cost more than it saves)"
            )
            return True
        return False

    def map(self, task: Task, runs: Sequence[RunSpec]) -> Iterator[RunOutcome]:
        queue = deque(runs)
        if self.ray is None:
            cores = self._cores()
            fresh = self.local and not ray_running()
            stay = False
            if fresh and cores < 2:
                self._say(f"{len(queue)} runs in this process (one core: Ray would add no worker)")
                stay = True
            elif self.local and self.probe and len(queue) < START_AT_ONCE_RUNS:
                stay = yield from self._probe(task, queue)
            if stay:
                while queue:
                    yield self._here(task, queue)
                return
            if not queue:
                return
            self._joins = fresh
            if fresh:  # Ray in a helper process, so that this one keeps its core for runs
                helper, self._helper = self._helper, None
                self.ray = helper or RayHelper(cores - 1, notify=self.notify)
                self.ray.notify = self.notify
            else:
                self.ray = RayExecutor(self.address, self.workers)
            self.ray.durations = self.durations
            # Local: Ray starts and its actors warm up while this process keeps running runs.
            self.ray.start(task, background=self.local)
        if not self.local:
            self._say(f"{len(queue)} runs on the Ray cluster")
            yield from self.ray.map(task, list(queue))
            return
        chunks = None
        while queue or (chunks is not None and chunks.busy):
            if chunks is None and self.ray.ready():
                chunks = self.ray.chunks(task, queue, others=1 if self._joins else 0)
                n = self.ray.n_workers
                self._say(
                    f"{len(queue)} runs left: on {n} warm Ray worker{'s' if n != 1 else ''}"
                    + (" and this process" if self._joins else "")
                )
            mine = bool(queue) and (chunks is None or self._joins)
            if chunks is not None:
                chunks.fill()
                yield from chunks.collect(block=not mine)
            if mine and queue:
                yield self._here(task, queue)

    def close(self) -> None:
        """Stop the actors, and Ray if this executor started it."""
        if self._helper is not None:  # spawned, never used: the runs stayed here
            helper, self._helper = self._helper, None
            helper.close()
        if self.ray is not None:
            ray_ex, self.ray = self.ray, None
            ray_ex.close()

    def __enter__(self) -> AutoExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SCOPED: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("executor", default=None)


@contextlib.contextmanager
def use_executor(executor: Executor) -> Iterator[Executor]:
    """Every sweep started in the block (``execute``, ``run_many``, a game) runs on ``executor``
    unless it names another: ``with use_executor(SerialExecutor()): run_game(...)`` keeps a game in
    this process; one :class:`RayExecutor` shared by many ``run_many`` calls keeps its warm workers."""
    token = _SCOPED.set(executor)
    try:
        yield executor
    finally:
        _SCOPED.reset(token)


def current_executor() -> Executor | None:
    """The executor set for the current block with :func:`use_executor`, if any."""
    return _SCOPED.get()


def prepared_auto(
    address: str | None, workers: int | None, serial: bool | None
) -> AutoExecutor | None:
    """The executor of a sweep not yet loaded, made now: an :class:`AutoExecutor` whose local Ray
    helper imports Ray while the caller loads the sweep (:meth:`AutoExecutor.prepare`); the caller
    closes it. None for a serial sweep or a cluster's (the engine chooses as usual)."""
    if serial or address not in (None, "local"):
        return None
    ex = AutoExecutor(address, workers, probe=serial is None)
    ex.prepare()
    return ex


class Chunks:
    """The chunks a :class:`RayExecutor`'s actors are running, fed from a queue of runs that other
    consumers (the driver) may share. A worker that dies is replaced and the runs of its chunk go
    back to the front of the queue (each at most ``max_attempts`` times)."""

    def __init__(self, ex: RayExecutor, task: Task, queue: deque[RunSpec], others: int) -> None:
        self.ex, self.queue, self.others = ex, queue, others
        self.key, self.box = ex._box(task)
        n = len(ex._actors)
        self.gen = [0] * n  # bumped when actor i is replaced: late errors of the old one are stale
        self.per_actor = [0] * n
        self.in_flight: dict[Any, tuple[int, int, list[RunSpec]]] = {}
        self.attempts: dict[str, int] = {}

    @property
    def busy(self) -> bool:
        """True while runs are queued or chunks are in flight."""
        return bool(self.queue or self.in_flight)

    def fill(self) -> None:
        """Send chunks until every actor has ``IN_FLIGHT_PER_WORKER`` of them (or the queue is empty)."""
        ex, queue = self.ex, self.queue
        consumers = len(ex._actors) + self.others
        for i, actor in enumerate(ex._actors):
            while queue and self.per_actor[i] < IN_FLIGHT_PER_WORKER:
                n = chunk_size(ex.durations, len(queue), consumers)
                chunk = [queue.popleft() for _ in range(min(n, len(queue)))]
                ex.chunk_sizes.append(len(chunk))
                ref = actor.run_chunk.remote(self.key, self.box, chunk)
                self.in_flight[ref] = (i, self.gen[i], chunk)
                self.per_actor[i] += 1

    def collect(self, *, block: bool) -> list[RunOutcome]:
        """The outcomes of the chunks finished so far; with ``block``, wait for at least one."""
        if not self.in_flight:
            return []
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        refs = list(self.in_flight)
        if block:
            ready, _ = ray.wait(refs, num_returns=1)
        else:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        out: list[RunOutcome] = []
        for ref in ready:
            i, g, chunk = self.in_flight.pop(ref)
            self.per_actor[i] -= 1
            try:
                outcomes = ray.get(ref)
            except RayTaskError as exc:  # the chunk itself broke (not a run): each run fails
                out.extend(self.ex._failed(run, exc) for run in chunk)
                continue
            except RayActorError as exc:  # the worker died: replace it, retry its runs
                if g == self.gen[i]:
                    self.ex._replace(i)
                    self.gen[i] += 1
                given_up = retry_or_give_up(chunk, self.attempts, self.ex.max_attempts, self.queue)
                out.extend(self.ex._failed(run, exc) for run in given_up)
                continue
            for outcome in outcomes:
                if not outcome.reused:
                    self.ex.durations.append(outcome.wall_s)
                out.append(outcome)
        return out
