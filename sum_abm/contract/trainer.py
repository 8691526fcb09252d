"""``CollaborativeTrainer``: the public entry points of a SUM contract.

It delegates to a :class:`DataHandler` (the record of contributions), an incentive mechanism (DRT or
Points here; the prediction market has its own lifecycle in :mod:`sum_abm.contract.prediction_market`)
and a learner (``predict_one``/``update``). Every public call runs inside
:meth:`sum_abm.chain.Chain.execute`: all checks first, then the effects, so a rejected call changes
nothing but the fee.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sum_abm.chain import Chain, Rejected, logged_amount
from sum_abm.contract.data_handler import Claimers, DataHandler, StoredData
from sum_abm.contract.state import freeze, learner_state


def _nnz(x: Any) -> int:
    idx = getattr(x, "indices", None)
    return len(idx) if idx is not None else len(x)


class CollaborativeTrainer:
    """A deployed trainer contract at ``address`` (token units, integer seconds)."""

    def __init__(
        self,
        chain: Chain,
        learner: Any,
        data_handler: Any = None,
        mechanism: Any = None,
        address: str = "contract",
    ) -> None:
        """``CollaborativeTrainer(chain, learner, data_handler, mechanism, address="contract")``.

        ``data_handler`` may be ``None`` (a fresh :class:`DataHandler`). The older three-argument
        form ``(chain, learner, mechanism)`` is still accepted: a third argument that is not a
        data handler, with no fourth, is the mechanism.
        """
        if (
            mechanism is None
            and data_handler is not None
            and not isinstance(data_handler, DataHandler)
        ):
            data_handler, mechanism = None, data_handler
        if mechanism is None:
            raise TypeError("CollaborativeTrainer needs an incentive mechanism")
        self.chain = chain
        self.learner = learner
        self.im = mechanism
        self.data = data_handler if data_handler is not None else DataHandler()
        self.address = address
        self.learner_kind = getattr(learner, "kind", "")
        # Resolved once, not per call: what is left of a contribution (Points count claims, not
        # tokens) and whether payouts are the reference's floats (capped at the contract balance).
        self._remaining = getattr(mechanism, "remaining", None)
        self._float_pay = bool(getattr(mechanism, "python", False))

    @property
    def now(self) -> int:
        return self.chain.clock.now

    def _exec(
        self, sender: str, call: str, value: Any, fn, x: Any = None, y: int | None = None
    ) -> Any:
        gas = self.call_gas(call, x, y, sender) if self.chain.gas_price else None
        return self.chain.execute(sender, call, value, fn, learner_kind=self.learner_kind, gas=gas)

    def call_gas(
        self, call: str, x: Any = None, y: int | None = None, sender: str | None = None
    ) -> int:
        """Gas of ``call`` with sample ``x`` by the chain's schedule, before the call runs: an add
        is priced by what its update will write (:meth:`GasSchedule.add_data_gas`), a refund by
        which good-data counters it writes first (:meth:`GasSchedule.refund_gas`)."""
        n = 0 if x is None else _nnz(x)
        c = int(getattr(self.learner, "n_classes", 2))
        sched = self.chain.gas_schedule
        if call == "add_data" and y is not None:
            view = getattr(self.learner, "update_writes", None)
            if not self.im.updates_model_on_add:
                return sched.add_data_gas(self.learner_kind, n, c, changes=False)
            changes, new_slots, cleared = view(x, int(y)) if view is not None else (True, 0, 0)
            return sched.add_data_gas(self.learner_kind, n, c, changes, new_slots, cleared)
        if call == "refund" and hasattr(self.im, "total_good"):
            return sched.refund_gas(
                self.learner_kind,
                n,
                c,
                sender is not None and self.im.good_count(sender) > 0,
                self.im.total_good > 0,
            )
        return sched.gas(call, self.learner_kind, n, c)

    # -- add ------------------------------------------------------------------------------------
    def add_gas(self, sender: str, x: Any, y: int) -> int:
        """The gas of :meth:`add_data` of ``(x, y)`` from ``sender`` (:meth:`call_gas`)."""
        return self.call_gas("add_data", x, y, sender)

    def add_data(self, sender: str, value: Any, x: Any, y: int) -> Any:
        """Add ``(x, y)`` paying the mechanism's deposit out of ``value``; returns the cost.

        The transaction of :meth:`Chain.execute` (gas priced first, the wallet rule and the fee,
        the checks, then the effects, one record) without a closure per call: every contribution
        of a market run comes through here."""
        chain = self.chain
        gas = self.add_gas(sender, x, y) if chain.gas_price else 0
        fee = chain.charge(sender, "add_data", value, gas)
        if fee is None:
            raise Rejected("insufficient_funds")
        try:
            now = chain.clock.now
            cost, key, old = self._check_add(sender, value, x, y)
            # effects, the model's update first: it checks the sample before it writes (a label
            # outside the classes, a feature outside the model, a value it refuses raise with
            # nothing written), so a sample it cannot learn is rejected with nothing changed
            if self.im.updates_model_on_add:
                try:
                    self.learner.update(x, int(y))
                except (ValueError, IndexError, TypeError) as exc:
                    raise Rejected("invalid_sample", str(exc)) from None
            self.im.on_added(now)
            chain.ledger.transfer(sender, self.address, cost)
            # Solidity keeps the old claim marks when a key is re-added
            claimed = old.claimed_by if old is not None else Claimers()
            self.data.put(key, StoredData(sender, now, int(y), cost, cost, claimed))
        except Rejected as rej:
            chain.reject(sender, "add_data", rej.reason, value, gas, fee)
            raise
        chain.record(sender, "add_data", value, gas, fee, logged_amount(cost))
        return cost

    # -- checks shared by the real calls and by the free view calls ------------------------------
    def _check_add(
        self, sender: str, value: Any, x: Any, y: int
    ) -> tuple[Any, tuple, StoredData | None]:
        """(cost, key, the contribution stored under that key or None); raises Rejected."""
        cost = self.im.add_cost(sender, value, self.now)
        key = self.data.key(x, y, self.now, sender)
        old = self.data._data.get(key)
        if old is not None and not self.im.may_overwrite(old):
            raise Rejected("duplicate_data")
        return cost, key, old

    def check_add(self, sender: str, value: Any, x: Any, y: int) -> str | None:
        """The reason an add would be rejected now (the wallet rule aside), or None (a free view
        call; no effect)."""
        try:
            self._check_add(sender, value, x, y)
        except Rejected as r:
            return r.reason
        return None

    def _lookup(self, x: Any, y: int, added_time: int, author: str) -> StoredData:
        stored = self.data.get(x, y, added_time, author)
        if stored is None:
            raise Rejected("data_not_found")
        return stored

    def _check_refund(
        self, sender: str, x: Any, y: int, added_time: int, prediction: int | None
    ) -> tuple[StoredData, Any]:
        stored = self._lookup(x, y, added_time, sender)
        if prediction is None:
            prediction = self._prediction_if_needed(stored, x, refund=True)
        return stored, self.im.refund_amount(sender, stored, prediction, self.now)

    def _check_report(
        self, sender: str, x: Any, y: int, added_time: int, author: str, prediction: int | None
    ) -> tuple[StoredData, Any]:
        stored = self._lookup(x, y, added_time, author)
        if prediction is None and self.im.report_needs_prediction(stored, self.now):
            prediction = int(self.learner.predict_one(x))
        return stored, self.im.report_amount(sender, stored, prediction, self.now)

    def _prediction_if_needed(self, stored: StoredData, x: Any, refund: bool) -> int:
        return int(self.learner.predict_one(x))

    def check_refund(
        self, sender: str, x: Any, y: int, added_time: int, prediction: int | None = None
    ) -> str | None:
        """The reason a refund would be rejected now, or None (a free view call; no effect).

        ``prediction``: the model's current class for ``x`` when the caller already knows it.
        """
        try:
            self._check_refund(sender, x, y, added_time, prediction)
        except Rejected as r:
            return r.reason
        return None

    def check_report(
        self,
        sender: str,
        x: Any,
        y: int,
        added_time: int,
        author: str,
        prediction: int | None = None,
    ) -> str | None:
        """The reason a report would be rejected now, or None (a free view call; no effect)."""
        try:
            self._check_report(sender, x, y, added_time, author, prediction)
        except Rejected as r:
            return r.reason
        return None

    # -- refund / report ---------------------------------------------------------------------------
    def refund(
        self, sender: str, x: Any, y: int, added_time: int, prediction: int | None = None
    ) -> Any:
        """The submitter takes back its deposit if the model agrees after the wait; returns it."""

        def run() -> Any:
            stored, amount = self._check_refund(sender, x, y, added_time, prediction)
            self._refund_effects(sender, stored, amount)
            return amount

        return self._exec(sender, "refund", 0, run, x)

    def _refund_effects(self, sender: str, stored: StoredData, amount: Any) -> None:
        self._pay(sender, amount)
        self._refund_state(sender, stored, amount)

    def _refund_state(self, sender: str, stored: StoredData, amount: Any) -> None:
        """A refund's effects but the payout (which reads no state these write)."""
        stored.claimable = 0 if self.im.refund_clears_deposit else stored.claimable - amount
        stored.claimed_by.add(sender)
        self.im.on_refunded(sender, stored, amount)

    def _report_effects(self, sender: str, stored: StoredData, amount: Any) -> None:
        self._report_state(sender, stored, amount)
        self._pay(sender, amount)

    def _report_state(self, sender: str, stored: StoredData, amount: Any) -> None:
        """A report's effects but the payout."""
        stored.claimed_by.add(sender)
        stored.claimable -= amount

    def claim_if_accepted(
        self,
        sender: str,
        call: str,
        x: Any,
        y: int,
        added_time: int,
        author: str,
        prediction: int | None = None,
    ) -> tuple[bool, Any, Any]:
        """Send the ``refund`` or ``report`` of a contribution only if it would be accepted now
        (a refund's ``author`` is its sender).

        What an agent does with a free view call first: nothing is sent (or logged) when the
        checks reject it, nor when the sender's balance does not pay the fee (a wallet does not
        sign what it cannot pay). Otherwise the same transaction as :meth:`refund` / :meth:`report` —
        gas priced before any effect, the wallet rule and the fee (:meth:`Chain.charge`), the
        effects, one log record — without a closure or a second lookup. ``prediction``: the
        model's current class for ``x`` when the caller knows it. Returns (accepted, amount,
        what is still claimable afterwards), token units.
        """
        return self.claims_if_accepted(sender, [(call, x, y, added_time, author, prediction)])[0]

    def claims_if_accepted(
        self, sender: str, claims: Iterable[tuple[str, Any, int, int, str, int | None]]
    ) -> list[tuple[bool, Any, Any]]:
        """:meth:`claim_if_accepted` for each ``(call, x, y, added_time, author, prediction)`` of
        ``claims`` in order, as one call: the market's walk sends up to hundreds per wake-up, and
        this keeps the per-claim work to the rule checks, the fee, the effects and the record.
        One result per claim, as :meth:`claim_if_accepted` returns it."""
        im, chain, now = self.im, self.chain, self.chain.clock.now
        get, left = self.data.get, self._left
        refund_amount, report_amount = im.refund_amount, im.report_amount
        refund_state, report_state = self._refund_state, self._report_state
        priced = bool(chain.gas_price)
        # Without gas no claim pays a fee or reads a balance (the rules read the stored data and
        # the mechanism's counters), so the payouts and the records of the accepted claims are
        # made once, in claim order, after the loop: the same balances, bit for bit, and rows.
        calls: list[str] = []
        paid: list[Any] = []
        out = []
        try:
            for call, x, y, added_time, author, prediction in claims:
                stored = get(x, y, added_time, author)
                if stored is None:
                    out.append((False, 0, 0))
                    continue
                try:
                    if call == "refund":
                        if prediction is None:
                            prediction = self._prediction_if_needed(stored, x, refund=True)
                        amount = refund_amount(sender, stored, prediction, now)
                    else:
                        if prediction is None and im.report_needs_prediction(stored, now):
                            prediction = int(self.learner.predict_one(x))
                        amount = report_amount(sender, stored, prediction, now)
                except Rejected:
                    out.append((False, 0, left(stored)))
                    continue
                if priced:
                    gas = self.call_gas(call, x, None, sender)
                    if not chain.can_pay(sender, 0, chain.fee(gas)):
                        # a wallet that cannot pay the fee does not sign: nothing is sent
                        out.append((False, 0, left(stored)))
                        continue
                    fee = chain.charge(sender, call, 0, gas)
                    self._pay(sender, amount)
                    (refund_state if call == "refund" else report_state)(sender, stored, amount)
                    chain.record(sender, call, 0, gas, fee, amount)
                else:
                    (refund_state if call == "refund" else report_state)(sender, stored, amount)
                    calls.append(call)
                    paid.append(amount)
                out.append((True, amount, left(stored)))
        finally:
            if paid:
                self.chain.ledger.transfer_many(self.address, sender, paid, cap=self._float_pay)
                chain.record_many(sender, calls, paid)
        return out

    def _left(self, stored: StoredData) -> Any:
        fn = self._remaining
        return fn(stored) if fn is not None else stored.claimable

    def report(
        self,
        sender: str,
        x: Any,
        y: int,
        added_time: int,
        author: str,
        prediction: int | None = None,
    ) -> Any:
        """Take (part of) a deposit the model disagrees with, or all of it after the long wait."""

        def run() -> Any:
            stored, amount = self._check_report(sender, x, y, added_time, author, prediction)
            self._report_effects(sender, stored, amount)
            return amount

        return self._exec(sender, "report", 0, run, x)

    def _pay(self, to: str, amount: Any) -> None:
        if self._float_pay:
            # Float report rewards leave the contract a hair short of its integer claims; the
            # reference's Balances.send then silently sends what there is, and so does this.
            amount = min(amount, self.chain.ledger.balance(self.address))
        self.chain.ledger.transfer(self.address, to, amount)

    def remaining(self, x: Any, y: int, added_time: int, author: str) -> Any:
        """What is still claimable on a contribution (token units; Points: 1 until claimed)."""
        stored = self.data.get(x, y, added_time, author)
        return 0 if stored is None else self._left(stored)

    # -- predict ------------------------------------------------------------------------------------
    def predict_gas(self, sender: str, x: Any) -> int:
        """The gas of :meth:`predict` of ``x`` from ``sender`` (:meth:`call_gas`)."""
        return self.call_gas("predict", x, None, sender)

    def predict(
        self, sender: str, x: Any, value: Any = 0, prediction: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Predict ``x``; a payment ``value`` is shared among verified contributors (int floors)."""

        def run() -> tuple[int, dict[str, Any]]:
            pred = int(self.learner.predict_one(x)) if prediction is None else int(prediction)
            payments = self.im.prediction_payments(value)
            for addr, amt in payments.items():
                self.chain.ledger.transfer(sender, addr, amt)
            return pred, payments

        return self._exec(sender, "predict", value, run, x)

    def state_snapshot(self) -> tuple:
        """Full, comparable state: (balances, stored data, mechanism counters, learner parameters).

        Two snapshots are equal exactly when nothing observable changed, so a test can assert that
        a rejected call left everything as it was (bit for bit, model weights included).
        """
        return (
            tuple(sorted(self.chain.ledger.snapshot().items())),
            freeze(self.data.snapshot()),
            freeze(self.im.snapshot()),
            learner_state(self.learner),
        )

    snapshot = state_snapshot
