"""The columnar transaction log (sum_abm.market.recording.TxLog) against a list of tuples."""

from __future__ import annotations

import polars as pl
import pytest

from sum_abm.chain import Chain, Rejected
from sum_abm.market.recording import TX_SCHEMA, TxLog


def _records():
    return [
        (0, "A", "add_data", True, None, 50, 0, 0, 50.0),
        (7, "B", "report", False, "too_early", 0, 900, 1800, None),
        (7, "A", "refund", True, None, 0, 0, 0, 12.5),
        (9, "contract", "predict", True, None, 3, 21_000, 0, None),
        (9, "A", "add_data", True, None, 41.75, 0, 0, 41.0),
    ]


def test_log_reads_like_the_tuples_it_replaces():
    log = TxLog()
    for r in _records():
        log.append(r)
    assert len(log) == 5
    assert list(log)[:4] == _records()[:4]
    assert log[4][5] == 41  # a float value is stored truncated, as the Int64 column holds it
    assert log[-2] == _records()[-2] and log[1] == _records()[1]
    assert log[-4:-1][::-1] == _records()[-4:-1][::-1]
    with pytest.raises(IndexError):
        log[5]


def test_frame_equals_the_row_built_frame():
    log = TxLog()
    for r in _records():
        log.append(r)
    expected = pl.DataFrame(_records(), orient="row", schema=TX_SCHEMA)
    assert log.frame().equals(expected)
    assert log.frame()["amount"].null_count() == 2
    assert TxLog().frame().equals(pl.DataFrame(schema=TX_SCHEMA))


def test_chain_logs_into_it():
    log = TxLog()
    chain = Chain(log=log.append)
    chain.ledger.mint("A", 10)
    with pytest.raises(Rejected):
        chain.execute("A", "add_data", 11, lambda: None)
    assert chain.execute("A", "add_data", 5, lambda: 5) == 5
    assert [(r[2], r[3], r[4], r[8]) for r in log] == [
        ("add_data", False, "insufficient_funds", None),
        ("add_data", True, None, 5.0),
    ]


def test_packed_chunks_read_the_same(monkeypatch):
    import sum_abm.market.recording as recording

    monkeypatch.setattr(recording, "CHUNK", 2)
    log = TxLog()
    for r in _records():
        log.append(r)
    assert len(log._chunks) == 2 and len(log) == 5
    expected = pl.DataFrame(_records(), orient="row", schema=TX_SCHEMA)
    assert log.frame().equals(expected)
    assert list(log) == list(expected.iter_rows())
    assert log[3] == expected.row(3) and log[-1] == expected.row(4)


def test_a_frame_handed_out_stays_whole_when_the_log_grows(monkeypatch):
    import sum_abm.market.recording as recording

    monkeypatch.setattr(recording, "CHUNK", 2)
    log = TxLog()
    recs = _records()
    for r in recs[:3]:
        log.append(r)
    first = log.frame()
    for r in recs[3:]:
        log.append(r)
    expected = pl.DataFrame(recs, orient="row", schema=TX_SCHEMA)
    assert log.frame().equals(expected)
    assert first.equals(expected.head(3))
    assert log.frame().equals(expected) and len(log._chunks) == 1


def test_importing_sum_abm_makes_polars_return_freed_memory_unless_told_otherwise():
    import os
    import subprocess
    import sys

    # polars puts its own defaults first; jemalloc reads the options in order, the last wins
    code = "import os, sum_abm, polars; print(os.environ['_RJEM_MALLOC_CONF'])"
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}

    def conf(value: str | None) -> str:
        if value is not None:
            env["_RJEM_MALLOC_CONF"] = value
        run = [sys.executable, "-c", code]
        return subprocess.run(run, env=env, capture_output=True, text=True, check=True).stdout

    ours = ",dirty_decay_ms:0,muzzy_decay_ms:0\n"
    assert conf(None).endswith(ours)
    # a parent that imported polars passes polars' default on: still ours
    assert conf("dirty_decay_ms:500,muzzy_decay_ms:1000").endswith(ours)
    # a parent that imported sum_abm: ours, once
    assert conf(conf(None).strip()).count("decay_ms:0") == 2
    # the user's own setting wins, also when it reaches us after a parent's polars
    for user in ("dirty_decay_ms:250", "dirty_decay_ms:500,muzzy_decay_ms:1000,dirty_decay_ms:250"):
        out = conf(user)
        assert out.endswith(",dirty_decay_ms:250\n") and "decay_ms:0" not in out


