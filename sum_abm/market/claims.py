"""The market's book of contributions that still hold something claimable.

The reference simulator walks this list, oldest first, on every agent wake-up and sends a refund or
report for every item old enough — 9 M calls in S1, 99.7 % of them rejected. Rejected calls change
nothing, so the walk here first filters, with numpy over the whole book, the items whose call the
state *proves* would be rejected (wrong age, the model's prediction, a reporter without verified
data, a reporter that already claimed), and only sends the rest — as a real agent would, after a free
``eth_call``. The outcome is identical (tested against the naive walk); only the count of rejected
calls differs.

Per-item state kept here mirrors what the contract would answer, cached by learner version:
``pred`` (the model's class for the row) and, per reporter, whether it has claimed the item.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

import sum_abm.learners._compiled as _compiled

_max = np.maximum.reduce  # arr.max() without the method's Python wrapper (hot paths)

_SLOT_ARRAYS = (
    "time",
    "author",
    "row",
    "label",
    "live",
    "pred",
    "pred_ver",
    "cap",
    "epoch_at",
    "x_inf",
    "x_l1",
    "score",
    "mag",
    "bits",
    "empty",
)
#: What the slot arrays hold in every slot from ``n`` on (zero where not named), so an add writes
#: only what it knows: no class predicted (-1), no drift epoch (-1), no class to prove (cap inf).
_UNUSED = {"pred_ver": -1, "epoch_at": -1, "cap": np.inf, "empty": False}


#: Relative rounding allowance of an incremental score: a slot whose |score| is within
#: ``SCORE_TOL * (mag + max|w| * sum|x| + |b|)`` of zero is re-scored exactly. Float64 rounding of
#: 10^5 increments stays below 10^-10 of the same sum.
SCORE_TOL = 1e-8


def csr_bitsets(indptr: np.ndarray, indices: np.ndarray, words: int) -> np.ndarray:
    """Each CSR row's set of columns as ``words`` little-endian 64-bit words (rows x words),
    as :meth:`ClaimBook.bitset` gives one row's."""
    n = len(indptr) - 1
    out = np.zeros((n, words), dtype=np.uint64)
    step = 4096  # rows per block: a (block x 64*words) bool mask stays a few MB
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        a, b = int(indptr[lo]), int(indptr[hi])
        m = np.zeros((hi - lo, 64 * words), dtype=bool)
        rows = np.repeat(np.arange(hi - lo), np.diff(indptr[lo : hi + 1]))
        m[rows, indices[a:b]] = True
        out[lo:hi] = np.packbits(m, axis=1, bitorder="little").view(np.uint64)
    return out


