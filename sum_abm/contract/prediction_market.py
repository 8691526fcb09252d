"""The prediction market: a bounty rewards contributions by the test accuracy they add.

Lifecycle (TRACE_FORMAT.md §5): the bounty provider commits hashes of test-set pieces and funds the
bounty; one piece (drawn by the caller) is revealed; contributors stake on their data
(PARTICIPATION); the market ends; the other pieces are revealed and checked against their
commitments; ``process_contribution`` replays the contributions on the model pass after pass, scores
each by the accuracy change it causes and removes the worst until the bounty rounds are used up;
then contributors collect (``refund``) and, after a long wait, anyone may ``report``.

``semantics = "reference-python"`` reproduces the reference Python exactly, bugs included.
``semantics = "corrected"`` (default) fixes them; each fix is marked ``FIX n`` below:

1. ``report`` deletes the *submitter's* market balance after paying it (the reference deletes the
   reporter's, so a balance can be paid twice and the reporter loses its own).
2. Non-grouped accounting: every change of a contribution's balance, in every pass and at the end,
   is applied to its contributor's market balance, and a balance never goes below 0 (the reference
   drops all but the last pass's changes and never debits removed contributions).
3. ``rounds`` stops at the first ruin: the smallest ``balance / -score`` over all negative scores
   (the reference uses only the lowest score's, which can drive another balance below zero).
4. With ``reset_model_during_reward_phase`` every pass starts from the original accuracy.
5. Money: the contract never pays more than it holds and pays whole token units (market
   balances rounded down when paid), so bounty + stakes = paid out + held, exactly, in integers;
   after the reward phase the provider may withdraw what exceeds the outstanding balances (the
   unused bounty and the rounding fractions), which the reference leaves locked forever.

A caller with many reward-phase calls to send uses ``process_contributions``: the same
transactions (one log row each, the same effects), run as passes over arrays — scores, rounds,
balances and removals with numpy; a pass that needs the accuracy after each update (the first,
or every one with ``reset_model_during_reward_phase``) in one ``update_rows_accuracy`` sweep of
the learner, the updates of the others (which nothing reads until the batch ends) all in one
``update_rows`` sweep — and checked bit for bit against the calls sent one at a time
(tests/test_pm_fast.py).
Test-set pieces may be :class:`Piece` blocks of rows, committed and revealed as their pairs.

Market balances are computed in floats in both semantics (scores are accuracy differences);
reference-python also pays them as floats, as the reference does.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from sum_abm.chain import Chain, Rejected, logged_amount
from sum_abm.contract.data_handler import DataHandler, StoredData
from sum_abm.contract.state import freeze, learner_state

SEMANTICS = ("corrected", "reference-python")


@dataclass(frozen=True)
class Piece:
    """A test-set piece as a block of rows: ``X`` (CSR matrix or 2-D array) and labels ``y``.
    The same commitment and the same revealed test set as its rows as ``(x, y)`` pairs."""

    X: Any
    y: Any

    def __len__(self) -> int:
        return len(self.y)

    def pairs(self) -> list[tuple[Any, int]]:
        """The piece as ``(row, label)`` pairs."""
        return [(self.X[j], int(self.y[j])) for j in range(len(self.y))]


def hash_piece(piece: Piece | list[tuple[Any, int]]) -> str:
    """SHA-256 commitment of a test-set piece: a canonical JSON of its ``(x, y)`` pairs
    (a :class:`Piece` hashes as its pairs, its text written from its row ranges)."""
    text = _canon_block(piece) if isinstance(piece, Piece) else None
    if text is None:
        pairs = piece.pairs() if isinstance(piece, Piece) else piece
        canon = [[_canon(x), int(y)] for x, y in pairs]
        text = json.dumps(canon, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _canon_block(piece: Piece) -> str | None:
    """The JSON text ``json.dumps`` writes for the piece's pairs, from its row ranges at once
    (None for :func:`_special` values or an unknown row type)."""
    X = piece.X
    ys = [str(int(v)) for v in np.asarray(piece.y).tolist()]
    if hasattr(X, "indptr") and getattr(X, "format", "") == "csr":
        data = np.asarray(X.data, dtype=np.float64)
        if _special(data):
            return None
        ind, ptr = _int_texts(X.indices), X.indptr.tolist()
        spans = list(zip(ptr[:-1], ptr[1:], strict=True))
        if len(data) and data[0] == data.min() == data.max():  # one value (binary rows): no join
            one = float.__repr__(data[:1].tolist()[0])
            vals = [((one + ",") * (b - a))[:-1] for a, b in spans]
        else:
            val = _texts(data, float.__repr__)
            vals = [",".join(val[a:b]) for a, b in spans]
        rows = [
            f"[[[{','.join(ind[a:b])}],[{v}]],{y}]"
            for (a, b), v, y in zip(spans, vals, ys, strict=True)
        ]
    elif isinstance(X, np.ndarray) and X.ndim == 2:
        data = X.astype(np.float64, copy=False)
        if _special(data):
            return None
        val = _texts(data.ravel(), float.__repr__)
        d = data.shape[1]
        rows = [f"[[{','.join(val[i * d : (i + 1) * d])}],{y}]" for i, y in enumerate(ys)]
    else:
        return None
    return f"[{','.join(rows)}]"


def _canon(x: Any) -> Any:
    if hasattr(x, "indptr"):  # a sparse row: its non-zeros
        r = x.tocsr()
        return [r.indices.tolist(), [float(v) for v in r.data]]
    return [float(v) for v in (x.tolist() if hasattr(x, "tolist") else x)]


def _special(data: np.ndarray) -> bool:
    """Values the block writer leaves to ``json.dumps``: NaN, infinities and -0.0 (which
    ``np.unique`` would merge with 0.0)."""
    return not np.isfinite(data).all() or bool((np.signbit(data) & (data == 0)).any())


def _texts(a: np.ndarray, fmt: Any) -> list[str]:
    """``[fmt(v) for v in a.tolist()]``, formatting each distinct value once."""
    u, inv = np.unique(a, return_inverse=True)
    return np.array([fmt(v) for v in u.tolist()], dtype=object)[inv].tolist()


_INT_TEXTS = np.array([], dtype=object)  # str(i) at i, grown on demand (process-wide)


def _int_texts(a: np.ndarray) -> list[str]:
    """``[str(v) for v in a.tolist()]`` for column indices: looked up in a table of the texts of
    ``0..max`` (kept) when that is not much longer than ``a``, else :func:`_texts`."""
    global _INT_TEXTS
    if not len(a) or a.min() < 0 or a.max() >= 4 * len(a) + 4096:
        return _texts(a, str)
    top = int(a.max()) + 1
    if top > len(_INT_TEXTS):
        _INT_TEXTS = np.array([str(v) for v in range(top)], dtype=object)
    return _INT_TEXTS[a].tolist()


@dataclass
class Contribution:
    contributor: str
    x: Any
    y: int
    balance: float
    score: float | None = None
    accuracy: float | None = None


class PredictionMarket:
    """Prediction-market contract at ``address`` (stakes and bounty in token units)."""

    kind = "prediction_market"

    def __init__(
        self,
        chain: Chain,
        learner: Any,
        *,
        semantics: str = "corrected",
        min_stake: int = 1,
        allow_greater_deposit: bool = False,
        group_contributions: bool = False,
        reset_model_during_reward_phase: bool = False,
        any_address_claim_wait_time_s: int = 7 * 86_400,
        address: str = "contract",
        data_handler: DataHandler | None = None,
    ) -> None:
        if semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
        if min_stake < 0 or any_address_claim_wait_time_s < 0:
            raise ValueError(
                "min_stake (token units) and any_address_claim_wait_time_s (seconds) must be >= 0"
            )
        self.chain, self.learner, self.address = chain, learner, address
        self.data = data_handler or DataHandler()
        self.semantics = semantics
        self.fixed = semantics == "corrected"
        self.min_stake = min_stake
        self.allow_greater_deposit = allow_greater_deposit
        self.group = group_contributions
        self.reset = reset_model_during_reward_phase
        self.any_address_claim_wait_time_s = any_address_claim_wait_time_s
        self.state: str | None = None
        self.remaining_bounty_rounds: float = 0
        self.market_balances: dict[str, float] = {}
        self.market: list[Contribution] = []
        self.prev_acc: float | None = None
        self.original_acc: float | None = None
        self.reward_phase_end_time_s: int | None = None
        self.provider: str | None = None
        self.hashes: list[str] = []
        self.reveal_index = 0
        self.next_verify = 0
        self.test_x: list[Any] = []
        self.test_y: list[int] = []
        self.bounty = 0
        self.paid_out: float = 0  # everything the contract paid (stakes back, rewards, withdrawal)
        self.withdrawn: float = 0
        self.staked: float = 0  # stakes received
        # The largest accuracy change any of a contributor's data caused, over every pass: a
        # contributor whose data only lowered accuracy (<= 0) cannot end with more than it staked.
        self.best_change: dict[str, float] = {}
        self.num_passes = 0  # reward passes started
        self.num_removed = 0  # contributions removed between passes (ruined)

    # -- helpers ------------------------------------------------------------------------------
    def _exec(self, sender: str, call: str, value: Any, fn, n_features: int = 0) -> Any:
        return self.chain.execute(
            sender,
            call,
            value,
            fn,
            gas_op=_gas_op(call),
            learner_kind=getattr(self.learner, "kind", ""),
            n_features=n_features,
        )

    def fee(self, call: str) -> int:
        """The fee (token units) of ``call`` as :meth:`_exec` sends it (the phase calls, refund,
        report and withdraw send no features)."""
        chain = self.chain
        if not chain.gas_price:
            return 0
        return chain.fee(chain.gas_schedule.gas(_gas_op(call), getattr(self.learner, "kind", "")))

    def affords(self, sender: str, call: str) -> bool:
        """Whether ``sender``'s balance pays the fee of ``call`` (a wallet sends nothing else)."""
        return self.chain.can_pay(sender, 0, self.fee(call))

    def _require(self, cond: bool, reason: str) -> None:
        if not cond:
            raise Rejected(reason)

    def _pay(self, to: str, amount: float) -> float:
        """Send ``amount`` from the contract to ``to``; returns what was sent (token units).

        reference-python sends the float amount, and (like its ``Balances.send``) silently only
        what the contract holds. corrected (FIX 5, money rule) sends whole token units, rounded
        down (:func:`whole_units`); the fraction stays in the contract and returns to the provider
        with the unused bounty, so the ledger stays in integers and never goes negative.
        """
        if self.fixed:
            amount = whole_units(amount)
        held = self.chain.ledger.balance(self.address)
        if amount > held:
            amount = held
        if amount > 0:
            self.chain.ledger.transfer(self.address, to, amount)
            self.paid_out += amount
        else:
            amount = 0
        return amount

    def outstanding(self) -> float:
        """What contributors can still collect (token units; corrected: whole units, as paid)."""
        vals = (v for v in self.market_balances.values() if v > 0)
        return sum(whole_units(v) for v in vals) if self.fixed else sum(vals)

    def evaluate(self) -> float:
        return self.learner.test_accuracy()

    @property
    def now(self) -> int:
        return self.chain.clock.now

    # -- initialisation -------------------------------------------------------------------------
    def initialize_market(
        self,
        sender: str,
        bounty: int,
        hashes: list[str],
        min_length_s: int,
        min_num_contributions: int,
        reveal_index: int,
    ) -> int:
        """Fund the bounty (moved to the contract) and commit test-set hashes; returns the reveal index."""

        def run() -> int:
            self._require(self.state is None, "wrong_phase")
            self._require(0 <= reveal_index < len(hashes) and len(hashes) >= 2, "wrong_phase")
            self._require(bounty > 0, "insufficient_value")
            self.chain.ledger.transfer(sender, self.address, bounty)
            self.provider, self.bounty = sender, bounty
            self.remaining_bounty_rounds = bounty
            self.hashes = list(hashes)
            self.reveal_index = reveal_index
            self.next_verify = 1 if reveal_index == 0 else 0
            self.min_length_s, self.min_num_contributions = min_length_s, min_num_contributions
            self.earliest_end = self.now + min_length_s
            self.init_snapshot = self.learner.snapshot()
            self.state = "INITIALIZATION"
            return reveal_index

        return self._exec(sender, "initialize_market", bounty, run)

    def reveal_init_test_set(self, sender: str, piece: Piece | list[tuple[Any, int]]) -> None:
        """Reveal the committed piece at the reveal index; opens participation."""

        def run() -> None:
            self._require(self.state == "INITIALIZATION", "wrong_phase")
            self._require(hash_piece(piece) == self.hashes[self.reveal_index], "test_set_mismatch")
            self.state = "PARTICIPATION"

        self._exec(sender, "reveal_init_test_set", 0, run)

    # -- participation --------------------------------------------------------------------------
    def add_gas(self, sender: str, x: Any, y: int) -> int:
        """The gas of :meth:`add_data` of ``(x, y)`` by the chain's schedule: the features sent
        and stored (a dense list sends every one)."""
        return self.chain.gas_schedule.gas("add_data", getattr(self.learner, "kind", ""), _nnz(x))

    def add_data(self, sender: str, value: Any, x: Any, y: int) -> float:
        """Stake on ``(x, y)``: ``value`` if greater deposits are allowed, else ``min_stake``.

        The transaction of :meth:`Chain.execute` (gas priced first, the wallet rule and the fee,
        the checks, then the effects, one record) without a closure per call: every contribution
        of the participation phase comes through here."""
        chain = self.chain
        gas = self.add_gas(sender, x, y) if chain.gas_price else 0
        fee = chain.charge(sender, "add_data", value, gas)
        if fee is None:
            raise Rejected("insufficient_funds")
        try:
            self._require(self.state == "PARTICIPATION", "wrong_phase")
            self._require(value >= self.min_stake, "insufficient_value")
            # learned in the reward phase: a sample the model cannot learn would stop it there
            self._require(self.learner.sample_problem(x, y) is None, "invalid_sample")
            cost = value if self.allow_greater_deposit else self.min_stake
            now = chain.clock.now
            key = self.data.key(x, y, now, sender)
            self._require(self.data._data.get(key) is None, "duplicate_data")
            chain.ledger.transfer(sender, self.address, cost)
            self.data.put(key, StoredData(sender, now, int(y), cost, cost))
            self.market.append(Contribution(sender, x, int(y), float(cost)))
            self.market_balances[sender] = self.market_balances.get(sender, 0.0) + cost
            self.staked += cost
        except Rejected as rej:
            chain.reject(sender, "add_data", rej.reason, value, gas, fee)
            raise
        chain.record(sender, "add_data", value, gas, fee, logged_amount(cost))
        return cost

    def end_market(self, sender: str) -> None:
        """End participation (needs enough contributions or the minimum length)."""

        def run() -> None:
            self._require(self.state == "PARTICIPATION", "wrong_phase")
            if len(self.market) < self.min_num_contributions and self.now < self.earliest_end:
                raise Rejected("market_cannot_end_yet")
            self.state = "REVEAL_TEST_SET"
            self.test_x, self.test_y = [], []

        self._exec(sender, "end_market", 0, run)

    def verify_next_test_set(self, sender: str, piece: Piece | list[tuple[Any, int]]) -> None:
        """Reveal the next committed piece (index order, skipping the first revealed one)."""

        def run() -> None:
            self._require(self.state == "REVEAL_TEST_SET", "wrong_phase")
            self._require(
                len(piece) > 0 and hash_piece(piece) == self.hashes[self.next_verify],
                "test_set_mismatch",
            )
            if isinstance(piece, Piece):  # a block of rows, stacked as its rows would be
                self.test_x.append(piece.X)
                self.test_y += [int(y) for y in np.asarray(piece.y).tolist()]
            else:
                self.test_x += [x for x, _ in piece]
                self.test_y += [int(y) for _, y in piece]
            self.next_verify += 1
            if self.next_verify == self.reveal_index:
                self.next_verify += 1
            if self.next_verify >= len(self.hashes):
                # the reward phase asks the accuracy after single updates
                self.learner.set_test_set(_stack(self.test_x), self.test_y, per_update=True)
                self.state = "REWARD_RESTART"

        self._exec(sender, "verify_next_test_set", 0, run)

    # -- reward phase ---------------------------------------------------------------------------
    def process_contribution(self, sender: str) -> None:
        """Process the next contribution of the current reward pass."""

        def run() -> None:
            self._require(self.state in ("REWARD_RESTART", "REWARD"), "wrong_phase")
            self._require(self.remaining_bounty_rounds > 0, "wrong_phase")
            if not self.market:
                # Nobody contributed (the market ended on time alone): nothing to score, the reward
                # phase is over at once. (The reference raises IndexError here.)
                self.state = "REWARD_COLLECT"
                self.remaining_bounty_rounds = 0
                self.reward_phase_end_time_s = self.now
                return
            self._process()

        self._exec(sender, "process_contribution", 0, run)

    def process_contributions(self, sender: str, max_calls: int) -> int:
        """Send ``process_contribution`` from ``sender`` while bounty rounds and contributions
        remain, at most ``max_calls`` times; returns how many were sent.

        Each call is its own transaction, with the same effects, log row and fee as when sent one
        at a time (a caller's loop ``while pm.remaining_bounty_rounds > 0 and pm.market``); with
        free calls they run as passes over arrays (:meth:`_run_batch`). A rejected call raises
        :class:`Rejected` as :meth:`process_contribution` does, after the calls before it. The
        loop stops before a call whose fee ``sender``'s balance does not pay.
        """
        sent = 0
        batch = (
            not self.chain.gas_price  # a free call from a wallet that never goes below 0
            and not self.group
            and self.state in ("REWARD_RESTART", "REWARD")
            and self.remaining_bounty_rounds > 0
            and self.market
            and callable(getattr(self.learner, "update_rows", None))
            and all(hasattr(c.x, "indices") and hasattr(c.x, "values") for c in self.market)
        )
        if batch:
            sent = self._run_batch(max_calls)
            # one accepted row per call, as execute() logs it
            self.chain.record_repeated(sent, sender, "process_contribution")
        while sent < max_calls and self.remaining_bounty_rounds > 0 and self.market:
            if not self.affords(sender, "process_contribution"):
                break  # the caller's wallet sends no call it cannot pay: the phase stops here
            self.process_contribution(sender)
            sent += 1
        return sent

    def _run_batch(self, max_calls: int) -> int:
        """The effects of up to ``max_calls`` process_contribution calls (no log rows): each
        pass's model updates in one :meth:`update_rows` sweep, its scores, balances and
        removals with numpy. Bit for bit the state :meth:`_process` reaches call by call.

        While it runs, the arrays of ``rows`` are the contributions' state (the market is
        ``rows.order``); the :class:`Contribution` objects and ``market`` are brought up to date
        once at the end (:meth:`_sync`), not at every pass."""
        rows = _Rows(self.market)
        sent = 0
        try:
            while sent < max_calls and self.remaining_bounty_rounds > 0 and len(rows.order):
                if self.state == "REWARD_RESTART":
                    self._start_pass()
                k = min(len(rows.order) - self.next, max_calls - sent)
                self._segment(rows, k)
                sent += k
        finally:
            self._learn(rows)
            self._sync(rows)
        return sent

    def _sync(self, rows: _Rows) -> None:
        """Write the batch's arrays back: each contribution's balance, the scores and first-pass
        accuracies set in the batch, and the market (the rows left, in pass order)."""
        objs = rows.contribs
        for c, v in zip(objs, rows.balance.tolist(), strict=True):
            c.balance = v
        scored = np.flatnonzero(rows.scored)
        for i, v in zip(scored.tolist(), rows.score[scored].tolist(), strict=True):
            objs[i].score = v
        new = np.flatnonzero(rows.known & ~rows.known_before)
        for i, v in zip(new.tolist(), rows.acc[new].tolist(), strict=True):
            objs[i].accuracy = v
        self.market = [objs[i] for i in rows.order.tolist()]

    def _learn(self, rows: _Rows) -> None:
        """Learn the rows whose updates were deferred, in order, in one sweep.

        A pass whose accuracies are all known (every pass after the first, without
        ``reset_model_during_reward_phase``) reads nothing from the model: its scores, rounds
        and removals come from the first pass's accuracies. So its rows are only queued, and
        the model learns them all at once before anything reads it: the same updates in the
        same order as pass by pass."""
        if rows.unlearned:
            seq = np.concatenate(rows.unlearned)
            rows.unlearned = []
            starts, ends, y = rows.ranges(seq)
            for _ in self.learner.update_rows(
                starts, rows.indices, rows.values, y, pause=False, ends=ends
            ):
                pass

    def _segment(self, rows: _Rows, k: int) -> None:
        """The next ``k`` contributions of the pass (non-grouped), as ``k`` calls of :meth:`_step`."""
        lo, hi = self.next, self.next + k
        seg = rows.order[lo:hi]
        need_eval = self.reset or not rows.known[seg].all()
        if need_eval:  # the accuracy after each row's update
            self._learn(rows)
            starts, ends, y = rows.ranges(seg)
            now = self.learner.update_rows_accuracy(starts, rows.indices, rows.values, y, ends)
        else:
            rows.unlearned.append(seg)
        if self.reset:
            acc = now
        else:
            new = seg[~rows.known[seg]]
            if len(new):
                rows.acc[new] = now[~rows.known[seg]]
                rows.known[new] = True
            acc = rows.acc[seg]
        prev = np.empty(k)
        prev[0] = self.prev_acc
        prev[1:] = acc[:-1]
        change = acc - prev
        rows.score[seg] = change
        rows.scored[seg] = True
        cid = rows.cid[seg]
        counts = np.bincount(cid, minlength=len(rows.names))
        for i in np.flatnonzero(counts).tolist():
            who = rows.names[i]
            self.pass_counts[who] = self.pass_counts.get(who, 0) + int(counts[i])
        if np.isnan(change).any():  # NaN never passes a comparison: replay them in order
            for i, v in zip(seg.tolist(), change.tolist(), strict=True):
                c = rows.contribs[i]
                if v > self.best_change.get(c.contributor, -math.inf):
                    self.best_change[c.contributor] = v
                if v < self.min_score:
                    self.min_score, self.worst = v, c
        else:
            for i in np.flatnonzero(counts).tolist():
                best = float(change[cid == i].max())
                if best > self.best_change.get(rows.names[i], -math.inf):
                    self.best_change[rows.names[i]] = best
            m = int(np.argmin(change))  # the first lowest, as the strict < of the call loop
            if change[m] < self.min_score:
                self.min_score, self.worst = float(change[m]), rows.contribs[seg[m]]
        self.prev_acc = float(acc[-1])
        self.next = hi
        if hi >= len(rows.order):
            self._end_of_pass_rows(rows)

    def _end_of_pass_rows(self, rows: _Rows) -> None:
        """:meth:`_end_of_pass` (non-grouped) over arrays."""
        seg = rows.order
        if not self.min_score < 0:
            rounds = self.remaining_bounty_rounds
            self.remaining_bounty_rounds = 0
            self._end_reward_phase_rows(rows, rounds)
            return
        score, bal = rows.score[seg], rows.balance[seg]
        if self.fixed:  # FIX 3
            neg = score < 0
            rounds = float((bal[neg] / -score[neg]).min())
        else:  # the worst contribution's balance (as the arrays hold it)
            rounds = rows.balance[rows.row_of[id(self.worst)]] / -self.min_score
        rounds = min(rounds, self.remaining_bounty_rounds)
        self.remaining_bounty_rounds -= rounds
        if self.remaining_bounty_rounds == 0:
            self._end_reward_phase_rows(rows, rounds)
            return
        d = score * rounds
        if self.fixed:  # FIX 2
            d = np.maximum(d, -bal)
            self._credit_rows(rows, seg, d)
            bal = bal + d
        else:
            bal = bal + d
            low = bal < 1
            self._credit_rows(rows, seg[low], bal[low], add=True)
        rows.balance[seg] = bal
        keep = bal >= 1
        self.num_removed += len(seg) - int(keep.sum())
        if not keep.all():
            rows.keep(keep)
            if not len(rows.order):
                self.market = []  # (the rest of market is written back by _sync)
        self._after_pass()

    def _after_pass(self) -> None:
        """The state after a pass over the market: collection when no contribution is left,
        else another pass."""
        if not self.market:
            self.state = "REWARD_COLLECT"
            self.remaining_bounty_rounds = 0
            self.reward_phase_end_time_s = self.now
        else:
            self.state = "REWARD_RESTART"

    def _end_reward_phase_rows(self, rows: _Rows, rounds: float) -> None:
        """:meth:`_end_reward_phase` (non-grouped) over arrays."""
        self.reward_phase_end_time_s = self.now
        self.state = "REWARD_COLLECT"
        seg = rows.order
        d = rows.score[seg] * rounds
        if self.fixed:
            d = np.maximum(d, -rows.balance[seg])
        self._credit_rows(rows, seg, d)
        self.market = []
        rows.order = rows.order[:0]

    def _credit_rows(self, rows: _Rows, seg: np.ndarray, d: np.ndarray, add: bool = False) -> None:
        """:meth:`_credit` of ``d[i]`` to row ``seg[i]``'s contributor, in row order (``add``: the
        reference's plain addition, no floor). Each contributor's running sum is one sequential
        ``np.add.accumulate``, the additions of the call-by-call loop; corrected floors a
        balance at 0 after each step, so a contributor whose sum dips below 0 is replayed."""
        if not len(seg):
            return
        cid = rows.cid[seg]
        first = np.unique(cid, return_index=True)[1]
        for i in cid[np.sort(first)].tolist():
            who = rows.names[i]
            mine = d[cid == i]
            run = np.add.accumulate(np.concatenate(([self.market_balances.get(who, 0.0)], mine)))
            if self.fixed and not add and (run < 0).any():
                for v in mine.tolist():
                    self._credit(who, v)
            else:
                self.market_balances[who] = float(run[-1])

    def _process(self) -> None:
        if self.state == "REWARD_RESTART":
            self._start_pass()
        self._step()

    def _start_pass(self) -> None:
        """A pass starts: scores cleared, the model reset if asked, the accuracy baseline set."""
        self.next = 0
        self.scores: dict[str, float] = {}
        if self.reset:
            self.learner.restore(self.init_snapshot)
        if self.prev_acc is None:
            self.prev_acc = self.original_acc = self.evaluate()
        elif not self.reset or self.fixed:  # FIX 4: every pass starts from the original accuracy
            self.prev_acc = self.original_acc
        self.pass_counts: dict[str, int] = {}
        self.num_passes += 1
        self.worst: Any = None
        self.min_score = math.inf
        self.state = "REWARD"

    def _step(self) -> None:
        """One contribution of the pass, as one ``process_contribution`` call processes it."""
        c = self.market[self.next]
        self.pass_counts[c.contributor] = self.pass_counts.get(c.contributor, 0) + 1
        self.learner.update(c.x, c.y)
        if not self.reset and c.accuracy is None:
            c.accuracy = self.evaluate()
        self.next += 1
        last = self.next >= len(self.market)
        if last or not self.group or self.market[self.next].contributor != c.contributor:
            acc = self.evaluate() if self.reset else c.accuracy
            change = acc - self.prev_acc
            if change > self.best_change.get(c.contributor, -math.inf):
                self.best_change[c.contributor] = change
            if self.group:
                new = self.scores[c.contributor] = self.scores.get(c.contributor, 0.0) + change
            else:
                new = c.score = change
            if new < self.min_score:
                self.min_score = new
                self.worst = c.contributor if self.group else c
            elif self.group and self.worst == c.contributor:
                self.worst, self.min_score = min(self.scores.items(), key=lambda kv: kv[1])
            self.prev_acc = acc
            if last:
                self._end_of_pass()

    def _rounds(self) -> float:
        if self.fixed:  # FIX 3: stop at the first ruin among all negative scores
            if self.group:
                cands = [
                    self.market_balances.get(p, 0.0) / -s for p, s in self.scores.items() if s < 0
                ]
            else:
                cands = [
                    c.balance / -c.score for c in self.market if c.score is not None and c.score < 0
                ]
            rounds = min(cands)
        elif self.group:
            rounds = self.market_balances.get(self.worst, 0.0) / -self.min_score
        else:
            rounds = self.worst.balance / -self.min_score
        return min(rounds, self.remaining_bounty_rounds)

    def _end_of_pass(self) -> None:
        if self.min_score < 0:
            rounds = self._rounds()
            self.remaining_bounty_rounds -= rounds
            if self.remaining_bounty_rounds == 0:
                self._end_reward_phase(rounds)
                return
            if self.group:
                drop = set()
                for p, s in self.scores.items():
                    self._credit(p, s * rounds)
                    if self.market_balances.get(p, 0.0) < self.pass_counts.get(p, 0):
                        drop.add(p)
                kept = [c for c in self.market if c.contributor not in drop]
                self.num_removed += len(self.market) - len(kept)
                self.market = kept
            else:
                for c in self.market:
                    d = c.score * rounds
                    if self.fixed:  # FIX 2: every change reaches the market balance; never below 0
                        d = max(d, -c.balance)
                        self._credit(c.contributor, d)
                        c.balance += d
                    else:
                        c.balance += d
                        if c.balance < 1:
                            self.market_balances[c.contributor] = (
                                self.market_balances.get(c.contributor, 0.0) + c.balance
                            )
                kept = [c for c in self.market if c.balance >= 1]
                self.num_removed += len(self.market) - len(kept)
                self.market = kept
            self._after_pass()
        else:
            rounds = self.remaining_bounty_rounds
            self.remaining_bounty_rounds = 0
            self._end_reward_phase(rounds)

    def _market_balance(self, who: str) -> float:
        """``who``'s market balance (token units; 0 when it has none), read as the reference reads
        it at a collection: its balances are a ``defaultdict``, so the read leaves a 0 entry,
        which a later report's deletion of the reporter's entry finds (reference-python only; the
        corrected market reads without writing). Reads come after every check that can refuse
        the call, so a refused call still changes nothing."""
        if self.fixed:
            return self.market_balances.get(who, 0.0)
        return self.market_balances.setdefault(who, 0.0)

    def _credit(self, who: str, d: float) -> None:
        bal = self.market_balances.get(who, 0.0) + d
        self.market_balances[who] = max(bal, 0.0) if self.fixed else bal

    def _end_reward_phase(self, rounds: float) -> None:
        self.reward_phase_end_time_s = self.now
        self.state = "REWARD_COLLECT"
        if self.group:
            for p, s in self.scores.items():
                self._credit(p, s * rounds)
        else:
            for c in self.market:
                d = c.score * rounds
                if self.fixed:
                    d = max(d, -c.balance)
                self._credit(c.contributor, d)
        self.market = []

    # -- collection ---------------------------------------------------------------------------
    def refund(self, sender: str, x: Any, y: int, added_time: int) -> float:
        """Collect the caller's market balance (0 if none), after the reward phase."""

        def run() -> float:
            stored = self.data.get(x, y, added_time, sender)
            self._require(stored is not None, "data_not_found")
            self._require(
                self.remaining_bounty_rounds == 0 and self.state == "REWARD_COLLECT",
                "rewards_not_processed",
            )
            amount = self._market_balance(sender)
            if amount > 0:
                del self.market_balances[sender]
                amount = self._pay(sender, amount)
            else:
                amount = 0
            stored.claimed_by.add(sender)
            return amount

        return self._exec(sender, "refund", 0, run)

    def report(self, sender: str, x: Any, y: int, added_time: int, author: str) -> float:
        """After the any-address wait, take a contributor's uncollected market balance."""

        def run() -> float:
            stored = self.data.get(x, y, added_time, author)
            self._require(stored is not None, "data_not_found")
            self._require(
                self.state == "REWARD_COLLECT" and self.remaining_bounty_rounds == 0,
                "rewards_not_processed",
            )
            # The reference also asserts a reward phase that ended after time 0 (0 as "unset").
            self._require(self.fixed or self.reward_phase_end_time_s > 0, "rewards_not_processed")
            if self.now - self.reward_phase_end_time_s < self.any_address_claim_wait_time_s:
                return 0
            amount = self._market_balance(author)
            if self.fixed:  # FIX 1: the submitter's balance goes to the reporter, once
                if amount <= 0:
                    return 0
                del self.market_balances[author]
                return self._pay(sender, amount)
            # The reference pays a negative balance too, which its ledger refuses (an assertion).
            self._require(amount >= 0, "negative_amount")
            if amount == 0:
                return 0
            # The reference deletes the reporter's entry (KeyError when it has none).
            self._require(sender in self.market_balances, "reference_report_bug")
            del self.market_balances[sender]
            return self._pay(sender, amount)

        return self._exec(sender, "report", 0, run)

    def withdraw_unused_bounty(self, sender: str) -> float:
        """FIX 5 (corrected only): the provider takes back what exceeds the outstanding balances."""

        def run() -> float:
            self._require(self.fixed, "wrong_phase")
            self._require(self.state == "REWARD_COLLECT", "wrong_phase")
            self._require(sender == self.provider, "not_provider")
            spare = self.chain.ledger.balance(self.address) - self.outstanding()
            amount = self._pay(sender, spare) if spare > 0 else 0
            self.withdrawn += amount
            return amount

        return self._exec(sender, "withdraw", 0, run)

    def state_snapshot(self) -> tuple:
        """Full, comparable state: every field of the market (contributions, scores, phase, test
        set, counters), the stored data, every balance and the learner's parameters."""
        own = {k: v for k, v in vars(self).items() if k not in ("chain", "learner", "data")}
        return (
            tuple(sorted(self.chain.ledger.snapshot().items())),
            freeze(self.data.snapshot()),
            freeze(own),
            learner_state(self.learner),
        )

    snapshot = state_snapshot


