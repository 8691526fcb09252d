"""Incremental test-set accuracy that always equals a full re-evaluation.

After one single-sample update almost no test row changes class, so re-scoring all of them
(O(n_test × non-zeros)) wastes nearly all the work. :class:`TestSetEvaluator` keeps each test row's
decision scores from a *reference* parameter set and re-scores only the rows whose class the change
since then could have flipped:

* **Bound, any learner.** With ``ΔW = W - W_ref`` split into its mean ``c`` and the rest ``e``, a
  row's score moves by exactly ``c·Σx + Δb`` plus at most ``‖e‖₂·‖x‖₂`` (Cauchy–Schwarz; the mean
  carries MultinomialNB's normaliser change exactly) and at most ``max|x|`` times the sum of the
  row's-non-zeros-many largest ``|e_j|`` (tighter when ``e`` is uneven or spread out). Rows whose
  reference margin exceeds the bound keep a known class; the rest (usually a handful) are
  re-scored exactly. Rows are kept sorted by reference margin, so only the rows near the boundary
  are even looked at.
* **Bitset steps, linear learners on a binary test set** (bag-of-words presence). A perceptron
  mistake moves every touched weight by the same ``v``, so each score moves by ``v`` times the
  row's overlap with the step's features (plus the intercept's step): exact integer overlaps of
  the rows packed as bitsets (:class:`RowBits`), one AND and popcount over n_test × d/64 words,
  compiled (:func:`sum_abm.learners._compiled.bit_advance`) or in numpy passes. Float steps whose
  values differ by rounding share one pass; the difference and the advance's own rounding go into
  an explicit error bound, and rows within it of 0 are re-scored exactly.
* **Touched columns, other linear steps.** The reference scores are advanced by
  ``X[:, F] @ Δw_F + Δb`` through a column-indexed (CSC) copy of the test set: O(non-zeros of the
  touched columns), not O(n_test × d).
* **Full pass** (one compiled CSR kernel call) when neither is cheaper; it also resets the
  reference every :data:`MAX_DELTAS` column steps so rounding cannot accumulate.

Exactness: while the test values, the reference parameters and every step are integers (the
Solidity perceptron at ``learning_rate`` 1), all the float64 sums are exact, so advanced scores
equal the kernel's bit for bit and need neither re-scoring nor periodic full passes. Otherwise a
re-scored row goes through :meth:`Learner.kernel_scores`, the very arithmetic of ``predict``; an
un-rescored row's class is proven by a bound that includes a rounding allowance (``TOL`` × the
largest possible |score| term, plus the bitset steps' error), so ``accuracy()`` equals
``score(X_test, y_test)`` bit for bit, ties included.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse import _sparsetools

import sum_abm.learners._compiled as _compiled

TOL = (
    1e-9  # rounding allowance, relative to the largest |score| term (float64 error is ~1e-13 here)
)
MAX_DELTAS = 64  # column steps between exact full passes
EPS = float(np.finfo(np.float64).eps)
RESCORE_SHARE = (
    0.25  # re-score candidates while their non-zeros are below this share of the test set's
)
# Rent or buy: once the rows re-scored since the last full pass add up to one full pass, the next
# update buys a new reference instead (at most twice the cost of the best refresh schedule).
COLUMN_SHARE = 0.6  # a column step is worth it while its non-zeros are below this share
# One bitset word (64 features of a row: AND, popcount, add) costs about a quarter of one non-zero
# in a compiled sparse kernel (measured: 0.54 ms for 25,000 × 16 words, 7 ms for 1.3 M column
# non-zeros); the value is deliberately on the high side.
BIT_WORD_COST = 0.5
# ... plus a fixed cost per step value (a few numpy calls), in the same units.
BIT_GROUP_COST = 20_000
GROUP_REL = 1e-9  # step values this close (relative) share one bitset pass; see _bit_groups
MAX_BIT_GROUPS = 8  # distinct step values a bitset step handles (one overlap pass each)
EXACT_LIMIT = 2.0**50  # integer sums below this are exact in float64


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


class RowBits:
    """The rows of a binary CSR matrix as bitsets, for exact integer overlaps with feature sets.

    Feature ``j`` is bit ``j % 64`` of word ``j // 64``. The numpy passes read the words
    word-major (words, n): an AND of each word row with the feature set's word, a popcount, a sum
    over the few word rows, all over contiguous memory; the compiled step reads them row-major.
    """

    def __init__(self, X: sp.csr_matrix) -> None:
        n, d = X.shape
        self.n, self.words = n, (d + 63) // 64
        width = 64 * self.words
        packed = np.empty((n, 8 * self.words), dtype=np.uint8)
        step = max(1, 2**22 // width)  # rows per dense block: about 4 MB of booleans
        block = np.zeros((min(step, n), width), dtype=bool)
        for lo in range(0, n, step):
            part = X[lo : lo + step]
            dense = block[: part.shape[0]]
            dense[:, :d] = part.toarray() != 0
            # Little-endian bit order: bit j % 8 of byte j // 8 is bit j % 64 of word j // 64.
            packed[lo : lo + part.shape[0]] = np.packbits(dense, axis=1, bitorder="little")
        self.rows = packed.view("<u8")
        self._T: np.ndarray | None = None
        self._sum = np.uint16 if d < 2**16 else np.int64

    def mask(self, features: np.ndarray) -> np.ndarray:
        """The (unique) ``features`` as one bitset of ``words`` uint64."""
        m = np.zeros(64 * self.words, dtype=bool)
        m[features] = True
        return np.packbits(m, bitorder="little").view("<u8")

    def overlaps(self, mask: np.ndarray) -> np.ndarray:
        """How many features of ``mask`` each row has, shape (n,), exact integers (numpy)."""
        if self._T is None:
            self._T = np.ascontiguousarray(self.rows.T)
        used = np.flatnonzero(mask)
        T = self._T if len(used) == self.words else self._T[used]
        m = mask if len(used) == self.words else mask[used]
        return np.bitwise_count(T & m[:, None]).sum(axis=0, dtype=self._sum)

    def advance(
        self, groups: list[tuple[float, np.ndarray]], db: float, S: np.ndarray,
        y_pos: np.ndarray, tol: float,
    ) -> tuple[int, int]:  # fmt: skip
        """``S += Σ v·overlap(F) + db`` over the (value, features) ``groups``; returns the rows
        with ``S > 0`` equal to ``y_pos`` and the rows with ``|S| <= tol``."""
        masks = np.stack([self.mask(F) for _, F in groups])
        values = np.array([v for v, _ in groups])
        kernel = _compiled.bit_advance  # None: built without a C compiler, numpy passes
        if kernel is not None:
            return kernel(self.rows, masks, values, float(db), S, y_pos, float(tol))
        for (v, _), m in zip(groups, masks, strict=True):
            ov = self.overlaps(m)
            S += ov * v if v != 1.0 else ov
        if db:
            S += db
        correct = int(np.count_nonzero((S > 0) == y_pos))
        near = int(np.count_nonzero(np.abs(S) <= tol)) if tol >= 0 else 0
        return correct, near


class TestSetEvaluator:
    """Accuracy of a learner on a fixed test set, kept incrementally (see the module docstring)."""

    __test__ = False  # not a pytest class

    def __init__(self, X: sp.csr_matrix, y: np.ndarray, linear_delta: bool = False) -> None:
        self.X, self.y = X, y
        self.y_bool = y == 1
        self.n = X.shape[0]
        self.nnz = max(int(X.nnz), 1)
        self.row_nnz = np.diff(X.indptr)
        self.row_nnz_max = int(self.row_nnz.max(initial=0))
        full_rows = self.row_nnz > 0
        # Integer test values keep integer scores exact; 0/1 values allow bitset steps.
        ones = self.ones = bool(np.all(X.data == 1.0))
        if ones:
            # 0/1 values: every per-row sum below is the row's count of non-zeros (exact in
            # float64), so no pass over the non-zeros, and none of their full-size temporaries
            # (about 35 MB each for S1's test set: the run's peak memory).
            self.row_sum = self.row_nnz.astype(np.float64)
            self.row_l2 = np.sqrt(self.row_sum)
            self.row_inf = full_rows.astype(np.float64)
            l1 = self.row_sum
        else:
            rows = np.repeat(np.arange(self.n), self.row_nnz)
            self.row_sum = np.bincount(rows, weights=X.data, minlength=self.n)
            self.row_l2 = np.sqrt(np.bincount(rows, weights=X.data * X.data, minlength=self.n))
            self.row_inf = np.zeros(self.n)  # max |value| per row
            absx = np.abs(X.data)
            if X.nnz:
                self.row_inf[full_rows] = np.maximum.reduceat(absx, X.indptr[:-1][full_rows])
            l1 = np.bincount(rows, weights=absx, minlength=self.n)
        # A full pass's indices as 2 bytes each where the compiled sums read them (0/1 values,
        # fewer than 65,536 features, every index checked once here): half the memory streamed
        # (S1's test set: 2.0 ms a pass against 3.0, benchmarks/learners.py). Not for re-scored
        # rows: a few at a time, where padding the weights (kernel_scores) costs more than it saves.
        self.sum_indices = X.indices
        d = X.shape[1]
        if ones and _compiled.csr_sums is not None and 0 < X.nnz and d <= 65536:
            if int(X.indices.min()) >= 0 and int(X.indices.max()) < d:
                self.sum_indices = X.indices.astype(_compiled.INDEX16)
        self.inf_max = float(self.row_inf.max(initial=0.0))
        self.l1_max = float(l1.max(initial=0.0))
        self.sum_max = float(np.abs(self.row_sum).max(initial=0.0))
        self.l2_max = float(self.row_l2.max(initial=0.0))
        self.linear_delta = linear_delta
        self._csc: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._col_nnz: np.ndarray | None = None
        self.int_data = ones or bool(np.all(X.data == np.rint(X.data)))
        self.binary = linear_delta and X.nnz > 0 and ones
        self._bits: RowBits | None = None
        self.bit_cost = BIT_WORD_COST * self.n * ((X.shape[1] + 63) // 64)
        self.ref: tuple[np.ndarray, Any] | None = None  # (W_ref, b_ref)
        self.k_low = min(self.n, max(256, self.n // 8))  # rows kept sorted by margin
        self._sort_pending = False
        self.order: np.ndarray | None = None  # set by _sort_margins
        self.stats = {"full": 0, "bound": 0, "columns": 0, "bitsets": 0, "rescored_rows": 0}

    @property
    def col_nnz(self) -> np.ndarray:
        """Non-zeros per test column (read by column steps only; counted when first read)."""
        if self._col_nnz is None:
            self._col_nnz = np.bincount(self.X.indices, minlength=self.X.shape[1])
        return self._col_nnz

    def prepare_bitsets(self) -> bool:
        """Build the bitset copy of a binary test set now, rather than at the first bitset step
        (for callers that evaluate after single updates); False when bitset steps do not apply
        (the test set is not binary, or the learner not linear)."""
        if not self.binary:
            return False
        if self._bits is None:
            self._bits = RowBits(self.X)
        return True

    def bit_rows(self) -> np.ndarray | None:
        """The test rows as bitsets, (n, words) uint64 row-major (:class:`RowBits`), for a
        compiled step that advances scores itself; None unless bitset steps apply."""
        if not self.binary:
            return None
        if self._bits is None:
            self._bits = RowBits(self.X)
        return self._bits.rows

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
        out[order] = learner._labels(
            learner.kernel_scores(ap, self.X.indices, self.X.data, self.ones)
        )[0::2]
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
        scores = learner.kernel_scores(X.indptr, self.sum_indices, X.data, self.ones)
        self.single = scores.ndim == 1
        self.S = scores
        self.correct = learner._labels(scores) == self.y
        self.n_correct = int(self.correct.sum())
        self.ref = (w.copy(), np.copy(b) if not self.single else float(b))
        self.ref_scale = self._scale(w, b)
        self.exact = (
            self.single
            and self.int_data
            and self.ref_scale < EXACT_LIMIT
            and float(b) == round(float(b))
            and bool(np.all(w == np.rint(w)))
        )
        self.deltas = 0
        self.err = 0.0  # bound on what grouped bitset steps added beyond rounding (see _tol)
        self.spent = 0  # non-zeros re-scored since this reference
        # Sorted when the bound first needs them (_below_t0): after most full passes the next
        # change is too large for the bound, and the sort would be wasted (S1: 72 of 72).
        self._m = None
        self._sort_pending = True
        return self.n_correct / self.n

    def _margins(self) -> np.ndarray:
        """Each row's reference margin (distance of the winning score from the runner-up)."""
        if self._m is None:
            S = self.S
            if self.single:
                self._m = np.abs(S)
            elif S.shape[1] >= 2:
                top2 = np.partition(S, -2, axis=1)[:, -2:]
                self._m = top2[:, 1] - top2[:, 0]
            else:
                self._m = np.full(self.n, np.inf)
        return self._m

    def _below_t0(self, thr: float) -> bool:
        """``thr < self.T0``, sorting margins a full pass left unsorted only when it is: while
        at least ``k_low`` margins are ``<= thr``, ``thr`` is at least their largest, ``T0``."""
        if self._sort_pending:
            if self.k_low < self.n and np.count_nonzero(self._margins() <= thr) >= self.k_low:
                return False
            self._sort_margins()
        return thr < self.T0

    def _quarter(self) -> float:
        """``m_quarter`` (see :meth:`_sort_margins`), sorting pending margins first."""
        if self._sort_pending:
            self._sort_margins()
        return self.m_quarter

    def _sort_margins(self) -> None:
        """Rows ordered by reference margin, only the lowest share (the rest never get looked at
        while the bound stays below ``self.T0``)."""
        m = self._margins()
        self._m, self._sort_pending = None, False
        S = self.S
        # The margin a quarter of the rows lie under: a bound above it leaves too many rows
        # undecided to re-score, so a linear learner goes straight to the column step.
        q = int(RESCORE_SHARE * (self.n - 1))
        self.m_quarter = float(np.partition(m, q)[q]) if self.n else np.inf
        k = self.k_low
        if k < self.n:
            part = np.argpartition(m, k - 1)[:k]
            self.T0 = float(m[part].max())
        else:
            part = np.arange(self.n)
            self.T0 = np.inf
        o = np.argsort(m[part], kind="stable")
        self.order = part[o]
        self.order_margin = m[self.order]
        # The per-row quantities of the bound in that order, so a prefix of rows is a slice.
        order = self.order
        self.pre = tuple(
            a[order] for a in (S, self.row_sum, self.row_l2, self.row_inf, self.row_nnz, self.y)
        )
        self.pre_correct = np.concatenate(([0], np.cumsum(self.correct[order])))

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
        # A class without data has a log-prior of -inf (Naive Bayes): -inf - -inf is nan, which
        # the bound below sends to a full pass; no warning for it.
        with np.errstate(invalid="ignore"):
            db = np.asarray(b, dtype=np.float64) - b_ref
        scale = self._scale(w, b)
        columns_ok = (
            self.linear_delta
            and self.single
            and (self.exact or self.deltas < MAX_DELTAS)
            and self.spent <= self.nnz
        )
        unsorted = self.order is None and not self._sort_pending
        if columns_ok and self.binary and unsorted and math.isfinite(scale):
            # Margins unsorted since a column step: the bound could not pick rows; step again.
            return self._columns(learner, w, b, dW, float(db), scale)
        c = dW.mean(axis=-1)
        e = dW - c[..., None]
        r = np.linalg.norm(e, axis=-1) * (1.0 + 1e-12)
        tol = TOL * (self.ref_scale + scale)
        top = None
        if self.single:
            # Besides Cauchy–Schwarz: a row's Σ e_j x_j is at most its max |x| times the sum of
            # the nnz largest |e_j| (tighter when the change is uneven or spread over many
            # features, as Naive Bayes' counts after a few updates).
            top = np.empty(len(e) + 1)
            top[0] = 0.0
            np.cumsum(np.sort(np.abs(e))[::-1], out=top[1:])
            top *= 1.0 + 1e-9  # the sum's own rounding
            move = min(float(r) * self.l2_max, self.inf_max * float(top[self.row_nnz_max]))
            thr = abs(float(c)) * self.sum_max + abs(float(db)) + move + tol
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
        if self._below_t0(thr):
            rows = int(np.searchsorted(self.order_margin, thr, side="right"))
        elif columns_ok and (self.binary or thr > self._quarter()):
            return self._columns(learner, w, b, dW, float(db), scale)
        else:
            rows = None  # every row (a count of lowest-margin rows otherwise)
        acc = self._bounded(learner, rows, c, r, db, tol, top)
        if acc is None:
            if columns_ok:
                return self._columns(learner, w, b, dW, float(db), scale)
            return self._full(learner, w, b)
        return acc

    def _bounded(
        self,
        learner: Any,
        m: int | None,
        c: Any,
        r: Any,
        db: Any,
        tol: float,
        top: np.ndarray | None = None,
    ) -> float | None:
        """Classes of the ``m`` rows of lowest reference margin (None: all rows) from the
        reference scores and the bound; rows the bound cannot decide are re-scored exactly. None
        when that would cost too much. ``top[k]``: the sum of the k largest |ΔW - c| (single
        score only)."""
        if m is None:
            S, s, l2, inf, nnz, y = (
                self.S, self.row_sum, self.row_l2, self.row_inf, self.row_nnz, self.y
            )  # fmt: skip
        else:
            S, s, l2, inf, nnz, y = (a[:m] for a in self.pre)
        if self.single:
            est = S + (float(c) * s + float(db))
            move = float(r) * l2
            if top is not None:
                np.minimum(move, inf * top[nnz], out=move)
            undecided = np.abs(est) <= move + tol
            labels = (est > 0).astype(np.int64)
        else:
            est = S + (c[None, :] * s[:, None] + db[None, :])
            top2 = np.partition(est, -2, axis=1)[:, -2:]
            undecided = top2[:, 1] - top2[:, 0] <= 2.0 * float(r.max()) * l2 + tol
            labels = np.argmax(est, axis=1).astype(np.int64)
        idx = np.flatnonzero(undecided)
        if len(idx):
            pos = idx if m is None else self.order[idx]
            cost = int(nnz[idx].sum())
            limit = RESCORE_SHARE * self.nnz
            if self.binary and self.linear_delta and self.single:
                limit = min(limit, self.bit_cost)  # a bitset step would be cheaper
            if cost > limit or self.spent + cost > self.nnz:
                return None
            self.spent += cost
            labels[idx] = self._labels_of(learner, pos)
        self.stats["bound"] += 1
        old = int(self.pre_correct[m]) if m is not None else self.n_correct
        rest = self.n_correct - old
        return (rest + int((labels == y).sum())) / self.n

    def _bit_groups(
        self, dW: np.ndarray, F: np.ndarray
    ) -> tuple[list[tuple[float, np.ndarray]], float] | None:
        """``dW`` on ``F`` (not empty) as (value, features) groups, and the most any row's advance
        is off by (``dW`` minus its group's value, summed over a row's features); None when there
        are more than :data:`MAX_BIT_GROUPS` groups.

        A float step ``w + d`` moves weights by ``d`` only up to rounding (``(w + d) - w`` differs
        by an ulp of ``w``), so values within ``GROUP_REL`` of each other share a group and the
        difference is carried in the error bound instead.
        """
        vals = dW[F]
        lo, hi = float(vals.min()), float(vals.max())
        span = GROUP_REL * max(abs(lo), abs(hi))
        if hi - lo <= span:
            mid = lo if lo == hi else 0.5 * (lo + hi)
            groups, dev = [(mid, F)], [0.5 * (hi - lo)]
        else:
            order = np.argsort(vals, kind="stable")
            sv = vals[order]
            cuts = np.flatnonzero(np.diff(sv) > span) + 1
            if len(cuts) >= MAX_BIT_GROUPS:
                return None
            groups, dev = [], []
            for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(sv)], strict=True):
                g_lo, g_hi = float(sv[a]), float(sv[b - 1])
                groups.append((g_lo if g_lo == g_hi else 0.5 * (g_lo + g_hi), F[order[a:b]]))
                dev.append(0.5 * (g_hi - g_lo))
        err = sum(
            d * min(len(Fg), self.row_nnz_max) for d, (_, Fg) in zip(dev, groups, strict=True)
        )
        return groups, err

    def _columns(
        self, learner: Any, w: np.ndarray, b: float, dW: np.ndarray, db: float, scale: float
    ) -> float:
        """Advance the reference scores by ``X[:, F] @ Δw_F + Δb``: by bitset overlaps (one pass per
        distinct step value) on a binary test set, else through the CSC copy. ``scale``:
        ``_scale(w, b)``."""
        scale = max(self.ref_scale, scale)
        F = np.flatnonzero(dW)
        grouped = self._bit_groups(dW, F) if self.binary and len(F) else None
        if grouped is not None:
            # The CSC copy's cost includes building it (about a full pass) until it exists.
            by_columns = int(self.col_nnz[F].sum()) + (self.nnz if self._csc is None else 0)
            if len(grouped[0]) * (self.bit_cost + BIT_GROUP_COST) > by_columns:
                grouped = None
        elif self.binary and len(F):
            return self._full(learner, w, b)  # too uneven for bitsets: a pass beats the columns
        if grouped is not None:
            groups, err = grouped
            if self._bits is None:
                self._bits = RowBits(self.X)
            self.stats["bitsets"] += 1
            # Each row's advance rounds once per product and sum (|values| below 2·scale): with
            # that in the error bound, bitset steps need no periodic full pass.
            self.err += err + (2 * len(groups) + 1) * EPS * 2.0 * scale
            exact = (
                self.exact
                and err == 0.0
                and all(v == round(v) for v, _ in groups)
                and db == round(db)
                and scale < EXACT_LIMIT
            )
            # Exact scores need no re-scoring (tol < 0: no row is "near").
            tol = -1.0 if exact else self._tol(scale)
            n_correct, n_near = self._bits.advance(groups, db, self.S, self.y_bool, tol)
            self._advanced(w, b, F, exact, scale, counts=False)
            if n_near:
                positive = self.S > 0
                near = np.flatnonzero(np.abs(self.S) <= tol)
                positive[near] = self._labels_of(learner, near) == 1
                n_correct = int(np.count_nonzero(positive == self.y_bool))
                self.spent += int(self.row_nnz[near].sum())  # a full pass once this adds up
            self.n_correct = n_correct
            self.correct = None  # not kept per row: only a full pass's ordering reads it
            return self.n_correct / self.n
        if int(self.col_nnz[F].sum()) > COLUMN_SHARE * self.nnz:
            return self._full(learner, w, b)
        if len(F):
            if self._csc is None:
                C = self.X.tocsc()
                C.sort_indices()
                self._csc = (C.indptr, C.indices, C.data)
            cp, ci, cd = self._csc
            Fd = F[::-1]  # descending, so the interleaved gaps are empty ranges
            ap = _interleave(cp[Fd], cp[Fd + 1])
            v = np.zeros(len(ap) - 1)
            v[0::2] = dW[Fd]
            _sparsetools.csc_matvec(self.n, len(v), ap, ci, cd, v, self.S)
        if db:
            self.S += db
        exact = self.exact and bool(np.all(dW[F] == np.rint(dW[F]))) and db == round(db)
        self._advanced(w, b, F, exact, scale, counts=True)
        positive = self.S > 0
        if not self.exact:
            # The advanced scores carry rounding: rows within the allowance of 0 are re-scored.
            tol = self._tol(self.ref_scale)
            near = np.flatnonzero(np.abs(self.S) <= tol)
            if len(near):
                positive[near] = self._labels_of(learner, near) == 1
        self.correct = positive == self.y_bool
        self.n_correct = int(np.count_nonzero(self.correct))
        return self.n_correct / self.n

    def _tol(self, scale: float) -> float:
        """How far an advanced score may be from the kernel's: rounding, relative to the largest
        score term ``scale``, plus the grouped bitset steps' error (:meth:`_bit_groups`)."""
        return TOL * 2.0 * scale + self.err

    def _advanced(
        self, w: np.ndarray, b: float, F: np.ndarray, exact: bool, scale: float, counts: bool
    ) -> None:
        """The reference is now ``(w, b)``: the scores were advanced by a column step (one that
        ``counts`` towards :data:`MAX_DELTAS` when its rounding is not in the error bound)."""
        self.stats["columns"] += 1
        w_ref = self.ref[0]
        w_ref[F] = w[F]
        self.ref = (w_ref, float(b))
        self.ref_scale = scale
        self.exact = exact and self.ref_scale < EXACT_LIMIT
        if counts:
            self.deltas += 1
            self.spent = 0
        # Margins moved; the sort is stale until the next full pass.
        self.order, self.T0 = None, -np.inf
        self._m, self._sort_pending = None, False
