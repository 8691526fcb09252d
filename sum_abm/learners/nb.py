"""Multinomial Naive Bayes with Laplace smoothing, updated one sample at a time by counts."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.sparse as sp

import sum_abm.learners._compiled as _compiled
from sum_abm.learners.base import Learner, LearnerParams, Sample, Writes, as_matrix, as_sample

#: The most items of a table of whole-number counts (8 MB); larger counts are computed.
TABLE_MAX = 1 << 20


class MultinomialNB(Learner):
    """Counts per class and feature; agrees with ``sklearn.naive_bayes.MultinomialNB.partial_fit``.

    Log-probabilities are recomputed lazily (once per parameter version), so a prediction after an
    update costs O(classes × features) once and O(non-zeros) per sample.
    """

    kind = "multinomial_nb"
    nonnegative_features = True
    follow_margins = True

    class Params(LearnerParams):
        """Laplace smoothing ``alpha`` (> 0)."""

        alpha: float = 1.0

    def __init__(self, n_features: int, n_classes: int = 2, alpha: float = 1.0) -> None:
        super().__init__(n_features, n_classes)
        if alpha <= 0:
            raise ValueError("alpha must be > 0")
        self.alpha = float(alpha)
        self.counts = np.zeros((n_classes, n_features), dtype=np.float64)
        self.class_count = np.zeros(n_classes, dtype=np.float64)
        self.total = np.zeros(n_classes, dtype=np.float64)  # sum of counts per class
        self._logs: tuple[int, np.ndarray, np.ndarray] | None = None
        # log(counts + alpha) and log(total + alpha * d), kept current through one-sample updates
        # (only the update's own features change); None: recomputed whole at the next use.
        self._logc: tuple[np.ndarray, np.ndarray] | None = None
        # (class, feature indices) of the updates since the kept logs were last brought up to
        # date: re-logged together at the next use (_log_counts), not at every update.
        self._stale: list[tuple[int, np.ndarray]] = []
        self._every_class_seen = False  # every class count > 0 (known to be)
        # Tables of the compiled paths for whole-number counts k (0/1 data), grown on demand:
        # nb_add's drift term log1p(1 / (k + alpha)) and the kept logs' log(k + alpha) (alpha
        # is fixed at construction, so they hold for every later state of the counts).
        self._drift_table: np.ndarray | None = None
        self._log_table: np.ndarray | None = None

    def fit(self, X: Any, y: Any) -> MultinomialNB:
        X = as_matrix(X)
        y = np.asarray(y, dtype=np.int64)
        if (X.data if sp.issparse(X) else X).min(initial=0) < 0:
            raise ValueError("MultinomialNB needs non-negative features")
        Y = np.zeros((len(y), self.n_classes))
        Y[np.arange(len(y)), y] = 1.0
        # C order: an update adds to one class's row (the compiled count update needs it
        # contiguous; (X.T @ Y).T is column-major)
        self.counts = np.ascontiguousarray(
            np.asarray(Y.T @ X, dtype=np.float64) if not sp.issparse(X) else (X.T @ Y).T
        )
        self.class_count = Y.sum(axis=0)
        self.total = self.counts.sum(axis=1)
        self._logc = None
        self._every_class_seen = False
        self.version += 1
        self.drift_epoch += 1
        return self

    def update_writes(self, x: Any, y: int) -> Writes:
        """Every sample raises the counts: a feature's count for class ``y`` at zero is a new slot,
        and so are the class's sample count and feature total while the class has no data."""
        s = as_sample(x)
        y = int(y)
        new = (
            np.count_nonzero(self.counts[y, s.indices] == 0)
            + int(self.class_count[y] == 0)
            + int(self.total[y] == 0)
        )
        return Writes(True, int(new))

    def _update(self, s: Sample, y: int) -> int:
        v = s.values
        a = self.alpha
        row = self.counts[y]
        add = _compiled.nb_add if row.flags.c_contiguous else None
        done = -1  # the compiled update's word on the rest of the update (see _compiled.nb_add)
        if add is not None:
            # the same counts in one compiled pass (checks first, then writes); the drift term
            # from the C library's log1p, looked up for 0/1 data; then, where it gives the same
            # bits, the rest of the update (totals, class counts, drift)
            tab, top = self._drift_table, self.class_count.item(y)  # (0/1 data: counts <= it)
            fill = _compiled.nb_drift_table
            if fill is not None and (tab is None or (top >= len(tab) and len(tab) < TABLE_MAX)):
                tab = self._grown(tab, top)
                fill(tab, a)
                self._drift_table = tab
            try:
                d_feat, v_sum, done = add(
                    row, s.indices, v, a, tab, y, self.total, self.class_count, self.drift
                )
                idx = s.indices
            except (TypeError, ValueError, IndexError, BufferError):
                # arrays it cannot read (not float64 values, strided ones) or a refused sample,
                # nothing written: the numpy path below decides and raises as it always has
                add = None
        if add is None:
            if len(v) and np.minimum.reduce(v) < 0:
                raise ValueError("MultinomialNB needs non-negative features")
            # Index with intp: numpy converts int32 indices at every gather and scatter (4x slower).
            idx = s.indices.astype(np.intp)
            old_counts = row[idx]
            new_counts = old_counts + v
            row[idx] = new_counts  # a sample's indices are unique
            d_feat = float(np.add.reduce(np.log1p(v / (old_counts + a))))
            v_sum = None
        if done < 0:
            self._update_rest(y, v, v_sum, d_feat)
        elif not done:
            self.drift_epoch += 1  # no finite drift bound (as _add_drift)
        if self._logc is not None:
            self._stale.append((y, idx))
            if len(self._stale) >= 64:
                self._relog()
        return len(idx) + 1

    def _update_rest(self, y: int, v: np.ndarray, v_sum: float | None, d_feat: float) -> None:
        """An update's class total and sample count, and its drift bound (``d_feat``: the
        touched log-counts' change); ``v_sum``: the values' sum when known."""
        if v_sum is None:  # (the compiled update sums whole values only, see nb_add)
            v_sum = np.add.reduce(v)  # (v.sum(), without the method's Python wrapper)
        tot = self.total
        old_total = float(tot[y])
        tot[y] = old_total + v_sum
        cc = self.class_count
        counts = cc.tolist()
        # numpy sums fewer than 8 values in order, as Python's sum does
        c_y, c_all = counts[y], float(sum(counts) if len(counts) < 8 else cc.sum())
        cc[y] = c_y + 1
        # Margin change bound: priors (twice: two classes' scores move), the touched features'
        # log-counts (times max|x|), and the class normaliser (times sum|x|).
        shift = math.log1p(1.0 / c_all) if c_all > 0 else math.inf  # every prior: -log((C+1)/C)
        d_prior = 2.0 * max(shift, abs(math.log1p(1.0 / c_y) - shift) if c_y > 0 else math.inf)
        d_norm = math.log1p(float(v_sum) / (old_total + self.alpha * self.n_features))
        self._add_drift(d_prior, d_feat, d_norm)

    def _log_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """(log(counts + alpha), log(total + alpha * d)), started whole when not kept."""
        if self._logc is None:
            self._logc = (np.log(self.counts + self.alpha), self._log_norms())
            self._stale.clear()
        elif self._stale:
            self._relog()
        return self._logc

    def _relog(self) -> None:
        """Bring the kept logs up to date on the features and classes updated since: the same
        elementwise logs of the same counts as a whole recomputation (a feature updated twice
        is simply re-logged twice)."""
        logc, lognorm = self._logc  # type: ignore[misc]
        a, stale = self.alpha, self._stale
        for c in {y for y, _ in stale}:
            parts = [idx for y, idx in stale if y == c]
            if 4 * sum(map(len, parts)) >= self.n_features:
                # the whole row: cheaper than gathering and scattering a quarter of it or more
                # (64 updates of S2's ~175 features of 1,000 touch most of a row)
                if not self._table_logs(self.counts[c], logc[c], None):
                    np.log(self.counts[c] + a, out=logc[c])
            else:
                ids = parts[0] if len(parts) == 1 else np.concatenate(parts)
                if not self._table_logs(self.counts[c], logc[c], ids):
                    logc[c][ids] = np.log(self.counts[c][ids] + a)
        # every class's normaliser at once, as _log_counts starts them (unchanged ones re-log equal)
        self._log_norms(out=lognorm)
        stale.clear()

    def _log_norms(self, out: np.ndarray | None = None) -> np.ndarray:
        """Every class's log normaliser ``log(total + alpha * d)`` (into ``out`` when given)."""
        return np.log(self.total + self.alpha * self.n_features, out=out)

    def _table_logs(self, counts: np.ndarray, out: np.ndarray, ids: np.ndarray | None) -> bool:
        """``out[ids] = log(counts[ids] + alpha)`` (every item when ``ids`` is None) read from
        the table of whole-number counts (_compiled.nb_logs: the same logs bit for bit); False
        when not done (no compiled kernels, or a count that is not a whole number)."""
        logs = _compiled.nb_logs
        return logs is not None and self._with_log_table(lambda t: logs(counts, t, out, ids))

    def _with_log_table(self, call: Any) -> bool:
        """``call(table)`` with the table of ``log(k + alpha)``, grown and called again when it
        answers that the counts need a larger one (the protocol of _compiled.nb_logs); whether
        it was done."""
        tab = self._log_table
        if tab is None:  # (an empty table: the call says the size the counts need)
            tab = self._log_table = np.empty(0)
        try:
            need = call(tab)
            if 0 < need <= TABLE_MAX:
                tab = self._grown(tab, need - 1)
                np.log(np.arange(len(tab), dtype=np.float64) + self.alpha, out=tab)
                self._log_table = tab
                need = call(tab)
        except (TypeError, ValueError, BufferError):  # arrays it cannot read: the numpy path
            return False
        return need == 0

    def _binary_weights(self, n0: float, n1: float) -> np.ndarray | None:
        """The two-class weights of :meth:`score_params` straight from whole-number counts and
        the table (_compiled.nb_binary_weights: the same bits), without bringing the kept logs
        up to date (they stay stale until their next use); ``n0``, ``n1``: the classes' log
        normalisers (:meth:`_log_norms`). None when not possible."""
        weights = _compiled.nb_binary_weights
        if weights is None:
            return None
        c0, c1 = self.counts
        w = np.empty(self.n_features)
        return w if self._with_log_table(lambda t: weights(c0, c1, t, n0, n1, w)) else None

    @staticmethod
    def _grown(table: np.ndarray | None, top: float) -> np.ndarray:
        """A table (for _compiled.nb_logs, nb_drift_table) of at least 1,024 items and twice
        what count ``top`` needs, at most TABLE_MAX: doubling keeps the refills few as counts
        grow."""
        n = max(1024, 2 * int(top) + 2, 0 if table is None else 2 * len(table))
        return np.empty(min(n, TABLE_MAX))

    def _prior(self) -> np.ndarray:
        cc = self.class_count
        if self._every_class_seen or cc.all():  # (entering errstate costs more than the logs)
            self._every_class_seen = True  # class counts only grow (a refit or restore resets)
            return np.log(cc) - np.log(np.add.reduce(cc))  # (cc.sum() without its wrapper)
        with np.errstate(divide="ignore"):  # a class without data: log 0 = -inf
            return np.log(cc) - np.log(np.add.reduce(cc))

    def _log_params(self) -> tuple[np.ndarray, np.ndarray]:
        if self._logs is None or self._logs[0] != self.version:
            logc, lognorm = self._log_counts()
            self._logs = (self.version, self._prior(), logc - lognorm[:, None])
        return self._logs[1], self._logs[2]

    def decision(self, X: Any) -> np.ndarray:
        prior, flp = self._log_params()
        return np.asarray(X @ flp.T) + prior

    def decision_one(self, s: Sample) -> np.ndarray:
        prior, flp = self._log_params()
        return flp[:, s.indices] @ s.values + prior

    def _segment_params(self) -> tuple[np.ndarray, Any]:
        prior, flp = self._log_params()
        return flp, prior[:, None]

    def score_params(self) -> tuple[np.ndarray, Any]:
        """:meth:`Learner.score_params` bit for bit (the same elementwise differences of logs),
        without the log-probability matrix: for two classes straight from whole-number counts
        (:meth:`_binary_weights`), else from the kept logs."""
        cached = self._score_params
        if cached is not None and cached[0] == self.version:
            return cached[1], cached[2]
        if self.n_classes == 2:  # class 1 minus class 0
            cc = self.class_count
            if self._every_class_seen or cc.all():
                self._every_class_seen = True  # (as in _prior)
                # Every log the parameters read in one numpy call, of the same values as
                # _log_norms and _prior take them: log(total + alpha * d) per class, log of
                # the class counts and of their sum (two whole numbers: numpy's sum is exact).
                t0, t1 = self.total.tolist()
                k0, k1 = cc.tolist()
                ad = self.alpha * self.n_features
                logs = np.log(np.array((t0 + ad, t1 + ad, k0, k1, k0 + k1)))
                n0, n1, l0, l1, ls = logs.tolist()
                b = (l1 - ls) - (l0 - ls)  # prior[1] - prior[0]
            else:
                n0, n1 = self._log_norms().tolist()
                prior = self._prior()
                b = float(prior[1] - prior[0])
            w = self._binary_weights(n0, n1)
            if w is None:
                logc, lognorm = self._log_counts()
                w = (logc[1] - lognorm[1]) - (logc[0] - lognorm[0])
        else:
            logc, lognorm = self._log_counts()
            prior = self._prior()
            w, b = logc - lognorm[:, None], prior
        self._score_params = (self.version, w, b)
        return w, b

    def predict_log_proba(self, X: Any) -> np.ndarray:
        jll = self.decision(as_matrix(X))
        m = jll.max(axis=1, keepdims=True)
        return jll - (m + np.log(np.exp(jll - m).sum(axis=1, keepdims=True)))

    def _state(self) -> Any:
        return self.counts.copy(), self.class_count.copy(), self.total.copy()

    def _set_state(self, state: Any) -> None:
        self.counts, self.class_count, self.total = (a.copy() for a in state)
        self._logc = None
        self._every_class_seen = False
