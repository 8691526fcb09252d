"""Empirical games over the market: game files, the payoff table from simulated profiles, and the
attack-profitability frontier.

A game file names a base scenario (path relative to the game file) and its roles. An agents role
controls one or more agent groups of the scenario (its population: their agents) and has a strategy
set (policies with parameters); a designer role chooses scenario settings and is paid the model's
accuracy. The first strategy of every role makes the reference profile ("all honest", the default
design). Payoffs are the mean profit (token units) or ROI per agent of the role's groups, or the
designer's accuracy, estimated over ``replications`` seeds with standard errors. Unknown keys are
rejected; every error is one line naming the file, the field and what was expected.

.. code-block:: toml

    base = "../attack_label_flip.toml"
    replications = 3
    payoff = "profit"            # or "roi": the agent roles' payoff
    set = { "learner.kind" = "multinomial_nb" }   # changes to the base for every profile
    [[roles]]
    name = "contributors"
    group = "honest"             # or groups = ["honest", "careless"]
    strategies = [ { name = "honest", policy = "honest" },
                   { name = "careless", policy = "careless", params = { mistake_prob = 0.3 } } ]
    [[roles]]
    name = "designer"
    kind = "designer"
    payoff = "accuracy_final"
    strategies = [ { name = "w1", set = { "mechanism.cost_weight" = 1 } },
                   { name = "w50", set = { "mechanism.cost_weight" = 50 } } ]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import Field, field_validator, model_validator

from sum_abm import schema
from sum_abm.bundled import resolve_base
from sum_abm.config import StrictModel
from sum_abm.errors import InputError
from sum_abm.game.search import neighbourhood
from sum_abm.game.tables import Game
from sum_abm.scenario import Scenario, load_scenario, read_toml, validate_file_model


class _Strict(StrictModel):
    """Unknown keys are errors; true/false is no number (:class:`sum_abm.config.StrictModel`)."""


AGENT_PAYOFFS = ("profit", "roi")
DESIGNER_PAYOFFS = ("accuracy_final", "accuracy_time_weighted", "accuracy_min")


def _check_name(v: str) -> str:
    # names end up in profile labels "role=strategy | role=strategy" and sub-group names
    if not v or any(c in v for c in "=|,") or v != v.strip():
        raise ValueError(
            f"expected a non-empty name without '=', '|', ',' or surrounding spaces, got {v!r}"
        )
    return v


class StrategySpec(_Strict):
    """One strategy of a role: a policy with parameters (agent roles), or scenario settings given by
    dotted paths (designer roles), e.g. ``set = { "mechanism.cost_weight" = 500 }``."""

    name: str
    policy: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    set: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v)


class RoleSpec(_Strict):
    """A player of the game. ``kind = "agents"``: it controls one or more agent groups of the base
    scenario (its population: their agents), each strategy a policy they all play; its payoff is
    profit or ROI per agent. ``kind = "designer"``: it chooses the mechanism (scenario settings) and
    is paid the model's accuracy."""

    name: str
    kind: Literal["agents", "designer"] = "agents"
    group: str | None = Field(
        None, description="the base scenario's agent group this role controls"
    )
    groups: list[str] | None = Field(
        None, min_length=1, description="several groups played as one role"
    )
    strategies: list[StrategySpec] = Field(min_length=1)
    symmetric: bool = Field(
        False, description="the group's agents choose individually: a game over strategy counts"
    )
    payoff: (
        Literal["profit", "roi", "accuracy_final", "accuracy_time_weighted", "accuracy_min"] | None
    ) = Field(
        None, description="default: the game's payoff (agent roles) or accuracy_final (designer)"
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _check_name(v)

    @model_validator(mode="after")
    def _consistent(self) -> RoleSpec:
        names = [s.name for s in self.strategies]
        if len(set(names)) != len(names):
            raise ValueError(f"strategies: expected unique names, got {names}")
        if self.kind == "designer":
            if self.group is not None or self.groups is not None:
                raise ValueError(
                    "group: a designer role controls no agent group (its strategies set scenario fields)"
                )
            if self.symmetric:
                raise ValueError("symmetric: a designer role is one player")
            if self.payoff is not None and self.payoff not in DESIGNER_PAYOFFS:
                raise ValueError(
                    f"payoff: expected one of {DESIGNER_PAYOFFS} for a designer role, got {self.payoff!r}"
                )
            for s in self.strategies:
                if s.policy is not None or s.params or not s.set:
                    raise ValueError(
                        f"strategies.{s.name}: a designer strategy gives 'set' (dotted scenario paths), "
                        f"not policy/params"
                    )
            return self
        if (self.group is None) == (self.groups is None):
            raise ValueError(
                'group: expected the agent group this role controls: group = "name" or groups = [...]'
            )
        if self.payoff is not None and self.payoff not in AGENT_PAYOFFS:
            raise ValueError(
                f"payoff: expected one of {AGENT_PAYOFFS} for an agents role "
                f"(accuracy payoffs belong to a designer role), got {self.payoff!r}"
            )
        if self.symmetric and len(self.group_names) != 1:
            raise ValueError("symmetric: a population role controls exactly one group")
        if len(set(self.group_names)) != len(self.group_names):
            raise ValueError(f"groups: expected distinct groups, got {self.group_names}")
        for s in self.strategies:
            if s.policy is None or s.set:
                raise ValueError(
                    f"strategies.{s.name}: an agents strategy gives a policy (and params), not 'set'"
                )
        return self

    @property
    def group_names(self) -> list[str]:
        """The agent groups this role controls (none for a designer)."""
        if self.groups is not None:
            return list(self.groups)
        return [self.group] if self.group is not None else []


class GameSpec(_Strict):
    base: str = Field(description="the base scenario file, relative to the game file")
    name: str = "game"
    description: str = ""
    seed: int = Field(0, ge=0)
    replications: int = Field(3, ge=1, le=1000)
    payoff: Literal["profit", "roi"] = Field(
        "profit", description="the agent roles' payoff (per agent)"
    )
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="changes to the base scenario for every profile (dotted paths)",
    )
    roles: list[RoleSpec] = Field(min_length=1)
    max_profiles: int = Field(
        256, ge=1, description="beyond this many profiles, deviations are sampled"
    )

    @model_validator(mode="after")
    def _unique(self) -> GameSpec:
        names = [r.name for r in self.roles]
        if len(set(names)) != len(names):
            raise ValueError(f"roles: expected unique role names, got {names}")
        groups = [g for r in self.roles for g in r.group_names]
        dup = sorted({g for g in groups if groups.count(g) > 1})
        if dup:
            raise ValueError(f"roles: each agent group belongs to one role, got {dup} in several")
        if sum(r.kind == "designer" for r in self.roles) > 1:
            raise ValueError("roles: expected at most one designer role")
        return self

    def role_payoff(self, role: RoleSpec) -> str:
        """The payoff column a role is paid by (token units for profit, a ratio for ROI and accuracy)."""
        if role.payoff is not None:
            return role.payoff
        return "accuracy_final" if role.kind == "designer" else self.payoff

    @property
    def attacker_role(self) -> RoleSpec:
        """The role whose non-reference strategies are the attacks (the frontier's): the last agents role."""
        return [r for r in self.roles if r.kind == "agents"][-1]