@pytest.mark.parametrize("chunk", [2, 3, 1 << 16])
def test_batches_and_single_records_keep_their_order(monkeypatch, chunk):
    """Accepted claim batches (Chain.record_many -> TxLog.extend_accepted) between single
    records: the same rows, in call order, as every record logged one at a time."""
    import sum_abm.market.recording as recording

    monkeypatch.setattr(recording, "CHUNK", chunk)
    log, rows = TxLog(), []
    chains = [Chain(log=log.append, log_many=log.extend_accepted), Chain(log=rows.append)]
    for chain in chains:
        chain.ledger.mint("A", 10)
        chain.execute("A", "add_data", 5, lambda: 5)
        chain.clock.advance_to(30)
        chain.record_many("A", ["refund", "report", "report"], [5, 2.5, 1])
        chain.record_many("B", [], [])
        with pytest.raises(Rejected):
            chain.execute("A", "add_data", 99, lambda: None)
        chain.record_many("B", ["report"], [0.25])
        chain.record_many("C", ["report", "report"], [3, 0.5])  # one kind of call
        chain.clock.advance_to(31)
        chain.record_many("A", ["report", "report", "report"], [1, 2, 2**60 + 1])
    expected = pl.DataFrame(rows, orient="row", schema=TX_SCHEMA)
    assert len(log) == 11 and [log[i] for i in range(11)] == list(expected.iter_rows())
    assert [log[i] for i in range(-11, 0)] == list(expected.iter_rows())
    for sl in (slice(3, 9), slice(None, None, -2), slice(-4, None), slice(5, 5)):
        assert log[sl] == list(expected.iter_rows())[sl]
    assert list(log) == list(expected.iter_rows())
    assert log.frame().equals(expected)
    assert log[2] == (30, "A", "report", True, None, 0, 0, 0, 2.5)


@pytest.mark.parametrize("n", [0, 1, 5])
def test_repeated_records_are_the_appends_they_replace(monkeypatch, n):
    """``append_repeated(rec, n)`` between single appends (and packed chunks) records what
    ``n`` appends would: the same frame, length, indexing and iteration."""
    monkeypatch.setattr("sum_abm.market.recording.CHUNK", 2)
    rec = (8, "provider", "process_contribution", True, None, 0, 0, 0, None)
    fast, slow = TxLog(), TxLog()
    recs = _records()
    for log, repeated in ((fast, True), (slow, False)):
        for r in recs[:3]:
            log.append(r)
        if repeated:
            log.append_repeated(rec, n)
        else:
            for _ in range(n):
                log.append(rec)
        for r in recs[3:]:
            log.append(r)
    assert len(fast) == len(slow) == 5 + n
    assert list(fast) == list(slow)
    assert [fast[i] for i in range(-len(fast), len(fast))] == [
        slow[i] for i in range(-len(slow), len(slow))
    ]
    assert fast.frame().equals(slow.frame())


def test_chain_logs_repeated_calls_at_once_or_one_by_one():
    for with_repeated in (True, False):
        log = TxLog()
        chain = Chain(log=log.append, log_repeated=log.append_repeated if with_repeated else None)
        chain.clock.advance_to(40)
        chain.record_repeated(3, "P", "process_contribution")
        chain.record_repeated(0, "P", "process_contribution")
        assert list(log) == [(40, "P", "process_contribution", True, None, 0, 0, 0, None)] * 3
