"""The market's transaction log, kept as columns.

The chain reports every call as one record (fields :data:`sum_abm.chain.TX_FIELDS`). A market of
1,000 agents makes millions of calls; kept as Python tuples they took ~180 bytes each (1.4 GB at
2.7 M calls). :class:`TxLog` packs them into typed columnar chunks as it goes; it still reads like
the list of tuples it replaces (``len``, indexing, slicing, iteration), and :meth:`TxLog.frame`
concatenates the chunks into the ``transactions`` frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain, compress, islice
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
    row-wise constructor); a float value in an Int64 column is truncated, as the row-wise
    constructor did."""
    return pl.DataFrame(
        [_column(rows, j, name, dtype) for j, (name, dtype) in enumerate(TX_SCHEMA.items())]
    )


def _column(rows: list[tuple], j: int, name: str, dtype: Any) -> pl.Series:
    """Field ``j`` of ``rows`` as a Series of ``dtype``. An Int64 column through numpy when every
    value fits (ints, and floats truncated as ``int()`` does: a deposit under reference-python
    rules), which polars builds 4-5x slower from a mixed list; polars' own ``strict=False``
    conversion otherwise (None, out of range)."""
    values = map(itemgetter(j), rows)
    if dtype == pl.Int64:
        try:
            return pl.Series(name, np.fromiter(values, dtype=np.int64, count=len(rows)))
        except (TypeError, ValueError, OverflowError):
            values = map(itemgetter(j), rows)
    return pl.Series(name, list(values), dtype=dtype, strict=False)


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
    """Pending items (some of them batches) as a typed frame: the records built as :func:`_frame`
    builds them, the batches' rows a column at a time (the fields a batch shares repeated, its
    amounts converted in one pass, as ``float()`` converts each; its calls repeated too when every
    batch holds one kind of call: all reports, mostly), then both interleaved in call order by
    one gather."""
    width = len(TX_SCHEMA)
    is_rec = [len(it) == width for it in items]
    recs = list(compress(items, is_rec))
    batches = [it for it in items if len(it) != width]
    if not batches:
        return _frame(recs)
    counts = np.array([len(it[2]) for it in batches])
    n_rows = int(counts.sum())
    of_batch = np.repeat(np.arange(len(batches)), counts)
    calls = [it[2] for it in batches]
    if all(cs.count(cs[0]) == len(cs) for cs in calls):
        call = pl.Series("call", [cs[0] for cs in calls], dtype=pl.String).gather(of_batch)
    else:
        call = pl.Series("call", list(chain.from_iterable(calls)), dtype=pl.String)
    n = pl.repeat(0, n_rows, dtype=pl.Int64, eager=True)
    rows = pl.DataFrame(
        [
            pl.Series("time_s", np.array([it[0] for it in batches], dtype=np.int64)[of_batch]),
            pl.Series("sender", [it[1] for it in batches], dtype=pl.String).gather(of_batch),
            call,
            pl.repeat(True, n_rows, dtype=pl.Boolean, eager=True).alias("accepted"),
            pl.repeat(None, n_rows, dtype=pl.String, eager=True).alias("reason"),
            n.alias("value"),
            n.alias("gas"),
            n.alias("fee"),
            pl.Series(
                "amount",
                np.fromiter(
                    chain.from_iterable(it[3] for it in batches), dtype=np.float64, count=n_rows
                ),
            ),
        ]
    )
    if not recs:
        return rows
    # row i of the result: the next record, or the next batch row after all the records
    batch = ~np.array(is_rec)
    per_item = np.ones(len(items), dtype=np.int64)
    per_item[batch] = counts
    in_batch = np.repeat(batch, per_item)
    src = np.empty(len(in_batch), dtype=np.int64)
    src[~in_batch] = np.arange(len(recs))
    src[in_batch] = np.arange(len(recs), len(recs) + n_rows)
    return pl.concat([_frame(recs), rows])[src]


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