class EmpiricalGame:
    """A loaded game file: spec, base scenario, and the overrides of every profile."""

    def __init__(self, spec: GameSpec, base: Scenario, source: str) -> None:
        self.spec, self.base, self.source = spec, base, source
        groups = {g.name: g for g in base.agents}
        for r in spec.roles:
            for g in r.group_names:
                if g not in groups:
                    raise InputError(
                        f"{source}: roles.{r.name}.group: no agent group {g!r} in the base scenario "
                        f"(have {sorted(groups)})"
                    )
        if not any(r.kind == "agents" for r in spec.roles):
            raise InputError(
                f"{source}: roles: expected at least one agents role (a role with group = ...)"
            )
        self.groups = groups
        for r in spec.roles:  # every strategy must make a valid scenario
            for s in r.strategies:
                try:
                    self.overrides_for({r.name: s})
                except InputError as exc:
                    rest = str(exc).removeprefix(f"{source}: ").split(" (strategy ")[0]
                    raise InputError(
                        f"{source}: roles.{r.name}.strategies.{s.name}: {rest}"
                    ) from None

    @property
    def roles(self) -> list[str]:
        return [r.name for r in self.spec.roles]

    def strategy_names(self) -> list[list[str]]:
        return [[s.name for s in r.strategies] for r in self.spec.roles]

    def population(self, role: RoleSpec) -> int:
        """How many agents a role controls (0 for a designer)."""
        return sum(self.groups[g].count for g in role.group_names)

    def group_override(self, group: str, s: StrategySpec, **extra: Any) -> dict[str, Any]:
        """The group config that makes ``group`` play ``s`` (its size, balance and timing kept)."""
        g = self.groups[group]
        keep = {
            "name": g.name,
            "count": g.count,
            "start_balance": g.start_balance,
            "mean_wait_s": g.mean_wait_s,
            "stdev_wait_s": g.stdev_wait_s,
            "attacker": g.is_attacker,
        }
        return {**keep, "policy": s.policy, **s.params, **extra}

    def overrides_for(self, choice: dict[str, StrategySpec]) -> dict[str, Any]:
        """Scenario overrides that give each role's groups its chosen strategy (each group replaced),
        and apply a designer's settings."""
        out: dict[str, Any] = {}
        for r in self.spec.roles:
            s = choice.get(r.name)
            if s is None:
                continue
            if r.kind == "designer":
                out.update(s.set)
            for g in r.group_names:
                out[f"agents.{g}"] = self.group_override(g, s)
        try:
            self.base.with_overrides(out, source=self.source)
        except InputError as exc:
            raise InputError(
                f"{exc} (strategy {', '.join(f'{k}={v.name}' for k, v in choice.items())})"
            ) from None
        return out

    def profile_overrides(self, profile: tuple[int, ...]) -> dict[str, Any]:
        return self.overrides_for(
            {r.name: r.strategies[i] for r, i in zip(self.spec.roles, profile, strict=False)}
        )


