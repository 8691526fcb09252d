"""Learners agree with scikit-learn; the IMDB-shaped generator has the documented statistics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import linear_model, naive_bayes, neighbors

from sum_abm.data import make_imdb_synthetic
from sum_abm.learners import make_learner


def datasets():
    from sklearn.datasets import load_breast_cancer, load_wine

    X, y = make_imdb_synthetic(1200, 200, 0.15, 3)
    Xb, yb = load_breast_cancer(return_X_y=True)
    Xb = Xb / Xb.max(axis=0)
    Xw, yw = load_wine(return_X_y=True)
    Xw = Xw / Xw.max(axis=0)
    pb, pw = np.random.default_rng(0).permutation(len(yb)), np.random.default_rng(1).permutation(len(yw))
    Xb, yb, Xw, yw = Xb[pb], yb[pb], Xw[pw], yw[pw]  # the bundled files are sorted by class
    return {"imdb": (X, y), "breast_cancer": (Xb, yb), "wine": (Xw, yw)}


DATA = datasets()


@pytest.mark.parametrize("name", list(DATA))
def test_multinomial_nb_matches_partial_fit(name):
    X, y = DATA[name]
    k = int(y.max() + 1)
    ours = make_learner("multinomial_nb", X.shape[1], k).fit(X[:20], y[:20])
    ref = naive_bayes.MultinomialNB().partial_fit(X[:20], y[:20], classes=np.arange(k))
    n = min(220, X.shape[0] - 40)
    for i in range(20, n):
        ours.update(X[i], int(y[i]))
        ref.partial_fit(X[i : i + 1], y[i : i + 1])
    Xt = X[n:]
    assert np.array_equal(ours.predict(Xt), ref.predict(Xt))
    assert np.allclose(ours.predict_log_proba(Xt), ref.predict_log_proba(Xt), atol=1e-9)


@pytest.mark.parametrize("name", ["breast_cancer", "imdb"])
def test_perceptron_matches_sklearn_on_dense_data(name):
    X, y = DATA[name]
    X = X.toarray() if sp.issparse(X) else X
    ours = make_learner("perceptron", X.shape[1])
    ref = linear_model.Perceptron(eta0=1.0)
    ref.partial_fit(X[:1], y[:1], classes=[0, 1])
    ours.update(X[0], int(y[0]))
    for i in range(1, 300):
        ours.update(X[i], int(y[i]))
        ref.partial_fit(X[i : i + 1], y[i : i + 1])
        assert ours.predict_one(X[i]) == ref.predict(X[i : i + 1])[0]
    assert np.array_equal(ours.predict(X[300:]), ref.predict(X[300:]))


@pytest.mark.parametrize("name", ["imdb", "breast_cancer"])
def test_sgd_perceptron_matches_reference_settings(name):
    X, y = DATA[name]
    kw = dict(loss="perceptron", learning_rate="optimal", penalty=None, random_state=7)
    ref = linear_model.SGDClassifier(**kw).fit(X[:100], y[:100])
    ours = make_learner("sgd_perceptron", X.shape[1], random_state=7, sparse=sp.issparse(X)).fit(X[:100], y[:100])
    for i in range(100, 400):
        ours.update(X[i], int(y[i]))
        ref.partial_fit(X[i : i + 1], y[i : i + 1])
    assert np.allclose(ours.w, ref.coef_.ravel(), rtol=1e-9, atol=1e-9)
    assert np.array_equal(ours.predict(X[400:]), ref.predict(X[400:]))


@pytest.mark.parametrize("name", list(DATA))
def test_nearest_centroid_matches_refit(name):
    X, y = DATA[name]
    k = int(y.max() + 1)
    ours = make_learner("nearest_centroid", X.shape[1], k).fit(X[:40], y[:40])
    n = min(200, X.shape[0] - 40)
    for i in range(40, n):
        ours.update(X[i], int(y[i]))
    ref = neighbors.NearestCentroid().fit(X[:n], y[:n])
    Xt = X[n:]
    assert np.array_equal(ours.predict(Xt), ref.predict(Xt))


@settings(max_examples=50)
@given(st.lists(st.integers(0, 599), min_size=1, max_size=40), st.sampled_from(["perceptron", "multinomial_nb", "nearest_centroid"]))
def test_cached_test_accuracy_equals_full_evaluation(rows, kind):
    X, y = DATA["imdb"]
    m = make_learner(kind, X.shape[1]).fit(X[:10], y[:10])
    m.set_test_set(X[600:900], y[600:900])
    for r in rows:
        m.update(X[r], int(y[r]))
        assert m.test_accuracy() == pytest.approx(float(np.mean(m.predict(X[600:900]) == y[600:900])), abs=0)
