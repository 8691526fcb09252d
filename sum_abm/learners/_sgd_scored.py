"""The compiled sweep of :meth:`SGDPerceptron.update_rows_accuracy` (numba; imported only once
numba is loaded).

:func:`sum_abm.learners._sgd_kernel.sgd_rows` with the test accuracy after every row: a mistake
moves each of its features' weights by the same ``c`` (0/1 rows), so every test row's score moves
by ``c`` times its overlap with the mistake (an AND and popcount of the rows as bitsets) plus the
intercept's step. One call runs a whole prediction-market pass: before, each mistake went back to
Python for one :meth:`TestSetEvaluator.accuracy` call (~40 µs of overhead per mistake against
~10 µs of bitset work on S3's 900 × 16-word test set).

The learning is :func:`sgd_rows`' arithmetic, operation for operation. The advanced scores carry
rounding (the weights' own rounding and the advance's), bounded by ``err``; when any test row
lands within that bound (plus the evaluator's allowance ``tol_rel``) of 0 the sweep hands back
(``NEAR``) so :meth:`Learner.test_accuracy` decides exactly, then starts again from exact scores.
"""

from __future__ import annotations

import numba
import numpy as np

DONE, UNCERTAIN, NEAR = 0, 2, 3
EPS = 2.220446049250313e-16

_M1 = np.uint64(0x5555555555555555)
_M2 = np.uint64(0x3333333333333333)
_M4 = np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@numba.njit(cache=True, boundscheck=False, nogil=True)
def sgd_rows_scored(
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
    bits: np.ndarray,
    S: np.ndarray,
    y_pos: np.ndarray,
    acc: np.ndarray,
    ev: np.ndarray,
) -> tuple[int, int]:
    """Learn rows ``start..`` (0/1 values; row ``i``: ``ind/val[starts[i]:ends[i]]``; ``sign`` ±1)
    into ``w`` and ``state = [b, t, changes, drift epochs]``, ``drift``, and write each row's
    test accuracy after its update into ``acc``. Test rows ``bits`` (n_test, words) with
    labels ``y_pos`` and exact scores ``S`` at the start (advanced in place);
    ``ev = [right answers, err, max |w|, max test-row l1, max test-row non-zeros, tol_rel]``.

    Returns ``(next row, code)``: DONE at the end; UNCERTAIN at a row left to
    :meth:`Learner.update` (not learned, its ``acc`` not written); NEAR after a learned row
    whose accuracy the caller must compute exactly (its ``acc`` not written)."""
    n = len(sign)
    n_test, words = bits.shape
    b = state[0]
    t = state[1]
    right = int(ev[0])
    err = ev[1]
    wmax = ev[2]
    l1_max = ev[3]
    nnz_max = ev[4]
    tol_rel = ev[5]
    cur = right / n_test
    mask = np.zeros(words, np.uint64)
    code = DONE
    i = start
    while i < n:
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
            code = UNCERTAIN
            break
        eta = 1.0 / (alpha * (t0 + t - 1.0))
        t += 1.0
        if m > 0:
            acc[i] = cur
            i += 1
            continue
        # A mistake (0/1 values: |values| sum exactly, to the row's length).
        l1 = 0.0
        for jj in range(lo, hi):
            l1 += abs(val[jj])
        c = eta * sign[i]
        for jj in range(lo, hi):
            k = ind[jj]
            x = w[k] + c * val[jj]
            w[k] = x
            if abs(x) > wmax:
                wmax = abs(x)
            mask[k >> 6] |= np.uint64(1) << np.uint64(k & 63)
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
        # Each touched weight moved by c up to its own rounding (half an ulp of the new weight),
        # the intercept by c*decay up to half an ulp of b; the advance rounds 3 times.
        db = c * decay
        scale = l1_max * wmax + abs(b)
        err += min(hi - lo, nnz_max) * EPS * wmax + EPS * abs(b) + 6.0 * EPS * scale
        tol = tol_rel * 2.0 * scale + err
        good = 0
        near = 0
        for r in range(n_test):
            cnt = np.uint64(0)
            for k in range(words):
                x = bits[r, k] & mask[k]
                x = x - ((x >> np.uint64(1)) & _M1)  # popcount (LLVM emits popcnt)
                x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
                x = (x + (x >> np.uint64(4))) & _M4
                cnt += (x * _H01) >> np.uint64(56)
            sr = S[r] + c * np.float64(cnt)
            sr = sr + db
            S[r] = sr
            good += (sr > 0.0) == y_pos[r]
            near += abs(sr) <= tol
        for jj in range(lo, hi):
            mask[ind[jj] >> 6] = np.uint64(0)
        i += 1
        if near:
            code = NEAR
            break
        right = good
        cur = right / n_test
        acc[i - 1] = cur
    state[0] = b
    state[1] = t
    ev[0] = right
    ev[1] = err
    ev[2] = wmax
    return i, code
