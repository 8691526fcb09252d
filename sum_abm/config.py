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


class _Quoted:
    """A string given for a number (``count = "4"``): no number, so the field's own validation
    refuses it under its own name, saying why ("expected an integer, got "4" (in quotes: text)")."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f'"{self.text}" (in quotes: text)'


class _NotBool:
    """Text or a number given for a true/false field (``report = "off"``, ``refund = 0``): no
    boolean, so the field's own validation refuses it ("expected true or false, got 'off'");
    pydantic would read it as one."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors, values are validated on assignment,
    ``inf`` and ``nan`` are no values, ``true``/``false`` is no number (pydantic reads it as 1
    or 0: ``count = true`` would be one agent), neither is a quoted number (pydantic reads
    ``"4"`` as 4: a typo'd file would run), and only ``true``/``false`` is a boolean (pydantic
    reads ``"off"`` or ``0`` as false)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        not_bool = {
            k: _NotBool(v)
            for k, v in data.items()
            if not isinstance(v, bool)
            and v is not None
            and k in cls.model_fields
            and _boolean(cls.model_fields[k].annotation)
        }
        if not_bool:
            data = {**data, **not_bool}
        bad = [
            k
            for k, v in data.items()
            if isinstance(v, (bool, str))
            and k in cls.model_fields
            and _numeric(cls.model_fields[k].annotation)
        ]
        if not bad:
            return data
        # As text, the field's own validation refuses a bool under its own name: "expected an
        # integer, got 'true'"; a string, as no number at all.
        return {
            **data,
            **{
                k: str(data[k]).lower() if isinstance(data[k], bool) else _Quoted(data[k])
                for k in bad
            },
        }


@functools.cache
def _numeric(annotation: Any) -> bool:
    """Whether ``annotation`` admits int or float (None aside) and nothing else."""
    args = _members(annotation) - {type(None)}
    return bool(args) and args <= {int, float}


@functools.cache
def _boolean(annotation: Any) -> bool:
    """Whether ``annotation`` admits a bool (None aside) and nothing else."""
    args = _members(annotation) - {type(None)}
    return args == {bool}


def _members(annotation: Any) -> set[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        return set().union(*(_members(a) for a in typing.get_args(annotation)))
    return {annotation}
