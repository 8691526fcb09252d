"""The learner interface the contract layer talks to, in the scikit-learn style.

A learner knows nothing of money. One sample is a :class:`Sample` (non-zero indices and values, and
an optional hashable ``key`` the contract uses to identify the data); batches are scipy CSR matrices
or dense arrays. ``version`` increments whenever parameters change, so callers can cache predictions.
Test-set accuracy is kept incrementally (:mod:`sum_abm.learners.evaluation`): after an update only
the test rows whose class could have changed are re-scored, and it always equals ``score``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Iterator
from typing import Any, ClassVar, NamedTuple

import numpy as np
import scipy.sparse as sp
from pydantic import ConfigDict
from scipy.sparse import _sparsetools  # the compiled CSR kernels behind A @ x

import sum_abm.learners._compiled as _compiled
from sum_abm.config import StrictModel


def _csr_matvec(n_row, n_col, indptr, indices, data, x, y) -> None:
    """y += A @ x for CSR parts (scipy's compiled kernel)."""
    _sparsetools.csr_matvec(n_row, n_col, indptr, indices, data, x, y)


class Writes(NamedTuple):
    """What an update writes to contract storage, for its gas: whether the model changes, how many
    slots go from zero to non-zero (a first write costs more) and how many go back to zero (a
    storage refund)."""

    changes: bool
    new_slots: int = 0
    cleared_slots: int = 0


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


def gather_rows(
    starts: np.ndarray, ends: np.ndarray, indices: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ``indices/values[starts[i]:ends[i]]`` copied into one CSR: ``(indptr, indices,
    values)``, ``indptr`` from 0 in the dtype of ``indices``."""
    lens = ends - starts
    indptr = np.zeros(len(lens) + 1, dtype=indices.dtype)
    np.cumsum(lens, out=indptr[1:])
    pos = np.repeat(starts - indptr[:-1], lens) + np.arange(indptr[-1])
    return indptr, indices[pos], values[pos]


def as_matrix(X: Any) -> Any:
    """CSR for sparse input, a 2-D float64 array otherwise."""
    if sp.issparse(X):
        return X.tocsr()
    return np.atleast_2d(np.asarray(X, dtype=np.float64))


def as_csr(X: Any, n_features: int | None = None) -> sp.csr_matrix:
    """Float64 CSR with sorted, unique column indices (no copy when ``X`` already is one).

    Dense rows keep their non-zeros only (adding zero products changes no score).
    """
    if sp.issparse(X):
        X = X.tocsr()
        if X.dtype != np.float64:
            X = X.astype(np.float64)
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()  # also sorts the indices
    else:
        X = sp.csr_matrix(np.atleast_2d(np.asarray(X, dtype=np.float64)))
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"expected {n_features} features, got {X.shape[1]}")
    return X


def _margins(scores: np.ndarray) -> np.ndarray:
    """Distance of the winning score from the runner-up (for one score, its size)."""
    if scores.ndim == 1:
        return np.abs(scores)
    if scores.shape[1] < 2:
        return np.full(scores.shape[0], np.inf)
    top2 = np.partition(scores, -2, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


class LearnerParams(StrictModel):
    """A learner's constructor parameters (beyond ``n_features`` and ``n_classes``); each learner
    declares its own subclass as ``Params``, and a scenario's ``learner.params`` are checked
    against it."""

    model_config = ConfigDict(extra="forbid")


def _padded(w: np.ndarray) -> np.ndarray:
    """``w`` followed by zeros up to 65,536 items, for :func:`_compiled.csr_sums` with 2-byte
    indices: no such index can reach outside it, so the pass tests none (a new zeroed buffer per
    call: its pages past ``w`` are never touched, and no two passes share one)."""
    if len(w) >= 65536:
        return w
    pad = np.zeros(65536)
    pad[: len(w)] = w
    return pad


class Learner(ABC):
    """Uniform interface: fit, update, predict_one, predict, score, test set, snapshot/restore."""

    kind: str = "base"
    Params: ClassVar[type[LearnerParams]] = LearnerParams
    #: Two classes only (the data is checked when a scenario is loaded).
    binary: ClassVar[bool] = False
    #: Needs non-negative features (counts), e.g. Multinomial Naive Bayes.
    nonnegative_features: ClassVar[bool] = False
    #: Parameters change only on the update's own features (plus the offset): the test evaluator
    #: may re-score through the test set's columns (linear learners).
    linear_delta: bool = False
    #: The market's claim book follows each pending contribution's class through every update by
    #: :meth:`margin_drift` (re-predicting only the ones whose margin the bound no longer covers):
    #: for learners whose updates move every score a little (Naive Bayes).
    follow_margins: ClassVar[bool] = False

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
        self._evaluator: Any = None
        self._score_params: tuple[int, np.ndarray, Any] | None = None

    # -- to implement --------------------------------------------------------------------------
    @abstractmethod
    def fit(self, X: Any, y: Any) -> Learner:
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
    def update_writes(self, x: Any, y: int) -> Writes:
        """What learning ``(x, y)`` would write on chain, for its gas (a view: changes nothing).
        Default: the model always changes; no slot goes from or to zero (dense parameters)."""
        return Writes(True)

    def sample_problem(self, x: Any, y: Any) -> str | None:
        """Why ``(x, y)`` cannot be learned (a label outside the classes, a feature outside the
        model, a value that is not finite, or negative where counts are learned), or None: what
        a contract checks before it stores a contribution it learns from later. A
        :class:`Sample` (the market's rows) has only its label checked: it was cut from a data
        set loaded for this model (:func:`sum_abm.data.load_dataset` checks its values), and
        its features' checks cost more than the prediction market's whole add."""
        if isinstance(y, bool) or not isinstance(y, (int, np.integer)):
            return f"label {y!r} is not a class number"
        if not 0 <= int(y) < self.n_classes:
            return f"label {y} outside 0..{self.n_classes - 1}"
        if isinstance(x, Sample):
            return None
        try:
            s = as_sample(x)
        except (TypeError, ValueError) as exc:
            return f"data not a vector of numbers ({exc})"
        if (
            len(s.indices)
            and not 0 <= int(s.indices.min()) <= int(s.indices.max()) < self.n_features
        ):
            return f"a feature outside the model's {self.n_features}"
        if len(s.values) and not np.isfinite(s.values).all():
            return "a value that is not finite"
        if self.nonnegative_features and len(s.values) and float(s.values.min()) < 0:
            return f"a negative value ({type(self).__name__} learns counts)"
        return None

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

    def update_rows(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        y: np.ndarray,
        pause: bool = True,
        ends: np.ndarray | None = None,
    ) -> Iterator[int]:
        """Learn CSR rows ``indices/values[indptr[i]:indptr[i+1]]`` with labels ``y``, in order,
        exactly as :meth:`update` row by row (the prediction market's reward passes); yields the
        position of each row whose update changed the parameters, right after that update, so
        the caller can read the model (say, its test accuracy) at that point.

        ``indptr`` holds absolute offsets (a slice of a larger CSR ``indptr`` will do) and has
        the dtype of ``indices``. With ``ends`` row ``i`` is ``indptr[i]:ends[i]`` instead (both
        of length n): rows in any order over shared arrays, nothing copied. With ``pause``
        False nothing is yielded (the caller only wants the rows learned). This default calls
        :meth:`update` per row; learners whose updates are mostly no-ops override it.
        """
        ends = indptr[1:] if ends is None else ends
        for i in range(len(y)):
            lo, hi = indptr[i], ends[i]
            if self.update(Sample(indices[lo:hi], values[lo:hi]), int(y[i])) and pause:
                yield i

    def update_rows_accuracy(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        y: np.ndarray,
        ends: np.ndarray | None = None,
    ) -> np.ndarray:
        """:meth:`update_rows` (``ends`` as there), returning the test accuracy
        (:meth:`test_accuracy`) after each row's update, shape (n,). The accuracy moves only
        where the model does, so this default asks it after each row that changed the
        parameters."""
        acc = np.empty(len(y))
        cur, last = self.test_accuracy(), 0
        for j in self.update_rows(indptr, indices, values, y, pause=True, ends=ends):
            acc[last:j] = cur
            cur, last = self.test_accuracy(), j
        acc[last:] = cur
        return acc

    def _labels(self, scores: np.ndarray) -> np.ndarray:
        if scores.ndim == 1:
            return (scores > 0).astype(np.int64)
        return np.argmax(scores, axis=1).astype(np.int64)

    def predict_segments(
        self,
        indices: np.ndarray,
        values: np.ndarray,
        starts: np.ndarray,
        lens: np.ndarray,
        margins: bool = False,
        ones: bool = False,
    ) -> Any:
        """Classes of many samples stored back to back (CSR parts without a matrix object).

        Row ``i`` is ``indices/values[starts[i] : starts[i] + lens[i]]`` with rows contiguous, so
        ``starts`` plus the end form a CSR ``indptr``. For callers that predict a sliding window of
        stored rows many times (the market's claim book): one call of scipy's compiled CSR kernel,
        no per-call matrix construction or validation. With ``margins``, also each row's decision
        margin (distance of the winning score from the runner-up; for one score, its size).
        ``ones``: every value is 1 (see :meth:`kernel_scores`).
        """
        n = len(starts)
        indptr = np.empty(n + 1, dtype=indices.dtype)
        indptr[:n] = starts
        indptr[n] = starts[-1] + lens[-1] if n else 0
        scores = self.kernel_scores(indptr, indices, values, ones)
        labels = self._labels(scores)
        if not margins:
            return labels
        return labels, _margins(scores)

    def kernel_scores(
        self, indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, ones: bool = False
    ) -> np.ndarray:
        """Decision scores of CSR rows ``indptr[i]:indptr[i+1]`` by scipy's compiled kernel.

        The one arithmetic path of every batch prediction (``predict``, ``score``, the incremental
        test accuracy): one score per row, shape (n,), for binary models (two-class scores are
        reduced to their difference, class 1 when > 0, so ties go to class 0), else (n, k).
        A row range with end < start is empty (score = offset), which lets callers gather
        scattered rows without copying them (see :mod:`sum_abm.learners.evaluation`).
        ``ones``: the caller knows every value is 1; the sums then skip the values
        (:func:`_compiled.csr_sums`, when built: scipy's sums bit for bit, x * 1.0 being x;
        1.3-2.9x faster over S1's test set, benchmarks/learners.py). With ``ones``,
        ``indices`` may also be 2-byte (uint16, :data:`_compiled.INDEX16`: the test set's copy, see
        :class:`~sum_abm.learners.evaluation.TestSetEvaluator`): half the memory a pass streams.
        """
        n = len(indptr) - 1
        w, off = self.score_params()
        sums = _compiled.csr_sums if ones else None
        short = indices.dtype == _compiled.INDEX16
        if short and sums is None:
            indices = indices.astype(indptr.dtype)  # scipy's kernel reads its own index type
        if w.ndim == 1:
            out = np.zeros(n)
            if sums is not None:
                sums(indptr, indices, _padded(w) if short else w, out)
            else:
                _csr_matvec(n, w.shape[0], indptr, indices, values, w, out)
            out += off
            return out
        out = np.zeros((w.shape[0], n))
        for k in range(w.shape[0]):  # one compiled pass per class beats the multi-vector kernel
            if sums is not None:  # (a class's weights may be strided: Naive Bayes' are)
                wk = np.ascontiguousarray(w[k])
                sums(indptr, indices, _padded(wk) if short else wk, out[k])
            else:
                _csr_matvec(n, w.shape[1], indptr, indices, values, w[k], out[k])
        return out.T + off

    def score_params(self) -> tuple[np.ndarray, Any]:
        """``(w, b)`` with scores ``X @ w.T + b``: a (d,) vector and a float for binary models
        (two-class scores reduced to class 1 minus class 0), else (k, d) and (k,). Contiguous float64."""
        cached = self._score_params
        if cached is not None and cached[0] == self.version:
            return cached[1], cached[2]  # parameters unchanged since (``version`` counts changes)
        W, offset = self._segment_params()
        off = np.ravel(np.asarray(offset, dtype=np.float64))
        if W.ndim == 1:
            w, b = np.ascontiguousarray(W, dtype=np.float64), float(off[0])
        elif W.shape[0] == 2:
            w, b = np.ascontiguousarray(W[1] - W[0]), float(off[1] - off[0])
        else:
            w, b = np.ascontiguousarray(W, dtype=np.float64), off.copy()
        self._score_params = (self.version, w, b)
        return w, b

    def _segment_params(self) -> tuple[np.ndarray, Any]:
        """(weights over features — (d,) or (k, d) —, additive offset) for :meth:`predict_segments`."""
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:
        """Classes for a batch (CSR or dense), vectorised: one compiled CSR pass per score.

        Dense input goes through the same CSR kernel (its non-zeros), so a prediction never depends
        on whether the rows came dense or sparse, nor on which other rows were predicted with it.
        """
        X = as_csr(X, self.n_features)
        if not X.shape[0]:
            return np.zeros(0, dtype=np.int64)
        return self._labels(self.kernel_scores(X.indptr, X.indices, X.data))

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

    def set_test_set(self, X: Any, y: Any, per_update: bool = False) -> None:
        """The hidden test set for :meth:`test_accuracy` (CSR or dense rows, labels 0..n_classes-1).

        ``per_update``: the caller will ask for the accuracy after single updates, so what makes
        those cheap (a linear learner's bitset copy of a binary test set) is built now instead of
        when first needed.
        """
        from sum_abm.learners.evaluation import TestSetEvaluator

        X = as_csr(X, self.n_features)
        y = np.asarray(y, dtype=np.int64).ravel()
        if len(y) != X.shape[0]:
            raise ValueError(f"test set: {X.shape[0]} rows but {len(y)} labels")
        self._X_test, self._y_test = X, y
        self._evaluator = TestSetEvaluator(X, y, linear_delta=self.linear_delta)
        self._acc_cache = None
        if per_update:
            self._evaluator.prepare_bitsets()

    def test_accuracy(self) -> float:
        """Accuracy on the test set, kept incrementally; always equal to ``score(X_test, y_test)``.

        Cost per parameter change: O(test rows near the decision boundary) in the common case, the
        non-zeros of the touched test columns for a sparse linear step, one vectorised pass at worst
        (see :class:`~sum_abm.learners.evaluation.TestSetEvaluator`).
        """
        if self._X_test is None:
            raise RuntimeError("no test set: call set_test_set first")
        if self._acc_cache is None or self._acc_cache[0] != self.version:
            self._acc_cache = (self.version, self._evaluator.accuracy(self))
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
        if math.isfinite(d0) and math.isfinite(d_inf) and math.isfinite(d_l1):
            drift = self.drift  # element by element: the same sums as adding the triple
            drift[0] += d0
            drift[1] += d_inf
            drift[2] += d_l1
        else:
            self.drift_epoch += 1  # no finite bound: every cached prediction is stale

    def margin_drift(self, since: np.ndarray, x_inf: np.ndarray, x_l1: np.ndarray) -> np.ndarray:
        """Upper bound on the change of each sample's decision margin since drift ``since``.

        ``since`` is an (n, 3) array of earlier :attr:`drift` values, ``x_inf``/``x_l1`` the samples'
        max-|value| and sum-|value|. A cached class whose margin exceeds this bound is still right.
        """
        d = self.drift[None, :] - since
        return d[:, 0] + d[:, 1] * x_inf + d[:, 2] * x_l1
