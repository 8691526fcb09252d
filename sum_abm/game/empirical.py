"""Empirical games over the market: game files, the payoff table from simulated profiles, and the
attack-profitability frontier.

A game file names a base scenario and its roles. Each role controls one agent group of the scenario
(its population is that group's ``count``) and has a strategy set (policies with parameters); the
first strategy of every role is the reference profile ("all honest"). Payoffs are the mean profit
(or ROI) per agent of the role's group, estimated over ``replications`` seeds with standard errors.

.. code-block:: toml

    base = "../attack_label_flip.toml"
    replications = 3
    payoff = "profit"            # or "roi"
    [[roles]]
    name = "contributors"
    group = "honest"
    strategies = [ { name = "honest", policy = "honest" },
                   { name = "careless", policy = "careless", params = { mistake_prob = 0.3 } } ]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sum_abm.errors import InputError
from sum_abm.game.solvers import Game
from sum_abm.scenario import Scenario, load_scenario, read_toml, validate_file_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrategySpec(_Strict):
    name: str
    policy: str
    params: dict[str, Any] = Field(default_factory=dict)


class RoleSpec(_Strict):
    name: str
    group: str = Field(description="the base scenario's agent group this role controls")
    strategies: list[StrategySpec] = Field(min_length=1)
    symmetric: bool = Field(False, description="the group's agents choose individually: a game over strategy counts")


class GameSpec(_Strict):
    base: str
    name: str = "game"
    description: str = ""
    seed: int = Field(0, ge=0)
    replications: int = Field(3, ge=1, le=1000)
    payoff: Literal["profit", "roi"] = "profit"
    roles: list[RoleSpec] = Field(min_length=1)
    max_profiles: int = Field(256, ge=1, description="beyond this many profiles, deviations are sampled")

    @model_validator(mode="after")
    def _unique(self) -> "GameSpec":
        names = [r.name for r in self.roles]
        if len(set(names)) != len(names):
            raise ValueError("roles: names must be unique")
        if len({r.group for r in self.roles}) != len(self.roles):
            raise ValueError("roles: each role must control a different group")
        return self


class EmpiricalGame:
    """A loaded game file: spec, base scenario, and the overrides of every profile."""

    def __init__(self, spec: GameSpec, base: Scenario, source: str) -> None:
        self.spec, self.base, self.source = spec, base, source
        groups = {g.name: g for g in base.agents}
        for r in spec.roles:
            if r.group not in groups:
                raise InputError(f"{source}: roles.{r.name}.group: no agent group {r.group!r} in the base scenario "
                                 f"(have {sorted(groups)})")
        self.groups = groups
        for r in spec.roles:  # every strategy must make a valid scenario
            for s in r.strategies:
                self.overrides_for({r.name: s})

    @property
    def roles(self) -> list[str]:
        return [r.name for r in self.spec.roles]

    def strategy_names(self) -> list[list[str]]:
        return [[s.name for s in r.strategies] for r in self.spec.roles]

    def overrides_for(self, choice: dict[str, StrategySpec]) -> dict[str, Any]:
        """Scenario overrides that give each role's group its chosen strategy (the group is replaced)."""
        out: dict[str, Any] = {}
        for r in self.spec.roles:
            s = choice.get(r.name)
            if s is None:
                continue
            g = self.groups[r.group]
            keep = {"name": g.name, "count": g.count, "start_balance": g.start_balance, "mean_wait_s": g.mean_wait_s,
                    "stdev_wait_s": g.stdev_wait_s, "attacker": g.is_attacker}
            out[f"agents.{r.group}"] = {**keep, "policy": s.policy, **s.params}
        try:
            self.base.with_overrides(out, source=self.source)
        except InputError as exc:
            raise InputError(f"{exc} (strategy {', '.join(f'{k}={v.name}' for k, v in choice.items())})") from None
        return out

    def profile_overrides(self, profile: tuple[int, ...]) -> dict[str, Any]:
        return self.overrides_for({r.name: r.strategies[i] for r, i in zip(self.spec.roles, profile)})


def load_game(path: str | Path) -> EmpiricalGame:
    """Read and validate a game file (one-line InputError naming the file and the field)."""
    p = Path(path)
    data = read_toml(p)
    spec = validate_file_model(GameSpec, data, str(p))
    base_path = (p.parent / spec.base).resolve()
    if not base_path.is_file():
        raise InputError(f"{p}: base: no scenario file {spec.base!r} (relative to the game file)")
    return EmpiricalGame(spec, load_scenario(base_path), str(p))


