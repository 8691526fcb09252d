"""Incentive mechanisms as plugins: a registry from ``kind`` to the mechanism.

Adding a mechanism: one module here (its config, semantics, adapter, summary extras and report
panels) and one line in ``MECHANISMS``; the mechanism battery (``tests/test_mechanism_battery.py``)
runs over every registered mechanism.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any

from pydantic import Field

from sum_abm.mechanisms.base import MechanismBase, MechanismConfig
from sum_abm.mechanisms.drt import DRTConfig, DRTMechanism
from sum_abm.mechanisms.points import PointsConfig, PointsMechanism
from sum_abm.mechanisms.prediction_market import PMConfig, PMMechanism

# The registry; its order is the order of choices in error messages and menus.
MECHANISMS: dict[str, type[MechanismBase]] = {
    m.kind: m for m in (DRTMechanism, PMMechanism, PointsMechanism)
}


def mechanism_config_union() -> Any:
    """The discriminated union (on ``kind``) of every registered mechanism's config."""
    union = functools.reduce(operator.or_, (m.Config for m in MECHANISMS.values()))
    return Annotated[union, Field(discriminator="kind")]


def default_mechanism_config() -> MechanismConfig:
    """The scenario default: the first registered mechanism with its default settings."""
    first = next(iter(MECHANISMS.values()))
    return first.Config(kind=first.kind)


__all__ = [
    "MECHANISMS",
    "DRTConfig",
    "MechanismBase",
    "MechanismConfig",
    "PMConfig",
    "PointsConfig",
    "default_mechanism_config",
    "mechanism_config_union",
]
