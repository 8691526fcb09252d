"""The compiled loops (C, :file:`_kernels.c`, built with the package), or None each.

Fourteen loops that Python would run row by row, slot by slot or item by item, run in C (the long
ones without the GIL). Each has a numpy path that gives the same results bit for bit (the float
arithmetic is the same, operation for operation and in the same order: no fused multiply-add, no
fast-math), except :func:`nb_add`'s drift bound (see there), and :func:`nb_drift_table` only
fills the table that :func:`nb_add` reads; without a C compiler at install the package still
works, on those paths only (:data:`BUILT` is False).

:func:`bit_advance` ``(bits, masks, values, db, S, y_pos, tol) -> (correct, near)``
    The bitset step of :meth:`sum_abm.learners.evaluation.RowBits.advance`:
    ``S[r] += Σ_g values[g]·|row r ∩ masks[g]| + db`` for test rows ``bits`` (n, words) uint64
    and feature masks (groups, words), summed in that order; returns the rows with ``S > 0``
    equal to ``y_pos`` and the rows with ``|S| <= tol``. One sweep of the rows instead of three
    to five numpy passes over temporaries.

:func:`sgd_rows` ``(starts, ends, ind, val, sign, w, state, drift, alpha, t0, decay, start,
pause) -> (next row, code)``
    The sweep of :meth:`SGDPerceptron.update_rows`: learn rows ``start..`` (row ``i``:
    ``ind/val[starts[i]:ends[i]]``, any ranges of the arrays; ``sign`` ±1 per row) into ``w``,
    ``state = [b, t, changes, drift epochs]`` and ``drift``, with the float operations of
    :meth:`SGDPerceptron._update` and :meth:`Learner._add_drift`. Codes: DONE at the end, CHANGED
    after a row that changed the model (when ``pause``), UNCERTAIN at a row left to
    :meth:`Learner.update` (not learned): a row whose margin is within 1e-9 of the largest
    possible |score| term of 0 (summed here in index order, it may round differently from
    ``decision_one``'s dot product), or a mistake whose values are not all whole numbers (numpy
    sums its |values| pairwise; whole numbers below 2**53 sum exactly in any order).

:func:`sgd_rows_scored` ``(starts, ends, ind, val, sign, w, state, drift, alpha, t0, decay,
start, bits, S, y_pos, acc, ev) -> (next row, code)``
    :func:`sgd_rows` (0/1 values) with the test accuracy after every row written to ``acc``, for
    :meth:`SGDPerceptron.update_rows_accuracy` (a prediction market's pass in one call): a
    mistake moves each of its features' weights by the same ``c``, so every test row's score
    ``S`` (exact at the start) moves by ``c`` times its overlap with the mistake plus the
    intercept's step. ``ev = [right answers, err, max |w|, max test-row l1, max test-row
    non-zeros, tol_rel]`` (updated). The advanced scores carry rounding bounded by ``err``; when
    a test row lands within that bound (plus ``tol_rel`` of the largest score term) of 0, the
    sweep stops with NEAR after learning the row, so :meth:`Learner.test_accuracy` decides
    exactly; UNCERTAIN as in :func:`sgd_rows`.

:func:`book_shift` ``(bits, lo, hi, mask, step, intercept_step, k, score, mag, live, x_l1,
w_bound, x_l1_max, b_bound, tol, out) -> count``
    :meth:`sum_abm.market.claims.ClaimBook.shift` for a linear model's single step, over the
    claim book's pending contributions ``lo..hi`` (rows of ``bits``): each score moves by
    ``step * overlap + intercept_step`` and its rounding allowance by ``k * overlap +
    |intercept_step|`` (``k = |step| + slack / tol``); the live slots whose class may have changed
    (sign changed, or within ``tol * (mag + w_bound * x_l1 + b_bound)`` of zero once any slot is
    within ``tol * (max mag + w_bound * x_l1_max + b_bound)``) are written to ``out`` as offsets
    from ``lo``, in order.

:func:`nb_add` ``(counts_row, indices, values, alpha, table=None, y=-1, total=None,
class_count=None, drift=None) -> (d_feat, v_sum[, done])``
    The count update of :meth:`sum_abm.learners.nb.MultinomialNB._update`: ``counts_row[indices]
    += values`` (the same sums; every check and read before any write, so a refused sample
    changes nothing), refusing negative values (``ValueError``) and indices outside the row
    (``IndexError``); returns ``Σ log1p(values / (old counts + alpha))``, the update's bound on
    the touched log-counts' change. That sum is the C library's ``log1p`` added in order: it may
    differ from numpy's (SIMD ``log1p``, pairwise sum) in the last bits, which the drift bound's
    users allow for (a relative 1e-9 at least); the counts are bit for bit the numpy path's.
    ``v_sum``: the sum of ``values`` when they are whole numbers summing to at most 2**53 (then
    exact in any order, so numpy's pairwise sum bit for bit), else None (the caller sums them).
    With ``table`` (from :func:`nb_drift_table`), a value 1 added to a whole count ``k`` below
    its length adds ``table[k]``: the same ``log1p`` of the same quotient, computed once.
    With the learner's state (class ``y``'s row as ``counts_row``, and its ``total``,
    ``class_count`` and ``drift`` arrays) it also does the rest of
    :meth:`~sum_abm.learners.nb.MultinomialNB._update` where that gives the same bits (an exact
    ``v_sum`` and fewer than 8 classes, which Python sums in order): the class's total and
    sample count, and the drift bound added as :meth:`Learner._add_drift` adds it; ``done`` is 1
    then, 0 when the bound was not finite (the caller moves the drift epoch), and -1 when it
    left the rest to the caller (nothing of it written). A class outside ``total`` raises
    ``IndexError`` before any write. About 4 µs of Python per update less (S2: 23,000 updates).

:func:`nb_drift_table` ``(out, alpha)``
    ``out[k] = log1p(1.0 / (k + alpha))`` (the C library's, as :func:`nb_add` computes it), the
    drift term of a 0/1 feature added to count ``k``: Naive Bayes on 0/1 data looks up, rather
    than computes, nearly every term (S2: ~175 per update).

:func:`nb_logs` ``(counts_row, table, out, ids=None) -> status``
    ``out[j] = table[counts_row[j]]`` for every ``j`` (or every ``j`` in ``ids``): the logs of
    whole-number counts read from ``table = numpy.log(arange(n) + alpha)``, equal to
    ``numpy.log(counts_row + alpha)`` bit for bit (numpy's ``log`` is elementwise: the same input
    gives the same output wherever it stands in an array). Returns 0 when done; otherwise it
    writes nothing and returns the table size the counts need (> 0), or -1 when some count is
    not a whole number from 0 to 2**53 (the caller logs them with numpy). An id outside the row
    raises ``IndexError``. A table read instead of ~1,000 logs per class row.

:func:`nb_binary_weights` ``(counts0, counts1, table, n0, n1, out) -> status``
    A two-class Naive Bayes' weights from whole-number counts: ``out[j] = (table[counts1[j]] -
    n1) - (table[counts0[j]] - n0)``, the operations of
    :meth:`sum_abm.learners.nb.MultinomialNB.score_params` on the logs :func:`nb_logs` reads
    (``n0``, ``n1``: the classes' log normalisers), bit for bit; the same status as
    :func:`nb_logs` (the larger size the two rows need). One pass instead of re-logging both
    rows and three numpy passes: S2 asks for the weights at ~4,000 tracking passes, about six
    updates apart.

:func:`walk_scan` ``(author, me, lo, hi, agree, agree_lo, marks, marks_are_bits, live, table,
out, limit) -> count``
    The candidates of :meth:`sum_abm.market.model.MarketModel.claim_walk` in book slots
    ``lo..hi``: each live slot's code ``agrees * 4 + own * 2 + claimed`` (own: ``author == me``;
    agrees: ``agree[slot - agree_lo]``, 0 when ``agree`` is None; claimed: bit ``slot`` of the
    bytes ``marks`` when ``marks_are_bits``, else ``marks[slot]``, 0 when None) is looked up in
    the 8 bools ``table``; the slots found are written to ``out`` (int64) in order, at most
    ``limit`` of them. One pass instead of about a dozen numpy calls per segment of a walk.
:func:`walk_claims` ``(slots, row, label, time, author, me, take_end, pred, p_lo, p_hi, samples,
sample, names, own_call, other_call) -> (claims, slot list, author list)``
    The batch of :meth:`sum_abm.market.model.MarketModel._walk_claims` for the candidate book
    ``slots``: per slot ``(call, samples[row] (else sample(row)), label, time, names[author],
    prediction)``, ``call`` being ``own_call`` for a slot of author ``me`` at or past
    ``take_end`` and ``other_call`` otherwise, and ``prediction`` the int ``pred[slot - p_lo]``
    (bools or integers) for slots in ``max(p_lo, take_end)..p_hi``, else None; with the slots
    and their authors as lists of ints. One pass instead of five gathers, their lists and a tuple
    per claim built in Python. Holds the GIL (it builds Python objects).
:func:`csr_sums` ``(indptr, indices, w, out)``
    The scores of CSR rows whose values are all 1, for :meth:`Learner.kernel_scores` with
    ``ones=True``: ``out[i] = Σ w[indices[k]]`` over ``k`` in ``indptr[i]..indptr[i+1]`` (empty
    when the end is not past the start), summed from 0.0 in order, as scipy's ``csr_matvec``
    sums ``1.0 * w[j]``; without reading the values (half the memory a pass moves). ``indices``
    of 4 or 8 bytes, or 2 (:data:`INDEX16`, unsigned): with those and a ``w`` of 65,536 items or
    more no index can reach outside ``w``, none is tested, and four rows are summed at a time
    (half the index memory again: 1.9 ms a pass over S1's test set against 2.8). A range or
    index outside the arrays raises ``IndexError``.

:func:`track_select` ``(lo, hi, x_inf, x_l1, cap, live, epoch_at, epoch, d0, d1, d2, threshold,
out, total) -> (n, smallest other budget)``
    The choice of :meth:`sum_abm.market.model.MarketModel._track_pass` over claim-book slots
    ``lo..hi``: each slot's drift bound ``x_inf * d1 + x_l1 * d2 + d0`` and budget ``cap - bound
    * (1 + 2e-9) - 2e-12`` (the numpy path's operations, in its order); the slots whose budget is
    below ``threshold``, or live and tracked in another drift ``epoch``, are written to ``out``
    (in order) with their bounds to ``total``; returns their number and the smallest budget of
    the rest (NaN if any is NaN, as numpy's ``minimum``; infinity if none). One pass instead of
    about ten numpy calls over the window.

:func:`track_apply` ``(slots, n, total, fptr, fidx, w, offset, pred, cap, epoch_at, epoch, x_inf,
x_l1, flipped, budget0, x_inf0, x_l1_0) -> (n_flipped, budget, max x_inf, max x_l1)``
    That pass's re-predictions for a binary model on 0/1 rows: each of the first ``n`` ``slots``
    is scored as :func:`csr_sums` then ``+ offset`` (``Learner.kernel_scores`` with
    ``ones=True``, bit for bit), its class (score > 0) and ``cap = |score| + total`` stored with
    the ``epoch``; the slots tracked in that epoch whose class changed are written to
    ``flipped`` in order. Returns their number and the smallest of ``budget0`` and the new
    budgets, the largest of ``x_inf0`` and the slots' ``x_inf``, and of ``x_l1_0`` and their
    ``x_l1`` (NaN-propagating). A slot or index outside the arrays raises ``IndexError``.

:func:`dry_wakes` ``(heap, infos, balances, normals, pos, limit, h0, h1, seq) -> (n, pos, seq,
time, more)``
    The loop of :meth:`sum_abm.market.model.MarketModel._skip_idle` over the dry-pool wake-ups
    that only draw their next wait, on the event queue's own list ``heap`` of ``(time, priority,
    sequence, callback)``: while the next event's callback is in ``infos`` (``callback ->
    (agent, address, reference, rank, config)``), its time is at most ``limit`` and before the
    horizon (``h1`` for a reference walk, else ``h0``), the agent is ``active`` and its
    ``balances[address]`` is positive, its wait ``int(config.mean_wait_s + config.stdev_wait_s
    * normals[pos])`` is drawn (redrawn while not positive: :func:`draw_positive_int`) and the
    event replaced by ``(time + wait, rank, seq + 1, callback)`` as ``heapq.heapreplace`` does
    (the same list after). Returns the events done, the next unused normal, the last sequence
    number, the last event's time and ``more`` = 1 when the normals ran out (that wake-up not
    done). Anything else stops it with nothing of that event done: an item it cannot order as
    ints of 64 bits (Python would then compare otherwise), a wait rule that is not numbers, a
    wait beyond 64 bits. The same queue, draws and sequence as the Python loop, about 0.3-0.9 µs
    an event against 1.9 µs.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np

DONE, CHANGED, UNCERTAIN, NEAR = 0, 1, 2, 3
#: The 2-byte index type :func:`csr_sums` also reads (features below 65,536).
INDEX16 = np.dtype(np.uint16)

#: Every loop the C source defines (a build of an older source lacks some).
LOOPS = (
    "bit_advance", "sgd_rows", "sgd_rows_scored", "book_shift", "walk_scan", "walk_claims",
    "nb_add", "nb_drift_table", "nb_logs", "nb_binary_weights", "csr_sums", "track_select",
    "track_apply", "dry_wakes",
)  # fmt: skip


def _load() -> Any:
    """The compiled module, or None: not built (no C compiler at install), or built from an older
    ``_kernels.c`` (a checkout updated without reinstalling), which would lack some loops."""
    try:
        # By name: the import-graph tools (grimp, lint-imports) see no source for a compiled
        # module and would count a plain import as one of the package root.
        kernels = importlib.import_module("sum_abm.learners._kernels")
    except ImportError:  # built without a C compiler: the numpy paths only
        return None
    missing = [name for name in LOOPS if not hasattr(kernels, name)]
    if missing:
        warnings.warn(
            f"sum_abm/learners/_kernels was built from an older _kernels.c (no {', '.join(missing)}):"
            " the compiled loops are off until the package is installed again"
            " (python3 -m pip install -e .)",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return kernels


_kernels: Any = _load()
BUILT = _kernels is not None
bit_advance: Any = _kernels.bit_advance if BUILT else None
sgd_rows: Any = _kernels.sgd_rows if BUILT else None
sgd_rows_scored: Any = _kernels.sgd_rows_scored if BUILT else None
book_shift: Any = _kernels.book_shift if BUILT else None
walk_scan: Any = _kernels.walk_scan if BUILT else None
walk_claims: Any = _kernels.walk_claims if BUILT else None
nb_add: Any = _kernels.nb_add if BUILT else None
nb_drift_table: Any = _kernels.nb_drift_table if BUILT else None
nb_logs: Any = _kernels.nb_logs if BUILT else None
nb_binary_weights: Any = _kernels.nb_binary_weights if BUILT else None
csr_sums: Any = _kernels.csr_sums if BUILT else None
track_select: Any = _kernels.track_select if BUILT else None
track_apply: Any = _kernels.track_apply if BUILT else None
dry_wakes: Any = _kernels.dry_wakes if BUILT else None
