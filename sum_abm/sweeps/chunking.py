"""How many runs a chunk sent to a Ray worker carries, how many chunks a worker holds at once, and
what becomes of a chunk whose worker died (shared by the in-process executor's chunks and the Ray
helper's)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

CHUNK_S = 0.25  # seconds of work per chunk: a chunk's round trip (~1-2 ms) stays under 1 %
MAX_CHUNK = 256
IN_FLIGHT_PER_WORKER = 2  # one chunk running, one queued: a worker never waits for the driver


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


def retry_or_give_up(
    chunk: Sequence[Any], attempts: dict[str, int], max_attempts: int, queue: deque
) -> list[Any]:
    """The runs of a chunk whose worker died: each counts one more attempt and goes back to the
    front of ``queue`` (in its order); returns those that reached ``max_attempts`` instead, to be
    recorded as failed."""
    given_up = []
    for run in reversed(chunk):
        attempts[run.run_id] = attempts.get(run.run_id, 0) + 1
        if attempts[run.run_id] >= max_attempts:
            given_up.append(run)
        else:
            queue.appendleft(run)
    return given_up
