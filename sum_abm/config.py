"""The base of every config model (scenario, data, learner, mechanism, chain, run).

Each component declares its own config beside its code; :mod:`sum_abm.scenario` composes them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
