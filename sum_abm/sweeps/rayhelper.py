"""A local Ray owned by a helper process, so that the driver never imports or starts Ray itself.

Why: a local sweep's driver is one of its workers (it runs runs from the first second), and Ray's
start-up in the driver's own interpreter took its runs' time: importing Ray holds the interpreter
lock for about a second, and ``ray.init`` runs beside the runs. Measured on 2 cores, 400 short
runs: the driver's runs took 48 ms each while Ray started in its interpreter, against 37 ms on the
actor. The helper starts at once on the other core, imports Ray, starts the local Ray (lean, see
:func:`sum_abm.sweeps.raynode.init_ray`), creates one warm actor per core it was given
(:class:`sum_abm.sweeps.rayworker.Worker`) and relays chunks: the driver sends a chunk's runs as
``cloudpickle`` bytes, the helper passes them to an actor and sends back its outcomes' bytes. The
helper never unpickles either, so it imports neither polars nor the simulator.

The driver side is :class:`RayHelper` (used by :class:`sum_abm.sweeps.executors.AutoExecutor` for a
fresh local Ray); the helper side is :func:`main` (``python -m sum_abm.sweeps.rayhelper FD``).

Messages (``multiprocessing.connection`` over a socket pair), driver to helper: ``("start",
workers)``, ``("task", key, task)`` (the first one warms the actors), ``("chunk", id, key, runs)``,
``("close",)``;
helper to driver: ``("ready", n_actors)`` once the actors are warm, ``("error", line)`` when Ray
did not start, ``("done", id, outcomes)``, ``("failed", id, line)`` when the chunk itself raised,
``("lost", id, line)`` when its actor died (the helper has replaced it; the driver retries the runs).
Failures: a helper that dies (its socket closes) gives its unfinished runs back to the driver,
which runs them itself; a driver that dies closes the socket, and the helper stops Ray and exits.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, Pipe
from typing import Any

from sum_abm.sweeps.chunking import IN_FLIGHT_PER_WORKER, chunk_size, retry_or_give_up

# The helper relays what finished at least this often (seconds) while chunks are in flight; a new
# chunk from the driver waits at most this long (each actor has a second chunk queued meanwhile).
POLL_S = 0.02
MAX_TASKS = 4  # tasks kept in the object store at once (a game's successive sweeps)
_EXITING: list[subprocess.Popen] = []  # closed helpers still stopping their Ray: reaped later


class RayHelper:
    """The driver's side: a local Ray on ``workers`` cores in a helper process, with the interface
    :class:`sum_abm.sweeps.executors.AutoExecutor` uses (``start``, ``ready``, ``chunks``,
    ``close``; the returned chunks object ``fill``\\s and ``collect``\\s as
    :class:`sum_abm.sweeps.executors.Chunks` does). A run is attempted at most ``max_attempts``
    times when its actor dies; ``notify`` hears when the helper stops early."""

    def __init__(
        self,
        workers: int,
        max_attempts: int = 3,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.workers = max(1, workers)
        self.max_attempts = max_attempts
        self.notify = notify
        self.durations: list[float] = []  # measured run times (seconds), chunk sizes follow them
        self.chunk_sizes: list[int] = []  # runs per chunk sent, in order
        self.n_workers = 0
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self._stderr: Any = None
        self._keys: dict[int, tuple[str, Any]] = {}  # id(task) -> (key, task): ids stay unique
        self._ready = False
        self._error: str | None = None
        self._next_key = 0
        self._begun = False
        self._relayed: Relayed | None = None  # the chunks of the current sweep

    # -- start-up ---------------------------------------------------------------------------
    def spawn(self) -> None:
        """Start the helper process; it imports Ray and waits (:meth:`begin` starts Ray). Called
        before the sweep is loaded, the import overlaps this process's own (about 0.4 s on 2 cores)."""
        if self._proc is not None:
            return
        here, there = Pipe()
        self._stderr = tempfile.TemporaryFile()
        # The helper, and through it Ray's workers, import what this process can: its sys.path,
        # as Ray started here would have passed it on to its workers (a notebook's added folder).
        path = [p or os.getcwd() for p in sys.path]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(dict.fromkeys(path))}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(there.fileno())],
            pass_fds=(there.fileno(),),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            env=env,
        )
        there.close()
        self._conn = here

    def begin(self) -> None:
        """Start the local Ray and its actors now, before the task is known (they warm up for it
        when :meth:`start` sends it)."""
        self.spawn()
        if not self._begun:
            self._begun = self._send(("start", self.workers))

    def start(self, task: Any, *, background: bool = True) -> None:
        """Start Ray (unless :meth:`begin` did) and warm one actor per core for ``task``. Never
        blocks (``background`` is accepted for :class:`RayExecutor`'s signature)."""
        self.begin()
        key, payload = self._key(task)
        if payload is not None:
            self._send(("task", key, payload))

    def _key(self, task: Any) -> tuple[str, bytes | None]:
        """The task's key, and its pickled bytes when the helper has not seen it yet."""
        import cloudpickle

        if id(task) in self._keys:
            return self._keys[id(task)][0], None
        self._next_key += 1
        key = f"t{self._next_key}"
        self._keys = {id(task): (key, task)}  # one task at a time (the helper keeps MAX_TASKS)
        return key, cloudpickle.dumps(task)

    def _send(self, message: tuple) -> bool:
        if self._conn is None:
            return False
        try:
            self._conn.send(message)
            return True
        except OSError:
            return False

    def ready(self) -> bool:
        """True once the actors are warm, or the start failed (then :meth:`chunks` says why and
        leaves every run to the driver); never blocks."""
        if self._ready or self._error is not None:
            return True
        conn = self._conn
        try:
            while conn is not None and conn.poll(0):
                self._take(conn.recv())
        except (EOFError, OSError):
            self._error = self._ended("before its actors were ready")
        return self._ready or self._error is not None

    def _take(self, message: tuple) -> None:
        # Before "ready" the helper sends nothing else: no chunk is sent until chunks().
        if message[0] == "ready":
            self._ready, self.n_workers = True, int(message[1])
        elif message[0] == "error":
            self._error = message[1]

    def _ended(self, when: str) -> str:
        """One line on a helper that stopped unexpectedly: its exit status and last error line."""
        code = None
        if self._proc is not None:
            try:
                code = self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # its socket closed, yet it runs: stop it
                self._proc.kill()
                code = self._proc.wait()
        last = ""
        if self._stderr is not None:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
            last = f": {lines[-1]}" if lines else ""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return f"Ray's helper process ended {when} (exit {code}){last}"

    # -- running ----------------------------------------------------------------------------
    def chunks(self, task: Any, queue: deque, others: int = 0) -> Relayed:
        """Chunks of ``queue``'s runs on the helper's actors (see :class:`Relayed`). When Ray did
        not start, ``notify`` hears why and the chunks object takes no run: the driver runs them."""
        while not self.ready():
            self._conn.poll(POLL_S)  # type: ignore[union-attr]
        if self._error is not None:
            error, self._error = self._error, None
            self._ready = True
            if self._conn is not None:  # the helper stops Ray and exits after saying why
                self._conn.close()
                self._conn = None
            if self.notify:
                self.notify(f"local Ray did not start ({error}): the runs continue in this process")
        key, payload = self._key(task)
        if payload is not None:
            self._send(("task", key, payload))
        self._relayed = Relayed(self, key, queue, others)
        return self._relayed

    def close(self) -> None:
        """Tell the helper to stop Ray and exit. With chunks still in flight (an interrupted
        sweep), wait for it (at most 30 s, then kill it), so that no actor writes into the sweep
        folder once this returns; otherwise return at once: the helper stops Ray on its own
        (0.1-0.3 s) while this process goes on."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self._send(("close",))
        if self._relayed is not None and self._relayed.in_flight:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _EXITING[:] = [p for p in _EXITING if p.poll() is None] + [proc]  # reaped when done
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        self._ready, self._keys, self._begun, self._relayed = False, {}, False, None

    def __enter__(self) -> RayHelper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Relayed:
    """The chunks in flight at a :class:`RayHelper`, fed from a queue of runs that other
    consumers (the driver) share: at most ``IN_FLIGHT_PER_WORKER`` chunks per actor, sized by
    the shared :func:`sum_abm.sweeps.chunking.chunk_size` for every consumer."""

    def __init__(self, helper: RayHelper, key: str, queue: deque, others: int) -> None:
        self.helper, self.key, self.queue, self.others = helper, key, queue, others
        self.in_flight: dict[int, list[Any]] = {}
        self.attempts: dict[str, int] = {}
        self._next = 0

    @property
    def busy(self) -> bool:
        """True while runs are queued or chunks are in flight."""
        return bool(self.queue or self.in_flight)

    def fill(self) -> None:
        """Send chunks until every actor has its share in flight (or the queue is empty)."""
        import cloudpickle

        h, queue = self.helper, self.queue
        if h._conn is None:
            return
        consumers = h.n_workers + self.others
        while queue and len(self.in_flight) < IN_FLIGHT_PER_WORKER * h.n_workers:
            n = chunk_size(h.durations, len(queue), consumers)
            chunk = [queue.popleft() for _ in range(min(n, len(queue)))]
            self._next += 1
            self.in_flight[self._next] = chunk
            h.chunk_sizes.append(len(chunk))
            if not h._send(("chunk", self._next, self.key, cloudpickle.dumps(chunk))):
                self._lost_helper()
                return

    def collect(self, *, block: bool) -> list[Any]:
        """The outcomes of the chunks finished so far; with ``block``, wait for at least one."""
        h = self.helper
        if not self.in_flight or h._conn is None:
            return []
        out: list[Any] = []
        try:
            if block:
                h._conn.poll(None)
            while h._conn.poll(0):
                out.extend(self._outcomes(h._conn.recv()))
                if block and out:
                    break
        except (EOFError, OSError):
            self._lost_helper()
        return out

    def _outcomes(self, message: tuple) -> list[Any]:
        import cloudpickle

        kind, cid = message[0], message[1]
        chunk = self.in_flight.pop(cid, None)
        if chunk is None:
            return []
        if kind == "done":
            outcomes = cloudpickle.loads(message[2])
            self.helper.durations.extend(o.wall_s for o in outcomes if not o.reused)
            return outcomes
        if kind == "failed":  # the chunk itself broke (not a run): each run fails
            return [_failed(run, "RayTaskError", message[2]) for run in chunk]
        # "lost": the actor died (the helper replaced it): retry its runs
        given_up = retry_or_give_up(chunk, self.attempts, self.helper.max_attempts, self.queue)
        return [_failed(run, "RayActorError", message[2]) for run in given_up]

    def _lost_helper(self) -> None:
        """The helper is gone: its unfinished runs go back to the queue, for the driver."""
        h = self.helper
        for cid in sorted(self.in_flight, reverse=True):
            self.queue.extendleft(reversed(self.in_flight.pop(cid)))
        line = h._ended("during the sweep")
        if h.notify:
            h.notify(f"{line}; its unfinished runs continue in this process")


def _failed(run: Any, error_type: str, line: str) -> Any:
    from sum_abm.sweeps.outcome import RunOutcome, failure_row

    return RunOutcome(run, failure=failure_row(run, error_type, line, line), executor="ray")


# -- the helper process ---------------------------------------------------------------------------
def _why(exc: BaseException) -> str:
    """One line on an error: for an error raised inside an actor, the original one (Ray's own
    first line names the actor and its process, not what went wrong)."""
    from sum_abm.sweeps.raynode import first_line

    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        exc = cause
    return f"{type(exc).__name__}: {first_line(exc)}"


def main(argv: Sequence[str]) -> int:
    """The helper: start Ray and its warm actors, then relay chunks until told to close or until
    the driver's end of the socket closes."""
    # Ctrl-C reaches the whole process group: the driver decides, and tells this process to close.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(int(argv[1]))
    # Ray is imported at once: a helper is spawned before the sweep is loaded (see spawn()).
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    from sum_abm.sweeps.raynode import first_line, init_ray, shutdown_ray
    from sum_abm.sweeps.rayworker import Worker

    try:
        start = conn.recv()  # ("start", workers), or the socket closes: not needed after all
    except (EOFError, OSError):
        return 0
    if start[0] != "start":
        return 0
    try:
        init_ray(None, int(start[1]))
        node = ray.get_runtime_context().get_node_id()
        cls = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(Worker)
        cls = cls.options(scheduling_strategy="SPREAD")
        actors = [cls.remote(node) for _ in range(int(start[1]))]
        first = conn.recv()  # ("task", key, payload): the actors warm up for it
        if first[0] != "task":
            raise EOFError
        boxes: dict[str, list[Any]] = {first[1]: [ray.put(first[2])]}
        ray.get([a.warm.remote(first[1], boxes[first[1]]) for a in actors])
    except (EOFError, OSError):  # the driver is gone, or closed before any task
        shutdown_ray()
        return 0
    except Exception as exc:  # noqa: BLE001 - the driver says it in one line
        conn.send(("error", _why(exc)))
        shutdown_ray()
        return 1
    conn.send(("ready", len(actors)))

    inbox: queue.Queue[tuple] = queue.Queue()

    def read() -> None:
        try:
            while True:
                inbox.put(conn.recv())
        except (EOFError, OSError):
            inbox.put(("close",))

    threading.Thread(target=read, name="driver-inbox", daemon=True).start()
    waiting: deque[tuple[int, str, bytes]] = deque()
    flight: dict[Any, tuple[int, int, int]] = {}  # ref -> (actor, its generation, chunk id)
    load, gen = [0] * len(actors), [0] * len(actors)
    try:
        while True:
            messages: list[tuple] = []
            try:
                messages.append(inbox.get(block=not flight and not waiting))
                while True:
                    messages.append(inbox.get_nowait())
            except queue.Empty:
                pass
            if any(m[0] == "close" for m in messages):
                break
            for m in messages:
                if m[0] == "task":
                    if len(boxes) >= MAX_TASKS:
                        boxes.pop(next(iter(boxes)))
                    boxes[m[1]] = [ray.put(m[2])]
                elif m[0] == "chunk":
                    waiting.append((m[1], m[2], m[3]))
            while waiting:
                i = load.index(min(load))
                cid, k, runs = waiting.popleft()
                ref = actors[i].run_pickled.remote(k, boxes[k], runs)
                flight[ref] = (i, gen[i], cid)
                load[i] += 1
            if not flight:
                continue
            done, _ = ray.wait(list(flight), num_returns=1, timeout=POLL_S)
            for ref in done:
                i, g, cid = flight.pop(ref)
                load[i] -= 1
                try:
                    conn.send(("done", cid, ray.get(ref)))
                except RayTaskError as exc:
                    conn.send(("failed", cid, _why(exc)))
                except RayActorError as exc:
                    if g == gen[i]:  # replace it once, however many of its chunks were lost
                        ray.kill(actors[i])
                        actors[i], gen[i] = cls.remote(node), gen[i] + 1
                    conn.send(("lost", cid, first_line(exc)))
    except OSError:  # the driver is gone
        pass
    finally:
        shutdown_ray()
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    os._exit(code)  # skip the teardown of Ray's modules: Ray is already down
