"""A small event queue on the model, named like Mesa 3.5's stable API.

Mesa 3.3's ``mesa.experimental.devs`` keeps only weak references to callbacks (a lambda is accepted
and silently never runs; see STACK_NOTES.md), so the market keeps its own heap of
``(time, priority, sequence, callback)`` with strong references. ``schedule_event(fn, at=|after=)``,
``run_until(t)`` and ``time`` match Mesa 3.5, so a later move is a rename.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any


class EventQueue:
    """Integer-time events; equal times run by ``priority`` then in scheduling order."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Callable[[], None]]] = []
        self._seq = 0
        self.time = 0

    def schedule_event(
        self,
        fn: Callable[[], None],
        *,
        at: int | None = None,
        after: int | None = None,
        priority: int = 0,
    ) -> None:
        """Run ``fn`` at absolute time ``at`` or ``after`` seconds from now (integer seconds)."""
        if (at is None) == (after is None):
            raise TypeError("give exactly one of at= or after=")
        t = int(at if at is not None else self.time + after)  # type: ignore[operator]
        if t < self.time:
            raise ValueError(f"cannot schedule in the past ({t} < {self.time})")
        self._seq += 1
        heapq.heappush(self._heap, (t, priority, self._seq, fn))

    def schedule_after(self, fn: Callable[[], None], after: int, priority: int = 0) -> None:
        """``schedule_event(fn, after=after, priority=priority)`` for the wake-ups (one per
        wake-up, the market's hottest call): an int ``after`` >= 0 goes straight on the heap;
        anything else through :meth:`schedule_event`'s conversion and checks."""
        if after.__class__ is not int or after < 0:
            self.schedule_event(fn, after=after, priority=priority)
            return
        self._seq += 1
        heapq.heappush(self._heap, (self.time + after, priority, self._seq, fn))

    def peek_time(self) -> int | None:
        return self._heap[0][0] if self._heap else None

    def head(self) -> tuple[int, Callable[[], None]] | None:
        """The next event's (time, callback), left in the queue; None when there is none."""
        if not self._heap:
            return None
        t, _, _, fn = self._heap[0]
        return t, fn

    def reschedule_head(self, after: int, priority: int = 0) -> tuple[int, Callable[[], None]]:
        """:meth:`pop` the next event, then :meth:`schedule_after` its callback ``after`` (an int
        >= 0) seconds later with ``priority``, in one heap operation: the same queue after.
        Returns the new next event, as :meth:`head` would."""
        heap = self._heap
        t, _, _, fn = heap[0]
        self.time = t
        self._seq += 1
        heapq.heapreplace(heap, (t + after, priority, self._seq, fn))
        t, _, _, fn = heap[0]
        return t, fn

    def reschedule_heads(self, loop: Callable[..., tuple], *args: Any) -> tuple[int, int, bool]:
        """Let a compiled ``loop(heap, *args, sequence) -> (n, pos, sequence, time, more)``
        (:func:`sum_abm.learners._compiled.dry_wakes`) reschedule the next events as
        :meth:`reschedule_head` would, one by one. Returns (events rescheduled, ``pos``,
        ``more``)."""
        n, pos, self._seq, t, more = loop(self._heap, *args, self._seq)
        if n:
            self.time = t
        return n, pos, bool(more)

    def pop(self) -> tuple[int, Callable[[], None]]:
        t, _, _, fn = heapq.heappop(self._heap)
        self.time = t
        return t, fn

    def __len__(self) -> int:
        return len(self._heap)
