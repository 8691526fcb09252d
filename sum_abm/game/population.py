"""Population games: a role with many players (``symmetric = true``) is a symmetric game over
strategy *counts*, not an enumeration of every player.

A profile gives each symmetric role a count vector (how many of its N agents play each strategy)
and every other role one strategy. The role's group is split into one sub-group per strategy played
(``<group>__<strategy>``), and the payoff of a strategy is the mean profit (or ROI) of the agents
playing it. A profile is an equilibrium when no single agent gains by switching: for a symmetric
role, an agent playing ``s`` compares ``u_s(c)`` with ``u_s'(c - e_s + e_s')``; for the others,
the role's payoff against the same profile with another strategy.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import polars as pl

from sum_abm import schema
from sum_abm.errors import InputError
from sum_abm.game.empirical import EmpiricalGame, mean_stderr, run_payoffs
from sum_abm.game.symmetric import SymmetricGame, compositions
from sum_abm.game.tables import half_width

Option = int | tuple[int, ...]  # a strategy index, or a count vector for a symmetric role


def role_options(game: EmpiricalGame) -> list[list[Option]]:
    """Each role's options: count vectors over its strategies (symmetric roles) or strategy indices."""
    opts: list[list[Option]] = []
    for r in game.spec.roles:
        k = len(r.strategies)
        opts.append(compositions(game.population(r), k) if r.symmetric else list(range(k)))
    return opts


def profiles(game: EmpiricalGame) -> list[tuple[Option, ...]]:
    """Every profile, the reference (everyone on the first strategy) first; refused beyond
    ``max_profiles`` (count tables grow fast)."""
    opts = role_options(game)
    total = math.prod(len(o) for o in opts)
    if total > game.spec.max_profiles:
        raise InputError(
            f"{game.source}: max_profiles: the population game has {total} profiles (max_profiles = "
            f"{game.spec.max_profiles}); use fewer strategies or smaller groups, or raise max_profiles"
        )
    return list(itertools.product(*opts))


def subgroup(group: str, strategy: str) -> str:
    """The name of the sub-group of ``group`` playing ``strategy`` in a population profile."""
    return f"{group}__{strategy}"


def overrides(game: EmpiricalGame, profile: tuple[Option, ...]) -> dict[str, Any]:
    """Scenario overrides for a profile: the whole ``agents`` list (symmetric roles split into one
    sub-group per strategy played) and a designer's settings."""
    by_group = {
        g: (r, opt) for r, opt in zip(game.spec.roles, profile, strict=False) for g in r.group_names
    }
    agents = []
    for g in game.base.agents:
        if g.name not in by_group:
            agents.append(g.model_dump(mode="json"))
            continue
        r, opt = by_group[g.name]
        if r.symmetric:
            for s, n in zip(r.strategies, opt, strict=False):
                if n:
                    agents.append(
                        game.group_override(g.name, s, name=subgroup(g.name, s.name), count=n)
                    )
        else:
            agents.append(game.group_override(g.name, r.strategies[opt]))
    ov: dict[str, Any] = {"agents": agents}
    for r, opt in zip(game.spec.roles, profile, strict=False):
        if r.kind == "designer":
            ov.update(r.strategies[opt].set)
    game.base.with_overrides(ov, source=game.source)
    return ov


def label(game: EmpiricalGame, profile: tuple[Option, ...]) -> str:
    parts = []
    for r, opt in zip(game.spec.roles, profile, strict=False):
        if r.symmetric:
            parts.append(
                f"{r.name}="
                + ",".join(f"{n} {s.name}" for s, n in zip(r.strategies, opt, strict=False) if n)
            )
        else:
            parts.append(f"{r.name}={r.strategies[opt].name}")
    return " | ".join(parts)


def _played(game: EmpiricalGame, r, opt: Option) -> list[tuple[Any, int, str]]:
    """(strategy, how many play it, payoff key) for every strategy a role plays in a profile."""
    if r.symmetric:
        return [(s, n, f"{r.name}/{s.name}") for s, n in zip(r.strategies, opt, strict=False) if n]
    return [(r.strategies[opt], game.population(r), r.name)]


