"""Datasets the market trades: generated text, scikit-learn's bundled sets, or user CSV/Parquet.

:func:`load_dataset` returns a :class:`Dataset` split into the initial training data, the pool that
agents contribute (in order), and the hidden test set. Nothing is downloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from sum_abm.data.config import SKLEARN_KINDS, DataConfig
from sum_abm.data.imdb import (
    imdb_synthetic_cached,
    imdb_synthetic_key,
    make_imdb_synthetic,
    peak_bytes,
)
from sum_abm.errors import InputError
from sum_abm.learners import LEARNERS
from sum_abm.learners.base import Sample

_CSR = frozenset((sp.csr_matrix, sp.csr_array))


@dataclass
class Dataset:
    """Splits of one data set (CSR or dense float64 features; integer labels 0..n_classes-1)."""

    X_init: Any
    y_init: np.ndarray
    X_pool: Any
    y_pool: np.ndarray
    X_test: Any
    y_test: np.ndarray
    n_features: int
    n_classes: int
    name: str = ""
    cache: dict[Any, Any] = field(
        default_factory=dict, repr=False, compare=False
    )  # derived, e.g. fitted models

    @property
    def sparse(self) -> bool:
        return sp.issparse(self.X_pool)

    def sample(self, row: int) -> Sample:
        """Pool row ``row`` as a :class:`Sample` keyed by its row number."""
        X = self.X_pool
        # (every add samples a row: the class test first, before issparse's slower ABC check)
        if X.__class__ in _CSR or sp.issparse(X):
            # the row bounds as Python ints: two numpy scalar reads cost more than the slices
            ptr = self.cache.get("pool_indptr")
            if ptr is None or len(ptr) != len(X.indptr):
                ptr = self.cache["pool_indptr"] = X.indptr.tolist()
            lo, hi = ptr[row], ptr[row + 1]
            return Sample(X.indices[lo:hi], X.data[lo:hi], ("pool", int(row)))
        v = X[row]
        nz = np.flatnonzero(v).astype(np.int32)
        return Sample(nz, v[nz], key=("pool", int(row)))

    def all_train(self) -> tuple[Any, np.ndarray]:
        """Initial data and the whole pool stacked (for the all-data reference accuracy)."""
        X_all = self.cache.get("X_train_view")
        if X_all is not None:  # init and pool are adjacent rows of one CSR: a view, no copy
            return X_all, np.concatenate([self.y_init, self.y_pool])
        if sp.issparse(self.X_pool):
            X = sp.vstack([self.X_init, self.X_pool]).tocsr()
        else:
            X = np.vstack([self.X_init, self.X_pool])
        return X, np.concatenate([self.y_init, self.y_pool])


def _rows(X: Any, a: int, b: int | None = None) -> Any:
    """Rows a..b of X; for CSR a view on the same arrays (no copy of the non-zeros)."""
    if not sp.issparse(X):
        return X[a:b]
    b = X.shape[0] if b is None else min(b, X.shape[0])
    a = min(a, b)
    s, e = X.indptr[a], X.indptr[b]
    # The parts are set on an empty matrix: given to the constructor, a view smaller than half of
    # its base array is copied (scipy's prune), which cost S1 ~55 MB of duplicated rows.
    out = sp.csr_matrix((b - a, X.shape[1]), dtype=X.dtype)
    out.indptr = X.indptr[a : b + 1] - s
    out.indices, out.data = X.indices[s:e], X.data[s:e]
    out.has_sorted_indices = X.has_sorted_indices
    out.has_canonical_format = X.has_canonical_format
    return out


def _split(X: Any, y: np.ndarray, n_train: int, cfg: Any, name: str, source: str) -> Dataset:
    y = np.asarray(y, dtype=np.int64)
    X_train, y_train, X_test, y_test = (
        _rows(X, 0, n_train),
        y[:n_train],
        _rows(X, n_train),
        y[n_train:],
    )
    if cfg.train_rows is not None:
        if cfg.train_rows > len(y_train):
            raise InputError(
                f"{source}: data.train_rows: expected at most {len(y_train)} rows, got {cfg.train_rows}"
            )
        X_train, y_train = _rows(X_train, 0, cfg.train_rows), y_train[: cfg.train_rows]
    if cfg.test_rows is not None:
        if cfg.test_rows > len(y_test):
            raise InputError(
                f"{source}: data.test_rows: expected at most {len(y_test)} rows, got {cfg.test_rows}"
            )
        X_test, y_test = _rows(X_test, 0, cfg.test_rows), y_test[: cfg.test_rows]
    n_init = (
        cfg.init_train_rows
        if cfg.init_train_rows is not None
        else int(len(y_train) * cfg.init_train_portion)
    )
    if n_init > len(y_train):
        raise InputError(
            f"{source}: data.init_train_rows: expected at most {len(y_train)}, got {n_init}"
        )
    if len(y_test) == 0 or len(y_train) - n_init == 0:
        raise InputError(f"{source}: data: the split leaves no test rows or no pool rows")
    n_classes = int(max(y.max() + 1, 2))
    ds = Dataset(
        _rows(X_train, 0, n_init),
        y_train[:n_init],
        _rows(X_train, n_init),
        y_train[n_init:],
        X_test,
        y_test,
        int(X.shape[1]),
        n_classes,
        name,
    )
    ds.cache["X_train_view"] = X_train
    return ds


def _sklearn(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    from sklearn import datasets

    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "digits": datasets.load_digits,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
    }[kind]
    X, y = loader(return_X_y=True)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(0.3 * len(y))) if kind != "breast_cancer" else 171
    # Test rows first in the permutation (REFERENCE_SCENARIOS.md's breast_cancer split), then train.
    order = np.concatenate([perm[n_test:], perm[:n_test]])
    X, y = X[order].astype(np.float64), y[order]
    n_train = len(y) - n_test
    mx = X[:n_train].max(axis=0)
    mx[mx == 0] = 1.0
    return np.clip(X / mx, 0, None), y, n_train  # every feature >= 0, so MultinomialNB works


def _user_file(cfg: Any, source: str) -> tuple[Any, np.ndarray, int]:
    import polars as pl

    path = Path(cfg.path or "")
    if not cfg.path or not path.is_file():
        raise InputError(f"{source}: data.path: no such file {cfg.path!r}")
    try:
        df = pl.read_csv(path) if cfg.kind == "csv" else pl.read_parquet(path)
    except Exception as exc:  # polars raises many types for a malformed file
        raise InputError(
            f"{source}: data.path: cannot read {cfg.kind} file {str(path)!r}: {str(exc).splitlines()[0]}"
        ) from None
    if cfg.label_column not in df.columns:
        raise InputError(
            f"{source}: data.label_column: no column {cfg.label_column!r} in {path.name} (columns: {df.columns})"
        )
    if df.height == 0:
        raise InputError(f"{source}: data.path: {path.name} has no rows (columns: {df.columns})")
    labels = df[cfg.label_column]
    if labels.dtype.is_float():  # a blank cell in a numeric column reads as null or NaN
        labels = labels.fill_nan(None)
    if labels.null_count():
        raise InputError(
            f"{source}: data.label_column: {labels.null_count()} of {len(labels)} rows of "
            f"{cfg.label_column!r} have no label"
        )
    frac = labels.filter(labels != labels.round()) if labels.dtype.is_float() else []
    if len(frac):
        raise InputError(
            f"{source}: data.label_column: {cfg.label_column!r} holds fractional numbers (e.g. "
            f"{frac[0]}): the learners classify, so labels must be classes (whole numbers or text)"
        )
    classes, y = np.unique(labels.to_numpy(), return_inverse=True)
    if cfg.text_column is not None:
        if cfg.text_column not in df.columns:
            raise InputError(
                f"{source}: data.text_column: no column {cfg.text_column!r} in {path.name}"
            )
        from sklearn.feature_extraction.text import HashingVectorizer

        hv = HashingVectorizer(n_features=cfg.n_features, alternate_sign=False, norm=None)
        X = hv.transform(df[cfg.text_column].cast(pl.String).fill_null("").to_list()).tocsr()
    else:
        feats = df.drop(cfg.label_column)
        bad = [c for c, t in feats.schema.items() if not t.is_numeric()]
        if bad:
            raise InputError(
                f"{source}: data: non-numeric feature column(s) {bad}; give data.text_column or drop them"
            )
        X = feats.to_numpy().astype(np.float64)
        if np.isnan(X).any():
            raise InputError(f"{source}: data: feature columns contain missing values")
        if not np.isfinite(X).all():
            raise InputError(
                f"{source}: data: feature columns contain infinite values (inf, or numbers past"
                " 1.8e308)"
            )
    perm = np.random.default_rng(cfg.data_seed).permutation(len(y))
    n_test = max(1, int(round(0.3 * len(y))))
    order = np.concatenate([perm[n_test:], perm[:n_test]])
    return X[order], y[order], len(y) - n_test


def machine_memory() -> int | None:
    """Physical memory of this machine (bytes), or None where the OS does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _check_memory(cfg: Any, source: str) -> None:
    """Refuse generated data larger than the machine's memory before allocating any of it."""
    have = machine_memory()
    need = peak_bytes(cfg.n_rows, cfg.n_features)
    if have is not None and need > have:
        # name the field that drives the estimate: rows (the CSR) or features (the key blocks)
        field = "n_rows" if cfg.n_rows * min(175, cfg.n_features) * 36 >= need / 2 else "n_features"
        raise InputError(
            f"{source}: data.{field}: {cfg.n_rows:,} rows x {cfg.n_features:,} features need about "
            f"{need / 2**30:,.0f} GiB of memory, more than this machine's {have / 2**30:,.0f} GiB; "
            f"expected fewer rows or features"
        )


