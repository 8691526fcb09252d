"""The compiled sweep of :meth:`SGDPerceptron.update_rows` (numba; imported only when loaded).

The same float operations in the same order as :meth:`SGDPerceptron._update` and
:meth:`Learner._add_drift` (no fast-math). Two rows are handed back (``UNCERTAIN``) for
:meth:`Learner.update` to learn: a row whose margin is within 1e-9 of the largest possible
|score| term of 0 (summed here in index order, it may round differently from
``decision_one``'s dot product), and a mistake whose values are not all whole numbers (numpy
sums its |values| pairwise; whole numbers below 2**53 sum exactly in any order).
"""

from __future__ import annotations

import numba
import numpy as np

DONE, CHANGED, UNCERTAIN = 0, 1, 2


@numba.njit(cache=True, boundscheck=False, nogil=True)
def sgd_rows(
    starts: np.ndarray,
    ends: np.ndarray,
    ind: np.ndarray,
    val: np.ndarray,
    sign: np.ndarray,
    w: np.ndarray,
    state: np.ndarray,
    drift: np.ndarray,
    alpha: float,
    t0: float,
    decay: float,
    start: int,
    pause: bool,
) -> tuple[int, int]:
    """Learn rows ``start..`` (row ``i``: ``ind/val[starts[i]:ends[i]]``, any ranges of the
    arrays; ``sign`` ±1 per row) into ``w``,
    ``state = [b, t, changes, drift epochs]`` and ``drift``; returns ``(next row, code)``:
    DONE at the end, CHANGED after a row that changed the model (when ``pause``), UNCERTAIN at a
    row left to :meth:`Learner.update` (not learned)."""
    n = len(sign)
    b = state[0]
    t = state[1]
    for i in range(start, n):
        lo = starts[i]
        hi = ends[i]
        s = 0.0
        a = 0.0
        for jj in range(lo, hi):
            p = w[ind[jj]] * val[jj]
            s += p
            a += abs(p)
        m = sign[i] * (s + b)
        if not abs(m) > 1e-9 * (a + abs(b)) + 1e-300:  # NaN included
            state[0] = b
            state[1] = t
            return i, UNCERTAIN
        if m <= 0:  # a mistake: its |values| must sum exactly in any order (whole numbers)
            whole = True
            l1 = 0.0
            for jj in range(lo, hi):
                v = abs(val[jj])
                whole = whole and v == np.floor(v)
                l1 += v
            if not whole or not l1 < 2.0**53:
                state[0] = b
                state[1] = t
                return i, UNCERTAIN
        eta = 1.0 / (alpha * (t0 + t - 1.0))
        t += 1.0
        if m > 0:
            continue
        c = eta * sign[i]
        for jj in range(lo, hi):
            w[ind[jj]] += c * val[jj]
        b += c * decay
        d0 = eta * decay
        d1 = eta * l1
        if np.isfinite(d0) and np.isfinite(d1):
            drift[0] += d0
            drift[1] += d1
            drift[2] += 0.0
        else:
            state[3] += 1.0
        state[2] += 1.0
        if pause:
            state[0] = b
            state[1] = t
            return i + 1, CHANGED
    state[0] = b
    state[1] = t
    return n, DONE