def load_game(path: str | Path) -> EmpiricalGame:
    """Read and validate a game file (one-line InputError naming the file and the field)."""
    p = Path(path)
    data = read_toml(p)
    spec = validate_file_model(GameSpec, data, str(p))
    base_path = resolve_base(spec.base, p, "game")
    base = load_scenario(base_path)
    if spec.set:
        try:
            base = base.with_overrides(spec.set, source=str(p))
        except InputError as exc:
            raise InputError(f"{p}: set: {str(exc).removeprefix(f'{p}: ')}") from None
    return EmpiricalGame(spec, base, str(p))


def run_payoffs(
    game: EmpiricalGame,
    agents: pl.DataFrame,
    runs: pl.DataFrame | None,
    groups_of: dict[str, tuple[list[str], str]] | None = None,
) -> dict[tuple[str, str], float]:
    """``{(run_id, key): payoff}``: for every agents role (or every key of ``groups_of``: key ->
    (groups, payoff column)), the mean profit or ROI per agent over its groups in each run; for a
    designer role, the accuracy read from the run's summary row (``runs``)."""
    if groups_of is None:
        groups_of = {
            r.name: (r.group_names, game.spec.role_payoff(r))
            for r in game.spec.roles
            if r.kind == "agents"
        }
    out: dict[tuple[str, str], float] = {}
    for key, (groups, col) in groups_of.items():
        per_run = (
            agents.filter(pl.col("group").is_in(groups))
            .group_by("run_id")
            .agg(pl.col(col).cast(pl.Float64).mean().alias("u"))
        )
        for rid, u in per_run.iter_rows():
            out[(rid, key)] = float(u)
    for r in game.spec.roles:
        if r.kind == "designer" and runs is not None and not runs.is_empty():
            for rid, u in runs.select("run_id", game.spec.role_payoff(r)).iter_rows():
                out[(rid, r.name)] = float(u)
    return out


def mean_stderr(vals: list[float]) -> tuple[float, float, int]:
    """(mean, standard error of the mean, n); the standard error is 0 with fewer than 2 values."""
    n = len(vals)
    if not n:
        return float("nan"), 0.0, 0
    mean = float(np.mean(vals))
    return mean, (float(np.std(vals, ddof=1) / np.sqrt(n)) if n > 1 else 0.0), n


