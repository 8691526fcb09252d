"""The market's transaction log, kept as columns.

The chain reports every call as one record (fields :data:`sum_abm.chain.TX_FIELDS`). A market of
1,000 agents makes millions of calls; kept as Python tuples they took ~180 bytes each (1.4 GB at
2.7 M calls). :class:`TxLog` packs them into typed columnar chunks as it goes; it still reads like
the list of tuples it replaces (``len``, indexing, slicing, iteration), and :meth:`TxLog.frame`
concatenates the chunks into the ``transactions`` frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import polars as pl

from sum_abm import schema

#: The ``transactions`` frame's columns and types, as the results schema declares them.
TX_SCHEMA = schema.dtypes("transactions")
CHUNK = 1 << 16  # records held as tuples before they are packed into a frame


class TxLog:
    """Append-only record of contract calls; ``append(record)`` is the chain's log.

    Records arrive as tuples (the cheapest thing to append, ~0.1 µs) and every :data:`CHUNK` of
    them are packed into a typed polars frame (strings as views, numbers as columns), so memory
    stays near the frame's size however many calls a run makes.
    """

    def __init__(self) -> None:
        self._chunks: list[pl.DataFrame] = []
        self._packed = 0
        # Not yet packed, in this order: records as columns (batches arrive this way), then
        # records as tuples (single calls).
        self._cols: list[list] = [[] for _ in TX_SCHEMA]
        self._pending: list[tuple] = []
        self.append = self._append  # bound once: the chain calls it for every transaction

    def _append(self, rec: tuple) -> None:
        """Record one call: ``(time_s, sender, call, accepted, reason, value, gas, fee, amount)``
        (seconds; token units; ``amount`` None when the call returned no number)."""
        p = self._pending
        p.append(rec)
        if len(p) >= CHUNK:
            self._pack()

    def append_repeated(self, rec: tuple, n: int) -> None:
        """Record ``n`` identical calls at once: what ``n`` calls of ``append(rec)`` record
        (a batch of reward-phase calls), without a Python call per record."""
        if n > 0:
            self._pack()
            self._chunks.append(_frame([rec])[np.zeros(n, dtype=np.int64)])
            self._packed += n

    def extend_accepted(
        self, time_s: int, sender: str, calls: Sequence[str], amounts: Sequence[Any]
    ) -> None:
        """Record accepted calls from ``sender`` at ``time_s`` that sent nothing and paid no gas,
        ``calls[i]`` returning the number ``amounts[i]`` (token units), in order: a column at a
        time, without a tuple per call (the market's claim batches)."""
        k = len(calls)
        if k <= 4:  # most batches hold one claim: tuples, without moving the pending ones
            p = self._pending
            if k == 1:
                p.append((time_s, sender, calls[0], True, None, 0, 0, 0, float(amounts[0])))
            else:
                p.extend(
                    (time_s, sender, c, True, None, 0, 0, 0, float(a))
                    for c, a in zip(calls, amounts, strict=True)
                )
            if len(p) >= CHUNK:
                self._pack()
            return
        self._columns_from_tuples()
        t, snd, call, ok, reason, value, gas, fee, amount = self._cols
        t.extend(repeat(time_s, k))
        snd.extend(repeat(sender, k))
        call.extend(calls)
        ok.extend(repeat(True, k))
        reason.extend(repeat(None, k))
        value.extend(repeat(0, k))
        gas.extend(repeat(0, k))
        fee.extend(repeat(0, k))
        amount.extend(map(float, amounts))
        if len(t) >= CHUNK:
            self._pack()

    def _columns_from_tuples(self) -> None:
        """Move the pending tuples to the end of the pending columns."""
        rows = self._pending
        if rows:
            for j, col in enumerate(self._cols):
                col.extend(map(itemgetter(j), rows))
            self._pending = []

    def _pack(self) -> None:
        self._columns_from_tuples()
        n = len(self._cols[0])
        if n:
            self._chunks.append(_frame_of_columns(self._cols))
            self._packed += n
            self._cols = [[] for _ in TX_SCHEMA]

    def _pending_rows(self) -> list[tuple]:
        """The records not yet packed, as tuples in order."""
        return list(zip(*self._cols, strict=True)) + self._pending

    def __len__(self) -> int:
        return self._packed + len(self._cols[0]) + len(self._pending)

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            return [self[i] for i in range(*key.indices(len(self)))]
        n = len(self)
        if key < 0:
            key += n
        if not 0 <= key < n:
            raise IndexError("transaction index out of range")
        if key >= self._packed:
            key -= self._packed
            n = len(self._cols[0])
            if key < n:
                return _typed(tuple(col[key] for col in self._cols))
            return _typed(self._pending[key - n])
        for df in self._chunks:
            if key < len(df):
                return df.row(key)
            key -= len(df)
        raise IndexError(key)  # pragma: no cover

    def __iter__(self) -> Iterator[tuple]:
        for df in self._chunks:
            yield from df.iter_rows()
        for rec in self._pending_rows():
            yield _typed(rec)

    def frame(self) -> pl.DataFrame:
        """The ``transactions`` frame (columns :data:`TX_SCHEMA`), rows in call order."""
        self._pack()
        if not self._chunks:
            return pl.DataFrame(schema=TX_SCHEMA)
        if len(self._chunks) > 1:
            # One contiguous frame replaces the chunks, built a column at a time with each
            # column's chunks freed as it is joined, so the log is never held twice.
            # (shallow clones: a frame handed out earlier keeps its columns)
            chunks, self._chunks = [c.clone() for c in self._chunks], []
            cols = []
            for name in TX_SCHEMA:
                cols.append(pl.concat([c.drop_in_place(name) for c in chunks], rechunk=True))
            self._chunks = [pl.DataFrame(cols)]
        return self._chunks[0]


def _frame(rows: list[tuple]) -> pl.DataFrame:
    """Records (tuples) as a typed frame."""
    return _frame_of_columns([list(map(itemgetter(j), rows)) for j in range(len(TX_SCHEMA))])


def _frame_of_columns(cols: list[list]) -> pl.DataFrame:
    """Records as columns (lists, :data:`TX_SCHEMA` order) as a typed frame: column by column
    (2-3x faster than polars' row-wise constructor); strict=False truncates a float value into
    its Int64 column, as the row-wise constructor did."""
    return pl.DataFrame(
        [
            pl.Series(name, col, dtype=dtype, strict=False)
            for col, (name, dtype) in zip(cols, TX_SCHEMA.items(), strict=True)
        ]
    )


def _typed(rec: tuple) -> tuple:
    """A pending record as the frame holds it (integers truncated, the amount a float)."""
    t, sender, call, ok, reason, value, gas, fee, amount = rec
    return (
        t,
        sender,
        call,
        ok,
        reason,
        int(value),
        int(gas),
        int(fee),
        None if amount is None else float(amount),
    )
