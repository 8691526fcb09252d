"""The on-disk cache of initial fits (sum_abm.data.fits): a restored fit equals a fresh one."""

from __future__ import annotations

import numpy as np

from sum_abm.contract.state import learner_state
from sum_abm.data import DataConfig, load_dataset
from sum_abm.data.fits import fit_cached
from sum_abm.learners import make_learner


def _data():
    return load_dataset(DataConfig(kind="imdb_synthetic", n_rows=800, init_train_portion=0.2))


def test_restored_fit_equals_fresh_fit(tmp_path, monkeypatch):
    monkeypatch.setenv("SUM_ABM_CACHE", str(tmp_path))
    ds = _data()
    for kind in ("sgd_perceptron", "perceptron", "multinomial_nb", "nearest_centroid"):
        fresh = make_learner(kind, ds.n_features, ds.n_classes)
        fresh.fit(ds.X_init, ds.y_init)
        first = make_learner(kind, ds.n_features, ds.n_classes)
        fit_cached(first, ds.X_init, ds.y_init, kind)  # fits and writes
        second = make_learner(kind, ds.n_features, ds.n_classes)
        fit_cached(second, ds.X_init, ds.y_init, kind)  # restores
        assert learner_state(first) == learner_state(fresh) == learner_state(second), kind
        assert type(second.snapshot()[1][-1]) is type(fresh.snapshot()[1][-1])
        assert np.array_equal(second.predict(ds.X_test), fresh.predict(ds.X_test))
    assert len(list(tmp_path.glob("fit-*.npz"))) == 4


def test_other_rows_or_params_miss_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SUM_ABM_CACHE", str(tmp_path))
    ds = _data()
    a = make_learner("sgd_perceptron", ds.n_features, 2)
    fit_cached(a, ds.X_init, ds.y_init, "sgd_perceptron")
    b = make_learner("sgd_perceptron", ds.n_features, 2)
    fit_cached(b, ds.X_init[:-1], ds.y_init[:-1], "sgd_perceptron")
    c = make_learner("sgd_perceptron", ds.n_features, 2, alpha=1e-3)
    fit_cached(c, ds.X_init, ds.y_init, "sgd_perceptron-alpha")
    assert len(list(tmp_path.glob("fit-*.npz"))) == 3
    assert not np.array_equal(a.w, c.w)


def test_unreadable_cache_file_is_refitted(tmp_path, monkeypatch):
    monkeypatch.setenv("SUM_ABM_CACHE", str(tmp_path))
    ds = _data()
    a = make_learner("sgd_perceptron", ds.n_features, 2)
    fit_cached(a, ds.X_init, ds.y_init, "k")
    (path,) = tmp_path.glob("fit-*.npz")
    path.write_bytes(b"not a zip file")
    b = make_learner("sgd_perceptron", ds.n_features, 2)
    fit_cached(b, ds.X_init, ds.y_init, "k")
    assert learner_state(a) == learner_state(b)


def test_generated_splits_are_named_prefixes_of_the_generated_rows():
    # the fit cache names init and all-data rows "rows 0..n of the generator's key": check that
    # holds for the splits load_dataset makes, including a truncated train part
    from sum_abm.data import imdb_synthetic_cached

    for cfg in (
        DataConfig(kind="imdb_synthetic", n_rows=800, init_train_portion=0.2),
        DataConfig(kind="imdb_synthetic", n_rows=800, init_train_rows=50, train_rows=300),
    ):
        ds = load_dataset(cfg)
        X, y = imdb_synthetic_cached(cfg.n_rows, cfg.n_features, cfg.noise, cfg.data_seed)
        assert ds.cache["rows_origin"].startswith("imdb_synthetic-v")
        for Xs, ys in ((ds.X_init, ds.y_init), ds.all_train()):
            n = len(ys)
            assert (Xs != X[:n]).nnz == 0 and np.array_equal(ys, y[:n])
        assert len(ds.all_train()[1]) == (300 if cfg.train_rows else 400)


def test_rows_key_replaces_the_row_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("SUM_ABM_CACHE", str(tmp_path))
    ds = _data()
    a = make_learner("sgd_perceptron", ds.n_features, 2)
    fit_cached(a, ds.X_init, ds.y_init, "k", rows_key="src-rows0-160")
    b = make_learner("sgd_perceptron", ds.n_features, 2)
    fit_cached(b, ds.X_init, ds.y_init, "k", rows_key="src-rows0-160")  # restored by name
    c = make_learner("sgd_perceptron", ds.n_features, 2)
    fit_cached(c, ds.X_init[:-1], ds.y_init[:-1], "k", rows_key="src-rows0-159")
    assert learner_state(a) == learner_state(b)
    assert len(list(tmp_path.glob("fit-*.npz"))) == 2
