"""The market's transaction log, kept as columns.

The chain reports every call as one record (fields :data:`sum_abm.chain.TX_FIELDS`). A market of
1,000 agents makes millions of calls; as Python tuples they took ~180 bytes each (1.4 GB at
2.7 M calls). :class:`TxLog` keeps them as typed arrays instead: eight integers (strings as codes)
and one float per call, 72 bytes, appended in place. It still reads like the list of tuples it
replaces (``len``, indexing, slicing, iteration), and :meth:`TxLog.frame` builds the
``transactions`` frame in one vectorised pass.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl

#: The ``transactions`` frame's columns and types (one row per contract call).
TX_SCHEMA = {
    "time_s": pl.Int64,
    "sender": pl.String,
    "call": pl.String,
    "accepted": pl.Boolean,
    "reason": pl.String,
    "value": pl.Int64,
    "gas": pl.Int64,
    "fee": pl.Int64,
    "amount": pl.Float64,
}
_INTS = 8  # time, sender, call, accepted, reason, value, gas, fee


class TxLog:
    """Append-only columnar record of contract calls; ``append(record)`` is the chain's log."""

    def __init__(self) -> None:
        self._ints = array("q")
        self._amount = array("d")
        self._codes: dict[Any, int] = {None: 0}  # strings (senders, calls, reasons) -> code
        self._names: list[Any] = [None]

    def _code(self, s: Any) -> int:
        c = self._codes.get(s)
        if c is None:
            c = self._codes[s] = len(self._names)
            self._names.append(s)
        return c

    def append(self, rec: tuple) -> None:
        """Record one call: ``(time_s, sender, call, accepted, reason, value, gas, fee, amount)``
        (seconds; token units; ``amount`` None when the call returned no number)."""
        t, sender, call, ok, reason, value, gas, fee, amount = rec
        codes = self._codes
        cs, cc, cr = codes.get(sender), codes.get(call), codes.get(reason)
        if cs is None or cc is None or cr is None:
            cs, cc, cr = self._code(sender), self._code(call), self._code(reason)
        try:
            self._ints.extend((t, cs, cc, ok, cr, value, gas, fee))
        except TypeError:  # a float value (reference-python balances): truncated, as polars casts
            del self._ints[_INTS * len(self._amount) :]  # extend stopped part-way
            self._ints.extend((t, cs, cc, ok, cr, int(value), int(gas), int(fee)))
        self._amount.append(np.nan if amount is None else amount)

    def __len__(self) -> int:
        return len(self._amount)

    def _row(self, i: int) -> tuple:
        t, cs, cc, ok, cr, value, gas, fee = self._ints[_INTS * i : _INTS * (i + 1)]
        a = self._amount[i]
        names = self._names
        return (
            t,
            names[cs],
            names[cc],
            bool(ok),
            names[cr],
            value,
            gas,
            fee,
            None if a != a else a,
        )

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return [self._row(i) for i in range(*key.indices(len(self)))]
        n = len(self)
        if key < 0:
            key += n
        if not 0 <= key < n:
            raise IndexError("transaction index out of range")
        return self._row(key)

    def __iter__(self) -> Iterator[tuple]:
        return (self._row(i) for i in range(len(self)))

    def frame(self) -> pl.DataFrame:
        """The ``transactions`` frame (columns :data:`TX_SCHEMA`), rows in call order."""
        ints = np.frombuffer(self._ints, dtype=np.int64).reshape(-1, _INTS)
        names = pl.Series("names", self._names, dtype=pl.String)
        amount = np.frombuffer(self._amount, dtype=np.float64)
        cols = {
            "time_s": pl.Series(ints[:, 0]),
            "sender": names.gather(ints[:, 1]),
            "call": names.gather(ints[:, 2]),
            "accepted": pl.Series(ints[:, 3].astype(bool)),
            "reason": names.gather(ints[:, 4]),
            "value": pl.Series(ints[:, 5]),
            "gas": pl.Series(ints[:, 6]),
            "fee": pl.Series(ints[:, 7]),
            "amount": pl.Series(amount).fill_nan(None),
        }
        return pl.DataFrame(
            {k: s.alias(k).cast(TX_SCHEMA[k]) for k, s in cols.items()}, schema=TX_SCHEMA
        )
