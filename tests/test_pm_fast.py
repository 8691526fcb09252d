"""The prediction market's fast paths against their definitions: the batched reward phase
against single calls, test pieces as row blocks against their ``(x, y)`` pairs.

``PredictionMarket.process_contributions`` runs many ``process_contribution`` transactions as
passes over arrays (the learner's ``update_rows`` sweep, numpy scores, balances and removals).
It must leave exactly what the calls sent one at a time leave: the same accepted transactions,
the same contract state (every contribution's score, balance and accuracy, the market balances,
counters) and bit-identical learner parameters, in both semantics and with every option.
"""

from __future__ import annotations

from pathlib import Path

import mesa
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from sum_abm.chain import Chain, Rejected
from sum_abm.contract.prediction_market import Piece, PredictionMarket, hash_piece
from sum_abm.contract.state import freeze
from sum_abm.learners.base import Sample
from sum_abm.learners.linear import Perceptron, SGDPerceptron
from sum_abm.market.model import MarketModel
from sum_abm.market.results import collect
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _one_by_one(self, sender, max_calls):
    """The definition: the caller's loop of single calls."""
    sent = 0
    while sent < max_calls and self.remaining_bounty_rounds > 0 and self.market:
        self.process_contribution(sender)
        sent += 1
    return sent


def _final(sc, seed=3):
    m = MarketModel(scenario=sc, seed=seed)
    try:
        m.run()
        tx = collect(m)["transactions"]
        pm = m.contract.mech.contract
        return tx, pm.state_snapshot(), pm.num_passes, m.accuracy
    finally:
        mesa.Agent._ids.pop(m, None)


_batched = PredictionMarket.process_contributions


def _mixed(self, sender, max_calls):
    """A few single calls first, so the batch starts in the middle of a pass."""
    sent = _one_by_one(self, sender, min(max_calls, 7))
    return sent + _batched(self, sender, max_calls - sent)


def _both(sc, monkeypatch, mixed=False):
    with monkeypatch.context() as mp:
        if mixed:
            mp.setattr(PredictionMarket, "process_contributions", _mixed)
        fast = _final(sc)
    with monkeypatch.context() as mp:
        mp.setattr(PredictionMarket, "process_contributions", _one_by_one)
        slow = _final(sc)
    return fast, slow


@pytest.mark.parametrize("semantics", ["reference-python", "corrected"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"mechanism.reset_model_during_reward_phase": True},
        {"mechanism.group_contributions": True},
        {"learner.kind": "perceptron"},
        {"learner.kind": "multinomial_nb"},
        {"mechanism.max_process_calls": 777},
        {"mixed": True},
    ],
)
@pytest.mark.parametrize("compiled", [False, True])
def test_batched_reward_phase_equals_single_calls(semantics, options, compiled, monkeypatch):
    from sum_abm.learners import _compiled

    if not compiled:
        monkeypatch.setattr(_compiled, "sgd_rows", None)
    over = {
        "data.train_rows": 600,
        "data.test_rows": 200,
        "mechanism.bounty": 3_000,
        "mechanism.semantics": semantics,
        **options,
    }
    mixed = over.pop("mixed", False)
    sc = load_scenario(ROOT / "scenarios" / "reference_pm.toml", over)
    fast, slow = _both(sc, monkeypatch, mixed)
    calls = fast[0].filter(pl.col("call") == "process_contribution").height
    assert calls > 500 and fast[2] >= 2  # many calls over more than one pass
    assert fast[0].equals(slow[0]), "transactions differ"
    assert fast[1] == slow[1], "final contract or learner state differs"
    assert fast[2:] == slow[2:]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["reference_pm", "reference_pm_corrected"])