def load_dataset(cfg: DataConfig, learner_kind: str = "", source: str = "scenario") -> Dataset:
    """Build the splits described by a :class:`DataConfig`, checked for ``learner_kind`` (a key of
    :data:`~sum_abm.learners.LEARNERS`; its data needs: two classes, non-negative features).

    Rows are used in order: the train part (``init`` rows, then the pool agents contribute), then
    the hidden test part. Generated data is cached on disk (see :func:`imdb_synthetic_cached`).
    Raises :class:`InputError` for a missing file, a missing label column, non-numeric features,
    negative features with MultinomialNB, or a split larger than the data.
    """
    if cfg.kind == "imdb_synthetic":
        _check_memory(cfg, source)
        try:
            X, y = imdb_synthetic_cached(cfg.n_rows, cfg.n_features, cfg.noise, cfg.data_seed)
        except ValueError as exc:
            raise InputError(f"{source}: data.n_features: {exc}") from None
        ds = _split(X, y, cfg.n_rows // 2, cfg, "imdb_synthetic", source)
        # init and pool are the generated rows 0.. in order, so their row counts and the generator's
        # key name them exactly: a cached fit is found without hashing the rows (see fits.py)
        ds.cache["rows_origin"] = imdb_synthetic_key(
            cfg.n_rows, cfg.n_features, cfg.noise, cfg.data_seed
        )
    elif cfg.kind in SKLEARN_KINDS:
        X, y, n_train = _sklearn(cfg.kind, cfg.data_seed)
        ds = _split(X, y, n_train, cfg, cfg.kind, source)
    else:
        X, y, n_train = _user_file(cfg, source)
        ds = _split(X, y, n_train, cfg, Path(cfg.path).name, source)
    learner = LEARNERS.get(learner_kind)
    if learner is not None and learner.nonnegative_features:
        for name in ("X_init", "X_pool", "X_test"):
            M = getattr(ds, name)
            if (M.data if sp.issparse(M) else M).min(initial=0) < 0:
                raise InputError(
                    f"{source}: data: {learner.__name__} needs non-negative features ({name} has negatives)"
                )
    if learner is not None and learner.binary and ds.n_classes != 2:
        raise InputError(
            f"{source}: learner.kind: {learner_kind} is binary but the data has {ds.n_classes} classes"
        )
    return ds


__all__ = ["DataConfig", "Dataset", "imdb_synthetic_cached", "load_dataset", "make_imdb_synthetic"]
