"""Deposit, Refund and Take (self-assessment), in the Solidity, reference-Python or corrected rules.

The rules and their check order are those of ``TRACE_FORMAT.md`` §4 (shipped in
``tests/conformance/``). Differences between the ``solidity`` and ``reference-python`` semantics:

========================  ======================================  ==========================================
rule                      ``solidity`` (default)                  ``reference-python``
========================  ======================================  ==========================================
deposit                   ``cw*3600 // isqrt(dt)`` (dt=0 → /1),   ``int(cw*60 / isqrt(dt))``, at least 1;
                          0 when ``cw == 0``                      ``dt <= 0`` rejected (``add_too_soon``)
refund/report wait        ``age < refund_time_s`` is too early     ``age <= refund_time_s`` is too early
report reward             ``dep*num_good // total_good`` (int)     ``dep*num_good / total_good`` (float)
duplicate data            overwrite allowed when nothing claimable always rejected
========================  ======================================  ==========================================

``corrected`` is ``solidity`` with three fixes, each marked ``FIX`` below, where the Solidity rules
defeat their own stated purpose (that deposits go to contributors whose data the model verified):

1. a report whose proportional share ``initial_deposit * num_good // total_good`` floors to 0 is
   refused (``share_rounds_to_zero``, nothing moves); Solidity pays the whole claimable deposit,
   which lets a label flipper with one verified contribution take honest deposits whole once
   ``total_good`` is large;
2. a refund of a contribution that reporters already took part of pays what is left but does not
   count as verified-good data (``num_good``, ``total_good`` unchanged): the data was found bad
   after the wait, and in Solidity a flipper buys reporting rights by refunding the last token of
   its own reported data once the model drifts;
3. after the any-address wait, only a taker with verified-good data may take what is left
   (``reporter_has_no_good_data``); Solidity lets any address take it, so a bad contributor gets
   its deposit back from a fresh address, or harvests honest deposits, without ever sending data
   the model agreed with -- exactly what the report rule's good-data requirement is there to stop.
   Deposits still do not stay stuck while any contributor has verified data.
"""

from __future__ import annotations

from math import isqrt
from typing import Any

from sum_abm.chain import Rejected
from sum_abm.contract.data_handler import StoredData

SEMANTICS = ("solidity", "reference-python", "corrected")


