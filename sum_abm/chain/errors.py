"""Typed rejection of a contract call, and every reason code a contract may give."""

from __future__ import annotations

#: Every rejection code the contracts raise (the ``reason`` column of the transactions frame), with
#: its meaning. Codes and rules: ``shared/conformance/TRACE_FORMAT.md`` §4 (DRT) and §5 (PM); a
#: test checks that the code raises exactly these.
REASONS: dict[str, str] = {
    "insufficient_funds": "the sender cannot pay the value plus the gas fee (nothing runs)",
    "add_too_soon": "add_data in the same second as the last update (reference-python DRT)",
    "insufficient_value": "the deposit or stake sent is below what the contract requires",
    "duplicate_data": "the same (data, label, time, sender) is already stored",
    "invalid_sample": "data the model cannot learn: a label outside its classes, a feature outside"
    " it, a value it refuses (never sent by the market's agents)",
    "data_not_found": "no stored contribution matches the claim",
    "already_claimed_by_submitter": "the author already claimed its contribution",
    "already_claimed_by_reporter": "this reporter already claimed the contribution",
    "nothing_left_to_claim": "the contribution's claimable deposit is 0 (or it was claimed)",
    "too_early": "the refund or report wait has not passed",
    "model_disagrees": "refund refused: the model does not predict the contribution's label",
    "model_agrees": "report refused: the model predicts the contribution's label",
    "own_deposit": "a report on one's own contribution before the any-address wait",
    "reporter_has_no_good_data": "the reporter has no verified contribution (DRT)",
    "share_rounds_to_zero": "a report whose share of the deposit floors to 0 (DRT corrected)",
    "not_provider": "a bounty-provider step sent by someone else (prediction market)",
    "wrong_phase": "the call does not belong to the market's current phase",
    "test_set_mismatch": "a revealed test-set piece does not match its committed hash",
    "market_cannot_end_yet": "too few contributions and the earliest end time has not come",
    "rewards_not_processed": "rewards are claimed before every reward pass ran",
    "reference_report_bug": "a report whose reporter has no market balance (the reference's KeyError)",
    "negative_amount": "a report on a negative market balance (the reference's ledger refuses it)",
}


class Rejected(Exception):
    """The contract rejected the call; ``reason`` is a code of TRACE_FORMAT.md (e.g. ``too_early``).

    A rejected call changes no state (gas excepted, which is charged as on chain).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}{': ' + detail if detail else ''}")
        self.reason = reason
