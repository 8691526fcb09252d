"""The market's transaction log, kept as columns.

The chain reports every call as one record (fields :data:`sum_abm.chain.TX_FIELDS`). A market of
1,000 agents makes millions of calls; kept as Python tuples they took ~180 bytes each (1.4 GB at
2.7 M calls). :class:`TxLog` packs them into typed columnar chunks as it goes; it still reads like
the list of tuples it replaces (``len``, indexing, slicing, iteration), and :meth:`TxLog.frame`
concatenates the chunks into the ``transactions`` frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain, islice
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

    Records arrive as tuples (the cheapest thing to append, ~0.1 µs), a batch of accepted claims
    as one tuple for the batch, and every :data:`CHUNK` records are packed into a typed polars
    frame (strings as views, numbers as columns), so memory stays near the frame's size however
    many calls a run makes. A batch of 17 claims costs 3–4 µs up to the built frame, against 6–10
    µs extended column by column and 11–15 µs one record at a time
    (``benchmarks/transaction_log.py``).
    """

    def __init__(self) -> None:
        self._chunks: list[pl.DataFrame] = []
        self._packed = 0
        # Not yet packed, in call order: records (9-tuples, single calls) and batches
        # ``(time_s, sender, calls, amounts)`` (accepted claim batches, one tuple per batch).
        self._pending: list[tuple] = []
        # Records pending beyond one per item (a batch of k adds k - 1), kept as what is left
        # of the chunk for the items: ``append`` then compares one number.
        self._room = CHUNK
        self.append = self._append  # bound once: the chain calls it for every transaction

    def _append(self, rec: tuple) -> None:
        """Record one call: ``(time_s, sender, call, accepted, reason, value, gas, fee, amount)``
        (seconds; token units; ``amount`` None when the call returned no number)."""
        p = self._pending
        p.append(rec)
        if len(p) >= self._room:
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
        ``calls[i]`` returning the number ``amounts[i]`` (token units), in order: one item for the
        batch (the market's claim batches, ~17 claims each at 1,000 agents), expanded into rows
        when packed. The sequences are kept, not copied: the caller hands them over."""
        k = len(calls)
        if k != len(amounts):
            raise ValueError(f"{k} calls but {len(amounts)} amounts")
        p = self._pending
        if k <= 1:  # (a batch item always holds two or more: _pack tells them apart by _room)
            if k:
                p.append((time_s, sender, calls[0], True, None, 0, 0, 0, float(amounts[0])))
                if len(p) >= self._room:
                    self._pack()
            return
        p.append((time_s, sender, calls, amounts))
        self._room -= k - 1
        if len(p) >= self._room:
            self._pack()

    def _pack(self) -> None:
        p = self._pending
        if p:
            n = len(p) + CHUNK - self._room
            self._chunks.append(_frame(p) if self._room == CHUNK else _frame_of_items(p))
            self._packed += n
            self._pending, self._room = [], CHUNK

    def _pending_rows(self) -> list[tuple]:
        """The records not yet packed, as tuples in order."""
        return list(_rows(self._pending))

    def __len__(self) -> int:
        return self._packed + len(self._pending) + CHUNK - self._room

    def __getitem__(self, key: int | slice) -> Any:
        if isinstance(key, slice):
            # the pending records expanded once, not once per index (the live view reads the
            # last rows at every step)
            idx = range(*key.indices(len(self)))
            packed = self._packed
            pending = self._pending_rows() if idx and max(idx[0], idx[-1]) >= packed else []
            return [_typed(pending[i - packed]) if i >= packed else self[i] for i in idx]
        n = len(self)
        if key < 0:
            key += n
        if not 0 <= key < n:
            raise IndexError("transaction index out of range")
        if key >= self._packed:
            key -= self._packed
            for item in self._pending:
                k = 1 if len(item) == len(TX_SCHEMA) else len(item[2])
                if key < k:
                    return _typed(next(islice(_rows([item]), key, None)))
                key -= k
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
    """Records (tuples) as a typed frame, built column by column (2-3x faster than polars'
    row-wise constructor); strict=False truncates a float value into its Int64 column, as the
    row-wise constructor did."""
    return pl.DataFrame(
        [
            pl.Series(name, list(map(itemgetter(j), rows)), dtype=dtype, strict=False)
            for j, (name, dtype) in enumerate(TX_SCHEMA.items())
        ]
    )


def _rows(items: list[tuple]) -> Iterator[tuple]:
    """Pending items (records, and batches ``(time_s, sender, calls, amounts)``) as records."""
    width = len(TX_SCHEMA)
    for item in items:
        if len(item) == width:
            yield item
        else:
            t, sender, calls, amounts = item
            for c, a in zip(calls, amounts, strict=True):
                yield (t, sender, c, True, None, 0, 0, 0, float(a))


def _frame_of_items(items: list[tuple]) -> pl.DataFrame:
    """Pending items (some of them batches) as a typed frame: the fields a batch shares built
    once per item and repeated, its amounts converted in one pass (as ``float()`` converts each),
    its calls repeated too when every batch holds one kind of call (all reports, mostly)."""
    width = len(TX_SCHEMA)
    counts, shared, batch_amounts = [], [], []
    uniform = True
    for item in items:
        if len(item) == width:
            counts.append(1)
            shared.append(item)
        else:
            t, sender, cs, am = item
            k, c0 = len(cs), cs[0]
            uniform = uniform and cs.count(c0) == k
            counts.append(k)
            shared.append((t, sender, c0, True, None, 0, 0, 0, None))
            batch_amounts.append(am)
    counts = np.array(counts)
    rows = np.repeat(np.arange(len(items)), counts)
    in_batch = np.repeat(counts > 1, counts)  # a batch holds two or more records
    amount = np.zeros(len(rows))
    amount[in_batch] = np.fromiter(chain.from_iterable(batch_amounts), dtype=np.float64)
    # a record keeps its own amount (None stays null)
    frame = _frame(shared)[rows].with_columns(
        pl.when(pl.Series(in_batch))
        .then(pl.Series(amount))
        .otherwise(pl.col("amount"))
        .alias("amount")
    )
    if not uniform:
        calls = chain.from_iterable((it[2],) if len(it) == width else it[2] for it in items)
        frame = frame.with_columns(pl.Series("call", list(calls), dtype=TX_SCHEMA["call"]))
    return frame


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
