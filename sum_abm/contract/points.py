"""Points (gamification; the reference's ``Points64`` contract).

Adding data costs nothing. After ``refund_time_s``, the author of a contribution the model agrees
with may claim it once and scores a point (``num_valid += 1``) provided nobody has claimed it yet;
anyone else may, after the same wait, report a contribution the model disagrees with, which marks it
claimed (no points move; its author can no longer score it). No money moves in this mechanism.
"""

from __future__ import annotations

from typing import Any

from sum_abm.chain import Rejected
from sum_abm.contract.data_handler import StoredData


class Points:
    """The Points incentive mechanism (times in seconds)."""

    kind = "points"
    updates_model_on_add = True
    python = False

    def __init__(self, refund_time_s: int = 86_400, any_address_claim_wait_time_s: int = 9 * 86_400) -> None:
        self.refund_time_s = int(refund_time_s)
        self.any_address_claim_wait_time_s = int(any_address_claim_wait_time_s)
        self.num_valid: dict[str, int] = {}

    min_claim_age = property(lambda self: self.refund_time_s)

    def required_deposit(self, now: int) -> int:
        return 0

    def add_cost(self, sender: str, value: Any, now: int) -> int:
        return 0

    def may_overwrite(self, stored: StoredData) -> bool:
        return False

    def on_added(self, now: int) -> None:
        pass

    def good_count(self, address: str) -> int:
        return self.num_valid.get(address, 0)

    def remaining(self, stored: StoredData) -> int:
        """1 while the contribution can still be claimed or reported, else 0."""
        return 0 if stored.claimed_by else 1

    def refund_amount(self, sender: str, stored: StoredData, prediction: int, now: int) -> int:
        if stored.claimed_by:
            raise Rejected("already_claimed")
        if now - stored.time < self.refund_time_s:
            raise Rejected("too_early")
        if prediction != stored.y:
            raise Rejected("model_disagrees")
        return 0

    def on_refunded(self, sender: str) -> None:
        self.num_valid[sender] = self.num_valid.get(sender, 0) + 1

    def report_amount(self, reporter: str, stored: StoredData, prediction: int | None, now: int) -> int:
        if stored.claimed_by:
            raise Rejected("already_claimed")
        if reporter == stored.sender:
            raise Rejected("own_deposit")
        if now - stored.time < self.refund_time_s:
            raise Rejected("too_early")
        if prediction == stored.y:
            raise Rejected("model_agrees")
        return 0

    def report_needs_prediction(self, stored: StoredData, now: int) -> bool:
        return True

    def prediction_payments(self, value: Any) -> dict[str, Any]:
        return {}

    def snapshot(self) -> tuple:
        return tuple(sorted(self.num_valid.items()))
