"""Deposit, Refund and Take (self-assessment): config, semantics, market adapter and report.

The contract rules are :class:`sum_abm.contract.drt.DepositRefundTake`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from sum_abm.chain import Chain
from sum_abm.contract.drt import SEMANTICS, DepositRefundTake
from sum_abm.mechanisms.base import MechanismBase, MechanismConfig, TrainerAdapter


class DRTConfig(MechanismConfig):
    """Deposit, Refund and Take (self-assessment). Times in seconds, ``cost_weight`` in token units."""

    kind: Literal["deposit_refund_take"]
    semantics: Literal[SEMANTICS] = SEMANTICS[0]  # type: ignore[valid-type]
    refund_time_s: int = Field(86_400, ge=0)
    any_address_claim_wait_time_s: int = Field(9 * 86_400, ge=0)
    cost_weight: int = Field(1, ge=0)

    @model_validator(mode="after")
    def _windows(self) -> DRTConfig:
        if self.any_address_claim_wait_time_s < self.refund_time_s:
            raise ValueError("expected any_address_claim_wait_time_s >= refund_time_s")
        return self

    def evm_ready(self) -> bool:
        return self.semantics == "solidity"


class DRTAdapter(TrainerAdapter):
    """The market's view of a DRT contract: a reporter needs verified-good data of its own."""

    report_needs_good_data = True

    def __init__(self, config: DRTConfig, chain: Chain, learner: Any) -> None:
        im = DepositRefundTake(
            config.refund_time_s,
            config.any_address_claim_wait_time_s,
            config.cost_weight,
            config.semantics,
        )
        super().__init__(config, chain, learner, im)
        self.free_adds = config.cost_weight == 0


class DRTMechanism(MechanismBase):
    """Deposit, Refund and Take."""

    kind: ClassVar[str] = "deposit_refund_take"
    title: ClassVar[str] = "Deposit, Refund and Take"
    Config = DRTConfig
    Adapter = DRTAdapter
    semantics = SEMANTICS

    @classmethod
    def deposit_rule(cls, config: MechanismConfig) -> str:
        m: DRTConfig = config  # type: ignore[assignment]
        rule = (
            "int(cost_weight * 60 / isqrt(dt)), at least 1"
            if m.semantics == "reference-python"
            else "cost_weight * 3600 // isqrt(dt)"
        )
        return (
            f"an add needs {rule} tokens, dt the seconds since the last add; "
            f"mechanism.cost_weight = {m.cost_weight:,}"
        )