class _Rows:
    """The contributions of a reward phase as arrays (derived from ``market``, not contract
    state): CSR rows and labels for the learner, contributor ids, scores, balances and first-pass
    accuracies by row, and ``order``, the rows of the current market in pass order."""

    def __init__(self, market: list[Contribution]) -> None:
        n = len(market)
        self.contribs = list(market)
        self.row_of = {id(c): i for i, c in enumerate(market)}
        lens = np.fromiter((len(c.x.indices) for c in market), np.int64, n)
        itype = np.result_type(*(c.x.indices.dtype for c in market[:1]), np.int32)
        if lens.sum() >= 2**31:
            itype = np.int64
        self.indptr = np.zeros(n + 1, dtype=itype)
        np.cumsum(lens, out=self.indptr[1:])
        self.indices = np.concatenate([c.x.indices for c in market]).astype(itype, copy=False)
        self.values = np.concatenate([c.x.values for c in market]).astype(np.float64, copy=False)
        self.y = np.fromiter((c.y for c in market), np.int64, n)
        names: dict[str, int] = {}
        self.cid = np.fromiter(
            (names.setdefault(c.contributor, len(names)) for c in market), np.int64, n
        )
        self.names = list(names)
        self.balance = np.fromiter((c.balance for c in market), np.float64, n)
        # scores of this pass so far (a batch may start in the middle of a pass)
        self.score = np.array([0.0 if c.score is None else c.score for c in market])
        self.known = np.fromiter((c.accuracy is not None for c in market), bool, n)
        self.known_before = self.known.copy()
        self.scored = np.zeros(n, dtype=bool)  # rows scored in this batch
        self.acc = np.array([0.0 if c.accuracy is None else c.accuracy for c in market])
        self.order = np.arange(n)
        # Rows learned by no sweep yet, in order (see PredictionMarket._learn).
        self.unlearned: list[np.ndarray] = []

    def keep(self, mask: np.ndarray) -> None:
        """The market lost the rows where ``mask`` is False."""
        self.order = self.order[mask]

    def ranges(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where ``rows`` lie in ``indices``/``values`` (starts, ends) and their labels: the
        learner reads them in place, no copy per pass."""
        return self.indptr[rows], self.indptr[rows + 1], self.y[rows]


def _gas_op(call: str) -> str:
    """The gas schedule's operation of a call: the market's own steps are ``pm_<call>``."""
    return call if call in ("add_data", "refund", "report") else f"pm_{call}"


def _nnz(x: Any) -> int:
    idx = getattr(x, "indices", None)
    return len(idx) if idx is not None else len(x)


def whole_units(amount: float) -> int:
    """``amount`` rounded down to whole token units; float noise below ``1e-9`` of the next
    whole unit counts as that unit (accuracy differences are sums of fractions k/n in floats)."""
    return int(math.floor(amount + 1e-9)) if amount > 0 else 0


def _stack(xs: list[Any]) -> Any:
    if xs and sp.issparse(xs[0]):
        return sp.vstack(xs).tocsr()
    if xs and hasattr(xs[0], "indices") and hasattr(xs[0], "values"):
        raise TypeError("stack test rows as CSR rows or dense lists")
    if any(isinstance(x, np.ndarray) and x.ndim == 2 for x in xs):  # blocks of rows (Piece)
        return np.vstack([np.atleast_2d(np.asarray(x, dtype=np.float64)) for x in xs])
    return np.asarray(xs, dtype=np.float64)
