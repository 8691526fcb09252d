"""Block time: integer seconds, as block timestamps."""

from __future__ import annotations


class Clock:
    """The chain's clock. ``now`` is the current block timestamp (seconds)."""

    def __init__(self, now: int = 0, block_time_s: int = 1) -> None:
        if block_time_s < 1:
            raise ValueError("block_time_s must be >= 1")
        self.now = int(now)
        self.block_time_s = int(block_time_s)

    def block_timestamp(self, t: int) -> int:
        """The timestamp of the block a transaction sent at ``t`` lands in (floored to blocks)."""
        return (int(t) // self.block_time_s) * self.block_time_s

    def advance_to(self, t: int) -> None:
        """Move to the block containing time ``t`` (seconds); time never goes back."""
        ts = self.block_timestamp(t)
        if ts < self.now:
            raise ValueError(f"time cannot go back ({ts} < {self.now})")
        self.now = ts
