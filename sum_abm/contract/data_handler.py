"""The record of every contribution: sender, time, label, deposit, what is left to claim, claimers."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any


def key_of(x: Any) -> Hashable:
    """The data part of a contribution's key: ``x.key`` when the sample carries one, else ``tuple(x)``."""
    k = getattr(x, "key", None)
    return k if k is not None else tuple(x)


# Every address ever seen as a claimer gets one bit, process-wide (addresses are names reused by
# every run, so this stays as small as the largest market).
_BIT: dict[str, int] = {}
_NAMES: list[str] = []


def _bit(address: str) -> int:
    b = _BIT.get(address)
    if b is None:
        b = _BIT[address] = len(_NAMES)
        _NAMES.append(address)
    return b


class Claimers:
    """The set of addresses that claimed a contribution, as one integer bitmask.

    A contribution of a 1,000-agent market is reported by up to 800 addresses: as a ``set`` that
    took ~90 bytes per claimer (~250 MB over a run), as bits it takes one bit per address. It reads
    like the ``set`` it replaces (``in``, ``add``, ``len``, iteration, ``==`` with a set).
    """

    __slots__ = ("mask",)

    def __init__(self, addresses: Iterable[str] = ()) -> None:
        self.mask = 0
        for a in addresses:
            self.add(a)

    def add(self, address: str) -> None:
        b = _BIT.get(address)
        self.mask |= 1 << (b if b is not None else _bit(address))

    def __contains__(self, address: object) -> bool:
        b = _BIT.get(address)  # type: ignore[call-overload]
        return b is not None and (self.mask >> b) & 1 == 1

    def __iter__(self) -> Iterator[str]:
        m, b = self.mask, 0
        while m:
            if m & 1:
                yield _NAMES[b]
            m >>= 1
            b += 1

    def __len__(self) -> int:
        return self.mask.bit_count()

    def __bool__(self) -> bool:
        return self.mask != 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Claimers):
            return self.mask == other.mask
        if isinstance(other, (set, frozenset)):
            return frozenset(self) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a set

    def __deepcopy__(self, memo: dict) -> Claimers:
        c = Claimers()
        c.mask = self.mask
        return c

    def __reduce__(self) -> tuple:
        # Pickled by address, not by bit: another process numbers the addresses its own way.
        return (Claimers, (list(self),))

    def __repr__(self) -> str:
        return f"Claimers({sorted(self)!r})"


@dataclass(slots=True)
class StoredData:
    """One stored contribution. Amounts in token units (floats only under reference-python rules).

    ``claimed_by``: the addresses that claimed it (:class:`Claimers`; any set of addresses works).
    """

    sender: str
    time: int
    y: int
    initial_deposit: Any
    claimable: Any
    claimed_by: Any = field(default_factory=Claimers)

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
        # No int() here: numpy integers hash and compare like the ints the keys were stored with.
        k = getattr(x, "key", None)
        return self._data.get((k if k is not None else tuple(x), y, added_time, author))

    def put(self, key: tuple, stored: StoredData) -> None:
        self._data[key] = stored

    def __len__(self) -> int:
        return len(self._data)

    def snapshot(self) -> dict[tuple, tuple]:
        return {k: v.snapshot() for k, v in self._data.items()}
