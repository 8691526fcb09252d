"""The on-disk cache of initial fits (sum_abm.data.fits): a restored fit equals a fresh one."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from sum_abm.contract.state import learner_state
from sum_abm.data import DataConfig, load_dataset
from sum_abm.data.fits import fit_cached
from sum_abm.learners import make_learner

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.toml"


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


def test_a_model_of_another_shape_misses_the_cache(tmp_path, monkeypatch):
    """The same rows fit a 2-class and a 3-class model (the third class missing from the initial
    rows): each gets its own fit, so the 3-class model predicts from 3 centroids, not a restored
    2-class state (which crashed a run on the first sample of the third class)."""
    monkeypatch.setenv("SUM_ABM_CACHE", str(tmp_path))
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([0, 1, 0, 1])
    two = make_learner("nearest_centroid", 2, 2)
    fit_cached(two, X, y, "nearest_centroid")
    three = make_learner("nearest_centroid", 2, 3)
    fit_cached(three, X, y, "nearest_centroid")
    fresh = make_learner("nearest_centroid", 2, 3)
    fresh.fit(X, y)
    assert learner_state(three) == learner_state(fresh) != learner_state(two)
    three.update(np.array([5.0, 5.0]), 2)  # the third class's first sample
    assert three.predict_one(np.array([5.0, 5.0])) == 2
    assert len(list(tmp_path.glob("fit-*.npz"))) == 2


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


def test_the_all_data_fit_in_a_thread_equals_one_in_the_callers_thread(tmp_path, monkeypatch):
    from sum_abm.market import contract_setup
    from sum_abm.scenario import load_scenario

    monkeypatch.setenv("SUM_ABM_CACHE", "off")  # both fit, neither restores
    sc = load_scenario(QUICKSTART)
    ds = load_dataset(sc.data, sc.learner.kind, sc.name)
    contract_setup.fit_all_data_in_background(sc, ds)
    assert any(isinstance(k, tuple) and k[0] == "pending" for k in ds.cache)
    background = contract_setup.fitted_learner(sc, ds, all_data=True)  # waits for the thread
    assert not any(isinstance(k, tuple) and k[0] == "pending" for k in ds.cache)
    here = make_learner(sc.learner.kind, ds.n_features, ds.n_classes, **sc.learner.params)
    here.fit(*ds.all_train())
    assert learner_state(background) == learner_state(here)
    assert background.score(ds.X_test, ds.y_test) == here.score(ds.X_test, ds.y_test)


def test_an_all_data_fit_that_fails_in_its_thread_fails_the_run(monkeypatch):
    import pytest

    from sum_abm.errors import InputError
    from sum_abm.market import contract_setup
    from sum_abm.market.run import run
    from sum_abm.scenario import load_scenario

    sc = load_scenario(QUICKSTART)
    ds = load_dataset(sc.data, sc.learner.kind, sc.name)
    real = contract_setup.fit_cached
    n_init, threads = len(ds.y_init), []

    def refuse_all_data(learner, X, y, *args):
        if len(y) > n_init:  # the all-data rows only: the initial fit goes through
            threads.append(threading.current_thread())
            raise ValueError("test: no all-data fit")
        real(learner, X, y, *args)

    monkeypatch.setattr(contract_setup, "fit_cached", refuse_all_data)
    with pytest.raises(InputError, match="all-data model cannot be fitted .*test: no all-data fit"):
        run(sc, baseline=False, dataset=ds)
    # tried once, in the background thread: its error, not a second fit's, reached the caller
    assert len(threads) == 1 and threads[0] is not threading.main_thread()