@pytest.mark.parametrize("compiled", [False, True])
def test_full_size_s3_batched_equals_single_calls(name, compiled, monkeypatch):
    from sum_abm.learners import _compiled

    if not compiled:
        monkeypatch.setattr(_compiled, "sgd_rows", None)
    fast, slow = _both(load_scenario(ROOT / "scenarios" / f"{name}.toml"), monkeypatch)
    assert fast[0].filter(pl.col("call") == "process_contribution").height > 100_000
    assert fast[0].equals(slow[0])
    assert fast[1] == slow[1]
    assert fast[2:] == slow[2:]


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("cls", [SGDPerceptron, Perceptron])
@pytest.mark.parametrize("levels", [(1.0, 2.0, 3.0), (1.0, 0.5, 3.0)])
def test_update_rows_is_update_row_by_row(cls, levels, compiled, monkeypatch):
    """The sweep (numpy blocks, or compiled) yields the rows that changed the model and leaves
    parameters, step counter, drift and version bit for bit as :meth:`update` per row, ties at
    0 included."""
    from sum_abm.learners import _compiled

    if not compiled:
        monkeypatch.setattr(_compiled, "sgd_rows", None)
    rng = np.random.default_rng(5)
    n, d = 3_000, 60
    lens = rng.integers(0, 12, n)
    indptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lens, out=indptr[1:])
    indices = np.concatenate([np.sort(rng.choice(d, k, replace=False)) for k in lens]).astype(
        np.int32
    )
    values = rng.choice(levels, len(indices))
    y = rng.integers(0, 2, n)
    a, b, c = cls(d), cls(d), cls(d)  # zero weights: the first rows score exactly 0 (mistakes)
    seen = []
    for i in range(n):
        lo, hi = indptr[i], indptr[i + 1]
        if a.update(Sample(indices[lo:hi], values[lo:hi]), int(y[i])):
            seen.append(i)
    got = list(b.update_rows(indptr, indices, values, y))
    assert list(c.update_rows(indptr, indices, values, y, pause=False)) == []
    assert 50 < len(seen) < n - 50
    assert got == seen
    for m in (b, c):
        assert (a.version, a.b, a.w.tobytes(), a.drift.tobytes(), a.drift_epoch) == (
            m.version,
            m.b,
            m.w.tobytes(),
            m.drift.tobytes(),
            m.drift_epoch,
        )
        assert type(a.b) is type(m.b)
        assert getattr(a, "t", None) == getattr(m, "t", None)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("cls", [SGDPerceptron, Perceptron])