class DepositRefundTake:
    """The DRT incentive mechanism. Times in seconds, ``cost_weight`` in token units."""

    kind = "deposit_refund_take"
    updates_model_on_add = True
    refund_clears_deposit = True  # a refund pays out all that is claimable
    has_vyper_contract = True  # sum_abm/evm/contracts/drt.vy (the EVM spot check)

    def __init__(
        self,
        refund_time_s: int = 86_400,
        any_address_claim_wait_time_s: int = 9 * 86_400,
        cost_weight: int = 1,
        semantics: str = "solidity",
        deploy_time_s: int = 0,
    ) -> None:
        if semantics not in SEMANTICS:
            raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
        if min(refund_time_s, any_address_claim_wait_time_s, cost_weight) < 0:
            raise ValueError(
                "refund_time_s, any_address_claim_wait_time_s (seconds) and cost_weight "
                "(token units) must be >= 0"
            )
        self.refund_time_s = int(refund_time_s)
        self.any_address_claim_wait_time_s = int(any_address_claim_wait_time_s)
        self.cost_weight = cost_weight
        self.semantics = semantics
        self.python = semantics == "reference-python"
        self.corrected = semantics == "corrected"
        #: The smallest age (seconds) at which a refund or report can succeed (an attribute, not
        #: a property: every claim reads it).
        self.min_claim_age = self.refund_time_s + 1 if self.python else self.refund_time_s
        self.last_update_time_s = int(deploy_time_s)
        self.total_good = 0
        self.num_good: dict[str, int] = {}  # insertion order = order of first verified refund

    # -- views ---------------------------------------------------------------------------------
    def required_deposit(self, now: int) -> int | None:
        """Deposit an add needs at ``now`` (token units); None when an add is impossible now."""
        dt = now - self.last_update_time_s
        if self.python:
            if dt <= 0:
                return None
            return max(1, int(self.cost_weight * 60 / isqrt(dt)))
        if self.cost_weight == 0:
            return 0
        if dt < 0:
            return None  # a clock behind the last add (never on a chain: a replayed trace's time)
        return (self.cost_weight * 3600) // (1 if dt == 0 else isqrt(dt))

    # -- the claim rules, written once: the contract's checks below and the market's claim book
    # (sum_abm.market.model.MarketModel.claim_walk) both use these. Elementwise: ages may be ints
    # or numpy arrays, flags numpy bool arrays.

    def too_early(self, age: Any) -> Any:
        """Whether a refund or report of a contribution ``age`` seconds old is too early."""
        return age < self.min_claim_age

    def open_to_anyone(self, age: Any) -> Any:
        """Whether anyone (its author included) may take all that is left of a contribution."""
        return age >= self.any_address_claim_wait_time_s

    def refundable(self, age: Any, agrees: Any) -> Any:
        """Which of its author's contributions (with something left to claim) a refund would
        be accepted for: old enough, and the model agrees with the label (:meth:`refund_amount`)."""
        return agrees & ~self.too_early(age)

    def reportable(self, age: Any, agrees: Any, own: Any, claimed: Any, reporter_good: Any) -> Any:
        """Which contributions (with something left to claim) a report by a reporter would be
        accepted for (:meth:`report_amount`): open to anyone (corrected: to a reporter with
        verified data), or another's, not yet claimed by the reporter, old enough, the model
        disagrees, and the reporter has verified data."""
        expired = self.open_to_anyone(age)
        if self.corrected:
            expired = expired & reporter_good
        return expired | (~own & ~claimed & ~self.too_early(age) & ~agrees & reporter_good)

    def good_count(self, address: str) -> int:
        return self.num_good.get(address, 0)

    # -- add ------------------------------------------------------------------------------------
    def add_cost(self, sender: str, value: Any, now: int) -> int:
        """Check an add and return its cost; raises Rejected."""
        cost = self.required_deposit(now)
        if cost is None:
            raise Rejected("add_too_soon")
        if cost > value:
            raise Rejected("insufficient_value", f"{value} < {cost}")
        return cost

    def may_overwrite(self, stored: StoredData) -> bool:
        """Solidity lets a key be re-added when nothing is claimable; the reference Python never."""
        return (not self.python) and stored.claimable == 0

    def on_added(self, now: int) -> None:
        self.last_update_time_s = now

    # -- refund ---------------------------------------------------------------------------------
    def refund_amount(self, sender: str, stored: StoredData, prediction: int, now: int) -> Any:
        """Check a refund by the submitter; returns the amount (all that is claimable)."""
        if sender in stored.claimed_by:
            raise Rejected("already_claimed_by_submitter")
        if stored.claimable <= 0:
            raise Rejected("nothing_left_to_claim")
        if self.too_early(now - stored.time):
            raise Rejected("too_early")
        if prediction != stored.y:
            raise Rejected("model_disagrees")
        return stored.claimable

    def on_refunded(self, sender: str, stored: StoredData, amount: Any) -> None:
        """Count a refund of ``amount`` (token units) as verified-good data of ``sender``."""
        if self.corrected and amount < stored.initial_deposit:
            # FIX 2: reporters took part of this deposit (the model disagreed with it after the
            # wait): its author may refund what is left, but data found bad is not verified.
            return
        self.num_good[sender] = self.num_good.get(sender, 0) + 1
        self.total_good += 1

    # -- report ---------------------------------------------------------------------------------
    def report_amount(
        self, reporter: str, stored: StoredData, prediction: int | None, now: int
    ) -> Any:
        """Check a report (take) and return the amount taken."""
        if stored.claimable <= 0:
            raise Rejected("nothing_left_to_claim")
        age = now - stored.time
        if self.open_to_anyone(age):
            if self.corrected and self.num_good.get(reporter, 0) <= 0:
                # FIX 3: a take needs verified data, as a report does; the long wait keeps
                # deposits from being stuck, it does not let unverified addresses take them.
                raise Rejected("reporter_has_no_good_data")
            return stored.claimable
        if reporter == stored.sender:
            raise Rejected("own_deposit")
        if reporter in stored.claimed_by:
            raise Rejected("already_claimed_by_reporter")
        if self.too_early(age):
            raise Rejected("too_early")
        if prediction == stored.y:
            raise Rejected("model_agrees")
        ng = self.num_good.get(reporter, 0)
        if ng <= 0:
            raise Rejected("reporter_has_no_good_data")
        if self.python:
            amount = stored.initial_deposit * ng / self.total_good
            if amount <= 0 or amount > stored.claimable:
                amount = stored.claimable
        else:
            amount = stored.initial_deposit * ng // self.total_good
            if amount == 0 and self.corrected:
                # FIX 1: a share that floors to 0 earns nothing, not the whole deposit.
                raise Rejected(
                    "share_rounds_to_zero", f"{stored.initial_deposit}*{ng}//{self.total_good}"
                )
            if amount == 0 or amount > stored.claimable:
                amount = stored.claimable
        return amount

    def report_needs_prediction(self, stored: StoredData, now: int) -> bool:
        return not self.open_to_anyone(now - stored.time)

    # -- prediction payments (a reference-Python feature) ---------------------------------------
    def prediction_payments(self, value: Any) -> dict[str, Any]:
        """Who is paid what for a paid prediction: ``int(value*num_good/total_good)`` each (the
        reference's float rule); with integer rules ``value*num_good//total_good``, the same below
        2**53 and never more than ``value`` in all (a float quotient rounds up past it)."""
        if value <= 0 or self.total_good == 0:
            return {}
        out = {}
        exact = not self.python and isinstance(value, int)
        for addr, ng in self.num_good.items():
            if ng > 0:
                amt = value * ng // self.total_good if exact else int(value * ng / self.total_good)
                if amt:
                    out[addr] = amt
        return out

    def snapshot(self) -> tuple:
        return (self.last_update_time_s, self.total_good, tuple(self.num_good.items()))
