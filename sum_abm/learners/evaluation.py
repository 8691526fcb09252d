"""Incremental test-set accuracy that always equals a full re-evaluation.

After one single-sample update almost no test row changes class, so re-scoring all of them
(O(n_test × non-zeros)) wastes nearly all the work. :class:`TestSetEvaluator` keeps each test row's
decision scores from a *reference* parameter set and re-scores only the rows whose class the change
since then could have flipped:

* **Bound, any learner.** With ``ΔW = W - W_ref`` split into its mean ``c`` and the rest, a row's
  score moves by exactly ``c·Σx + Δb`` plus at most ``‖ΔW - c‖₂·‖x‖₂`` (Cauchy–Schwarz; the mean
  carries MultinomialNB's normaliser change exactly). Rows whose reference margin exceeds the
  bound keep a known class; the rest (usually a handful) are re-scored exactly. Rows are kept
  sorted by reference margin, so only the rows near the boundary are even looked at.
* **Touched columns, linear learners.** When a perceptron step moves the bound past most margins,
  the reference scores are advanced by ``X[:, F] @ Δw_F + Δb`` through a column-indexed (CSC) copy
  of the test set: O(non-zeros of the touched columns), not O(n_test × d).
* **Full pass** (one compiled CSR kernel call) when neither is cheaper; it also resets the
  reference every :data:`MAX_DELTAS` column steps so rounding cannot accumulate.

Exactness: a re-scored row goes through :meth:`Learner.kernel_scores`, the very arithmetic of
``predict``; an un-rescored row's class is proven by a bound that includes a rounding allowance
(``TOL`` × the largest possible |score| term), so ``accuracy()`` equals ``score(X_test, y_test)``
bit for bit, ties included.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse import _sparsetools

TOL = (
    1e-9  # rounding allowance, relative to the largest |score| term (float64 error is ~1e-13 here)
)
MAX_DELTAS = 64  # column steps between exact full passes
RESCORE_SHARE = (
    0.25  # re-score candidates while their non-zeros are below this share of the test set's
)
# Rent or buy: once the rows re-scored since the last full pass add up to one full pass, the next
# update buys a new reference instead (at most twice the cost of the best refresh schedule).
COLUMN_SHARE = 0.6  # a column step is worth it while its non-zeros are below this share


def _interleave(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``[s0, e0, s1, e1, ...]`` for ranges given in *descending* position order.

    Read as an ``indptr`` of 2m-1 rows, the odd rows run from one range's end back to the
    previous (lower) range's start: empty. So scipy's kernels visit exactly the given ranges,
    without copying them.
    """
    ap = np.empty(2 * len(starts), dtype=starts.dtype)
    ap[0::2] = starts
    ap[1::2] = ends
    return ap