class ClaimBook:
    """Append-only arrays of contributions (time order) with a live mask; compacted when sparse."""

    #: Reporters whose claimed marks are kept as bools (cheapest to read); the rest as bits.
    BOOL_REPORTERS = 64

    def __init__(self, capacity: int = 1024, binary_words: int = 0) -> None:
        """``binary_words`` > 0: keep each slot's score current by the update's overlap with it
        (:meth:`shift`), for a linear binary learner on 0/1 features of up to 64 × that many
        columns; the first slot with other values turns this off (:attr:`scored`)."""
        self.n = 0  # slots used
        self.head = 0  # first possibly-live slot
        self.live_count = 0
        self.time = np.zeros(capacity, dtype=np.int64)
        # time[:n] as Python ints: a walk's few binary searches and reads (bisect on a list)
        # cost less than numpy's dispatch
        self.times: list[int] = []
        self.author = np.zeros(capacity, dtype=np.int64)  # address index
        self.row = np.zeros(capacity, dtype=np.int64)  # pool row
        self.label = np.zeros(capacity, dtype=np.int64)
        self.live = np.zeros(capacity, dtype=bool)
        self.pred = np.zeros(capacity, dtype=np.int64)
        self.pred_ver = np.full(capacity, -1, dtype=np.int64)
        # For skipping re-predictions the learner proves unnecessary (Learner.margin_drift):
        # each slot's margin plus the learner's drift bound (since its start) when the slot was
        # last predicted, the drift epoch then, and the slot's max-|value| and sum-|value|.
        self.cap = np.full(capacity, np.inf)
        self.epoch_at = np.full(capacity, -1, dtype=np.int64)
        self.x_inf = np.zeros(capacity, dtype=np.float64)
        self.x_l1 = np.zeros(capacity, dtype=np.float64)
        # Incremental scores (linear learners on 0/1 features): ``score`` follows the model through
        # every update as ``step * overlap + intercept step``; ``mag`` sums the magnitudes added
        # (for the rounding allowance); ``bits`` is the slot's feature set as a bitset.
        self.words = int(binary_words)
        self.scored = self.words > 0
        # Tracked (set by the market for a learner with a margin bound, when not scored): after
        # every model update the market re-predicts the live slots whose cached class the bound
        # no longer proves (``cap``) and logs those whose class changed (MarketModel._follow_classes).
        self.tracked = False
        self.track_epoch = -1  # the learner's drift epoch the tracked classes belong to
        self.scored_version = -1  # learner version the scores (or tracked classes) belong to
        self.score = np.zeros(capacity, dtype=np.float64)
        self.mag = np.zeros(capacity, dtype=np.float64)
        # slot-major (slots x words): an update ANDs the whole active block with its bitset at once
        self.bits = np.zeros((capacity, self.words), dtype=np.uint64)
        self._ones_w = np.ones(self.words)  # sums a row of popcounts in one matrix product
        self.x_l1_max = 0.0  # the largest sum|value| of any slot so far
        # Running maxima of max|w| and |b| since the scores were started: with sum|x| they bound
        # any score term, for the rounding allowance (never smaller than at any earlier time).
        self.w_bound = 0.0
        self.b_bound = 0.0
        # Counts the model changes that may have changed some live slot's class (see shift);
        # ``flip_log`` names the slots of each since epoch ``flip_base`` (slot numbers change
        # when the book is compacted, which starts the log afresh).
        self.flip_epoch = 0
        self.flip_base = 0
        self.flip_log: list[tuple[int, np.ndarray]] = []
        # Slots logged in all (with repeats), and before each log entry: how many a walk since
        # some epoch would examine, in O(1) (flip_count), so it can choose the full walk instead.
        self.flip_total = 0
        self.flip_before: list[int] = []
        # reporter address index -> a bool per slot for the first BOOL_REPORTERS reporters (a
        # walk reads them as a slice, no unpacking), then one bit per slot (little-endian bytes
        # in a bytearray, set from Python): a market of 1,000 reporters took 31 MB in bools
        self.claimed: dict[int, np.ndarray | bytearray] = {}
        self.live_by_author: dict[int, int] = {}  # address index -> its live contributions
        # Slots added with nothing to claim (a deposit of 0): every claim of one is refused, and
        # the reference walk drops it from its list at its first visit (see MarketModel
        # ._drop_empty); how many of them are live.
        self.empty = np.zeros(capacity, dtype=bool)
        self.empty_live = 0
        self.compactions = 0  # slot numbers change at each (see _compact)
        # Each slot's features back to back (CSR parts), so a window of slots is one contiguous
        # slice that a learner scores with numpy alone (Learner.predict_segments).
        self.fptr = np.zeros(capacity + 1, dtype=np.int64)
        self._fend = 0  # fptr[n] as a Python int (read by every add)
        self.fidx = np.zeros(capacity * 64, dtype=np.int32)
        self.fval = np.zeros(capacity * 64, dtype=np.float64)

    # -- growth ------------------------------------------------------------------------------
    def _grow(self) -> None:
        cap = max(1024, 2 * len(self.time))
        for name in _SLOT_ARRAYS:
            old = getattr(self, name)
            new = np.zeros((cap,) + old.shape[1:], dtype=old.dtype)
            if name in _UNUSED:
                new[:] = _UNUSED[name]
            new[: self.n] = old[: self.n]
            setattr(self, name, new)
        for k, arr in self.claimed.items():
            if isinstance(arr, bytearray):
                arr.extend(bytes((cap + 7) // 8 - len(arr)))
            else:
                new = np.zeros(cap, dtype=bool)
                new[: self.n] = arr[: self.n]
                self.claimed[k] = new
        ptr = np.zeros(cap + 1, dtype=np.int64)
        ptr[: self.n + 1] = self.fptr[: self.n + 1]
        self.fptr = ptr

    @property
    def follows(self) -> bool:
        """Whether the book follows every model update (scores or tracked classes), so that
        its flip log names every slot whose class may have changed."""
        return self.scored or self.tracked

    def unlogged_flip(self) -> None:
        """Some live slot's class may have changed, which slots unknown."""
        self.flip_epoch += 1
        self.restart_flip_log()

    def restart_flip_log(self) -> None:
        self.flip_log.clear()
        self.flip_before.clear()
        self.flip_base = self.flip_epoch

    def flip_count(self, epoch: int) -> int | None:
        """How many slots (counting repeats) the log names after flip ``epoch``; None when not
        known."""
        if epoch == self.flip_epoch:
            return 0
        if epoch < self.flip_base:
            return None
        # the log holds epochs flip_base+1 .. flip_epoch in order, one entry each
        return self.flip_total - self.flip_before[epoch - self.flip_base]

    def flipped_since(self, epoch: int) -> list[int] | None:
        """Slots whose class may have changed after flip ``epoch`` (sorted, distinct); None when
        not known. A list: its caller (the incremental walk, at most wake-ups) reads a few slots
        one by one, and a set of a few ints sorts faster than numpy's unique."""
        if epoch == self.flip_epoch:
            return []
        if epoch < self.flip_base:
            return None
        parts = [s.tolist() for _, s in self.flip_log[epoch - self.flip_base :]]
        if len(parts) == 1:
            return parts[0]
        return sorted(set().union(*parts))

    def _compact(self) -> None:
        self.restart_flip_log()  # slot numbers change
        keep = np.flatnonzero(self.live[self.head : self.n]) + self.head
        m = len(keep)
        for name in _SLOT_ARRAYS:
            if name != "live":
                arr = getattr(self, name)
                arr[:m] = arr[keep]
        self.live[:m] = True
        self.live[m : self.n] = False
        for arr in self.claimed.values():
            if not isinstance(arr, bytearray):
                arr[:m] = arr[keep]
                arr[m : self.n] = False
                continue
            bits = np.unpackbits(
                np.frombuffer(arr, dtype=np.uint8), count=self.n, bitorder="little"
            )
            kept = np.packbits(bits[keep], bitorder="little").tobytes()
            arr[: len(kept)] = kept
            arr[len(kept) :] = bytes(len(arr) - len(kept))
        for name, unused in _UNUSED.items():
            getattr(self, name)[m : self.n] = unused
        lens = self.fptr[keep + 1] - self.fptr[keep]
        pos = np.repeat(
            self.fptr[keep] - np.concatenate([[0], np.cumsum(lens)[:-1]]), lens
        ) + np.arange(lens.sum())
        total = int(lens.sum())
        self.fidx[:total] = self.fidx[pos]
        self.fval[:total] = self.fval[pos]
        self.fptr[0] = 0
        self.fptr[1 : m + 1] = np.cumsum(lens)
        self._fend = total
        self.n = m
        self.times = self.time[:m].tolist()
        self.compactions += 1
        self.head = 0

    def add(
        self,
        time: int,
        author: int,
        row: int,
        label: int,
        indices: np.ndarray,
        values: np.ndarray,
        bits: np.ndarray | None = None,
        binary: bool | None = None,
    ) -> int:
        """Record a new contribution (its features as non-zero indices/values, and their
        :meth:`bitset` when the caller has it; ``binary``: whether every value is 1, when the
        caller knows); returns its slot."""
        # Keep the active region mostly live, so a window of slots is a cheap contiguous slice.
        if (self.n - self.head) - self.live_count > max(256, self.live_count):
            self._compact()
        if self.n == len(self.time):
            if self.n - self.live_count > self.n // 2:
                self._compact()
            if self.n == len(self.time):
                self._grow()
        i = self.n
        self.time[i], self.author[i], self.row[i], self.label[i] = time, author, row, label
        self.times.append(int(time))
        self.live[i] = True
        # (pred_ver, epoch_at and cap: slots from n on hold their _UNUSED values already)
        nv = len(values)
        if binary is None and self.scored:
            binary = nv == 0 or values.min() == 1.0 == values.max()
        if binary:  # 0/1 features: max|value| and sum|value| without a pass over the values
            self.x_inf[i], self.x_l1[i] = (1.0 if nv else 0.0), float(nv)
            if self.scored:
                self.bits[i] = self.bitset(indices) if bits is None else bits
                self.x_l1_max = max(self.x_l1_max, float(nv))
        else:
            self.scored = False  # not 0/1 features: the overlap no longer gives the change
            self.x_inf[i] = float(np.abs(values).max()) if nv else 0.0
            self.x_l1[i] = float(np.abs(values).sum())
        # (no claimed marks to clear: slots from n on are never marked, see _compact and _grow)
        a = self._fend
        b = a + len(indices)
        if b > len(self.fidx):
            # the used part copied into zeroed arrays (np.resize tiles the old contents over
            # the new half: 40-70 ms per doubling from 2 M items in the 100-agent S1)
            size = max(2 * len(self.fidx), b)
            for name in ("fidx", "fval"):
                old = getattr(self, name)
                new = np.zeros(size, dtype=old.dtype)
                new[:a] = old[:a]
                setattr(self, name, new)
        self.fidx[a:b] = indices
        self.fval[a:b] = values
        self.fptr[i + 1] = self._fend = b
        self.n += 1
        self.live_count += 1
        self.live_by_author[author] = self.live_by_author.get(author, 0) + 1
        return i

    # -- incremental scores ---------------------------------------------------------------------
    def bitset(self, indices: np.ndarray) -> np.ndarray:
        """The feature set ``indices`` as ``words`` little-endian 64-bit words."""
        m = np.zeros(64 * self.words, dtype=bool)
        m[indices] = True
        return np.packbits(m, bitorder="little").view(np.uint64)

    def set_scores(self, slots: np.ndarray, scores: np.ndarray, mags: np.ndarray) -> None:
        self.score[slots] = scores
        self.mag[slots] = mags

    def shift(
        self, bits: np.ndarray, step: float, intercept_step: float, slack: float = 0.0
    ) -> None:
        """The model moved every weight of the features in ``bits`` (a :meth:`bitset`) by ``step`` (give or take ``slack``) and
        the intercept by ``intercept_step``: each slot's score moves by ``step * overlap +
        intercept_step``, and its rounding allowance (``SCORE_TOL * mag``) by the magnitude of
        that change plus ``slack * overlap``."""
        lo, hi = self.head, self.n
        if hi <= lo:
            return
        if _compiled.book_shift is not None:  # the same arithmetic in one pass (no temporaries)
            out = np.empty(hi - lo, dtype=np.int64)
            k = abs(step) + slack / SCORE_TOL
            n = _compiled.book_shift(
                self.bits, lo, hi, bits, step, intercept_step, k, self.score, self.mag,
                self.live, self.x_l1, self.w_bound, self.x_l1_max, self.b_bound, SCORE_TOL, out,
            )  # fmt: skip
            if n:
                self.log_flips(out[:n] + lo)
            return
        # exact integer overlaps (as float64): popcounts, at most 64 per word, summed per slot
        overlap = np.bitwise_count(self.bits[lo:hi] & bits) @ self._ones_w
        score = self.score[lo:hi]
        before = score > 0
        # the same products and sums as ``score += step * overlap + intercept_step`` and
        # ``mag += (|step| + slack / SCORE_TOL) * overlap + |intercept_step|``, in place (one
        # call per mistake: S1 makes 9,000, over ~670 slots each)
        d = overlap * step
        d += intercept_step
        score += d
        overlap *= abs(step) + slack / SCORE_TOL
        overlap += abs(intercept_step)
        mag = self.mag[lo:hi]
        mag += overlap
        # A live slot's class may have changed: its sign moved, or it is within its rounding
        # allowance of zero (an exact re-score could move it). Walks that remember an earlier
        # answer (MarketModel.claim_walk) start afresh then.
        live = self.live[lo:hi]
        changed = score > 0
        changed ^= before
        a = np.abs(score)
        tol_max = SCORE_TOL * (_max(mag) + self.w_bound * self.x_l1_max + self.b_bound)
        # (over every slot, dead ones too: a cheaper test that only ever checks more of them)
        if np.minimum.reduce(a) <= tol_max:
            changed |= a <= SCORE_TOL * (mag + self.w_bound * self.x_l1[lo:hi] + self.b_bound)
        changed &= live
        slots = np.flatnonzero(changed)
        if len(slots):
            self.log_flips(slots + lo)

    def log_flips(self, slots: np.ndarray) -> None:
        """Some live ``slots`` (sorted, distinct) may have changed class: a new flip epoch."""
        self.flip_epoch += 1
        self.flip_log.append((self.flip_epoch, slots))
        self.flip_before.append(self.flip_total)
        self.flip_total += len(slots)
        if len(self.flip_log) > 256:  # keep the log short: older walks start afresh
            self.flip_base = self.flip_log.pop(0)[0]
            self.flip_before.pop(0)

    def features_of(
        self, slots: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(indices, values, starts, lens) of the given slots, gathered back to back."""
        first = self.fptr[slots]
        lens = self.fptr[slots + 1] - first
        starts = np.zeros(len(slots), dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        pos = np.repeat(first - starts, lens) + np.arange(int(lens.sum()))
        return self.fidx[pos], self.fval[pos], starts, lens

    def features(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(indices, values, starts, lens) of slots [lo, hi), starts relative to the slice."""
        a, b = int(self.fptr[lo]), int(self.fptr[hi])
        starts = self.fptr[lo:hi] - a
        lens = self.fptr[lo + 1 : hi + 1] - self.fptr[lo:hi]
        return self.fidx[a:b], self.fval[a:b], starts, lens

    def mark_empty(self, slot: int) -> None:
        """Live ``slot`` holds nothing to claim (it was added with a deposit of 0)."""
        if self.live[slot] and not self.empty[slot]:
            self.empty[slot] = True
            self.empty_live += 1

    def remove(self, slot: int) -> None:
        if self.live[slot]:
            self.live[slot] = False
            self.cap[slot] = np.inf  # no class to prove any more
            self.live_count -= 1
            if self.empty_live and self.empty[slot]:
                self.empty_live -= 1
            self.live_by_author[int(self.author[slot])] -= 1
            while self.head < self.n and not self.live[self.head]:
                self.head += 1

    def _claimed_marks(self, reporter: int) -> np.ndarray | bytearray:
        arr = self.claimed.get(reporter)
        if arr is None:  # a slot of capacity each
            if len(self.claimed) < self.BOOL_REPORTERS:
                arr = self.claimed[reporter] = np.zeros(len(self.time), dtype=bool)
            else:
                arr = self.claimed[reporter] = bytearray((len(self.time) + 7) // 8)
        return arr

    def mark_claimed(self, slot: int, reporter: int) -> None:
        """``reporter`` (address index) has claimed book ``slot``."""
        self.mark_claimed_many([slot], reporter)

    def mark_claimed_many(self, slots: Sequence[int] | np.ndarray, reporter: int) -> None:
        """:meth:`mark_claimed` for each of ``slots``."""
        arr = self._claimed_marks(reporter)
        if not isinstance(arr, bytearray):
            if len(slots) == 1:  # (a list of one, mostly: no conversion to an index array)
                arr[slots[0]] = True
            else:
                arr[slots] = True
            return
        for s in slots.tolist() if isinstance(slots, np.ndarray) else slots:
            arr[s >> 3] |= 1 << (s & 7)

    def marks(self, reporter: int) -> tuple[np.ndarray | bytearray | None, bool]:
        """``reporter``'s claimed marks as they are kept, and whether they are bits (a bytearray,
        bit ``slot & 7`` of byte ``slot >> 3``) rather than one bool per slot; None when it
        has claimed nothing."""
        arr = self.claimed.get(reporter)
        return arr, isinstance(arr, bytearray)

    def claimed_by(self, reporter: int, lo: int, hi: int) -> np.ndarray:
        """Whether ``reporter`` (address index) has claimed each slot in [lo, hi) (bools)."""
        arr = self.claimed.get(reporter)
        if arr is None or hi <= lo:
            return np.zeros(max(0, hi - lo), dtype=bool)
        if not isinstance(arr, bytearray):
            return arr[lo:hi]
        b0 = lo >> 3
        view = np.frombuffer(arr, dtype=np.uint8, count=((hi + 7) >> 3) - b0, offset=b0)
        bits = np.unpackbits(view, bitorder="little")
        return bits[lo - 8 * b0 : hi - 8 * b0].view(bool)

    def __len__(self) -> int:
        return self.live_count

    def slots_older_than(self, t_max: int) -> int:
        """End (exclusive) of the slots added at or before ``t_max`` (items are in time order)."""
        return bisect_right(self.times, t_max, self.head, self.n)
