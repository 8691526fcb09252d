"""Learners agree with scikit-learn (one ``partial_fit`` at a time) on several data sets, and the
incremental test accuracy always equals a full re-evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import linear_model, naive_bayes, neighbors

from sum_abm.data import make_imdb_synthetic
from sum_abm.learners import LEARNERS, Sample, as_sample, make_learner


def datasets():
    from sklearn.datasets import load_breast_cancer, load_digits, load_wine

    X, y = make_imdb_synthetic(1200, 200, 0.15, 3)
    out = {"imdb": (X, y)}
    for name, loader in (
        ("breast_cancer", load_breast_cancer),
        ("wine", load_wine),
        ("digits", load_digits),
    ):
        Xd, yd = loader(return_X_y=True)
        Xd = Xd / np.maximum(Xd.max(axis=0), 1e-12)
        p = np.random.default_rng(len(yd)).permutation(
            len(yd)
        )  # the bundled files are sorted by class
        out[name] = (Xd[p], yd[p])
    return out


DATA = datasets()


def binary(name):
    X, y = DATA[name]
    return X, (y % 2 if y.max() > 1 else y)  # digits: even vs odd


@pytest.mark.parametrize("name", ["imdb", "breast_cancer", "wine", "digits"])
def test_multinomial_nb_matches_partial_fit(name):
    X, y = DATA[name]
    k = int(y.max() + 1)
    ours = make_learner("multinomial_nb", X.shape[1], k).fit(X[:20], y[:20])
    ref = naive_bayes.MultinomialNB().partial_fit(X[:20], y[:20], classes=np.arange(k))
    n = min(400, X.shape[0] - 60)
    Xt = X[n:]
    for i in range(20, n):
        ours.update(X[i], int(y[i]))
        ref.partial_fit(X[i : i + 1], y[i : i + 1])
        if i % 50 == 0:
            assert np.array_equal(ours.predict(Xt), ref.predict(Xt))
    assert np.array_equal(ours.predict(Xt), ref.predict(Xt))
    assert np.abs(ours.predict_log_proba(Xt) - ref.predict_log_proba(Xt)).max() <= 1e-9
    assert all(ours.predict_one(Xt[i]) == p for i, p in enumerate(ref.predict(Xt[:30])))


@pytest.mark.parametrize("name", ["imdb", "breast_cancer", "digits"])
def test_perceptron_matches_sklearn_one_partial_fit_at_a_time(name):
    X, y = binary(name)
    X = (
        X.toarray() if sp.issparse(X) else X
    )  # on sparse input scikit-learn damps the intercept step
    ours = make_learner("perceptron", X.shape[1])
    ref = linear_model.Perceptron(eta0=1.0)
    ref.partial_fit(X[:1], y[:1], classes=[0, 1])
    assert ours.update(X[0], int(y[0])) == np.count_nonzero(X[0]) + 1  # w on the non-zeros, and b
    for i in range(1, 300):
        ours.update(X[i], int(y[i]))
        ref.partial_fit(X[i : i + 1], y[i : i + 1])
        assert ours.predict_one(X[i]) == ref.predict(X[i : i + 1])[0]
    assert np.array_equal(ours.w, ref.coef_.ravel()) and ours.b == ref.intercept_[0]
    assert np.array_equal(ours.predict(X[300:]), ref.predict(X[300:]))
    assert np.array_equal(ours.predict(sp.csr_matrix(X[300:])), ref.predict(X[300:]))


@pytest.mark.parametrize("name", ["imdb", "breast_cancer", "digits"])
def test_sgd_perceptron_reproduces_the_reference_settings_exactly(name):
    X, y = binary(name)
    kw = dict(loss="perceptron", learning_rate="optimal", penalty=None, random_state=7)
    ref = linear_model.SGDClassifier(**kw).fit(X[:100], y[:100])
    ours = make_learner("sgd_perceptron", X.shape[1], random_state=7, sparse=sp.issparse(X)).fit(
        X[:100], y[:100]
    )
    for i in range(100, 400):
        ours.update(X[i], int(y[i]))
        ref.partial_fit(X[i : i + 1], y[i : i + 1])
    # bit for bit: the same eta schedule, steps and intercept decay as scikit-learn's plain SGD
    assert (
        np.array_equal(ours.w, ref.coef_.ravel())
        and ours.b == ref.intercept_[0]
        and ours.t == ref.t_
    )
    assert np.array_equal(ours.predict(X[400:]), ref.predict(X[400:]))


def test_sgd_perceptron_from_the_first_partial_fit():
    X, y = binary("breast_cancer")
    ref = linear_model.SGDClassifier(
        loss="perceptron", learning_rate="optimal", penalty=None, random_state=0
    )
    ours = make_learner("sgd_perceptron", X.shape[1], sparse=False)
    ref.partial_fit(X[:1], y[:1], classes=[0, 1])
    ours.update(X[0], int(y[0]))
    for i in range(1, 200):
        ref.partial_fit(X[i : i + 1], y[i : i + 1])
        ours.update(X[i], int(y[i]))
    assert np.array_equal(ours.w, ref.coef_.ravel()) and ours.b == ref.intercept_[0]


@pytest.mark.parametrize("name", ["imdb", "breast_cancer", "wine", "digits"])
def test_nearest_centroid_matches_a_refit_on_all_data_seen(name):
    X, y = DATA[name]
    k = int(y.max() + 1)
    ours = make_learner("nearest_centroid", X.shape[1], k).fit(X[:40], y[:40])
    n = min(300, X.shape[0] - 40)
    for i in range(40, n):
        ours.update(X[i], int(y[i]))
        if i % 60 == 0:
            ref = neighbors.NearestCentroid().fit(X[: i + 1], y[: i + 1])
            assert np.array_equal(ours.predict(X[n:]), ref.predict(X[n:]))
    ref = neighbors.NearestCentroid().fit(X[:n], y[:n])
    assert np.allclose(ours.centroids, ref.centroids_, rtol=1e-12, atol=1e-12)
    assert np.array_equal(ours.predict(X[n:]), ref.predict(X[n:]))


@pytest.mark.parametrize("name", ["wine", "digits"])
def test_nearest_centroid_never_predicts_a_class_without_data(name):
    """Initial rows from two of the classes: like scikit-learn refitted on them, no other class is
    predicted (a centroid at the origin won the rows near 0); each class joins at its first
    sample, and the margin bound of every cached class is dropped then (its score was -inf)."""
    X, y = DATA[name]
    k = int(y.max() + 1)
    seen = np.isin(y, [0, 1])
    ours = make_learner("nearest_centroid", X.shape[1], k).fit(X[seen][:40], y[seen][:40])
    ref = neighbors.NearestCentroid().fit(X[seen][:40], y[seen][:40])
    assert np.array_equal(ours.predict(X), ref.predict(X)) and set(ours.predict(X)) <= {0, 1}
    rows = list(np.flatnonzero(seen)[:40])
    for i in np.flatnonzero(~seen)[:30]:  # the other classes' first samples
        epoch = ours.drift_epoch
        first = ours.n[int(y[i])] == 0
        ours.update(X[i], int(y[i]))
        assert (ours.drift_epoch > epoch) == bool(first)
        rows.append(i)
        ref = neighbors.NearestCentroid().fit(X[rows], y[rows])
        assert np.array_equal(ours.predict(X), ref.predict(X))


def test_nearest_centroid_float_rule_and_ties():
    m = make_learner("nearest_centroid", 2, 2).fit(np.array([[0.1, 0.2], [1.0, 1.0]]), [0, 1])
    c, n = m.centroids[0].copy(), 1
    for x in ([0.3, 0.7], [0.11, -0.5], [2.0, 0.0]):
        assert m.update(x, 0) == 3
        c = (c * n + np.array(x)) / (n + 1)  # the reference's order of operations, float64
        n += 1
        assert np.array_equal(m.centroids[0], c) and m.n[0] == n
    tie = make_learner("nearest_centroid", 2, 2).fit(np.array([[0.0, 0.0], [2.0, 0.0]]), [0, 1])
    assert tie.predict_one([1.0, 0.0]) == 0 and tie.predict([[1.0, 0.0], [1.5, 0.0]]).tolist() == [
        0,
        1,
    ]


def test_perceptron_integer_weights_and_gas_count():
    m = make_learner("perceptron", 4, learning_rate=0.6, integer_weights=True)
    assert m.update([0.0, 1.0, 0.0, 2.0], 1) == 3  # two weights and the bias
    assert m.w.tolist() == [0.0, 1.0, 0.0, 1.0] and m.b == 1.0
    v = m.version
    assert m.update([0.0, 1.0, 0.0, 2.0], 1) == 0 and m.version == v  # right: nothing changes


def test_snapshot_restore_and_version():
    X, y = DATA["imdb"]
    for kind in LEARNERS:
        m = make_learner(kind, X.shape[1]).fit(X[:50], y[:50])
        snap = m.snapshot()
        before = m.predict(X[600:])
        for i in range(50, 120):
            m.update(X[i], int(y[i]))
        v = m.version
        m.restore(snap)
        assert m.version > v
        assert np.array_equal(m.predict(X[600:]), before)
        m.update(X[50], int(y[50]))
        m.restore(snap)  # a snapshot stays usable after the model moved on
        assert np.array_equal(m.predict(X[600:]), before)


def test_as_sample_accepts_dense_csr_and_samples():
    s = as_sample([0.0, 2.5, 0.0, -1.0])
    assert (
        s.indices.tolist() == [1, 3]
        and s.values.tolist() == [2.5, -1.0]
        and s.indices.dtype == np.int32
    )
    r = as_sample(sp.csr_matrix(np.array([[0.0, 2.5, 0.0, -1.0]])))
    assert r.indices.tolist() == [1, 3] and r.values.tolist() == [2.5, -1.0]
    k = Sample(np.array([1], dtype=np.int32), np.array([1.0]), key=("pool", 3))
    assert as_sample(k) is k


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        make_learner("svm", 3)
    with pytest.raises(ValueError):
        make_learner("perceptron", 3, 3)  # binary only
    m = make_learner("multinomial_nb", 3)
    with pytest.raises(ValueError):
        m.update([1.0, -1.0, 0.0], 0)
    with pytest.raises(ValueError):
        m.update([1.0, 1.0, 0.0], 2)
    with pytest.raises(ValueError):
        m.set_test_set(np.ones((2, 4)), [0, 1])


@pytest.mark.slow
def test_incremental_accuracy_skips_most_of_the_work():
    X, y = make_imdb_synthetic(8000, 1000, 0.15, 0)
    Xt, yt = X[4000:], y[4000:]
    for kind in ("multinomial_nb", "nearest_centroid", "perceptron"):
        m = make_learner(kind, 1000).fit(X[:500], y[:500])
        m.set_test_set(Xt, yt)
        for i in range(500, 700):
            m.update(X[i], int(y[i]))
            assert m.test_accuracy() == m.score(Xt, yt)
        st_ = m._evaluator.stats
        if (
            kind != "perceptron"
        ):  # rows near the boundary, and a full pass now and then: not 4,000 per update
            assert st_["full"] * 4000 + st_["rescored_rows"] < 0.25 * 200 * 4000, st_
        else:  # a mistake moves the touched columns; a right guess changes nothing
            assert st_["columns"] > 20 and st_["full"] <= 10, st_


def test_incremental_accuracy_when_a_class_is_first_seen_late():
    X, y = DATA["wine"]
    first = np.flatnonzero(y != 2)[:20]
    for kind in ("multinomial_nb", "nearest_centroid"):
        m = make_learner(kind, X.shape[1], 3).fit(
            X[first], y[first]
        )  # class 2 unseen: log-prior -inf
        m.set_test_set(X[120:], y[120:])
        assert m.test_accuracy() == m.score(X[120:], y[120:])
        for i in range(60):
            m.update(X[i], int(y[i]))
            assert m.test_accuracy() == m.score(X[120:], y[120:])
        assert m.test_accuracy() > 0.5


PREFIT = {}


def prefit(kind, name):
    """A fitted learner per (kind, data): hypothesis examples restore it instead of refitting."""
    if (kind, name) not in PREFIT:
        X, y = binary(name) if kind in ("perceptron", "sgd_perceptron") else DATA[name]
        params = {"integer_weights": True} if kind == "perceptron" else {}
        m = make_learner(kind, X.shape[1], int(y.max() + 1), **params).fit(X[:30], y[:30])
        PREFIT[kind, name] = (m.snapshot(), X, y, params)
    snap, X, y, params = PREFIT[kind, name]
    m = make_learner(kind, X.shape[1], int(y.max() + 1), **params)
    m.restore(snap)
    return m, X, y


@pytest.mark.slow
@settings(max_examples=1000)
@given(
    st.sampled_from(sorted(LEARNERS)),
    st.sampled_from(["imdb", "wine", "digits"]),
    st.lists(st.one_of(st.integers(0, 399), st.just(-1)), min_size=1, max_size=30),
    st.booleans(),
)
def test_incremental_test_accuracy_equals_full_evaluation(kind, name, ops, dense_test):
    m, X, y = prefit(kind, name)
    n_train = int(0.6 * len(y))
    Xt, yt = X[n_train : n_train + 300], y[n_train : n_train + 300]
    if dense_test and sp.issparse(Xt):
        Xt = Xt.toarray()
    m.set_test_set(Xt, yt)
    snap = m.snapshot()
    for r in ops:
        if r < 0:
            m.restore(snap)  # the prediction market resets its model
        else:
            m.update(X[r % n_train], int(y[r % n_train]))
        assert m.test_accuracy() == float(np.mean(m.predict(Xt) == yt))


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 2**31 - 1), st.sampled_from(["perceptron", "sgd_perceptron", "multinomial_nb"])
)
def test_update_writes_says_what_update_will_write(seed, kind):
    """The gas view of an add: whether the model changes, how many slots (weights and intercept,
    or class counts) go from zero to non-zero and back to zero, told before the update and checked
    against it. Binary features on few dimensions: perceptron weights cross zero often."""
    rng = np.random.default_rng(seed)
    n = 12
    learner = make_learner(kind, n, 2)

    def slots(y):
        if kind == "multinomial_nb":  # the class's counts, then its sample count and feature total
            return np.append(learner.counts[y], [learner.class_count[y], learner.total[y]])
        return np.append(learner.w, learner.b)

    seen = set()
    for _ in range(40):
        idx = np.sort(rng.choice(n, size=int(rng.integers(1, 6)), replace=False)).astype(np.int32)
        s = Sample(idx, np.ones(len(idx)))
        y = int(rng.integers(2))
        before = slots(y)
        changes, new, cleared = learner.update_writes(s, y)
        assert (learner.update(s, y) > 0) == changes
        after = slots(y)
        where = (
            np.append(idx, n) if kind != "multinomial_nb" else np.append(idx, [n, n + 1])
        )  # and the extra slots
        assert new == int(np.count_nonzero((before[where] == 0) & (after[where] != 0)))
        assert cleared == int(np.count_nonzero((before[where] != 0) & (after[where] == 0)))
        seen.add((changes, new > 0, cleared > 0))
    if kind == "perceptron":
        assert (True, False, True) in seen or (True, True, True) in seen  # weights did cross zero


@pytest.mark.parametrize("name", ["perceptron", "sgd_perceptron"])
def test_linear_update_keeps_the_decision_it_tested(name):
    # The market's claim book takes a new contribution's score from the update's own test when
    # the update changed nothing: it must be the sample's decision_one with the model as it is.
    X, y = make_imdb_synthetic(n_rows=300, n_features=200, seed=3)
    L = make_learner(name, 200)
    kept = 0
    for i in range(300):
        s = as_sample(X[i])
        v0 = L.version
        L.update(s, int(y[i]))
        assert L.last_decision[0] is s
        if L.version == v0:
            kept += 1
            assert L.last_decision[1] == L.decision_one(s)
    assert 0 < kept < 300  # both kinds of update were seen


def test_a_stale_build_turns_the_compiled_loops_off(monkeypatch):
    # A checkout updated without reinstalling keeps a _kernels built from an older _kernels.c:
    # every loop then runs on its numpy path (with a warning that says how to rebuild), instead
    # of an AttributeError at import or a loop of the old source.
    import importlib.util
    import sys
    import types

    import sum_abm.learners._compiled as compiled

    if compiled.BUILT:  # LOOPS names every loop the source defines
        assert set(compiled.LOOPS) == {n for n in dir(compiled._kernels) if not n.startswith("_")}
    fake = types.ModuleType("sum_abm.learners._kernels")
    monkeypatch.setitem(sys.modules, "sum_abm.learners._kernels", fake)

    def load():
        spec = importlib.util.spec_from_file_location("_compiled_again", compiled.__file__)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    for name in compiled.LOOPS[:-1]:
        setattr(fake, name, object())
    with pytest.warns(RuntimeWarning, match=f"older _kernels.c .no {compiled.LOOPS[-1]}"):
        stale = load()
    assert not stale.BUILT and stale.walk_claims is None and stale.dry_wakes is None
    setattr(fake, compiled.LOOPS[-1], object())
    whole = load()
    assert whole.BUILT and whole.walk_claims is fake.walk_claims
