"""MultinomialNB keeps its log-probabilities current through one-sample updates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sum_abm.learners.base import Learner, Sample
from sum_abm.learners.nb import MultinomialNB


def test_incremental_log_params_equal_a_whole_recomputation_bit_for_bit():
    # After each update only the sample's features and its class's normaliser are re-logged;
    # the parameters must be exactly those of recomputing every log from the counts.
    rng = np.random.default_rng(3)
    d = 200
    X0 = (rng.random((40, d)) < 0.2).astype(float) * rng.integers(1, 4, size=(40, d))
    y0 = rng.integers(0, 3, size=40)
    kept, fresh = MultinomialNB(d, 3, alpha=0.5), MultinomialNB(d, 3, alpha=0.5)
    kept.fit(X0, y0)
    fresh.fit(X0, y0)
    kept._log_params()  # start the kept logs
    for _ in range(300):
        x = (rng.random(d) < 0.15) * rng.integers(1, 5, size=d).astype(float)
        y = int(rng.integers(0, 3))
        kept.update(x, y)
        fresh.update(x, y)
        fresh._logs = fresh._logc = None  # force the whole recomputation
        for a, b in zip(kept._log_params(), fresh._log_params(), strict=True):
            assert np.array_equal(a, b)
    snap = kept.snapshot()
    kept.update(np.ones(d), 0)
    kept.restore(snap)  # a restore starts the kept logs afresh
    assert np.array_equal(kept._log_params()[1], fresh._log_params()[1])


def test_logs_brought_up_to_date_after_several_updates_equal_a_whole_recomputation():
    # The kept logs are re-logged when next used, over every update since (features repeated
    # across updates, both classes, more updates than the batch limit): bit for bit as fresh.
    rng = np.random.default_rng(5)
    d = 120
    X0 = (rng.random((30, d)) < 0.3).astype(float)
    y0 = rng.integers(0, 2, size=30)
    kept, fresh = MultinomialNB(d, 2), MultinomialNB(d, 2)
    kept.fit(X0, y0)
    fresh.fit(X0, y0)
    kept._log_params()
    for gap in (1, 2, 5, 17, 64, 65, 150):
        for _ in range(gap):
            x = (rng.random(d) < 0.3) * rng.integers(1, 3, size=d).astype(float)
            y = int(rng.integers(0, 2))
            kept.update(x, y)
            fresh.update(x, y)
        fresh._logs = fresh._logc = None
        for a, b in zip(kept._log_params(), fresh._log_params(), strict=True):
            assert np.array_equal(a, b)
        w, b = kept.score_params()
        fresh._score_params = None
        w0, b0 = fresh.score_params()
        assert np.array_equal(w, w0) and b == b0


def test_score_params_equal_those_of_the_log_probabilities_bit_for_bit():
    # score_params is built from the kept logs directly; it must equal the generic reduction of
    # the log-probability matrix (class 1 minus class 0 for two classes) exactly.
    rng = np.random.default_rng(11)
    d = 300
    for k in (2, 3):
        nb = MultinomialNB(d, k, alpha=0.7)
        nb.fit((rng.random((30, d)) < 0.2).astype(float), rng.integers(0, k, size=30))
        for _ in range(40):
            nb.update((rng.random(d) < 0.1) * rng.integers(1, 3, size=d).astype(float), 1)
            w, b = nb.score_params()
            nb._score_params = None
            w0, b0 = Learner.score_params(nb)  # via _segment_params: the whole matrix
            assert np.array_equal(w, w0) and np.array_equal(np.asarray(b), np.asarray(b0))
            assert w.flags.c_contiguous and w.dtype == np.float64


@pytest.mark.parametrize("whole", [False, True])
def test_compiled_count_update_equals_the_numpy_one(monkeypatch, whole):
    # The compiled update writes the same counts, totals and logs bit for bit (fractional values:
    # rounding matters; whole ones: the kernel's own sum of them); its drift term (the C
    # library's log1p, summed in order) agrees to rounding. A refused sample changes nothing on
    # either path.

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(17)
    d, k = 300, 3
    X0 = (rng.random((40, d)) < 0.2) * rng.random((40, d)) * 3
    y0 = rng.integers(0, k, size=40)
    xs = [(rng.random(d) < 0.1) * rng.random(d) * 5 for _ in range(400)]
    if whole:  # counts, some beyond 2**53 in all (summed by numpy then)
        xs = [np.floor(x * 3) for x in xs]
        xs[5][np.flatnonzero(xs[5])[:2]] = 2.0**52
    ys = rng.integers(0, k, size=400).tolist()
    calls, sums = [], []

    def counted(*args):
        calls.append(1)
        out = add(*args)
        sums.append(out[1] is not None)
        return out

    add = compiled.nb_add

    def learn(kernel):
        monkeypatch.setattr(compiled, "nb_add", kernel)
        nb = MultinomialNB(d, k, alpha=0.3)
        nb.fit(X0, y0)
        nb._log_params()  # kept logs, re-logged from the counts the updates write
        for x, y in zip(xs, ys, strict=True):
            nb.update(x, y)
        bad = xs[0].copy()
        bad[np.flatnonzero(bad)[0]] = -1.0
        before = nb.counts.tobytes(), nb.total.tobytes(), nb.class_count.tobytes()
        with pytest.raises(ValueError, match="non-negative"):
            nb.update(bad, 1)
        with pytest.raises(IndexError, match="out of bounds"):  # numpy's error, either path
            nb.update(Sample(np.array([1, d], np.int32), np.ones(2), None), 0)
        assert (nb.counts.tobytes(), nb.total.tobytes(), nb.class_count.tobytes()) == before
        # values the kernel cannot read (float32): the numpy path takes the sample
        nb.update(Sample(np.array([3, 7], np.int32), np.array([0.5, 2.0], np.float32), None), 2)
        return nb

    fast, slow = learn(counted), learn(None)
    assert len(calls) == 403  # every update (the refused ones and the float32 one too) tried it
    # the kernel summed the whole values itself (all but the sum past 2**53), never fractions
    assert sum(sums) == (399 if whole else 0)
    for a, b in [
        (fast.counts, slow.counts),
        (fast.total, slow.total),
        (fast.class_count, slow.class_count),
        *zip(fast._log_params(), slow._log_params(), strict=True),
    ]:
        assert np.array_equal(a, b)
    assert np.allclose(fast.drift, slow.drift, rtol=1e-12, atol=0) and fast.drift[1] > 0
    row = fast.counts[2].copy()
    with pytest.raises(IndexError, match=rf"index {d} \(item 1\) outside the counts"):
        add(fast.counts[2], np.array([0, d], dtype=np.int32), np.ones(2), 0.3)
    with pytest.raises(ValueError, match="differ in length"):
        add(fast.counts[2], np.array([0, 1], dtype=np.int32), np.ones(3), 0.3)
    assert np.array_equal(fast.counts[2], row)


def test_updates_after_a_fit_on_a_sparse_matrix_take_the_compiled_count_update(monkeypatch):
    # A sparse fit computes the counts as (X.T @ Y).T, column-major: the compiled update needs a
    # class's row contiguous, so the fit stores them in C order (else every update of a run
    # fitted from scratch fell back to the numpy path, ~7 µs more each on IMDB-shaped data).
    import pytest
    import scipy.sparse as sp

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(5)
    X = sp.random(60, 80, density=0.2, format="csr", random_state=6)
    X.data[:] = 1.0
    y = rng.integers(0, 2, size=60)
    add, calls = compiled.nb_add, []
    monkeypatch.setattr(compiled, "nb_add", lambda *a: calls.append(1) or add(*a))
    nb = MultinomialNB(80, 2).fit(X[:40], y[:40])
    for i in range(40, 60):
        nb.update(Sample(X[i].indices, X[i].data, None), int(y[i]))
    assert len(calls) == 20
    assert np.array_equal(nb.counts, MultinomialNB(80, 2).fit(X, y).counts)


def test_table_drift_terms_equal_the_computed_ones_bit_for_bit():
    # nb_add reads the drift term of a value 1 added to a whole count k < len(table) from
    # nb_drift_table; every other term (a fraction, a value of 2, a count past the table) is
    # computed. Either way the sum is the same float as without a table.
    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(23)
    d, alpha = 400, 0.37
    table = np.empty(50)
    compiled.nb_drift_table(table, alpha)
    # the C library's log1p, as math.log1p is (numpy's own may differ in the last bit: on a CPU
    # with AVX-512 it has its own vectorised log1p)
    assert table.tolist() == [math.log1p(1.0 / (k + alpha)) for k in range(50)]
    assert np.allclose(table, np.log1p(1.0 / (np.arange(50) + alpha)), rtol=1e-15, atol=0)
    row = np.floor(rng.random(d) * 90)  # whole counts, some past the table
    row[:40] = rng.random(40) * 30  # and some fractional ones
    hits = 0
    for _ in range(60):
        idx = np.sort(rng.choice(d, size=30, replace=False)).astype(np.int32)
        v = np.where(rng.random(30) < 0.8, 1.0, 2.0)
        hits += int(np.sum((v == 1.0) & (row[idx] < 50) & (row[idx] == np.floor(row[idx]))))
        with_table, without = row.copy(), row.copy()
        got = compiled.nb_add(with_table, idx, v, alpha, table)
        want = compiled.nb_add(without, idx, v, alpha)
        assert got == want and np.array_equal(with_table, without)
        row = with_table
    assert hits > 300  # the table was read, not only the computed terms
    with pytest.raises(TypeError, match="table"):
        compiled.nb_add(row, idx, v, alpha, table.astype(np.float32))


def test_table_logs_equal_numpys_logs_bit_for_bit():
    # nb_logs reads log(k + alpha) of whole counts from a table numpy computed: the same bits as
    # numpy's log of the row, whole or at some ids; otherwise it writes nothing and says why.
    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(29)
    d = 1000
    for alpha in (1.0, 0.5, 1e-3, 2.7):
        table = np.log(np.arange(3000, dtype=np.float64) + alpha)
        counts = np.floor(rng.random(d) * 3000)
        out = np.zeros(d)
        assert compiled.nb_logs(counts, table, out) == 0
        assert np.array_equal(out, np.log(counts + alpha))
        ids = rng.choice(d, size=77).astype(np.int32)  # repeats too
        part = np.zeros(d)
        assert compiled.nb_logs(counts, table, part, ids) == 0
        assert np.array_equal(part[ids], np.log(counts[ids] + alpha))
        assert np.count_nonzero(part) == np.count_nonzero(np.log(counts[np.unique(ids)] + alpha))
    counts[7] = 5000.0  # past the table: the size it needs, nothing written
    out[:] = 0.0
    assert compiled.nb_logs(counts, table, out) == 5001 and not out.any()
    for bad in (2.5, -1.0, np.nan, np.inf, 2.0**53):
        counts[7] = bad
        assert compiled.nb_logs(counts, table, out) == -1 and not out.any()
    assert compiled.nb_logs(counts, table, out, np.array([3, 8], np.int64)) == 0  # 7 not read
    with pytest.raises(IndexError, match=rf"index {d} \(item 1\) outside the counts"):
        compiled.nb_logs(counts, table, out, np.array([0, d], np.int32))
    with pytest.raises(ValueError, match="differ in length"):
        compiled.nb_logs(counts, table, out[:-1])


def test_kept_logs_from_the_tables_equal_numpys_as_counts_outgrow_them(monkeypatch):
    # The learner's tables grow with its counts and stop at TABLE_MAX (past it numpy logs the
    # row, and nb_add computes the drift terms); the kept logs stay those of the numpy paths bit
    # for bit, the drift equal to rounding.
    import sum_abm.learners._compiled as compiled
    import sum_abm.learners.nb as nb_mod

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    monkeypatch.setattr(nb_mod, "TABLE_MAX", 1500)
    rng = np.random.default_rng(31)
    d = 60
    X0 = np.floor(rng.random((20, d)) * 40)  # whole counts from the start, up to ~400
    y0 = np.arange(20) % 2
    reads, sizes = [], set()
    for name in ("nb_logs", "nb_binary_weights"):
        kernel = getattr(compiled, name)
        monkeypatch.setattr(compiled, name, lambda *a, k=kernel: reads.append(k(*a)) or reads[-1])

    def learn(tables: bool) -> MultinomialNB:
        if not tables:
            for name in ("nb_logs", "nb_binary_weights", "nb_drift_table"):
                monkeypatch.setattr(compiled, name, None)
        nb = MultinomialNB(d, 2, alpha=0.25).fit(X0, y0)
        nb._log_params()
        for i in range(6000):  # +~1,500 per class and feature
            x = (rng.random(d) < 0.5).astype(float)
            if i == 5990:
                x[0] = 0.5  # a fractional count: numpy logs that row from then on
            nb.update(x, i % 2)
            if i % 7 == 0 and tables:
                nb.score_params()
                sizes.add(len(nb._log_table))
        return nb

    state = rng.bit_generator.state
    fast = learn(True)
    rng.bit_generator.state = state
    slow = learn(False)
    for a, b in zip(fast._log_params(), slow._log_params(), strict=True):
        assert np.array_equal(a, b)
    fast._score_params = slow._score_params = None
    w, b = fast.score_params()
    w0, b0 = slow.score_params()
    assert np.array_equal(w, w0) and b == b0
    # (the drift: the C library's log1p summed in order against numpy's, see nb_add)
    assert np.allclose(fast.drift, slow.drift, rtol=1e-12, atol=0)
    assert 0 in reads and -1 in reads  # done, and refused a fraction
    assert any(0 < r <= 1500 for r in reads) and any(r > 1500 for r in reads)  # grown, capped
    assert sizes == {1024, 1500} and len(fast._drift_table) == 1500


def test_two_class_weights_from_the_table_equal_those_of_the_kept_logs_bit_for_bit():
    # nb_binary_weights gives score_params' weights straight from whole-number counts: the same
    # differences of the same logs as numpy's; else, nothing written, the status nb_logs gives.
    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(37)
    d, alpha = 1000, 0.8
    table = np.log(np.arange(5000, dtype=np.float64) + alpha)
    c0, c1 = np.floor(rng.random(d) * 5000), np.floor(rng.random(d) * 5000)
    n0, n1 = np.log(np.array([c0.sum(), c1.sum()]) + alpha * d).tolist()
    w = np.zeros(d)
    assert compiled.nb_binary_weights(c0, c1, table, n0, n1, w) == 0
    assert np.array_equal(w, (np.log(c1 + alpha) - n1) - (np.log(c0 + alpha) - n0))
    w[:] = 0.0
    c1[3] = 7000.0  # one row past the table: the larger size either needs
    c0[5] = 6000.0
    assert compiled.nb_binary_weights(c0, c1, table, n0, n1, w) == 7001 and not w.any()
    c0[5] = 0.5  # a fraction in either row
    assert compiled.nb_binary_weights(c0, c1, table, n0, n1, w) == -1 and not w.any()
    with pytest.raises(ValueError, match="differ in length"):
        compiled.nb_binary_weights(c0, c1[:-1], table, n0, n1, w)
    # the learner asks for its weights this way and leaves its kept logs stale meanwhile
    nb = MultinomialNB(d, 2, alpha=alpha).fit(np.vstack([c0 * 0 + 1, c1]), [0, 1])
    nb._log_params()
    nb.update((rng.random(d) < 0.2).astype(float), 0)
    stale = len(nb._stale)
    w, b = nb.score_params()
    assert len(nb._stale) == stale == 1
    nb._score_params = None
    w0, b0 = Learner.score_params(nb)  # via the log-probability matrix (re-logs the kept logs)
    assert np.array_equal(w, w0) and b == b0 and not nb._stale


@pytest.mark.parametrize("k", [2, 3, 9])
def test_compiled_rest_of_the_update_equals_the_python_one_bit_for_bit(monkeypatch, k):
    # With the learner's state nb_add also writes the class total and count and adds the drift
    # bound (fewer than 8 classes; 8 or more are left to Python, which sums them pairwise): the
    # same bits as _update_rest given the kernel's own count update, including the first updates
    # of classes without data (no finite bound: the drift epoch moves instead).
    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(41)
    d = 300
    xs = [(rng.random(d) < 0.2).astype(float) * rng.integers(1, 3, size=d) for _ in range(300)]
    ys = rng.integers(0, k, size=300).tolist()
    add, dones = compiled.nb_add, []

    def counted(*args):
        out = add(*args)
        dones.append(out[2])
        return out

    def learn(kernel) -> MultinomialNB:
        monkeypatch.setattr(compiled, "nb_add", kernel)
        nb = MultinomialNB(d, k, alpha=0.6)  # not fitted: every class starts without data
        for x, y in zip(xs, ys, strict=True):
            nb.update(x, y)
        return nb

    fast = learn(counted)
    slow = learn(lambda *args: (*add(*args[:5]), -1))  # counts only: _update_rest the rest
    for a, b in [
        (fast.total, slow.total),
        (fast.class_count, slow.class_count),
        (fast.drift, slow.drift),
    ]:
        assert np.array_equal(a, b)
    assert fast.drift_epoch == slow.drift_epoch >= k  # each class's first update
    if k < 8:
        assert dones.count(0) == fast.drift_epoch and dones.count(1) == 300 - fast.drift_epoch
    else:
        assert set(dones) == {-1}
    with pytest.raises(IndexError, match="class outside"):
        add(fast.counts[0], xs[0].nonzero()[0].astype(np.int32), np.ones(60), 0.6, None, k,
            fast.total, fast.class_count, fast.drift)  # fmt: skip
