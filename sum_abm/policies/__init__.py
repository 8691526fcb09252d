"""Agent policies: a registry from policy name to (config class, policy class).

``group_config_union()`` is the pydantic union the scenario schema uses for agent groups, so each
policy's parameters are validated (unknown keys rejected) with errors like ``agents[1].deposit``.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated

from pydantic import Field

from sum_abm.policies.adaptive import AdaptivePolicy
from sum_abm.policies.base import BlockNormals, GroupConfig, Policy
from sum_abm.policies.reference import ReferencePolicy
from sum_abm.policies.strategic import (
    CarelessPolicy,
    DepositHunterPolicy,
    FreeRiderPolicy,
    HonestPolicy,
    LabelFlipPolicy,
    ModelUserPolicy,
    SybilPolicy,
    TargetedPolicy,
)
from sum_abm.policies.view import MarketView, ParticipantView, WalkRules

POLICIES: dict[str, type[Policy]] = {
    p.name: p
    for p in (
        HonestPolicy,
        CarelessPolicy,
        LabelFlipPolicy,
        TargetedPolicy,
        SybilPolicy,
        FreeRiderPolicy,
        DepositHunterPolicy,
        ModelUserPolicy,
        AdaptivePolicy,
        ReferencePolicy,
    )
}


def group_config_union():
    """The discriminated union (on ``policy``) of every registered policy's group config."""
    configs = tuple(p.Config for p in POLICIES.values())
    union = functools.reduce(operator.or_, configs)  # Config1 | Config2 | ...
    return Annotated[union, Field(discriminator="policy")]  # type: ignore[valid-type]


def make_policy(config: GroupConfig) -> Policy:
    """The policy object for one agent of a group."""
    return POLICIES[config.policy](config)


__all__ = [
    "POLICIES",
    "BlockNormals",
    "GroupConfig",
    "MarketView",
    "ParticipantView",
    "Policy",
    "WalkRules",
    "group_config_union",
    "make_policy",
]