def payoff_table(
    game: EmpiricalGame,
    profs: list[tuple[Option, ...]],
    agents: pl.DataFrame,
    run_profile: dict[str, int],
    runs: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """(profile, profile_id, role, strategy, count, mean, stderr, n, payoff): a symmetric role has a
    row per strategy played, its payoff the mean over the agents playing it."""
    keys: dict[str, tuple[list[str], str]] = {}
    for r in game.spec.roles:
        if r.kind != "agents":
            continue
        col = game.spec.role_payoff(r)
        if r.symmetric:
            for s in r.strategies:
                keys[f"{r.name}/{s.name}"] = ([subgroup(r.group_names[0], s.name)], col)
        else:
            keys[r.name] = (r.group_names, col)
    per = run_payoffs(game, agents, runs, keys)
    acc: dict[tuple[int, str], list[float]] = {}
    for (rid, key), u in per.items():
        if rid in run_profile:
            acc.setdefault((run_profile[rid], key), []).append(u)
    rows = []
    for i, prof in enumerate(profs):
        for r, opt in zip(game.spec.roles, prof, strict=False):
            for s, n, key in _played(game, r, opt):
                mean, se, m = mean_stderr(acc.get((i, key), []))
                rows.append(
                    {
                        "profile": label(game, prof),
                        "profile_id": i,
                        "role": r.name,
                        "strategy": s.name,
                        "count": n,
                        "mean": mean,
                        "stderr": se,
                        "n": m,
                        "payoff": game.spec.role_payoff(r),
                    }
                )
    return schema.frame("game_payoffs", rows)


def regrets(
    game: EmpiricalGame, profs: list[tuple[Option, ...]], table: pl.DataFrame
) -> list[dict[str, Any]]:
    """Each profile's best single-agent deviation (gain and 95 % interval; negative when every
    deviation loses); regret = max(0, gain), 0 at an equilibrium. For a symmetric role an agent of
    strategy ``a`` compares ``u_a(c)`` with ``u_b(c - e_a + e_b)``."""
    index = {p: i for i, p in enumerate(profs)}
    # (a table without replication counts: its standard errors are taken as known)
    n_col = pl.col("n") if "n" in table.columns else pl.lit(None).alias("n")
    u: dict[tuple[int, str, str], tuple[float, float, int | None]] = {
        (pid, role, strat): (m, se, n)
        for pid, role, strat, m, se, n in table.select(
            "profile_id", "role", "strategy", "mean", "stderr", n_col
        ).iter_rows()
    }
    out = []
    for i, prof in enumerate(profs):
        best: dict[str, Any] = {"gain": -math.inf}
        for ri, r in enumerate(game.spec.roles):
            opt = prof[ri]
            moves = []
            if r.symmetric:
                for a, na in enumerate(opt):
                    for b in range(len(opt)):
                        if na and b != a:
                            c = list(opt)
                            c[a] -= 1
                            c[b] += 1
                            moves.append((r.strategies[a].name, r.strategies[b].name, tuple(c)))
            else:
                moves = [
                    (r.strategies[opt].name, r.strategies[b].name, b)
                    for b in range(len(r.strategies))
                    if b != opt
                ]
            for frm, to, new_opt in moves:
                dev = list(prof)
                dev[ri] = new_opt
                j = index.get(tuple(dev))
                if j is None or (i, r.name, frm) not in u or (j, r.name, to) not in u:
                    continue
                (m0, s0, n0), (m1, s1, n1) = u[(i, r.name, frm)], u[(j, r.name, to)]
                gain = m1 - m0
                if math.isfinite(gain) and gain > best["gain"]:
                    half = half_width((s0, s1), (n0, n1))
                    best = {
                        "gain": gain,
                        "role": r.name,
                        "from": frm,
                        "to": to,
                        "ci": (gain - half, gain + half),
                    }
        if best["gain"] == -math.inf:
            continue
        out.append(
            {
                "profile": label(game, prof),
                "regret": max(0.0, best["gain"]),
                "best_deviation_role": best["role"],
                "best_deviation_strategy": f"{best['from']} -> {best['to']}",
                "gain": best["gain"],
                "gain_ci_low": best["ci"][0],
                "gain_ci_high": best["ci"][1],
                "significant": best["ci"][0] > 0,
            }
        )
    return out


def symmetric_games(
    game: EmpiricalGame, profs: list[tuple[Option, ...]], table: pl.DataFrame
) -> list[tuple[str, SymmetricGame]]:
    """For every symmetric role, its game over strategy counts with the other roles on their
    reference option (first strategy; everyone on the first strategy for another population):
    (role name, :class:`SymmetricGame`) pairs for the replicator dynamics and symmetric mixes."""
    ref = profs[0]
    u = {
        (pid, role, strat): m
        for pid, role, strat, m in table.select(
            "profile_id", "role", "strategy", "mean"
        ).iter_rows()
    }
    out = []
    for ri, r in enumerate(game.spec.roles):
        if not r.symmetric:
            continue
        pay: dict[tuple[int, ...], np.ndarray] = {}
        for i, prof in enumerate(profs):
            if all(prof[j] == ref[j] for j in range(len(prof)) if j != ri):
                pay[tuple(prof[ri])] = np.array(
                    [
                        u.get((i, r.name, s.name), np.nan) if n else np.nan
                        for s, n in zip(r.strategies, prof[ri], strict=False)
                    ]
                )
        out.append((r.name, SymmetricGame(game.population(r), [s.name for s in r.strategies], pay)))
    return out
