"""The progress bar of the commands that run sweeps (``sweep``, ``game``): one home for it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class RunsBar:
    """A rich progress bar fed by the sweep engine's ``progress(done, failed, total)`` callback.

    The first call resets the bar at the runs already finished (``--resume``), so that they do not
    count in the rate and the time left; so does the first call of a new batch (another total, or
    fewer runs done: the design search sends its candidates' runs in batches). ``done``,
    ``failed`` and ``start`` (runs finished before this command) are kept for the command's
    closing lines.
    """

    def __init__(self, bar: Any, task: Any) -> None:
        self.bar, self.task = bar, task
        self.done = self.failed = 0
        self.total: int | None = None
        self.start: int | None = None
        self.shown = False  # drawn from the first call on: a refusal before any run prints no bar

    def __call__(self, done: int, failed: int, total: int) -> None:
        if not self.shown:
            self.bar.start()
            self.shown = True
        if self.start is None:
            self.start = done
        if self.total is None or total != self.total or done < self.done:
            self.bar.reset(self.task, total=total, completed=done, failed=failed)
            self.total = total
        self.done, self.failed = done, failed
        self.bar.update(self.task, completed=done, failed=failed)

    def say(self, line: str) -> None:
        """Print a line above the bar."""
        self.bar.console.print(line, highlight=False)

    def stop(self) -> None:
        if self.shown:
            self.bar.stop()


@contextlib.contextmanager
def runs_bar(console: Any, description: str, total: int | None = None) -> Iterator[RunsBar]:
    """A bar with runs done of total, failed runs, time elapsed and time left, on ``console``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
    )
    runs = RunsBar(bar, bar.add_task(description, total=total, failed=0))
    try:
        yield runs
    finally:
        runs.stop()
