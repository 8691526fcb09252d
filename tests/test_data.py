"""Datasets: the IMDB-shaped generator as specified, its cache, bundled sets, user files, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import naive_bayes

from sum_abm.data import DataConfig, imdb_synthetic_cached, load_dataset, make_imdb_synthetic
from sum_abm.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def _load(spec: dict, *args: str):
    """``load_dataset`` takes a config: the dict becomes one here, as at the command line."""
    return load_dataset(DataConfig(**spec), *args)


def spec_generator(N: int, V: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """REFERENCE_SCENARIOS.md "Data", written literally (dense, 5,000-row chunks, stable argsort)."""
    rng = np.random.default_rng(seed)
    w = 1.0 / (np.arange(1, V + 1) + 2.7)
    logp = np.log(w / w.sum())
    sent = rng.choice(np.arange(20, 800), size=120, replace=False)
    pos, neg = sent[:60], sent[60:]
    z = rng.integers(0, 2, size=N)
    L = rng.integers(100, 251, size=N)
    X = np.zeros((N, V))
    for lo in range(0, N, 5000):
        rows = min(5000, N - lo)
        keys = np.repeat(logp[None, :], rows, axis=0)
        zz = z[lo : lo + rows] == 1
        keys[np.ix_(zz, pos)] += 1.0
        keys[np.ix_(zz, neg)] -= 1.0
        keys[np.ix_(~zz, pos)] -= 1.0
        keys[np.ix_(~zz, neg)] += 1.0
        keys += rng.gumbel(size=(rows, V))
        order = np.argsort(-keys, axis=1, kind="stable")
        for i in range(rows):
            X[lo + i, order[i, : L[lo + i]]] = 1.0
    y_clean = (X[:, pos].sum(axis=1) - X[:, neg].sum(axis=1) > 0).astype(np.int64)
    flip = rng.random(N) < noise
    return X, y_clean ^ flip


@pytest.mark.slow
def test_generator_equals_the_specification_across_chunks():
    X, y = make_imdb_synthetic(5300, 1000, 0.15, 4)  # crosses a 5,000-row chunk boundary
    Xs, ys = spec_generator(5300, 1000, 0.15, 4)
    assert sp.isspmatrix_csr(X) and X.dtype == np.float64
    assert np.array_equal(X.toarray(), Xs)
    assert np.array_equal(y, ys)


@pytest.mark.slow
def test_generator_statistics_match_the_reference():
    X, y, info = make_imdb_synthetic(return_details=True)
    assert X.shape == (50_000, 1_000)
    per_row = X.getnnz(axis=1)
    assert per_row.mean() == pytest.approx(175.05, abs=0.005)
    assert per_row.min() == 100 and per_row.max() == 250
    assert info["flip"].mean() == pytest.approx(0.1473, abs=0.00005)
    assert y[:25_000].mean() == pytest.approx(0.498, abs=0.0005)
    assert y[25_000:].mean() == pytest.approx(0.496, abs=0.0005)
    assert np.array_equal(y, info["y_clean"] ^ info["flip"])
    nb = naive_bayes.MultinomialNB().fit(X[:2000], y[:2000])
    assert nb.score(X[25_000:], y[25_000:]) == pytest.approx(0.852, abs=0.002)


def test_generator_rejects_a_vocabulary_too_small_for_the_sentiment_words():
    with pytest.raises(ValueError):
        make_imdb_synthetic(10, 100)
    with pytest.raises(InputError, match="n_features"):
        _load({"kind": "imdb_synthetic", "n_rows": 100, "n_features": 50})


def test_cache_round_trip_and_corrupt_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SUM_ABM_CACHE", str(tmp_path))
    X1, y1 = imdb_synthetic_cached(700, 300, 0.2, 9)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))
    X2, y2 = imdb_synthetic_cached(700, 300, 0.2, 9)
    X0, y0 = make_imdb_synthetic(700, 300, 0.2, 9)
    assert (X1 != X0).nnz == 0 and (X2 != X0).nnz == 0
    assert np.array_equal(y2, y0) and y2.dtype == np.int64
    imdb_synthetic_cached(700, 300, 0.2, 10)  # other parameters, other file
    assert len(list(tmp_path.glob("*.npz"))) == 2
    files[0].write_bytes(b"not a numpy file")
    X3, y3 = imdb_synthetic_cached(700, 300, 0.2, 9)  # regenerated, not an error
    assert (X3 != X0).nnz == 0 and np.array_equal(y3, y0)
    monkeypatch.setenv("SUM_ABM_CACHE", "off")
    for f in tmp_path.glob("*.npz"):
        f.unlink()
    imdb_synthetic_cached(700, 300, 0.2, 9)
    assert not list(tmp_path.glob("*"))


def test_imdb_splits_in_row_order():
    ds = _load({"kind": "imdb_synthetic", "n_rows": 2000, "init_train_rows": 100})
    X, y = make_imdb_synthetic(2000)
    assert (
        ds.X_init.shape == (100, 1000)
        and ds.X_pool.shape == (900, 1000)
        and ds.X_test.shape == (1000, 1000)
    )
    assert (ds.X_pool != X[100:1000]).nnz == 0 and np.array_equal(ds.y_test, y[1000:])
    s = ds.sample(5)
    assert np.array_equal(s.indices, X[105].indices) and s.key == ("pool", 5)
    Xa, ya = ds.all_train()
    assert (Xa != X[:1000]).nnz == 0 and np.array_equal(ya, y[:1000])


def test_breast_cancer_split_and_scaling_as_documented():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    perm = np.random.default_rng(0).permutation(569)
    test, train = perm[:171], perm[171:]
    mx = X[train].max(axis=0)
    ds = _load({"kind": "breast_cancer", "init_train_rows": 40})
    assert (
        ds.X_test.shape == (171, 30)
        and ds.X_init.shape == (40, 30)
        and ds.X_pool.shape == (358, 30)
    )
    assert np.allclose(ds.X_test, X[test] / mx, rtol=0, atol=0)
    assert np.array_equal(ds.y_test, y[test])
    assert np.array_equal(np.vstack([ds.X_init, ds.X_pool]), X[train] / mx)
    assert ds.X_pool.min() >= 0 and np.vstack([ds.X_init, ds.X_pool]).max() == 1.0


@pytest.mark.parametrize(
    "kind,n,d,k", [("digits", 1797, 64, 10), ("iris", 150, 4, 3), ("wine", 178, 13, 3)]
)
def test_bundled_sets(kind, n, d, k):
    ds = _load({"kind": kind})
    rows = ds.X_init.shape[0] + ds.X_pool.shape[0] + ds.X_test.shape[0]
    assert rows == n and ds.n_features == d and ds.n_classes == k
    assert ds.X_test.shape[0] == round(0.3 * n)
    assert set(np.unique(ds.y_pool)) <= set(range(k))


def test_user_csv_numeric_and_text_and_parquet(tmp_path):
    import polars as pl

    rng = np.random.default_rng(0)
    df = pl.DataFrame(
        {"a": rng.random(50), "b": rng.integers(0, 5, 50), "label": rng.choice(["neg", "pos"], 50)}
    )
    df.write_csv(tmp_path / "d.csv")
    df.write_parquet(tmp_path / "d.parquet")
    ds = _load({"kind": "csv", "path": str(tmp_path / "d.csv"), "init_train_rows": 5})
    dq = _load({"kind": "parquet", "path": str(tmp_path / "d.parquet"), "init_train_rows": 5})
    assert ds.n_features == 2 and ds.n_classes == 2 and ds.X_test.shape == (15, 2)
    assert np.array_equal(ds.X_pool, dq.X_pool) and np.array_equal(ds.y_test, dq.y_test)
    # labels are the sorted distinct values: neg -> 0, pos -> 1; the rows keep their features
    full = df.to_numpy()
    for X, y in ((ds.X_pool, ds.y_pool), (ds.X_test, ds.y_test)):
        for row, label in zip(X, y, strict=False):
            match = [r for r in full if float(r[0]) == row[0] and float(r[1]) == row[1]]
            assert match and match[0][2] == ["neg", "pos"][label]
    text = pl.DataFrame(
        {
            "review": ["good fun film", "bad boring", "great acting", "awful plot"] * 10,
            "y": [1, 0, 1, 0] * 10,
        }
    )
    text.write_csv(tmp_path / "t.csv")
    dt = _load(
        {
            "kind": "csv",
            "path": str(tmp_path / "t.csv"),
            "label_column": "y",
            "text_column": "review",
            "n_features": 64,
            "init_train_rows": 4,
        },
        "multinomial_nb",
    )
    assert sp.issparse(dt.X_pool) and dt.n_features == 64 and dt.X_pool.min() >= 0
    assert set(np.diff(dt.X_test.indptr)) <= {2, 3}  # two or three words per review


@pytest.fixture
def files(tmp_path):
    import polars as pl

    pl.DataFrame({"x": [1.0, -2.0, 3.0, 4.0, 5.0, 6.0], "label": [0, 1, 0, 1, 0, 1]}).write_csv(
        tmp_path / "neg.csv"
    )
    pl.DataFrame({"x": ["a", "b", "c", "d", "e", "f"], "label": [0, 1, 0, 1, 0, 1]}).write_csv(
        tmp_path / "str.csv"
    )
    (tmp_path / "bad.parquet").write_bytes(b"garbage")
    # a blank label in a numeric column, one in a text column, a regression target
    (tmp_path / "blank.csv").write_text("x,label\n1,0\n2,\n3,1\n4,0\n5,1\n6,0\n")
    (tmp_path / "blank_text.csv").write_text("x,label\n1,ham\n2,\n3,spam\n4,ham\n5,spam\n")
    (tmp_path / "frac.csv").write_text("x,label\n1,0.0\n2,1.0\n3,0.25\n4,1.0\n5,0.0\n")
    (tmp_path / "inf.csv").write_text("x,label\n1,0\ninf,1\n3,0\n4,1\n5,0\n6,1\n")
    (tmp_path / "huge.csv").write_text("x,label\n1,0\n1e400,1\n3,0\n4,1\n5,0\n6,1\n")
    (tmp_path / "header.csv").write_text("x,label\n")
    return tmp_path


@pytest.mark.parametrize(
    "spec,learner,match",
    [
        ({"kind": "csv", "path": "{d}/missing.csv"}, "", "data.path: no such file"),
        (
            {"kind": "csv", "path": "{d}/neg.csv", "label_column": "target"},
            "",
            "data.label_column: no column 'target'",
        ),
        ({"kind": "csv", "path": "{d}/str.csv"}, "", "non-numeric feature column"),
        ({"kind": "csv", "path": "{d}/neg.csv"}, "multinomial_nb", "non-negative features"),
        ({"kind": "parquet", "path": "{d}/bad.parquet"}, "", "cannot read parquet"),
        ({"kind": "csv", "path": "{d}/blank.csv"}, "", "1 of 6 rows of 'label' have no label"),
        ({"kind": "csv", "path": "{d}/blank_text.csv"}, "", "1 of 5 rows of 'label' have no"),
        ({"kind": "csv", "path": "{d}/frac.csv"}, "", r"fractional numbers \(e.g. 0.25\)"),
        ({"kind": "csv", "path": "{d}/inf.csv"}, "", "feature columns contain infinite values"),
        ({"kind": "csv", "path": "{d}/huge.csv"}, "", "feature columns contain infinite values"),
        ({"kind": "csv", "path": "{d}/header.csv"}, "", "header.csv has no rows"),
        ({"kind": "breast_cancer", "test_rows": 500}, "", "data.test_rows: expected at most 171"),
        ({"kind": "iris", "train_rows": 1000}, "", "data.train_rows: expected at most 105"),
        ({"kind": "iris"}, "perceptron", "binary but the data has 3 classes"),
    ],
)
def test_bad_input_is_one_typed_line(files, spec, learner, match):
    spec = {k: v.format(d=files) if isinstance(v, str) else v for k, v in spec.items()}
    with pytest.raises(InputError, match=match) as err:
        _load(spec, learner, "s.toml")
    assert "\n" not in str(err.value) and str(err.value).startswith("s.toml: ")


def test_cli_describes_data_and_fails_in_one_line(files, cli):
    r = cli("data", "breast_cancer")
    assert r.returncode == 0, r.stderr
    assert "breast_cancer: 30 features, 2 classes" in r.stdout and "test     171 rows" in r.stdout
    r = cli("data", files / "neg.csv", "--learner", "multinomial_nb")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "non-negative features" in r.stderr


@pytest.mark.parametrize(
    "source, field",
    [
        ("breast_cancer", "n_rows=100"),
        ("wine", "noise=0.2"),
        ("iris", "n_features=20"),
        ("iris", "label_column=a"),
        ("digits", "text_column=t"),
    ],
)
def test_generator_settings_on_read_data_are_refused(cli, source, field):
    """Settings only generated data (or a user's file) has would be ignored on a bundled data
    set: refused instead (a changed default only; data_seed, which shuffles every kind, stays
    accepted)."""
    r = cli("data", source, "--set", field)
    name = field.split("=")[0]
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1
    owner = "'csv' or 'parquet'" if name.endswith("_column") else "'imdb_synthetic'"
    assert f"{name}: only" in r.stderr and f"(kind {owner}) has it" in r.stderr
    assert cli("data", source, "--set", "data_seed=3").returncode == 0


def test_a_setting_left_from_the_scenarios_kind_is_no_error(cli, tmp_path):
    """Switching a generated-data scenario to a user's file keeps its n_rows (now unread): no
    error, as it was not set here; setting n_rows explicitly with the switch is refused."""
    f = tmp_path / "d.csv"
    f.write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(400)))
    switch = ["--set", "data.kind=csv", "--set", f"data.path={f}"]
    ok = cli("data", "quickstart", *switch)
    assert ok.returncode == 0 and "d.csv: 1 features, 2 classes" in ok.stdout, ok.stderr
    r = cli("data", "quickstart", *switch, "--set", "data.n_rows=100")
    assert r.returncode == 2 and "data.n_rows: only generated data" in r.stderr
    assert r.stderr.count("\n") == 1


def test_cli_refuses_for_a_scenario_what_its_run_refuses(cli, tmp_path):
    """A scenario whose initial rows cannot be fitted (none at all here) is refused by ``data``
    as by ``run``, in the same line; the same data with initial rows is described."""
    text = (ROOT / "scenarios" / "quickstart.toml").read_text()
    f = tmp_path / "s.toml"
    f.write_text(text.replace("init_train_portion = 0.08", "init_train_portion = 0.0"))
    over = ["--set", "data.n_rows=400"]
    r = cli("data", f, *over)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1
    assert "the initial model cannot be fitted on 0 rows" in r.stderr
    ran = cli("run", f, *over, "--out", tmp_path / "o", "--no-report", "--no-baseline")
    assert ran.returncode == 2 and ran.stderr == r.stderr
    ok = cli("data", f, *over, "--set", "data.init_train_rows=20")
    assert ok.returncode == 0 and "init      20 rows" in ok.stdout, ok.stderr


def test_imdb_splits_share_the_generated_rows():
    # The splits are views on the generated CSR arrays, not copies (scipy's constructor copies a
    # view smaller than half of its base; S1 lost ~55 MB to that).
    ds = load_dataset(DataConfig(kind="imdb_synthetic", n_rows=2000, init_train_portion=0.08))
    base = ds.X_test.data.base
    for M in (ds.X_init, ds.X_pool, ds.X_test):
        assert np.shares_memory(M.data, base) and np.shares_memory(
            M.indices, ds.X_test.indices.base
        )
        M.check_format(full_check=True)
    assert ds.X_init.shape[0] + ds.X_pool.shape[0] == 1000


def test_whole_numbers_written_as_floats_are_classes(tmp_path):
    (tmp_path / "w.csv").write_text("x,label\n1,0.0\n2,1.0\n3,0.0\n4,1.0\n5,0.0\n6,1.0\n")
    ds = _load({"kind": "csv", "path": str(tmp_path / "w.csv"), "init_train_rows": 2})
    assert ds.n_classes == 2
    assert sorted(np.concatenate([ds.y_init, ds.y_pool, ds.y_test]).tolist()) == [0, 0, 0, 1, 1, 1]
