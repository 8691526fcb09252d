"""Bitset steps of the incremental test accuracy (binary test sets, linear learners): exact overlaps,
the numpy passes and the compiled step agree, and the accuracy after every update equals a full
re-evaluation, whichever kernel runs."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sum_abm.data import make_imdb_synthetic
from sum_abm.learners import Sample, evaluation, make_learner
from sum_abm.learners.evaluation import RowBits

X, Y = make_imdb_synthetic(3000, 150, 0.15, 7)  # 150 features: 3 words, the last one partial
XT, YT = X[1500:], Y[1500:]


def test_overlaps_are_exact_counts():
    rng = np.random.default_rng(0)
    bits = RowBits(XT)
    assert bits.rows.shape == (XT.shape[0], 3)
    for size in (1, 5, 60, 150):
        F = np.sort(rng.choice(150, size=size, replace=False))
        want = np.asarray(XT[:, F].sum(axis=1)).ravel()
        got = bits.overlaps(bits.mask(F))
        assert got.tolist() == want.tolist()
    F = np.arange(64, 128)  # features of one word only: the numpy pass skips the others
    assert bits.overlaps(bits.mask(F)).tolist() == np.asarray(XT[:, F].sum(axis=1)).ravel().tolist()


def test_overlaps_with_many_features_packed_in_blocks():
    # 70,000 features: about 60 rows per dense block, so 200 rows take four blocks; overlaps
    # beyond 2**16 features are summed in int64.
    rng = np.random.default_rng(2)
    Xw = sp.random(200, 70_000, density=0.002, format="csr", random_state=3)
    Xw.data[:] = 1.0
    bits = RowBits(Xw)
    F = np.sort(rng.choice(70_000, size=20_000, replace=False))
    want = np.asarray(Xw[:, F].sum(axis=1)).ravel()
    assert bits.overlaps(bits.mask(F)).tolist() == want.tolist()


@pytest.mark.parametrize("canonical", [True, False])
def test_bits_are_the_non_zero_entries(canonical):
    """A bit is set exactly where the row's entry is non-zero: explicit zeros set none, and
    in a matrix with duplicate entries (not canonical) only where they do not sum to 0; rows
    packed over several dense blocks (70,000 features)."""
    rng = np.random.default_rng(4)
    for n, d in ((60, 150), (200, 70_000)):
        M = sp.random(n, d, density=min(0.2, 400 / d), format="csr", random_state=5)
        M.data[:] = 1.0
        M.data[::7] = 0.0  # explicit zeros
        if not canonical:  # a duplicate of some entries: +1 and -1 cancel, +1 and +1 do not
            r = np.repeat(np.arange(n), np.diff(M.indptr))
            dup = rng.choice(np.flatnonzero(M.data), size=M.nnz // 5, replace=False)
            vals = np.where(np.arange(len(dup)) % 2 == 0, -1.0, 1.0)
            rows_ = np.r_[r, r[dup]]
            order = np.argsort(rows_, kind="stable")
            ptr = np.r_[0, np.cumsum(np.bincount(rows_, minlength=n))]
            cols = np.r_[M.indices, M.indices[dup]][order]
            M = sp.csr_matrix((np.r_[M.data, vals][order], cols, ptr), shape=(n, d))
            assert (M.toarray() != 0).sum() < np.count_nonzero(M.data)  # some cancel
        assert M.has_canonical_format == canonical
        dense = M.toarray() != 0
        bits = RowBits(M)
        want = np.packbits(
            np.pad(dense, ((0, 0), (0, 64 * bits.words - d))), axis=1, bitorder="little"
        ).view("<u8")
        assert bits.rows.tolist() == want.tolist()


def test_numpy_passes_and_compiled_step_give_the_same_scores(monkeypatch):
    from sum_abm.learners import _compiled

    if _compiled.bit_advance is None:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(1)
    bits = RowBits(XT)
    S0 = rng.normal(scale=3.0, size=XT.shape[0])
    y_pos = YT == 1
    groups = [
        (0.37, np.sort(rng.choice(150, 40, replace=False))),
        (-1.25, np.sort(rng.choice(150, 25, replace=False))),
    ]
    monkeypatch.setattr(_compiled, "bit_advance", None)
    S_np = S0.copy()
    res_np = bits.advance(groups, 0.5, S_np, y_pos, 0.8)
    monkeypatch.undo()
    assert _compiled.bit_advance is not None
    S_c = S0.copy()
    res_c = bits.advance(groups, 0.5, S_c, y_pos, 0.8)
    assert np.array_equal(S_np, S_c)
    assert res_np == res_c
    want = S0.copy()
    for v, F in groups:
        want += v * np.asarray(XT[:, F].sum(axis=1)).ravel()
    want += 0.5
    assert np.array_equal(S_np, want)
    assert res_np == (
        int(np.count_nonzero((want > 0) == y_pos)),
        int(np.count_nonzero(np.abs(want) <= 0.8)),
    )


def rows(lo, hi):
    return [Sample(X.indices[X.indptr[i] : X.indptr[i + 1]], X.data[X.indptr[i] : X.indptr[i + 1]])
            for i in range(lo, hi)]  # fmt: skip


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize(
    "kind, params",
    [
        ("perceptron", {}),  # integer steps: exact scores
        ("perceptron", {"learning_rate": 0.1}),  # float steps that round: re-scored near 0
        ("sgd_perceptron", {"random_state": 0}),
    ],
)
def test_accuracy_after_each_update_equals_full_evaluation(monkeypatch, compiled, kind, params):
    # A bitset step is forced even for this small test set (no fixed cost per step value).
    monkeypatch.setattr(evaluation, "BIT_GROUP_COST", 0)
    if not compiled:
        from sum_abm.learners import _compiled

        monkeypatch.setattr(_compiled, "bit_advance", None)
    m = make_learner(kind, 150, **params).fit(X[:200], Y[:200])
    m.set_test_set(XT, YT, per_update=compiled)
    assert m.test_accuracy() == m.score(XT, YT)
    snap = m.snapshot()
    samples = rows(200, 700)
    for i, s in enumerate(samples):
        m.update(s, int(Y[200 + i]))
        if i % 7 == 3:
            continue  # two updates, then one evaluation: two step values
        if i == 250:
            m.restore(snap)  # the prediction market resets its model
        assert m.test_accuracy() == float(np.mean(m.predict(XT) == YT))
    st = m._evaluator.stats
    assert st["bitsets"] > 50, st
    if kind == "perceptron" and not params:
        # Exact integer scores: no row re-scored, and no periodic full pass (64 steps apart).
        assert st["rescored_rows"] == 0 and st["full"] <= 3, st


def test_no_bitsets_for_non_binary_test_sets():
    Xc = X[1500:].copy()
    Xc.data = Xc.data * 2.0  # counts, not presence
    m = make_learner("perceptron", 150).fit(X[:200], Y[:200])
    m.set_test_set(Xc, YT, per_update=True)
    assert not m._evaluator.binary and m._evaluator._bits is None
    for i, s in enumerate(rows(200, 260)):
        m.update(s, int(Y[200 + i]))
        assert m.test_accuracy() == m.score(Xc, YT)
    assert m._evaluator.stats["bitsets"] == 0
    dense = make_learner("multinomial_nb", 150).fit(X[:200], Y[:200])
    dense.set_test_set(sp.csr_matrix(XT), YT, per_update=True)  # not linear: nothing to prepare
    assert dense._evaluator._bits is None


@pytest.mark.parametrize("scale", [1.0, -1.5])  # presence (0/1), other values
def test_row_norms_of_the_bound_match_the_test_rows(scale):
    keep = np.ones(XT.shape[0])
    keep[3] = 0.0  # an empty row
    Xs = sp.csr_matrix(sp.diags(keep * scale) @ XT)
    Xs.eliminate_zeros()
    ev = evaluation.TestSetEvaluator(Xs, YT, linear_delta=True)
    dense = Xs.toarray()
    assert ev.binary == (scale == 1.0)
    assert ev.row_nnz.tolist() == (dense != 0).sum(axis=1).tolist()
    assert ev.row_sum.tolist() == dense.sum(axis=1).tolist()
    assert np.allclose(ev.row_l2, np.sqrt((dense * dense).sum(axis=1)), rtol=1e-15, atol=0)
    assert ev.row_inf.tolist() == np.abs(dense).max(axis=1).tolist()
    assert ev.row_inf[3] == 0.0 and ev.row_sum[3] == 0.0
    assert ev.l1_max == np.abs(dense).sum(axis=1).max()
    assert ev.col_nnz.tolist() == (dense != 0).sum(axis=0).tolist()


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("start", ["fitted", "zero"])  # zero weights: margins and scores tie at 0
@pytest.mark.parametrize("tol", [None, 1e-3])  # 1e-3: many test scores "near" 0, decided exactly
def test_update_rows_accuracy_is_the_accuracy_after_each_update(monkeypatch, compiled, start, tol):
    """The prediction market's first pass: rows learned in order with the test accuracy after
    each, by the compiled sweep that advances the test scores itself, equals update() row by row
    and a full evaluation after each row; parameters, step counter, drift and version bit for
    bit."""
    from sum_abm.learners import _compiled

    if not compiled:
        monkeypatch.setattr(_compiled, "sgd_rows", None)
    if tol is not None:
        monkeypatch.setattr(evaluation, "TOL", tol)
    calls = []
    kernel = _compiled.sgd_rows_scored

    def counted(*a):
        r = kernel(*a)
        calls.append(r[1])
        return r

    monkeypatch.setattr(_compiled, "sgd_rows_scored", counted)
    a, b = (make_learner("sgd_perceptron", 150, random_state=0) for _ in range(2))
    if start == "fitted":
        a.fit(X[:200], Y[:200])
        b.fit(X[:200], Y[:200])
    for m in (a, b):
        m.set_test_set(XT, YT, per_update=True)
    lo, hi = 200, 1400
    want = []
    for i, s in enumerate(rows(lo, hi)):
        a.update(s, int(Y[lo + i]))
        want.append(float(np.mean(a.predict(XT) == YT)))
    ptr = X.indptr[lo : hi + 1]
    got = b.update_rows_accuracy(ptr, X.indices, X.data, Y[lo:hi])
    assert got.tolist() == want
    assert (a.version, a.b, a.t, a.w.tobytes(), a.drift.tobytes(), a.drift_epoch) == (
        b.version, b.b, b.t, b.w.tobytes(), b.drift.tobytes(), b.drift_epoch,
    )  # fmt: skip
    assert type(a.b) is type(b.b)
    assert len(set(want)) > 20  # the accuracy moved
    if not compiled:
        assert calls == []
    else:
        assert calls[-1] == _compiled.DONE
        if tol is not None:
            assert calls.count(_compiled.NEAR) > 10
        if start == "zero":
            assert _compiled.UNCERTAIN in calls


def test_the_compiled_loops_are_built_and_refuse_arrays_they_cannot_read():
    from sum_abm.learners import _compiled

    assert _compiled.BUILT, "the install did not compile sum_abm/learners/_kernels.c"
    bits = RowBits(XT).rows
    S, y = np.zeros(XT.shape[0]), YT == 1
    masks = np.zeros((1, bits.shape[1]), np.uint64)
    assert _compiled.bit_advance(bits, masks, np.ones(1), 0.5, S, y, 0.0) == (y.sum(), 0)
    assert S.tolist() == [0.5] * len(S)
    with pytest.raises(TypeError, match="scores: unexpected item type 'f'"):
        _compiled.bit_advance(bits, masks, np.ones(1), 0.0, S.astype(np.float32), y, 0.0)
    with pytest.raises(ValueError, match="shapes do not match"):
        _compiled.bit_advance(bits, masks[:, :1], np.ones(1), 0.0, S, y, 0.0)
    with pytest.raises(ValueError, match="not C-contiguous"):
        _compiled.bit_advance(bits, masks, np.ones(1), 0.0, np.zeros(2 * len(S))[::2], y, 0.0)

    def sweep(starts, ends, ind, w):
        state, drift = np.array([0.0, 1.0, 0.0, 0.0]), np.zeros(3)
        n = len(starts)
        args = (np.ones(len(ind)), np.ones(n), w, state, drift, 1e-4, 1.0, 1.0, 0, False)
        return _compiled.sgd_rows(np.array(starts), np.array(ends), np.array(ind), *args)

    w = np.full(150, 0.5)  # both rows right (sign +1): nothing learned
    assert sweep([0, 1], [1, 3], [4, 5, 149], w) == (2, _compiled.DONE)
    assert sweep([0, 1], [1, 3], [4, 5, 149], np.zeros(150)) == (0, _compiled.UNCERTAIN)
    with pytest.raises(IndexError, match="row 1: a range or a feature index outside"):
        sweep([0, 1], [1, 3], [4, 5, 150], w)  # a feature beyond w
    with pytest.raises(IndexError, match="row 0"):
        sweep([0], [4], [4, 5, 6], w)  # a range beyond the indices


@pytest.mark.parametrize("kind", ["sgd_perceptron", "multinomial_nb"])
@pytest.mark.parametrize("index_type", [np.int32, np.int64, np.uint16])
def test_scores_of_0_1_rows_skip_the_values_bit_for_bit(kind, index_type, monkeypatch):
    """``kernel_scores(..., ones=True)`` (the compiled sums, which read no values) equals scipy's
    kernel with the values, to the bit: whole rows, gathered rows with the interleaved empty
    ranges, rows of different lengths side by side, counts that are not a multiple of the two or
    four rows summed at a time, a two-class score matrix; 2-byte indices (the test set's copy)
    too, and without the compiled sums (scipy reads them converted)."""
    from sum_abm.learners import _compiled

    m = make_learner(kind, 150, n_classes=3 if kind == "multinomial_nb" else 2)
    y0 = Y[:400] if kind != "multinomial_nb" else np.arange(400) % 3
    m.fit(X[:400], y0)
    ptr_type = np.int32 if index_type == np.uint16 else index_type
    ptr, ind = X.indptr.astype(ptr_type), X.indices.astype(index_type)
    rows = np.array([2999, 1200, 7, 6, 0])  # descending gaps run backwards: empty
    ap = np.empty(2 * len(rows) - 1, dtype=ptr_type)
    ap[0::2], ap[1::2] = ptr[rows], ptr[rows[:-1] + 1]
    want_all = m.kernel_scores(X.indptr, X.indices, X.data)
    for p in (ptr, ptr[:6], ptr[:4], ptr[:3], ptr[:2], ptr[:1], ap):
        want = m.kernel_scores(p, X.indices, X.data)
        got = m.kernel_scores(p, ind, X.data, ones=True)
        assert want.shape == got.shape
        assert want.view(np.int64).tolist() == got.view(np.int64).tolist()
    monkeypatch.setattr(_compiled, "csr_sums", None)
    got = m.kernel_scores(ptr, ind, X.data, ones=True)
    assert want_all.view(np.int64).tolist() == got.view(np.int64).tolist()
    monkeypatch.undo()
    assert _compiled.csr_sums is not None
    out = np.zeros(2)
    with pytest.raises(IndexError, match="row 0 reaches outside"):
        _compiled.csr_sums(np.array([0, 1, 2]), np.array([150, 3]), np.ones(150), out)
    with pytest.raises(IndexError, match="row 1 reaches outside"):
        _compiled.csr_sums(np.array([0, 1, 3]), np.array([3, 4]), np.ones(150), out)
    with pytest.raises(IndexError, match="row 2 reaches outside"):
        _compiled.csr_sums(np.array([0, 0, 0, 5]), np.array([3, 4]), np.ones(150), np.zeros(3))
    with pytest.raises(ValueError, match="one item per row"):
        _compiled.csr_sums(np.array([0, 1]), np.array([3]), np.ones(150), out)
    # a row that reaches outside, for every index type (2-byte ones into a short w are tested)
    ptr5 = np.array([0, 2, 4, 6, 8, 10])
    for t in (np.uint16, np.int32, np.int64):
        ind5 = np.array([1, 2, 3, 4, 5, 150, 6, 150, 7, 150], dtype=t)  # rows 2, 3, 4 reach out
        with pytest.raises(IndexError, match="row 2 reaches outside"):
            _compiled.csr_sums(ptr5, ind5, np.ones(150), np.zeros(5))
        ind5[[5, 7]] = 8
        with pytest.raises(IndexError, match="row 4 reaches outside"):
            _compiled.csr_sums(ptr5, ind5, np.ones(150), np.zeros(5))
    # 2-byte indices into a w of 65,536 items: none can reach outside, and the sums are the same
    w = np.zeros(65536)
    w[:150] = np.linspace(-1.0, 1.0, 150)
    ind5 = np.array([1, 2, 3, 4, 5, 149, 6, 65535, 7, 0], dtype=np.uint16)
    got, want = np.zeros(5), np.zeros(5)
    _compiled.csr_sums(ptr5, ind5, w, got)
    _compiled.csr_sums(ptr5, ind5.astype(np.int64), w, want)
    assert got.tolist() == want.tolist() and got[3] == w[6]
    with pytest.raises(TypeError, match="unexpected item type"):
        _compiled.csr_sums(ptr5, ind5.astype(np.int16), w, got)  # signed 2-byte: refused
