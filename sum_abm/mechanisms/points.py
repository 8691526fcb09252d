"""Points (gamification): config, market adapter and report.

The contract rules are :class:`sum_abm.contract.points.Points`.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from sum_abm.mechanisms.base import MechanismBase, MechanismConfig


class PointsConfig(MechanismConfig):
    """Points (gamification): free adds; a point for each contribution the model later agrees with."""

    kind: Literal["points"]
    refund_time_s: int = Field(86_400, ge=0)
    any_address_claim_wait_time_s: int = Field(9 * 86_400, ge=0)


class PointsMechanism(MechanismBase):
    """Points."""

    kind: ClassVar[str] = "points"
    title: ClassVar[str] = "Points"
    Config = PointsConfig