def test_update_rows_over_scattered_ranges(cls, compiled, monkeypatch):
    """``ends``: rows given as ranges of shared arrays, in any order and repeated (the reward
    passes read the market's rows in place), learned as update() learns them one by one."""
    from sum_abm.learners import _compiled, linear

    if not compiled:
        monkeypatch.setattr(_compiled, "sgd_rows", None)
    monkeypatch.setattr(linear, "GATHER_ROWS", 37)  # the numpy path copies them in parts
    rng = np.random.default_rng(9)
    n, d = 400, 40
    lens = rng.integers(0, 9, n)
    indptr = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(lens, out=indptr[1:])
    indices = np.concatenate([np.sort(rng.choice(d, k, replace=False)) for k in lens]).astype(
        np.int32
    )
    values = rng.choice([1.0, 2.0], len(indices))
    labels = rng.integers(0, 2, n)
    seq = np.concatenate([rng.permutation(n), rng.permutation(n)[: n // 2]])
    a, b = cls(d), cls(d)
    seen = []
    for j, i in enumerate(seq):
        lo, hi = indptr[i], indptr[i + 1]
        if a.update(Sample(indices[lo:hi], values[lo:hi]), int(labels[i])):
            seen.append(j)
    # starts and ends as strided views (columns of one array), as a caller may hold them
    ranges = np.stack([indptr[seq], indptr[seq + 1]], axis=1)
    got = list(b.update_rows(ranges[:, 0], indices, values, labels[seq], ends=ranges[:, 1]))
    assert got == seen and len(seen) > 50
    assert (a.version, a.b, a.w.tobytes(), a.drift.tobytes()) == (
        b.version, b.b, b.w.tobytes(), b.drift.tobytes(),
    )  # fmt: skip
    assert getattr(a, "t", None) == getattr(b, "t", None)


def _revealed(pieces):
    """The test set a market holds after the pieces are committed, revealed and verified."""
    chain = Chain()
    chain.ledger.mint("P", 10)
    pm = PredictionMarket(chain, Perceptron(9))
    pm.initialize_market("P", 10, [hash_piece(p) for p in pieces], 0, 1, 1)
    pm.reveal_init_test_set("P", pieces[1])
    pm.end_market("P")
    while pm.state == "REVEAL_TEST_SET":
        pm.verify_next_test_set("P", pieces[pm.next_verify])
    assert pm.state == "REWARD_RESTART"
    return freeze((pm.learner._X_test, pm.learner._y_test, pm.test_y))


@pytest.mark.parametrize("sparse", [True, False])
def test_a_piece_commits_and_reveals_as_its_pairs(sparse):
    rng = np.random.default_rng(2)
    D = rng.choice([0.0, 0.0, 1.0, 0.1, -2.5, 1e-300, 3.0, 1 / 3], size=(40, 9))
    D[5] = 0.0  # a row without non-zeros
    y = rng.integers(0, 2, 40)
    X = sp.csr_matrix(D) if sparse else D
    pieces = [Piece(X[a:b], y[a:b]) for a, b in [(0, 10), (10, 25), (25, 40)]]
    pairs = [p.pairs() for p in pieces]
    assert [hash_piece(p) for p in pieces] == [hash_piece(p) for p in pairs]
    assert len({hash_piece(p) for p in pieces}) == 3
    flipped = y.copy()
    flipped[12] = 1 - flipped[12]
    assert hash_piece(Piece(X[10:25], flipped[10:25])) != hash_piece(pieces[1])
    assert _revealed(pieces) == _revealed(pairs)


@pytest.mark.parametrize("n_features", [9, 3_000_000])
def test_a_binary_piece_hashes_as_its_pairs(n_features):
    """Rows of one value (the block writer repeats its text) and column indices far above the
    row count (written without the index table) hash as their pairs; a changed index or value
    changes the hash."""
    rng = np.random.default_rng(5)
    D = (rng.random((12, 9)) < 0.4).astype(np.float64)
    D[3] = 0.0  # a row without non-zeros
    X = sp.csr_matrix(D)
    X = sp.csr_matrix((X.data, X.indices * (n_features // 9), X.indptr), shape=(12, n_features))
    y = rng.integers(0, 2, 12)
    piece = Piece(X, y)
    assert hash_piece(piece) == hash_piece(piece.pairs())
    for data in (np.where(np.arange(X.nnz) == 4, 2.0, 1.0), np.full(X.nnz, 0.5)):
        other = Piece(sp.csr_matrix((data, X.indices, X.indptr), shape=X.shape), y)
        assert hash_piece(other) == hash_piece(other.pairs()) != hash_piece(piece)
    moved = X.indices.copy()
    moved[0] += 1 if moved[0] + 1 not in X.indices[: X.indptr[1]] else 2
    shifted = Piece(sp.csr_matrix((X.data, moved, X.indptr), shape=X.shape), y)
    assert hash_piece(shifted) == hash_piece(shifted.pairs()) != hash_piece(piece)


def test_a_piece_with_nan_or_negative_zero_hashes_as_its_pairs():
    D = np.array([[1.0, np.nan, 0.0], [0.0, 2.0, np.inf], [-0.0, 1.0, 0.0]])
    for X in (D, sp.csr_matrix(D)):
        piece = Piece(X, np.array([0, 1, 1]))
        assert hash_piece(piece) == hash_piece(piece.pairs())
        assert hash_piece(Piece(X[2:], np.array([1]))) == hash_piece(
            Piece(X[2:], np.array([1])).pairs()
        )


def test_process_contributions_keeps_the_single_calls_rules():
    """Outside the reward phase the first call is rejected as a single call is: one rejected row,
    nothing else changes; with no calls allowed or nothing left it sends none."""
    rows = []
    chain = Chain(log=rows.append)
    chain.ledger.mint("P", 10)
    pm = PredictionMarket(chain, SGDPerceptron(4))
    X = sp.csr_matrix(np.eye(4))
    pieces = [Piece(X[:2], np.array([0, 1])), Piece(X[2:], np.array([1, 0]))]
    pm.initialize_market("P", 10, [hash_piece(p) for p in pieces], 0, 1, 0)
    pm.reveal_init_test_set("P", pieces[0])
    chain.ledger.mint("A", 5)
    pm.add_data("A", 1, Sample(np.array([1], np.int32), np.array([1.0]), key=("row", 1)), 1)
    before, n = pm.state_snapshot(), len(rows)
    with pytest.raises(Rejected, match="wrong_phase"):
        pm.process_contributions("P", 5)
    assert pm.state_snapshot() == before
    assert [r[2:5] for r in rows[n:]] == [("process_contribution", False, "wrong_phase")]
    pm.end_market("P")
    pm.verify_next_test_set("P", pieces[1])
    assert pm.process_contributions("P", 0) == 0 and pm.state == "REWARD_RESTART"
    sent = pm.process_contributions("P", 100)
    assert sent >= 1 and pm.state == "REWARD_COLLECT"
    assert pm.process_contributions("P", 100) == 0
    calls = [r for r in rows if r[2] == "process_contribution" and r[3]]
    assert len(calls) == sent


def test_test_pieces_are_refused_when_one_would_be_empty():
    """The market commits ``num_test_pieces`` pieces with row bounds ``int(i / n * rows)`` (the
    reference's split); an empty piece can never be revealed, so the market could never end.
    Exactly the counts that leave one empty are refused, and the count named instead works."""
    from types import SimpleNamespace

    from sum_abm.errors import InputError
    from sum_abm.mechanisms.prediction_market import PMConfig, PMMechanism

    refused = 0
    for rows in range(1, 160):
        data = SimpleNamespace(y_test=np.zeros(rows))
        for n in range(2, rows + 3):
            sizes = [int((i + 1) / n * rows) - int(i / n * rows) for i in range(n)]
            cfg = PMConfig(kind="prediction_market", num_test_pieces=n)
            if min(sizes) > 0:
                PMMechanism.check_data(cfg, data)
                continue
            refused += 1
            with pytest.raises(InputError, match="expected at most") as err:
                PMMechanism.check_data(cfg, data, "s")
            fits = int(str(err.value).rsplit(" ", 1)[1])
            assert (
                fits < n
                and min(int((i + 1) / fits * rows) - int(i / fits * rows) for i in range(fits)) > 0
            )
    assert refused > 300  # n > rows always; n == rows for some sizes (22, 23, 26, ..., 150)
