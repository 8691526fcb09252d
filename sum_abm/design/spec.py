"""Design files: the designer's parameters, the attacker's strategies, objectives and constraints.

A design file (TOML, unknown keys rejected, every error one line naming the file and the field)::

    base = "../quickstart.toml"          # the base scenario, relative to the design file
    seed = 7                              # root of the common random numbers and of the search
    replications = 4                      # seeds per (setting, strategy): the same for every one
    budget = 24                           # candidate settings at most (a smaller grid runs whole)
    [parameters]                          # the designer's knobs: dotted scenario paths
    "mechanism.cost_weight" = { values = [1, 10, 50] }
    "mechanism.refund_time_s" = { low = 3600, high = 259200, type = "int", log = true }
    [attacker]
    group = "attacker"                    # the base scenario's group the attacker plays (or groups = [...])
    strategies = [ { name = "label_flip", policy = "label_flip" },
                   { name = "free_rider", policy = "free_rider" } ]
    constrained = ["label_flip"]          # the strategies the constraint covers (default: all)
    [[objectives]]
    metric = "honest_roi"                 # evaluated under the attacker's best response
    direction = "maximize"
    [[constraints]]
    metric = "attacker_roi"               # every constrained strategy's ROI ...
    max = 0.0                             # ... below 0 ...
    confidence = 0.95                     # ... with 95 % confidence (one-sided t bound)
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from sum_abm.bundled import resolve_base
from sum_abm.config import StrictModel
from sum_abm.errors import InputError
from sum_abm.game.empirical import EmpiricalGame, GameSpec, RoleSpec, StrategySpec
from sum_abm.scenario import Scenario, load_scenario, read_toml, split_path, validate_file_model

# Per-run measures (see :func:`sum_abm.design.evaluate.run_metrics`): ROI is profit / start balance
# of a side's groups (a ratio), profit and fees in token units, accuracies in [0, 1], pool_used the
# share of the honest data pool contributed (a market nobody can use is safe and useless).
METRICS = (
    "attacker_roi",
    "honest_roi",
    "honest_profit",
    "honest_fees",
    "fees_total",
    "accuracy_final",
    "accuracy_min",
    "accuracy_time_weighted",
    "pool_used",
)
MAX_GRID = 100_000  # a finite grid larger than this is searched, never listed


class _Strict(StrictModel):
    """Unknown keys are errors; true/false is no number (:class:`sum_abm.config.StrictModel`)."""


class ParameterSpec(_Strict):
    """One designer knob: a list of ``values`` or a range ``low``..``high`` (``type`` int or real,
    optionally ``log``-scaled; ``step`` for an evenly spaced integer range)."""

    values: list[Any] | None = Field(None, min_length=1)
    low: int | float | None = None
    high: int | float | None = None
    type: Literal["int", "real"] | None = None
    log: bool = False
    step: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _shape(self) -> ParameterSpec:
        if self.values is not None:
            if self.low is not None or self.high is not None or self.type or self.log or self.step:
                raise ValueError("expected either 'values' or a range (low, high), not both")
            for v in self.values:
                if not isinstance(v, (str, int, float, bool)):
                    raise ValueError(f"values: expected strings, numbers or booleans, got {v!r}")
            if len({repr(v) for v in self.values}) != len(self.values):
                raise ValueError(f"values: expected distinct values, got {self.values}")
            return self
        if self.low is None or self.high is None:
            raise ValueError("expected 'values' = [...] or a range with both 'low' and 'high'")
        if self.high < self.low:
            raise ValueError(f"expected low <= high, got low={self.low}, high={self.high}")
        if self.type is None:
            whole = float(self.low).is_integer() and float(self.high).is_integer()
            self.type = "int" if whole and not isinstance(self.low, float) else "real"
        if self.type == "int" and not (
            float(self.low).is_integer() and float(self.high).is_integer()
        ):
            raise ValueError(f"type int needs whole-number bounds, got {self.low}..{self.high}")
        if self.log and self.low <= 0:
            raise ValueError("log needs low > 0")
        if self.step is not None and (self.type != "int" or self.log):
            raise ValueError("step applies to a linear integer range only")
        return self

    def grid(self) -> list[Any] | None:
        """Every value when the parameter is finite (a list or an integer range), else None."""
        if self.values is not None:
            return list(self.values)
        if self.type == "int":
            return list(range(int(self.low), int(self.high) + 1, self.step or 1))
        return None


class AttackerSpec(_Strict):
    """The attacker: the base scenario's group it plays and its strategy set (a game role's shape)."""

    group: str | None = Field(None, description="the base scenario's agent group it plays")
    groups: list[str] | None = Field(
        None, min_length=1, description="several groups played as one attacker"
    )
    strategies: list[StrategySpec] = Field(min_length=1)
    constrained: list[str] | None = Field(
        None, description="the strategies the attacker constraints cover (default: all)"
    )

    @model_validator(mode="after")
    def _names(self) -> AttackerSpec:
        if (self.group is None) == (self.groups is None):
            raise ValueError(
                'expected the group the attacker plays: group = "name" or groups = [...]'
            )
        names = [s.name for s in self.strategies]
        if len(set(names)) != len(names):
            raise ValueError(f"strategies: expected unique names, got {names}")
        for s in self.strategies:
            if s.policy is None or s.set:
                raise ValueError(f"strategies.{s.name}: expected a policy (and params), not 'set'")
        if self.constrained is not None:
            unknown = [c for c in self.constrained if c not in names]
            if unknown or not self.constrained:
                raise ValueError(
                    f"constrained: expected a non-empty list of strategy names among {names}, "
                    f"got {self.constrained}"
                )
        return self

    @property
    def group_names(self) -> list[str]:
        return list(self.groups) if self.groups is not None else [str(self.group)]

    @property
    def constrained_names(self) -> list[str]:
        names = [s.name for s in self.strategies]
        return [n for n in names if self.constrained is None or n in self.constrained]


class ObjectiveSpec(_Strict):
    """A quantity to optimise, measured under the attacker's best response (mean over seeds)."""

    metric: Literal[METRICS]  # type: ignore[valid-type]
    direction: Literal["maximize", "minimize"]


