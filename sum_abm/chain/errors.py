"""Typed rejection of a contract call."""

from __future__ import annotations


class Rejected(Exception):
    """The contract rejected the call; ``reason`` is a code of TRACE_FORMAT.md (e.g. ``too_early``).

    A rejected call changes no state (gas excepted, which is charged as on chain).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason
