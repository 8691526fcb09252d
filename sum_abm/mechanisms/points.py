"""Points (gamification): config, market adapter and report.

The contract rules are :class:`sum_abm.contract.points.Points`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from sum_abm.chain import Chain
from sum_abm.contract.points import Points
from sum_abm.mechanisms.base import MechanismBase, MechanismConfig, TrainerAdapter


class PointsConfig(MechanismConfig):
    """Points (gamification): free adds; a point for each contribution the model later agrees with."""

    kind: Literal["points"]
    refund_time_s: int = Field(86_400, ge=0)
    any_address_claim_wait_time_s: int = Field(9 * 86_400, ge=0)


class PointsAdapter(TrainerAdapter):
    """The market's view of a Points contract: adds are free, a refund scores a point."""

    points_per_refund = 1

    def __init__(self, config: PointsConfig, chain: Chain, learner: Any) -> None:
        im = Points(config.refund_time_s, config.any_address_claim_wait_time_s)
        super().__init__(config, chain, learner, im)
        self.free_adds = True


class PointsMechanism(MechanismBase):
    """Points."""

    kind: ClassVar[str] = "points"
    title: ClassVar[str] = "Points"
    Config = PointsConfig
    Adapter = PointsAdapter
    # Points pay points, not money: the report shows points per group instead of profit.
    report_panels = ("points_by_group",)
