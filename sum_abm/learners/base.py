"""The learner interface the contract layer talks to, in the scikit-learn style.

A learner knows nothing of money. One sample is a :class:`Sample` (non-zero indices and values, and
an optional hashable ``key`` the contract uses to identify the data); batches are scipy CSR matrices
or dense arrays. ``version`` increments whenever parameters change, so callers can cache predictions.
Test-set accuracy is cached by version: after an update it costs one vectorised pass over the test
set (a sparse matrix-vector product), never a Python loop over rows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Hashable, NamedTuple

import numpy as np
import scipy.sparse as sp
from scipy.sparse import _sparsetools  # the compiled CSR kernels behind A @ x


def _csr_matvec(n_row, n_col, indptr, indices, data, x, y) -> None:
    """y += A @ x for CSR parts (scipy's compiled kernel)."""
    _sparsetools.csr_matvec(n_row, n_col, indptr, indices, data, x, y)


class Sample(NamedTuple):
    """One data point: non-zero feature ``indices`` (int32, unique), their ``values`` (float64), a ``key``."""

    indices: np.ndarray
    values: np.ndarray
    key: Hashable | None = None


def as_sample(x: Any) -> Sample:
    """A :class:`Sample` from a Sample, a CSR row (1 × d), or a dense 1-D list/array."""
    if isinstance(x, Sample):
        return x
    if sp.issparse(x):
        r = x.tocsr()
        r.sum_duplicates()  # unique indices: updates add with fancy indexing
        return Sample(r.indices.astype(np.int32), r.data.astype(np.float64))
    arr = np.asarray(x, dtype=np.float64).ravel()
    nz = np.flatnonzero(arr).astype(np.int32)
    return Sample(nz, arr[nz])


def as_matrix(X: Any) -> Any:
    """CSR for sparse input, a 2-D float64 array otherwise."""
    if sp.issparse(X):
        return X.tocsr()
    return np.atleast_2d(np.asarray(X, dtype=np.float64))


class Learner(ABC):
    """Uniform interface: fit, update, predict_one, predict, score, test set, snapshot/restore."""

    kind: str = "base"

    def __init__(self, n_features: int, n_classes: int = 2) -> None:
        if n_features < 1 or n_classes < 2:
            raise ValueError("need n_features >= 1 and n_classes >= 2")
        self.n_features = int(n_features)
        self.n_classes = int(n_classes)
        self.version = 0
        # Cumulative upper bound on how far any sample's decision margin can have moved, as
        # (constant, per max-|value|, per sum-|value|) terms; see :meth:`margin_drift`. Each
        # update adds its worst case; a refit or restore starts a new ``drift_epoch``.
        self.drift = np.zeros(3)
        self.drift_epoch = 0
        self._X_test: Any = None
        self._y_test: np.ndarray | None = None
        self._acc_cache: tuple[int, float] | None = None

    # -- to implement --------------------------------------------------------------------------
    @abstractmethod
    def fit(self, X: Any, y: Any) -> "Learner":
        """Initialise from a batch (replaces the state)."""

    @abstractmethod
    def _update(self, s: Sample, y: int) -> int:
        """Learn one sample; return the number of parameters changed (0 if none)."""

    @abstractmethod
    def decision(self, X: Any) -> np.ndarray:
        """Scores, shape (n,) for binary linear models or (n, n_classes)."""

    @abstractmethod
    def _state(self) -> Any: ...

    @abstractmethod
    def _set_state(self, state: Any) -> None: ...

    # -- shared --------------------------------------------------------------------------------
    def update(self, x: Any, y: int) -> int:
        """Learn one sample; returns the number of parameters it touched (for gas)."""
        s = as_sample(x)
        y = int(y)
        if not 0 <= y < self.n_classes:
            raise ValueError(f"label {y} outside 0..{self.n_classes - 1}")
        changed = self._update(s, y)
        if changed:
            self.version += 1
        return changed

    def _labels(self, scores: np.ndarray) -> np.ndarray:
        if scores.ndim == 1:
            return (scores > 0).astype(np.int64)
        return np.argmax(scores, axis=1).astype(np.int64)

    def predict_segments(self, indices: np.ndarray, values: np.ndarray, starts: np.ndarray, lens: np.ndarray,
                         margins: bool = False) -> Any:
        """Classes of many samples stored back to back (CSR parts without a matrix object).

        Row ``i`` is ``indices/values[starts[i] : starts[i] + lens[i]]`` with rows contiguous, so
        ``starts`` plus the end form a CSR ``indptr``. For callers that predict a sliding window of
        stored rows many times (the market's claim book): one call of scipy's compiled CSR kernel,
        no per-call matrix construction or validation. With ``margins``, also each row's decision
        margin (distance of the winning score from the runner-up; for one score, its size).
        """
        n = len(starts)
        W, offset = self._segment_params()
        indptr = np.empty(n + 1, dtype=indices.dtype)
        indptr[:n] = starts
        indptr[n] = starts[-1] + lens[-1] if n else 0
        if W.ndim == 1 or W.shape[0] == 2:
            # One score, or two classes: the sign of the score difference (ties go to class 0).
            w, b = (W, offset) if W.ndim == 1 else (W[1] - W[0], np.ravel(offset)[1] - np.ravel(offset)[0])
            out = np.zeros(n)
            _csr_matvec(n, w.shape[0], indptr, indices, values, np.ascontiguousarray(w), out)
            out += b
            labels = (out > 0).astype(np.int64)
            return (labels, np.abs(out)) if margins else labels
        off = np.ravel(offset)
        out = np.zeros((W.shape[0], n))
        for k in range(W.shape[0]):  # one compiled pass per class beats the multi-vector kernel
            _csr_matvec(n, W.shape[1], indptr, indices, values, np.ascontiguousarray(W[k]), out[k])
        scores = out.T + off
        labels = self._labels(scores)
        if not margins:
            return labels
        top2 = np.partition(scores, -2, axis=1)[:, -2:]
        return labels, top2[:, 1] - top2[:, 0]

    def _segment_params(self) -> tuple[np.ndarray, Any]:
        """(weights over features — (d,) or (k, d) —, additive offset) for :meth:`predict_segments`."""
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        """Classes for a batch (CSR or dense)."""
        X = as_matrix(X)
        if sp.issparse(X) and X.shape[0]:
            X.sort_indices()
            return self.predict_segments(X.indices, X.data, X.indptr[:-1], np.diff(X.indptr))
        return self._labels(self.decision(X))

    @abstractmethod
    def decision_one(self, s: Sample) -> Any:
        """Score(s) of one sample, O(non-zeros)."""

    def predict_one(self, x: Any) -> int:
        """Class of one sample, in O(non-zero features)."""
        d = self.decision_one(as_sample(x))
        if np.ndim(d) == 0:
            return int(d > 0)
        return int(np.argmax(d))

    def decision_margin(self, x: Any) -> float:
        """How far one sample is from the decision boundary (0 = on it)."""
        d = np.asarray(self.decision_one(as_sample(x)), dtype=np.float64)
        if d.ndim == 0:
            return float(abs(d))
        top = np.sort(d)[-2:]
        return float(top[1] - top[0])

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)``."""
        y = np.asarray(y)
        return float(np.mean(self.predict(X) == y)) if len(y) else float("nan")

    def set_test_set(self, X: Any, y: Any) -> None:
        """The hidden test set for :meth:`test_accuracy`."""
        self._X_test = as_matrix(X)
        self._y_test = np.asarray(y, dtype=np.int64)
        self._acc_cache = None

    def test_accuracy(self) -> float:
        """Accuracy on the test set, recomputed (vectorised) only when the parameters changed."""
        if self._X_test is None:
            raise RuntimeError("no test set: call set_test_set first")
        if self._acc_cache is None or self._acc_cache[0] != self.version:
            self._acc_cache = (self.version, self.score(self._X_test, self._y_test))
        return self._acc_cache[1]

    def snapshot(self) -> Any:
        """A copy of the parameters (the prediction market resets its model with it)."""
        return (self.version, self._state())

    def restore(self, snap: Any) -> None:
        version, state = snap
        self._set_state(state)
        self.version += 1  # parameters changed: invalidate caches keyed by version
        self.drift_epoch += 1

    def _add_drift(self, d0: float, d_inf: float, d_l1: float) -> None:
        """Record an update's worst-case margin change (see :meth:`margin_drift`)."""
        if np.isfinite(d0) and np.isfinite(d_inf) and np.isfinite(d_l1):
            self.drift += (d0, d_inf, d_l1)
        else:
            self.drift_epoch += 1  # no finite bound: every cached prediction is stale

    def margin_drift(self, since: np.ndarray, x_inf: np.ndarray, x_l1: np.ndarray) -> np.ndarray:
        """Upper bound on the change of each sample's decision margin since drift ``since``.

        ``since`` is an (n, 3) array of earlier :attr:`drift` values, ``x_inf``/``x_l1`` the samples'
        max-|value| and sum-|value|. A cached class whose margin exceeds this bound is still right.
        """
        d = self.drift[None, :] - since
        return d[:, 0] + d[:, 1] * x_inf + d[:, 2] * x_l1
