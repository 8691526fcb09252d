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

from sum_abm.errors import InputError
from sum_abm.game.empirical import EmpiricalGame
from sum_abm.game.solvers import Z95, compositions

Option = int | tuple[int, ...]  # a strategy index, or a count vector for a symmetric role


def role_options(game: EmpiricalGame) -> list[list[Option]]:
    opts: list[list[Option]] = []
    for r in game.spec.roles:
        k = len(r.strategies)
        opts.append(compositions(game.groups[r.group].count, k) if r.symmetric else list(range(k)))
    return opts


def profiles(game: EmpiricalGame) -> list[tuple[Option, ...]]:
    """Every profile; refused beyond ``max_profiles`` (count tables grow fast)."""
    opts = role_options(game)
    total = math.prod(len(o) for o in opts)
    if total > game.spec.max_profiles:
        raise InputError(f"{game.source}: the population game has {total} profiles (max_profiles = "
                         f"{game.spec.max_profiles}); use fewer strategies or smaller groups, or raise max_profiles")
    return list(itertools.product(*opts))


def overrides(game: EmpiricalGame, profile: tuple[Option, ...]) -> dict[str, Any]:
    """The whole ``agents`` list for a profile (symmetric roles split into sub-groups)."""
    by_group = {r.group: (r, opt) for r, opt in zip(game.spec.roles, profile)}
    agents = []
    for g in game.base.agents:
        base = g.model_dump(mode="json")
        if g.name not in by_group:
            agents.append(base)
            continue
        r, opt = by_group[g.name]
        keep = {"count": g.count, "start_balance": g.start_balance, "mean_wait_s": g.mean_wait_s,
                "stdev_wait_s": g.stdev_wait_s, "attacker": g.is_attacker}
        if r.symmetric:
            for s, n in zip(r.strategies, opt):
                if n:
                    agents.append({**keep, "name": f"{g.name}__{s.name}", "count": n, "policy": s.policy, **s.params})
        else:
            s = r.strategies[opt]
            agents.append({**keep, "name": g.name, "policy": s.policy, **s.params})
    ov = {"agents": agents}
    game.base.with_overrides(ov, source=game.source)
    return ov


def label(game: EmpiricalGame, profile: tuple[Option, ...]) -> str:
    parts = []
    for r, opt in zip(game.spec.roles, profile):
        if r.symmetric:
            parts.append(f"{r.name}=" + ",".join(f"{n} {s.name}" for s, n in zip(r.strategies, opt) if n))
        else:
            parts.append(f"{r.name}={r.strategies[opt].name}")
    return " | ".join(parts)


def payoff_table(game: EmpiricalGame, profs: list[tuple[Option, ...]], agents: pl.DataFrame,
                 run_profile: dict[str, int]) -> pl.DataFrame:
    """(profile, role, strategy, count, mean, stderr, n): a symmetric role has a row per strategy played."""
    col = "profit" if game.spec.payoff == "profit" else "roi"
    per_run = agents.group_by("run_id", "group").agg(pl.col(col).mean().alias("u"))
    acc: dict[tuple[int, str], list[float]] = {}
    for rid, grp, u in per_run.iter_rows():
        if rid in run_profile:
            acc.setdefault((run_profile[rid], grp), []).append(float(u))
    rows = []
    for i, prof in enumerate(profs):
        for r, opt in zip(game.spec.roles, prof):
            played = [(s, n, f"{r.group}__{s.name}") for s, n in zip(r.strategies, opt) if n] if r.symmetric \
                else [(r.strategies[opt], game.groups[r.group].count, r.group)]
            for s, n, grp in played:
                vals = acc.get((i, grp), [])
                m = len(vals)
                rows.append({"profile": label(game, prof), "profile_id": i, "role": r.name, "strategy": s.name,
                             "count": n, "mean": float(np.mean(vals)) if m else float("nan"),
                             "stderr": float(np.std(vals, ddof=1) / np.sqrt(m)) if m > 1 else 0.0, "n": m})
    return pl.DataFrame(rows)


def regrets(game: EmpiricalGame, profs: list[tuple[Option, ...]], table: pl.DataFrame) -> list[dict[str, Any]]:
    """Each profile's best single-agent deviation (gain and 95 % interval); regret 0 = equilibrium."""
    index = {p: i for i, p in enumerate(profs)}
    u: dict[tuple[int, str, str], tuple[float, float]] = {
        (pid, role, strat): (m, se) for pid, role, strat, m, se in
        table.select("profile_id", "role", "strategy", "mean", "stderr").iter_rows()}
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
                moves = [(r.strategies[opt].name, r.strategies[b].name, b) for b in range(len(r.strategies)) if b != opt]
            for frm, to, new_opt in moves:
                dev = list(prof)
                dev[ri] = new_opt
                j = index.get(tuple(dev))
                if j is None or (i, r.name, frm) not in u or (j, r.name, to) not in u:
                    continue
                (m0, s0), (m1, s1) = u[(i, r.name, frm)], u[(j, r.name, to)]
                gain = m1 - m0
                if math.isfinite(gain) and gain > best["gain"]:
                    half = Z95 * math.hypot(s0, s1)
                    best = {"gain": gain, "role": r.name, "from": frm, "to": to, "ci": (gain - half, gain + half)}
        if best["gain"] == -math.inf:
            continue
        out.append({"profile": label(game, prof), "regret": max(0.0, best["gain"]), "best_deviation_role": best["role"],
                    "best_deviation_strategy": f"{best['from']} -> {best['to']}", "gain": best["gain"],
                    "gain_ci_low": best["ci"][0], "gain_ci_high": best["ci"][1]})
    return out