def payoff_table(
    game: EmpiricalGame,
    profiles: list[tuple[int, ...]],
    agents: pl.DataFrame,
    run_profile: dict[str, tuple[int, ...]],
    runs: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The payoff table (profile, profile_index, role, strategy, mean, stderr, n): each role's
    payoff averaged over the replications of each profile (``run_profile`` maps run ids to
    profiles; ``runs`` holds the summary rows a designer's accuracy payoff is read from)."""
    per = run_payoffs(game, agents, runs)
    acc: dict[tuple[tuple[int, ...], str], list[float]] = {}
    for (rid, key), u in per.items():
        if rid in run_profile:
            acc.setdefault((run_profile[rid], key), []).append(u)
    rows = []
    for prof in profiles:
        for i, r in enumerate(game.spec.roles):
            mean, se, n = mean_stderr(acc.get((prof, r.name), []))
            rows.append(
                {
                    "profile": _label(game, prof),
                    "profile_index": list(prof),
                    "role": r.name,
                    "strategy": r.strategies[prof[i]].name,
                    "mean": mean,
                    "stderr": se,
                    "n": n,
                    "payoff": game.spec.role_payoff(r),
                }
            )
    return schema.frame("game_payoffs", rows)


def _label(game: EmpiricalGame, prof: tuple[int, ...]) -> str:
    return " | ".join(
        f"{r.name}={r.strategies[i].name}" for r, i in zip(game.spec.roles, prof, strict=False)
    )


def to_game(game: EmpiricalGame, table: pl.DataFrame) -> Game:
    """Payoff arrays for the solvers (missing profiles, never run, are NaN)."""
    return Game.from_table(table, game.roles, game.strategy_names())


def profiles_to_run(game: EmpiricalGame) -> tuple[list[tuple[int, ...]], bool]:
    """All profiles when the table has at most ``max_profiles``; otherwise the reference profile and
    every unilateral deviation from it, the start of the sampled search (see
    :func:`sum_abm.game.runner.run_game`). Returns (profiles, sampled)."""
    import itertools

    shape = [len(r.strategies) for r in game.spec.roles]
    total, cap = math.prod(shape), game.spec.max_profiles
    if total <= cap:
        return list(itertools.product(*(range(k) for k in shape))), False
    start = neighbourhood(shape, tuple(0 for _ in shape))
    if len(start) > cap:  # max_profiles is a cap on the runs: the sampled search starts above it
        raise InputError(
            f"{game.source}: max_profiles: the table has {total} profiles, so deviations are "
            f"sampled, starting from the reference profile and its {len(start) - 1} unilateral "
            f"deviations: expected max_profiles >= {len(start)}, got {cap}"
        )
    return start, True


def frontier_point(
    game: EmpiricalGame,
    param: str,
    value: Any,
    out: Path,
    *,
    address: str | None = None,
    resume: bool = True,
) -> tuple[float, float, str]:
    """The best attack's ROI at ``param = value``: every non-reference strategy of the attacker role
    (the last agents role) against the reference strategies of the others, ``replications`` runs
    each. Returns (mean ROI per attacking agent, its standard error, the best attack's name)."""
    from sum_abm.sweeps import load_agents, run_many
    from sum_abm.sweeps.spec import run_id

    attacker = game.spec.attacker_role
    ref = {r.name: r.strategies[0] for r in game.spec.roles if r is not attacker}
    points = []
    names = []
    for s in attacker.strategies[1:] or attacker.strategies:
        ov = game.overrides_for({**ref, attacker.name: s})
        ov[param] = value
        points.append(ov)
        names.append(s.name)
    run_many(
        game.base,
        points,
        out,
        replications=game.spec.replications,
        root_seed=game.spec.seed,
        address=address,
        resume=resume,
        baseline=False,
        source=game.source,
    )
    ag = load_agents(out).collect().filter(pl.col("group").is_in(attacker.group_names))
    best = (-float("inf"), 0.0, "")
    for ov, name in zip(points, names, strict=False):
        ids = [run_id(ov, rep) for rep in range(game.spec.replications)]
        vals = (
            ag.filter(pl.col("run_id").is_in(ids))
            .group_by("run_id")
            .agg(pl.col("roi").cast(pl.Float64).mean())["roi"]
            .to_list()
        )
        m, se, n = mean_stderr(vals)
        if n and m > best[0]:
            best = (m, se, name)
    return best