class ConstraintSpec(_Strict):
    """``metric`` kept at most ``max`` or at least ``min``. With ``confidence`` the one-sided t bound
    of the mean must hold (the upper bound below ``max``, the lower above ``min``), else the mean.
    ``attacker_roi`` applies to every constrained strategy; other metrics to the best response."""

    metric: Literal[METRICS]  # type: ignore[valid-type]
    max: float | None = None
    min: float | None = None
    confidence: float | None = Field(None, gt=0.5, lt=1)

    @model_validator(mode="after")
    def _bound(self) -> ConstraintSpec:
        if (self.max is None) == (self.min is None):
            raise ValueError("expected exactly one of 'max' or 'min'")
        return self

    @property
    def label(self) -> str:
        op = f"<= {self.max:g}" if self.max is not None else f">= {self.min:g}"
        conf = f" ({self.confidence:.0%} confidence)" if self.confidence else ""
        return f"{self.metric} {op}{conf}"


class DesignSpec(_Strict):
    """The validated content of a design file (see the module docstring)."""

    base: str = Field(description="the base scenario file, relative to the design file")
    name: str = "design"
    description: str = ""
    seed: int = Field(0, ge=0)
    replications: int = Field(3, ge=2, le=1000, description="at least 2: an interval needs two")
    budget: int = Field(32, ge=1, le=100_000, description="candidate settings at most")
    batch: int = Field(4, ge=1, le=1000, description="search: candidates evaluated together")
    set: dict[str, Any] = Field(
        default_factory=dict, description="changes to the base scenario for every candidate"
    )
    parameters: dict[str, ParameterSpec] = Field(min_length=1)
    attacker: AttackerSpec
    honest: list[str] | None = Field(
        None, description="the honest groups (default: every non-attacker group but the attacker's)"
    )
    objectives: list[ObjectiveSpec] = Field(min_length=1)
    constraints: list[ConstraintSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _distinct(self) -> DesignSpec:
        keys = [".".join(split_path(k)) for k in self.parameters]
        if len(set(keys)) != len(keys):
            raise ValueError(f"parameters: a path is given twice: {list(self.parameters)}")
        for k in self.parameters:
            if split_path(k) in (["seed"], ["agents"]) or split_path(k)[:1] == ["agents"]:
                raise ValueError(
                    f"parameters.{k}: the designer sets the mechanism and the market, not the "
                    f"seed or the agents (the attacker's choices are its strategies)"
                )
        if len({(o.metric) for o in self.objectives}) != len(self.objectives):
            raise ValueError("objectives: each metric at most once")
        return self


@dataclass
class Design:
    """A loaded design file: its spec, the base scenario (``set`` applied), the attacker's game role
    (strategy overrides), the honest groups and where it came from."""

    spec: DesignSpec
    base: Scenario
    base_path: Path
    game: EmpiricalGame
    honest: list[str]
    source: str
    text: str

    @property
    def attacker_groups(self) -> list[str]:
        return self.spec.attacker.group_names

    @property
    def strategies(self) -> list[str]:
        return [s.name for s in self.spec.attacker.strategies]

    def strategy_overrides(self, name: str) -> dict[str, Any]:
        """Dotted overrides that make the attacker group play strategy ``name`` (its size, balance
        and timing kept): accepted as they are by ``Scenario.with_overrides`` and ``--set``."""
        s = next(s for s in self.spec.attacker.strategies if s.name == name)
        return self.game.overrides_for({"attacker": s})

    def grid(self) -> list[dict[str, Any]] | None:
        """Every candidate setting when the parameters are finite and at most ``budget`` many."""
        lists = [p.grid() for p in self.spec.parameters.values()]
        if any(v is None for v in lists):
            return None
        if math.prod(len(v) for v in lists) > min(self.spec.budget, MAX_GRID):
            return None
        keys = list(self.spec.parameters)
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*lists)]


