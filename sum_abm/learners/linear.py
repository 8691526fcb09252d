"""Linear binary learners: the Solidity sparse perceptron and the reference's SGD perceptron."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import scipy.sparse as sp

import sum_abm.learners._compiled as _compiled
from sum_abm.learners.base import (
    Learner,
    LearnerParams,
    Sample,
    Writes,
    _csr_matvec,
    as_matrix,
    as_sample,
    gather_rows,
)

GATHER_ROWS = 1024  # scattered rows copied at a time for the block sweep (memory stays bounded)


class _Linear(Learner):
    """``w·x + b``; class 1 when the score is > 0 (scikit-learn's rule). Two classes only."""

    linear_delta = True  # an update moves only its own features' weights and the intercept
    binary = True
    #: (sample, :meth:`decision_one` of it) as the last :meth:`update` computed it before
    #: learning: after an update that left the model as it was (same ``version``), a caller
    #: scoring that sample reads it here instead of computing it again (the market's book)
    last_decision: tuple[Sample, float] | None = None

    def __init__(self, n_features: int, n_classes: int = 2) -> None:
        if n_classes != 2:
            raise ValueError(f"{self.kind} is a binary classifier (got {n_classes} classes)")
        super().__init__(n_features, n_classes)
        self.w = np.zeros(n_features, dtype=np.float64)
        self.b = 0.0

    def decision(self, X: Any) -> np.ndarray:
        return np.asarray(X @ self.w).ravel() + self.b

    def decision_one(self, s: Sample) -> float:
        # take + dot: the same BLAS dot as ``w[idx] @ x`` (same sum order), with less overhead
        return float(self.w.take(s.indices).dot(s.values)) + self.b

    def update_writes(self, x: Any, y: int) -> Writes:
        """A perceptron learns only from a mistake (a margin that is not positive); it then writes
        the present features' weights and the intercept."""
        s = as_sample(x)
        sign = 1.0 if int(y) == 1 else -1.0
        if sign * self.decision_one(s) > 0:
            return Writes(False)
        dw, db = self._step(s, sign)
        old = np.append(self.w[s.indices], self.b)
        new = old + np.append(dw, db)
        return Writes(
            True,
            int(np.count_nonzero((old == 0) & (new != 0))),
            int(np.count_nonzero((old != 0) & (new == 0))),
        )

    def _step(self, s: Sample, sign: float) -> tuple[np.ndarray, float]:
        """The next update's change of the weights at ``s.indices`` and of the intercept."""
        raise NotImplementedError

    def _segment_params(self) -> tuple[np.ndarray, Any]:
        return self.w, self.b

    def _state(self) -> Any:
        return self.w.copy(), self.b

    def _set_state(self, state: Any) -> None:
        self.w, self.b = state[0].copy(), state[1]

    def update_rows(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        y: np.ndarray,
        pause: bool = True,
        ends: np.ndarray | None = None,
    ) -> Iterator[int]:
        """:meth:`Learner.update_rows` for a mistake-driven rule: a row whose margin is positive
        changes nothing but the step counter (:meth:`_skip_rows`), so rows are scored a block at a
        time with the current weights by the compiled CSR kernel, and only the first row of a
        block that may be a mistake goes through :meth:`update` (which decides it exactly).

        Exact: the kernel sums a row in another order than :meth:`decision_one`'s dot product,
        so a row counts as certainly right only when its margin exceeds a bound on that rounding
        difference (1e-9 of the largest possible |score| term, far above it); the rest go
        through :meth:`update`. Parameters, step counter, drift and version end bit for bit as
        after :meth:`update` row by row.
        """
        y = np.asarray(y)
        n = len(y)
        if not n or not np.all((y == 0) | (y == 1)):  # invalid labels: let update() raise in turn
            yield from super().update_rows(indptr, indices, values, y, pause, ends)
            return
        if ends is None:
            yield from self._sweep_blocks(indptr, indices, values, y, pause)
            return
        # Scattered rows: contiguous copies for the block kernel, a bounded share at a time.
        p = 0
        while p < n:
            q = p + GATHER_ROWS
            parts = gather_rows(indptr[p:q], ends[p:q], indices, values)
            for j in self._sweep_blocks(*parts, y[p:q], pause):
                yield p + j
            p = q

    def _sweep_blocks(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        y: np.ndarray,
        pause: bool,
    ) -> Iterator[int]:
        """:meth:`update_rows` of contiguous rows with 0/1 labels (the block sweep)."""
        n = len(y)
        sign = np.where(y == 1, 1.0, -1.0)
        base = int(indptr[0])
        # Values times their row's sign, so the kernel gives sign * (w·x) at once; each row's
        # sum of |values|, for the rounding bound.
        signed = values[base : indptr[-1]] * np.repeat(sign, np.diff(indptr))
        ptr = indptr - base
        l1 = np.zeros(n)
        full = np.flatnonzero(ptr[1:] > ptr[:-1])
        if len(full):
            l1[full] = np.add.reduceat(np.abs(signed), ptr[:-1][full]) * (1.0 + 1e-9)
        l1 *= 1e-9
        p, block, wmax = 0, 32, None
        while p < n:
            q = min(n, p + block)
            w = self.w
            if wmax is None:  # the largest |weight|, again after each update
                wmax = float(np.abs(w).max(initial=0.0))
                floor = 1e-9 * abs(self.b) + 1e-300
            margin = sign[p:q] * self.b
            _csr_matvec(q - p, len(w), ptr[p : q + 1], indices[base:], signed, w, margin)
            tol = l1[p:q] * wmax
            tol += floor
            maybe = margin <= tol  # NaN margins count too
            k = int(maybe.argmax())
            if not maybe[k]:
                self._skip_rows(q - p)
                p, block = q, min(2 * block, 1024)
                continue
            j = p + k
            if k:
                self._skip_rows(k)
            lo, hi = indptr[j], indptr[j + 1]
            if self.update(Sample(indices[lo:hi], values[lo:hi]), int(y[j])):
                wmax = None
                if pause:
                    yield j
            p, block = j + 1, max(16, 2 * (k + 1))

    def _skip_rows(self, n: int) -> None:
        """The effect of ``n`` rows learned without a mistake (none for the plain perceptron)."""


class Perceptron(_Linear):
    """The Solidity SparsePerceptron's rule: on a mistake only, ``w += lr*y*x`` and ``b += lr*y``.

    ``integer_weights`` rounds every step to integers, as a contract without floats stores them.
    It predicts like ``sklearn.linear_model.Perceptron(eta0=lr)`` fed one ``partial_fit`` at a time
    on dense data (on sparse input scikit-learn damps the intercept step by 0.01).
    """

    kind = "perceptron"

    class Params(LearnerParams):
        """Step size (``learning_rate``) and whether weights are rounded to integers."""

        learning_rate: float = 1.0
        integer_weights: bool = False

    def __init__(
        self,
        n_features: int,
        n_classes: int = 2,
        learning_rate: float = 1.0,
        integer_weights: bool = False,
    ) -> None:
        super().__init__(n_features, n_classes)
        self.lr = float(learning_rate)
        self.integer_weights = bool(integer_weights)

    def fit(self, X: Any, y: Any) -> Perceptron:
        """One pass of single-sample updates over the batch, in order."""
        self.w[:] = 0.0
        self.b = 0.0
        X = as_matrix(X)
        y = np.asarray(y)
        if sp.issparse(X):
            for i in range(X.shape[0]):
                lo, hi = X.indptr[i], X.indptr[i + 1]
                self._update(Sample(X.indices[lo:hi], X.data[lo:hi]), int(y[i]))
        else:
            for i in range(X.shape[0]):
                nz = np.flatnonzero(X[i])
                self._update(Sample(nz, X[i, nz]), int(y[i]))
        self.version += 1
        self.drift_epoch += 1
        return self

    def _step(self, s: Sample, sign: float) -> tuple[np.ndarray, float]:
        step = self.lr * sign
        delta = step * s.values
        return (np.round(delta), round(step)) if self.integer_weights else (delta, step)

    def _update(self, s: Sample, y: int) -> int:
        sign = 1.0 if y == 1 else -1.0
        d = self.decision_one(s)
        self.last_decision = (s, d)
        if sign * d > 0:
            return 0
        step = self.lr * sign
        delta = step * s.values
        if self.integer_weights:
            delta = np.round(delta)
            step = round(step)
        self.w[s.indices] += delta  # a sample's indices are unique
        self.b += step
        # |Δ(w·x + b)| <= |Δb| + ||Δw||_1 * max|x|
        self._add_drift(abs(step), float(np.abs(delta).sum()), 0.0)
        return len(s.indices) + 1


class SGDPerceptron(_Linear):
    """The reference simulator's perceptron: ``SGDClassifier(loss='perceptron',
    learning_rate='optimal', penalty=None)`` fed one ``partial_fit`` at a time, reproduced exactly.

    The initial batch is fitted by scikit-learn itself (its ``fit`` shuffles with ``random_state``
    over epochs); single-sample updates then follow scikit-learn's plain-SGD step: with
    ``eta = 1/(alpha*(t0 + t - 1))`` and ``t0 = 1/(alpha*sqrt(1/sqrt(alpha)))``, on ``y*p <= 0``
    ``w += eta*y*x`` and ``b += eta*y*intercept_decay`` (0.01 for sparse input, as scikit-learn).
    """

    kind = "sgd_perceptron"

    class Params(LearnerParams):
        """scikit-learn's ``alpha``, ``random_state`` and the sparse-input intercept damping."""

        alpha: float = 1e-4
        random_state: int = 0xDECA10B
        sparse: bool = True

    def __init__(
        self,
        n_features: int,
        n_classes: int = 2,
        alpha: float = 1e-4,
        random_state: int = 0xDECA10B,
        sparse: bool = True,
    ) -> None:
        super().__init__(n_features, n_classes)
        self.alpha = float(alpha)
        self.random_state = int(random_state)
        self.intercept_decay = 0.01 if sparse else 1.0
        typw = np.sqrt(1.0 / np.sqrt(self.alpha))
        self.t0 = 1.0 / (
            typw * self.alpha
        )  # initial_eta0 = typw / max(1, |dloss(-typw, 1)|) = typw
        self.t = 1.0

    def fit(self, X: Any, y: Any) -> SGDPerceptron:
        from sklearn.linear_model import SGDClassifier

        clf = SGDClassifier(
            loss="perceptron",
            learning_rate="optimal",
            penalty=None,
            alpha=self.alpha,
            random_state=self.random_state,
        )
        clf.fit(as_matrix(X), np.asarray(y))
        self.w = clf.coef_.ravel().astype(np.float64).copy()
        self.b = float(clf.intercept_[0])
        self.t = float(clf.t_)
        self.version += 1
        self.drift_epoch += 1
        return self

    def _step(self, s: Sample, sign: float) -> tuple[np.ndarray, float]:
        eta = 1.0 / (self.alpha * (self.t0 + self.t - 1.0))
        return eta * sign * s.values, eta * sign * self.intercept_decay

    def _update(self, s: Sample, y: int) -> int:
        sign = 1.0 if y == 1 else -1.0
        eta = 1.0 / (self.alpha * (self.t0 + self.t - 1.0))
        d = self.decision_one(s)  # (reads the sample's weights first: a bad index writes nothing)
        self.t += 1.0
        self.last_decision = (s, d)
        if sign * d > 0:
            return 0
        # a sample's indices are unique; intp, as numpy converts int32 at every gather/scatter
        self.w[s.indices.astype(np.intp)] += eta * sign * s.values
        self.b += eta * sign * self.intercept_decay
        self._add_drift(eta * self.intercept_decay, eta * float(np.abs(s.values).sum()), 0.0)
        return len(s.indices) + 1

    def update_rows(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        y: np.ndarray,
        pause: bool = True,
        ends: np.ndarray | None = None,
    ) -> Iterator[int]:
        """:meth:`Learner.update_rows` by the compiled sweep (:func:`sum_abm.learners._compiled.sgd_rows`),
        else the block sweep of :class:`_Linear`. The same parameters, step counter, drift and
        version bit for bit either way."""
        sweep = _compiled.sgd_rows
        y = np.asarray(y)
        w = self.w
        if (
            sweep is None
            or not len(y)
            or not np.all((y == 0) | (y == 1))
            or not (w.dtype == np.float64 and w.flags.c_contiguous)
            or values.dtype != np.float64
        ):
            yield from super().update_rows(indptr, indices, values, y, pause, ends)
            return
        starts, ends = (indptr[:-1], indptr[1:]) if ends is None else (indptr, ends)
        # The compiled loop reads contiguous arrays (a copy only of a strided view).
        starts, ends, indices, values = map(np.ascontiguousarray, (starts, ends, indices, values))
        sign = np.where(y == 1, 1.0, -1.0)
        state = np.zeros(4)
        p = 0
        while True:
            state[:] = (self.b, self.t, 0.0, 0.0)
            p, code = sweep(
                starts, ends, indices, values, sign, self.w, state, self.drift,
                self.alpha, self.t0, self.intercept_decay, p, pause,
            )  # fmt: skip
            self._take_sweep_state(state)
            if code == 0:
                return
            if code == 1:
                yield p - 1
                continue
            lo, hi = starts[p], ends[p]  # a margin too close to 0: update() decides
            if self.update(Sample(indices[lo:hi], values[lo:hi]), int(y[p])) and pause:
                yield p
            p += 1

    def _take_sweep_state(self, state: np.ndarray) -> None:
        """Take back what a compiled sweep left in ``state = [b, t, changes, drift epochs]``."""
        if state[2]:  # as _update's arithmetic leaves it (t0 is a numpy float)
            self.b = type(self.b + self.t0)(state[0])
        self.t = float(state[1])
        self.version += int(state[2])
        self.drift_epoch += int(state[3])

    def update_rows_accuracy(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        values: np.ndarray,
        y: np.ndarray,
        ends: np.ndarray | None = None,
    ) -> np.ndarray:
        """:meth:`Learner.update_rows_accuracy` in one compiled sweep that also advances the test
        scores (:func:`sum_abm.learners._compiled.sgd_rows_scored`) when the sweep is compiled,
        the test set and the rows are 0/1 and the labels 0/1; else the default. The same accuracies,
        parameters, step counter, drift and version bit for bit either way."""
        sweep = _compiled.sgd_rows
        ev = self._evaluator
        y = np.asarray(y)
        n = len(y)
        bits = ev.bit_rows() if sweep is not None and ev is not None and n else None
        starts, ends = (indptr[:-1], indptr[1:]) if ends is None else (indptr, ends)
        if (
            bits is None
            or not np.all((y == 0) | (y == 1))
            or not (self.w.dtype == np.float64 and self.w.flags.c_contiguous)
            or values.dtype != np.float64
            or not bool((values[starts.min() : ends.max()] == 1.0).all())
        ):
            return super().update_rows_accuracy(starts, indices, values, y, ends)
        from sum_abm.learners.evaluation import TOL

        starts, ends, indices, values = map(np.ascontiguousarray, (starts, ends, indices, values))
        X = ev.X
        sign = np.where(y == 1, 1.0, -1.0)
        acc = np.empty(n)
        state = np.zeros(4)
        p = 0
        while p < n:
            # Exact scores at the current parameters (the arithmetic of predict) to start from.
            S = self.kernel_scores(X.indptr, X.indices, X.data, ev.ones)
            right = int(np.count_nonzero((S > 0) == ev.y_bool))
            wmax = float(np.abs(self.w).max(initial=0.0))
            evs = np.array([right, 0.0, wmax, ev.l1_max, ev.row_nnz_max, TOL], dtype=np.float64)
            state[:] = (self.b, self.t, 0.0, 0.0)
            p, code = _compiled.sgd_rows_scored(
                starts, ends, indices, values, sign, self.w, state, self.drift,
                self.alpha, self.t0, self.intercept_decay, p, bits, S, ev.y_bool, acc, evs,
            )  # fmt: skip
            self._take_sweep_state(state)
            if code == _compiled.NEAR:  # a test score too close to 0: decided exactly
                acc[p - 1] = self.test_accuracy()
            elif code == _compiled.UNCERTAIN:  # a margin too close to 0: update() decides
                lo, hi = starts[p], ends[p]
                self.update(Sample(indices[lo:hi], values[lo:hi]), int(y[p]))
                acc[p] = self.test_accuracy()
                p += 1
        return acc

    def _skip_rows(self, n: int) -> None:
        # _update advances t by 1.0 per row, mistake or not; an integer-valued t below 2**53
        # takes n at once exactly.
        if float(self.t).is_integer() and self.t + n < 2.0**53:
            self.t += float(n)
        else:
            for _ in range(n):
                self.t += 1.0

    def _state(self) -> Any:
        return self.w.copy(), self.b, self.t

    def _set_state(self, state: Any) -> None:
        self.w, self.b, self.t = state[0].copy(), state[1], state[2]
