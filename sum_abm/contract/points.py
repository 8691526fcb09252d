"""Points (gamification; the reference's ``Points64`` contract).

Adding data costs nothing. After ``refund_time_s``, the author of a contribution the model agrees
with may claim it once and scores a point (``num_valid += 1``) provided nobody has claimed it yet;
anyone else may, after the same wait, report a contribution the model disagrees with, which marks it
claimed (no points move; its author can no longer score it). No money moves in this mechanism.

Check order (the reference's latest ``Points64``), with the reason codes of TRACE_FORMAT.md:

* refund: claimed by anyone → ``nothing_left_to_claim``; ``age < refund_time_s`` → ``too_early``;
  the model disagrees → ``model_disagrees``.
* report: ``age`` below every wait (``refund_time_s``, ``any_address_claim_wait_time_s``) →
  ``too_early``; claimed by anyone → ``nothing_left_to_claim``; the reporter is the author →
  ``own_deposit``; the model agrees → ``model_agrees``.

(The reference's "already claimed by submitter/reporter" checks follow "claimed by anyone" and can
never fire, so they are left out.) A duplicate key (same data, label, second and author) is
rejected with ``duplicate_data`` instead of Solidity's overwrite, which would clear the claim.
"""

from __future__ import annotations

from typing import Any

from sum_abm.chain import Rejected
from sum_abm.contract.data_handler import StoredData


class Points:
    """The Points incentive mechanism (times in seconds). Points per address: :attr:`num_valid`."""

    kind = "points"
    updates_model_on_add = True
    refund_clears_deposit = False  # a claim moves no money; claimed_by marks it
    has_vyper_contract = False
    python = False

    def __init__(
        self, refund_time_s: int = 86_400, any_address_claim_wait_time_s: int = 9 * 86_400
    ) -> None:
        if refund_time_s < 0 or any_address_claim_wait_time_s < 0:
            raise ValueError("wait times must be >= 0 seconds")
        self.refund_time_s = int(refund_time_s)
        self.any_address_claim_wait_time_s = int(any_address_claim_wait_time_s)
        self.num_valid: dict[str, int] = {}
        self.total_valid = 0

    @property
    def min_claim_age(self) -> int:
        """The smallest age (seconds) at which a claim can succeed."""
        return self.refund_time_s

    # -- the claim rules, written once (the checks below and the market's claim book use them);
    # elementwise over numpy arrays, for contributions nobody has claimed yet.
    def too_early(self, age: Any) -> Any:
        """Whether the author's claim of a contribution ``age`` seconds old is too early."""
        return age < self.refund_time_s

    def report_too_early(self, age: Any) -> Any:
        """Whether a report of a contribution ``age`` seconds old is too early."""
        return age < min(self.refund_time_s, self.any_address_claim_wait_time_s)

    def refundable(self, age: Any, agrees: Any) -> Any:
        """Unclaimed contributions whose author may claim a point now (:meth:`refund_amount`)."""
        return agrees & ~self.too_early(age)

    def reportable(self, age: Any, agrees: Any, own: Any, claimed: Any, reporter_good: Any) -> Any:
        """Unclaimed contributions a report would be accepted for (:meth:`report_amount`)."""
        return ~self.report_too_early(age) & ~own & ~agrees

    def required_deposit(self, now: int) -> int:
        """Adding data is free (token units)."""
        return 0

    def add_cost(self, sender: str, value: Any, now: int) -> int:
        return 0

    def may_overwrite(self, stored: StoredData) -> bool:
        return False

    def on_added(self, now: int) -> None:
        pass

    def good_count(self, address: str) -> int:
        """Points scored by ``address``."""
        return self.num_valid.get(address, 0)

    def remaining(self, stored: StoredData) -> int:
        """1 while the contribution can still be claimed or reported, else 0."""
        return 0 if stored.claimed_by else 1

    def refund_amount(self, sender: str, stored: StoredData, prediction: int, now: int) -> int:
        """Check a claim by the author; the amount is always 0 (a point, not money)."""
        if stored.claimed_by:
            raise Rejected("nothing_left_to_claim")
        if self.too_early(now - stored.time):
            raise Rejected("too_early")
        if prediction != stored.y:
            raise Rejected("model_disagrees")
        return 0

    def on_refunded(self, sender: str, stored: StoredData, amount: Any) -> None:
        self.num_valid[sender] = self.num_valid.get(sender, 0) + 1
        self.total_valid += 1

    def report_amount(
        self, reporter: str, stored: StoredData, prediction: int | None, now: int
    ) -> int:
        """Check a report; the amount is always 0 (it only marks the contribution claimed)."""
        if self.report_too_early(now - stored.time):
            raise Rejected("too_early")
        if stored.claimed_by:
            raise Rejected("nothing_left_to_claim")
        if reporter == stored.sender:
            raise Rejected("own_deposit")
        if prediction == stored.y:
            raise Rejected("model_agrees")
        return 0

    def report_needs_prediction(self, stored: StoredData, now: int) -> bool:
        return True

    def prediction_payments(self, value: Any) -> dict[str, Any]:
        """Nobody is paid for predictions under Points (the caller keeps ``value``)."""
        return {}

    def snapshot(self) -> tuple:
        return (self.total_valid, tuple(sorted(self.num_valid.items())))