def load_design(path: str | Path) -> Design:
    """Read and validate a design file (one-line InputError naming the file and the field)."""
    p = Path(path)
    data = read_toml(p)
    src = str(p)
    spec = validate_file_model(DesignSpec, data, src)
    base_path = resolve_base(spec.base, p, "design")
    base = load_scenario(base_path)
    if spec.set:
        try:
            base = base.with_overrides(spec.set, source=src)
        except InputError as exc:
            raise InputError(f"{src}: set: {str(exc).removeprefix(f'{src}: ')}") from None
    groups = {g.name: g for g in base.agents}
    attackers = spec.attacker.group_names
    for g in attackers:
        if g not in groups:
            field = "group" if spec.attacker.group is not None else "groups"
            raise InputError(
                f"{src}: attacker.{field}: no agent group {g!r} in the base scenario "
                f"(have {sorted(groups)})"
            )
    honest = spec.honest
    if honest is None:
        honest = [g.name for g in base.agents if g.name not in attackers and not g.is_attacker]
    for g in honest:
        if g not in groups or g in attackers:
            raise InputError(
                f"{src}: honest: expected groups of the base scenario other than the attacker's "
                f"(have {sorted(groups)}), got {g!r}"
            )
    if not honest:
        raise InputError(f"{src}: honest: the base scenario has no honest group to protect")
    role = RoleSpec(
        name="attacker",
        group=spec.attacker.group,
        groups=spec.attacker.groups,
        strategies=spec.attacker.strategies,
    )
    try:
        game = EmpiricalGame(GameSpec(base=spec.base, roles=[role]), base, src)
    except InputError as exc:
        raise InputError(str(exc).replace("roles.attacker.", "attacker.")) from None
    for key, par in spec.parameters.items():  # every value (or range end) must make a scenario
        for v in par.values if par.values is not None else _ends(par):
            try:
                base.with_overrides({key: v}, source=src)
            except InputError as exc:
                rest = str(exc).removeprefix(f"{src}: ").removeprefix(f"{key}: ")
                if par.type == "real" and "integer" in rest:
                    rest += ' (a real range gives fractions: use type = "int")'
                raise InputError(f"{src}: parameters.{key}: {rest}") from None
    return Design(spec, base, base_path, game, honest, src, p.read_text())


def _ends(par: ParameterSpec) -> list[Any]:
    """The range's ends, and for a real range a value between that is no whole number (an
    integer field given a real range fails here, not in the middle of the search)."""
    if par.type == "int":
        return [int(par.low), int(par.high)]
    inside = float(par.low) + 0.377 * (float(par.high) - float(par.low))
    return [float(par.low), float(par.high)] + ([inside] if par.high > par.low else [])