def payoff_table(game: EmpiricalGame, profiles: list[tuple[int, ...]], agents: pl.DataFrame,
                 run_profile: dict[str, tuple[int, ...]]) -> pl.DataFrame:
    """(profile, role, strategy, mean, stderr, n) from the agents rows of the runs."""
    col = "profit" if game.spec.payoff == "profit" else "roi"
    per_run = agents.group_by("run_id", "group").agg(pl.col(col).mean().alias("u"))
    rows = []
    role_groups = {r.group: (i, r) for i, r in enumerate(game.spec.roles)}
    acc: dict[tuple[tuple[int, ...], int], list[float]] = {}
    for rid, grp, u in per_run.iter_rows():
        if grp in role_groups and rid in run_profile:
            acc.setdefault((run_profile[rid], role_groups[grp][0]), []).append(float(u))
    for prof in profiles:
        for i, r in enumerate(game.spec.roles):
            vals = acc.get((prof, i), [])
            n = len(vals)
            mean = float(np.mean(vals)) if n else float("nan")
            se = float(np.std(vals, ddof=1) / np.sqrt(n)) if n > 1 else 0.0
            rows.append({"profile": _label(game, prof), "profile_index": list(prof), "role": r.name,
                         "strategy": r.strategies[prof[i]].name, "mean": mean, "stderr": se, "n": n})
    return pl.DataFrame(rows)


def _label(game: EmpiricalGame, prof: tuple[int, ...]) -> str:
    return " | ".join(f"{r.name}={r.strategies[i].name}" for r, i in zip(game.spec.roles, prof))


def to_game(game: EmpiricalGame, table: pl.DataFrame) -> Game:
    """Payoff arrays for the solvers (missing profiles, never run, are NaN)."""
    shape = tuple(len(r.strategies) for r in game.spec.roles)
    means = [np.full(shape, np.nan) for _ in shape]
    ses = [np.zeros(shape) for _ in shape]
    idx = {r.name: i for i, r in enumerate(game.spec.roles)}
    for prof, role, mean, se in table.select("profile_index", "role", "mean", "stderr").iter_rows():
        means[idx[role]][tuple(prof)] = mean
        ses[idx[role]][tuple(prof)] = se
    return Game(game.roles, game.strategy_names(), means, ses)


def profiles_to_run(game: EmpiricalGame) -> tuple[list[tuple[int, ...]], bool]:
    """All profiles when the table is small enough; otherwise the reference profile and every
    unilateral deviation from it (sampling around the candidate equilibrium). Returns (profiles,
    sampled)."""
    import itertools

    shape = [len(r.strategies) for r in game.spec.roles]
    total = int(np.prod(shape))
    if total <= game.spec.max_profiles:
        return list(itertools.product(*(range(k) for k in shape))), False
    ref = tuple(0 for _ in shape)
    out = [ref]
    for r, k in enumerate(shape):
        for s in range(1, k):
            p = list(ref)
            p[r] = s
            out.append(tuple(p))
    return out, True


def frontier_point(game: EmpiricalGame, param: str, value: Any, out: Path, *, address: str | None = None,
                   resume: bool = True) -> tuple[float, float, str]:
    """The best attack's ROI at ``param = value``: every non-reference strategy of the last role (the
    attacker) against the reference strategies of the others; returns (mean ROI, stderr, strategy)."""
    from sum_abm.sweeps import run_many

    attacker = game.spec.roles[-1]
    ref = {r.name: r.strategies[0] for r in game.spec.roles[:-1]}
    points = []
    names = []
    for s in attacker.strategies[1:] or attacker.strategies:
        ov = game.overrides_for({**ref, attacker.name: s})
        ov[param] = value
        points.append(ov)
        names.append(s.name)
    runs = run_many(game.base, points, out, replications=game.spec.replications, root_seed=game.spec.seed,
                    address=address, resume=resume, baseline=False, source=game.source)
    from sum_abm.sweeps import load_agents
    from sum_abm.sweeps.spec import run_id

    ag = load_agents(out).collect().filter(pl.col("group") == attacker.group)
    best = (-float("inf"), 0.0, "")
    for ov, name in zip(points, names):
        ids = [run_id(ov, rep) for rep in range(game.spec.replications)]
        vals = ag.filter(pl.col("run_id").is_in(ids)).group_by("run_id").agg(pl.col("roi").mean())["roi"].to_numpy()
        if len(vals):
            m = float(vals.mean())
            se = float(vals.std(ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else 0.0
            if m > best[0]:
                best = (m, se, name)
    del runs
    return best


def write_json(path: Path, obj: Any) -> None:
    from sum_abm.market.results import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=1, default=str))
