"""The record of every contribution: sender, time, label, deposit, what is left to claim, claimers."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any


def key_of(x: Any) -> Hashable:
    """The data part of a contribution's key: ``x.key`` when the sample carries one, else ``tuple(x)``."""
    k = getattr(x, "key", None)
    return k if k is not None else tuple(x)


@dataclass
class StoredData:
    """One stored contribution. Amounts in token units (floats only under reference-python rules)."""

    sender: str
    time: int
    y: int
    initial_deposit: Any
    claimable: Any
    claimed_by: set[str] = field(default_factory=set)

    def snapshot(self) -> tuple:
        return (
            self.sender,
            self.time,
            self.y,
            self.initial_deposit,
            self.claimable,
            frozenset(self.claimed_by),
        )


class DataHandler:
    """Contributions keyed by ``(key_of(x), y, added_time, author)``."""

    def __init__(self) -> None:
        self._data: dict[tuple, StoredData] = {}

    @staticmethod
    def key(x: Any, y: int, added_time: int, author: str) -> tuple:
        return (key_of(x), int(y), int(added_time), author)

    def get(self, x: Any, y: int, added_time: int, author: str) -> StoredData | None:
        return self._data.get(self.key(x, y, added_time, author))

    def put(self, key: tuple, stored: StoredData) -> None:
        self._data[key] = stored

    def __len__(self) -> int:
        return len(self._data)

    def snapshot(self) -> dict[tuple, tuple]:
        return {k: v.snapshot() for k, v in self._data.items()}
