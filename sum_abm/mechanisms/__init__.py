"""Incentive mechanisms as plugins: a registry from ``kind`` to the mechanism.

Adding a mechanism: one module here (its config, semantics, adapter, summary extras and report
panels) and one line in ``MECHANISMS``; the mechanism battery (``tests/test_mechanism_battery.py``)
runs over every registered mechanism.

Out of the tree, an installed distribution registers one under the entry-point group
:data:`ENTRY_POINTS` (in its ``pyproject.toml``: ``[project.entry-points."sum_abm.mechanisms"]``
``flat_drt = "my_pkg.flat:FlatMechanism"``, the name being the mechanism's ``kind``). It is loaded
with this registry, so in every process that reads scenarios (each command, each Ray worker), and
checked first; one that fails a check is left out with a one-line warning, the rest of the
program unharmed.
"""

from __future__ import annotations

import functools
import operator
import sys
import typing
from importlib.metadata import entry_points
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

#: The entry-point group of out-of-tree mechanisms (see the module's docstring).
ENTRY_POINTS = "sum_abm.mechanisms"


def plugin_problem(name: str, obj: Any) -> str | None:
    """Why the object an entry point ``name`` loaded cannot be registered, or None: it must be a
    :class:`MechanismBase` subclass whose ``kind`` is ``name`` (not a registered one) and whose
    config declares ``kind`` as ``Literal[name]`` (the scenario's union tells mechanisms apart by
    it), with its summary columns declared in :mod:`sum_abm.schema` (else every run of it would
    fail when its results are written)."""
    from sum_abm.schema import FRAMES

    if not (isinstance(obj, type) and issubclass(obj, MechanismBase)):
        return f"{obj!r} is not a subclass of sum_abm.mechanisms.MechanismBase"
    if getattr(obj, "kind", None) != name:
        return f"its kind {getattr(obj, 'kind', None)!r} is not the entry point's name {name!r}"
    if name in MECHANISMS:
        return f"kind {name!r} is registered already ({MECHANISMS[name].__module__})"
    field = getattr(obj, "Config", None)
    field = field.model_fields.get("kind") if isinstance(field, type) else None
    if field is None or typing.get_args(field.annotation) != (name,):
        return f"its Config must declare kind: Literal[{name!r}]"
    undeclared = [c for c in obj.Adapter.summary_columns if c not in FRAMES["summary"]]
    if undeclared:
        return f"summary columns {undeclared} are not declared in sum_abm.schema"
    return None


def _load_plugins() -> None:
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            obj = ep.load()
        except Exception as exc:  # a broken plugin must not take every command down with it
            problem = f"cannot be imported ({type(exc).__name__}: {exc})"
        else:
            problem = plugin_problem(ep.name, obj)
        if problem:
            print(f"sum_abm: mechanism plugin {ep.name!r} ({ep.value}) left out: {problem}",
                  file=sys.stderr)  # fmt: skip
            continue
        MECHANISMS[ep.name] = obj


_load_plugins()


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
