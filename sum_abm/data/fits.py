"""Fitted initial models cached on disk beside the generated data.

A fit is deterministic given its rows, labels, learner kind and parameters (scikit-learn's
``SGDClassifier`` included: its ``random_state`` is a parameter), so the fitted parameters are
stored under a hash of exactly those, plus the versions of the code that fits. S1 fits twice
(the initial model and the all-data model for ``accuracy_all_data``), 1.4 s each, in every run;
from the cache a fit costs the hash of its rows (~50 ms for 25,000 rows) and one small file read.

The cache lives in :func:`~sum_abm.data.imdb.cache_dir` (``SUM_ABM_CACHE=off`` disables it); a
file that cannot be read or written is skipped silently and the model is fitted again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from sum_abm.atomic import write_with
from sum_abm.data.imdb import cache_dir

FIT_CACHE_VERSION = 1  # bump when a learner's fit or state layout changes


def _digest(X: Any, y: np.ndarray, tag: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(tag.encode())
    if sp.issparse(X):
        X = X.tocsr()
        h.update(f"csr{X.shape}".encode())
        parts = (X.indptr - X.indptr[0], X.indices, X.data)
    else:
        X = np.ascontiguousarray(X, dtype=np.float64)
        h.update(f"dense{X.shape}".encode())
        parts = (X,)
    for a in (*parts, np.asarray(y, dtype=np.int64)):
        h.update(a.dtype.str.encode())
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("numpy", "scikit-learn"):
        try:
            out.append(version(pkg))
        except PackageNotFoundError:  # pragma: no cover
            out.append("?")
    return "-".join(out)


def _save(path: Path, key: str, state: tuple) -> None:
    arrays = {f"s{i}": np.asarray(v) for i, v in enumerate(state)}
    scalar = np.array([not isinstance(v, np.ndarray) for v in state])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_with(path, lambda fh: np.savez(fh, key=np.array(key), scalar=scalar, **arrays))
    except OSError:
        pass  # a cache that cannot be written is only slower next time


def _load(path: Path, key: str) -> tuple | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            if str(f["key"]) != key:
                return None
            scalar = f["scalar"]
            return tuple(
                f[f"s{i}"].item() if scalar[i] else f[f"s{i}"].copy() for i in range(len(scalar))
            )
    except (OSError, ValueError, KeyError):
        return None


def fit_cached(learner: Any, X: Any, y: Any, params_key: str, rows_key: str | None = None) -> None:
    """Fit ``learner`` on ``(X, y)``, or restore the parameters of an identical earlier fit.

    ``params_key`` names the learner's kind and parameters. ``rows_key``, when given, names the rows
    and labels exactly (e.g. a generated data set's parameters and row range) and replaces hashing
    them (~50 ms for 25,000 rows). The learner's state is a tuple of
    arrays and Python scalars (``Learner._state``); restoring goes through ``Learner.restore`` so
    version counters move as after any restore. Errors of the fit (e.g. one class) propagate.
    """
    d = cache_dir()
    if d is None:
        learner.fit(X, y)
        return
    rows = f"rows={rows_key}" if rows_key is not None else _digest(X, y, params_key)
    # The learner's shape too: the same rows fit a 2-class and a 3-class model differently (a
    # data set's classes may be missing from its initial rows), and restore takes what it finds.
    shape = f"{getattr(learner, 'n_features', '?')}x{getattr(learner, 'n_classes', '?')}"
    key = f"fit-v{FIT_CACHE_VERSION}-{_versions()}-{params_key}-{shape}-{rows}"
    path = d / f"fit-{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"
    state = _load(path, key) if path.is_file() else None
    if state is not None:
        learner.restore((learner.version, state))
        return
    learner.fit(X, y)
    _save(path, key, learner.snapshot()[1])
