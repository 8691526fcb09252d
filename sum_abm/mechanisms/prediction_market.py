"""The prediction market: config, semantics, market adapter and report.

The contract rules are :class:`sum_abm.contract.prediction_market.PredictionMarket`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from sum_abm.mechanisms.base import MechanismBase, MechanismConfig

SEMANTICS = ("corrected", "reference-python")


class PMConfig(MechanismConfig):
    """Prediction market: a bounty (token units) rewards contributions by the accuracy they add."""

    kind: Literal["prediction_market"]
    semantics: Literal[SEMANTICS] = SEMANTICS[0]  # type: ignore[valid-type]
    bounty: int = Field(100_000, ge=1)
    num_test_pieces: int = Field(10, ge=2)
    min_length_s: int = Field(1_000, ge=0)
    min_num_contributions: int | None = Field(
        None, ge=1, description="default: every row of the pool must be contributed"
    )
    min_stake: int = Field(1, ge=1)
    allow_greater_deposit: bool = False
    group_contributions: bool = False
    reset_model_during_reward_phase: bool = False
    any_address_claim_wait_time_s: int = Field(9 * 86_400, ge=0)
    max_process_calls: int = Field(2_000_000, ge=1, description="safety cap on reward-phase calls")


class PMMechanism(MechanismBase):
    """The prediction market."""

    kind: ClassVar[str] = "prediction_market"
    title: ClassVar[str] = "Prediction market"
    Config = PMConfig
    semantics = SEMANTICS
