"""The base of every config model: the scenario's parts (data, learner and its parameters,
mechanism, agent groups, chain, run) and the sweep, game and design files.

Each component declares its own config beside its code; :mod:`sum_abm.scenario` composes them.
"""

from __future__ import annotations

import functools
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment,
    ``inf`` and ``nan`` are no values, and ``true``/``false`` is no number (pydantic reads it as 1
    or 0: ``count = true`` would be one agent)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        bad = [
            k
            for k, v in data.items()
            if isinstance(v, bool)
            and k in cls.model_fields
            and _numeric(cls.model_fields[k].annotation)
        ]
        if not bad:
            return data
        # As text, the field's own validation refuses it, under its own name: "expected an
        # integer, got 'true'".
        return {**data, **{k: str(data[k]).lower() for k in bad}}


@functools.cache
def _numeric(annotation: Any) -> bool:
    """Whether ``annotation`` admits int or float (None aside) and nothing else."""
    args = _members(annotation) - {type(None)}
    return bool(args) and args <= {int, float}


def _members(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return set().union(*(_members(a) for a in typing.get_args(annotation)))
    return {annotation}