class TestSetEvaluator:
    """Accuracy of a learner on a fixed test set, kept incrementally (see the module docstring)."""

    __test__ = False  # not a pytest class

    def __init__(self, X: sp.csr_matrix, y: np.ndarray, linear_delta: bool = False) -> None:
        self.X, self.y = X, y
        self.n = X.shape[0]
        self.nnz = max(int(X.nnz), 1)
        rows = np.repeat(np.arange(self.n), np.diff(X.indptr))
        self.row_sum = np.bincount(rows, weights=X.data, minlength=self.n)
        self.row_l2 = np.sqrt(np.bincount(rows, weights=X.data * X.data, minlength=self.n))
        self.row_nnz = np.diff(X.indptr)
        l1 = np.bincount(rows, weights=np.abs(X.data), minlength=self.n)
        self.l1_max = float(l1.max(initial=0.0))
        self.sum_max = float(np.abs(self.row_sum).max(initial=0.0))
        self.l2_max = float(self.row_l2.max(initial=0.0))
        self.linear_delta = linear_delta
        self._csc: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.ref: tuple[np.ndarray, Any] | None = None  # (W_ref, b_ref)
        self.stats = {"full": 0, "bound": 0, "columns": 0, "rescored_rows": 0}

    # -- exact scoring ---------------------------------------------------------------------------
    def _labels_of(self, learner: Any, rows: np.ndarray) -> np.ndarray:
        """Exact labels of test ``rows`` (unique) by the learner's own kernel, the arithmetic of
        ``predict``; aligned with ``rows``."""
        if len(rows) == 0:
            return np.zeros(0, dtype=np.int64)
        order = np.argsort(rows)[::-1]  # descending, so the interleaved gaps are empty ranges
        desc = rows[order]
        ap = _interleave(self.X.indptr[desc], self.X.indptr[desc + 1])
        out = np.empty(len(rows), dtype=np.int64)
        out[order] = learner._labels(learner.kernel_scores(ap, self.X.indices, self.X.data))[0::2]
        self.stats["rescored_rows"] += len(rows)
        return out

    def _scale(self, w: np.ndarray, b: Any) -> float:
        """An upper bound on any |score term| (the rounding allowance is TOL times this)."""
        return self.l1_max * float(np.abs(w).max(initial=0.0)) + float(
            np.abs(np.ravel(b)).max(initial=0.0)
        )

    # -- reference state -------------------------------------------------------------------------
    def _full(self, learner: Any, w: np.ndarray, b: Any) -> float:
        """Score every row exactly and make the current parameters the reference."""
        self.stats["full"] += 1
        X = self.X
        scores = learner.kernel_scores(X.indptr, X.indices, X.data)
        self.single = scores.ndim == 1
        self.S = scores
        self.labels = learner._labels(scores)
        self.correct = self.labels == self.y
        self.n_correct = int(self.correct.sum())
        self.ref = (w.copy(), np.copy(b) if not self.single else float(b))
        self.ref_scale = self._scale(w, b)
        self.deltas = 0
        self.spent = 0  # non-zeros re-scored since this reference
        self._sort_margins()
        return self.n_correct / self.n

    def _sort_margins(self) -> None:
        """Rows ordered by reference margin, only the lowest share (the rest never get looked at
        while the bound stays below ``self.T0``)."""
        S = self.S
        if self.single:
            m = np.abs(S)
        elif S.shape[1] >= 2:
            top2 = np.partition(S, -2, axis=1)[:, -2:]
            m = top2[:, 1] - top2[:, 0]
        else:
            m = np.full(self.n, np.inf)
        # The margin a quarter of the rows lie under: a bound above it leaves too many rows
        # undecided to re-score, so a linear learner goes straight to the column step.
        q = int(RESCORE_SHARE * (self.n - 1))
        self.m_quarter = float(np.partition(m, q)[q]) if self.n else np.inf
        k = min(self.n, max(256, self.n // 8))
        if k < self.n:
            part = np.argpartition(m, k - 1)[:k]
            self.T0 = float(m[part].max())
        else:
            part = np.arange(self.n)
            self.T0 = np.inf
        o = np.argsort(m[part], kind="stable")
        self.order = part[o]
        self.order_margin = m[self.order]

    # -- the update ------------------------------------------------------------------------------
    def accuracy(self, learner: Any) -> float:
        """Accuracy of ``learner`` on the test set (equal to ``learner.score(X, y)``)."""
        if self.n == 0:
            return float("nan")
        w, b = learner.score_params()
        if self.ref is None or np.shape(w) != np.shape(self.ref[0]):
            return self._full(learner, w, b)
        w_ref, b_ref = self.ref
        dW = w - w_ref
        db = np.asarray(b, dtype=np.float64) - b_ref
        c = dW.mean(axis=-1)
        r = np.linalg.norm(dW - np.expand_dims(c, -1), axis=-1) * (1.0 + 1e-12)
        tol = TOL * (self.ref_scale + self._scale(w, b))
        if self.single:
            thr = abs(float(c)) * self.sum_max + abs(float(db)) + float(r) * self.l2_max + tol
        else:
            thr = (
                2.0
                * (
                    float(np.abs(c).max()) * self.sum_max
                    + float(np.abs(db).max())
                    + float(r.max()) * self.l2_max
                )
                + tol
            )
        if not np.isfinite(thr):  # e.g. a class not seen yet has a log-prior of -inf
            return self._full(learner, w, b)
        columns_ok = self.linear_delta and self.single and self.deltas < MAX_DELTAS
        if thr < self.T0:
            rows = self.order[: int(np.searchsorted(self.order_margin, thr, side="right"))]
        elif columns_ok and thr > self.m_quarter:
            return self._columns(learner, w, b, dW, float(db))
        else:
            rows = None  # every row
        acc = self._bounded(learner, rows, c, r, db, tol)
        if acc is None:
            if columns_ok:
                return self._columns(learner, w, b, dW, float(db))
            return self._full(learner, w, b)
        return acc

    def _bounded(
        self, learner: Any, rows: np.ndarray | None, c: Any, r: Any, db: Any, tol: float
    ) -> float | None:
        """Classes of ``rows`` (None: all) from the reference scores and the bound; rows the
        bound cannot decide are re-scored exactly. None when that would cost too much."""
        sel = slice(None) if rows is None else rows
        s, l2 = self.row_sum[sel], self.row_l2[sel]
        if self.single:
            est = self.S[sel] + (float(c) * s + float(db))
            undecided = np.abs(est) <= float(r) * l2 + tol
            labels = (est > 0).astype(np.int64)
        else:
            est = self.S[sel] + (c[None, :] * s[:, None] + db[None, :])
            top2 = np.partition(est, -2, axis=1)[:, -2:]
            undecided = top2[:, 1] - top2[:, 0] <= 2.0 * float(r.max()) * l2 + tol
            labels = np.argmax(est, axis=1).astype(np.int64)
        idx = np.flatnonzero(undecided)
        if len(idx):
            pos = idx if rows is None else rows[idx]
            cost = int(self.row_nnz[pos].sum())
            if cost > RESCORE_SHARE * self.nnz or self.spent + cost > self.nnz:
                return None
            self.spent += cost
            labels[idx] = self._labels_of(learner, pos)
        self.stats["bound"] += 1
        y = self.y[sel]
        old = int(self.correct[sel].sum()) if rows is not None else self.n_correct
        rest = self.n_correct - old
        return (rest + int((labels == y).sum())) / self.n

    def _columns(self, learner: Any, w: np.ndarray, b: float, dW: np.ndarray, db: float) -> float:
        """Advance the reference scores by ``X[:, F] @ Δw_F + Δb`` through the CSC copy."""
        F = np.flatnonzero(dW)
        if self._csc is None:
            C = self.X.tocsc()
            C.sort_indices()
            self._csc = (C.indptr, C.indices, C.data)
        cp, ci, cd = self._csc
        if int((cp[F + 1] - cp[F]).sum()) > COLUMN_SHARE * self.nnz:
            return self._full(learner, w, b)
        self.stats["columns"] += 1
        if len(F):
            Fd = F[::-1]  # descending, so the interleaved gaps are empty ranges
            ap = _interleave(cp[Fd], cp[Fd + 1])
            v = np.zeros(len(ap) - 1)
            v[0::2] = dW[Fd]
            _sparsetools.csc_matvec(self.n, len(v), ap, ci, cd, v, self.S)
        self.S += db
        w_ref = self.ref[0]
        w_ref[F] = w[F]
        self.ref = (w_ref, float(b))
        self.ref_scale = max(self.ref_scale, self._scale(w, b))
        self.deltas += 1
        self.spent = 0
        # The advanced scores carry rounding: rows within the allowance of 0 are re-scored exactly.
        tol = TOL * 2.0 * self.ref_scale
        labels = (self.S > 0).astype(np.int64)
        near = np.flatnonzero(np.abs(self.S) <= tol)
        if len(near):
            labels[near] = self._labels_of(learner, near)
        self.labels = labels
        self.correct = labels == self.y
        self.n_correct = int(self.correct.sum())
        self.order, self.T0 = (
            None,
            -np.inf,
        )  # margins moved; the sort is stale until the next full pass
        return self.n_correct / self.n
