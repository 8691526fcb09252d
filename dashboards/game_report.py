"""The game reports: ``game_report.html`` (the verdict on the reference profile, payoff heatmaps,
deviation gains, replicator dynamics, every replication's payoff per profile with k of n runs
above zero, the payoff, regret and equilibria tables) and
``frontier_report.html`` (where the best attack's ROI crosses zero).

The game runner (:mod:`sum_abm.game.runner`) computes the tables and calls these builders through its
``reports`` argument; the command line passes this module.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from dashboards.style import d3_number, layout, number, page, table_html
from sum_abm.errors import InputError
from sum_abm.game.dynamics import replicator
from sum_abm.game.empirical import EmpiricalGame, run_payoffs
from sum_abm.game.equilibria import deviations, interval_text
from sum_abm.game.symmetric import SymmetricGame
from sum_abm.game.tables import Game, half_width
from sum_abm.sweeps import load_agents, load_runs
from sum_abm.sweeps.spec import run_id
from sum_abm.sweeps.stats import wilson


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None


def verdict_html(answer: dict[str, Any]) -> str:
    """The answer as HTML: is the reference profile an equilibrium, its best deviation, what was run."""
    verdict = (
        "<b>is</b> an equilibrium"
        if answer["reference_is_equilibrium"]
        else "<b>is not</b> an equilibrium"
    )
    text = f"<p>The reference profile <code>{html.escape(answer['reference_profile'])}</code> {verdict}.</p>"
    bd = answer["best_deviation"]
    if bd:
        word = "gains" if bd["gain"] >= 0 else "loses"  # (a gain of 0 is no loss)
        text += (
            f"<p>Best deviation: <b>{html.escape(bd['role'])}</b> → <b>{html.escape(bd['strategy'])}</b> "
            f"{word} {number(abs(bd['gain']))} ({html.escape(answer['payoffs'].get(bd['role'], answer['payoff']))} "
            f"per agent; 95 % interval {interval_text(*bd['ci95'], sep=' … ')}"
            f"{'' if bd['significant'] or bd['gain'] <= 0 else '; not significant'}).</p>"
        )
    text += (
        f"<p>{answer['profiles_run']} profiles × {answer['replications']} replications"
        + (
            f"; <b>{answer['failed_runs']} runs failed</b> (see sweep/failures.parquet)"
            if answer["failed_runs"]
            else ""
        )
        + ".</p>"
    )
    if answer["sampled_deviations_only"]:
        se = answer.get("search") or {}
        why = {
            "equilibrium": "its last profile has no deviation that gains: an equilibrium of the sampled table",
            "cycle": "the best deviations cycle",
            "max_profiles": "running further would exceed max_profiles",
        }
        text += (
            f"<p class='note'>The full table ({se.get('table_size', '?')} profiles) was too large (max_profiles): "
            f"only {answer['profiles_run']} profiles were run, walking from the reference along best deviations "
            f"and running every unilateral deviation of each candidate: "
            f"{' → '.join(html.escape(p) for p in se.get('path', []))}. The walk stopped because "
            f"{why.get(se.get('stopped'), '?')}. Only candidates whose deviations were all run can be called "
            f"equilibria.</p>"
        )
    return text


def payoff_spread_sections(
    game: EmpiricalGame, table: pl.DataFrame, sweep_dir: Path
) -> list[tuple[str, object]]:
    """Every replication, not only the mean: each role's payoff in every run of every profile
    (a box per profile with every run as a point; profiles are categories), and per profile and
    role in how many runs the payoff was above zero, with a Wilson 95 % interval. Read from the
    game's sweep folder; [] when it holds no finished run."""
    try:
        agents, runs = load_agents(sweep_dir).collect(), load_runs(sweep_dir).collect()
    except InputError:
        return []
    per = run_payoffs(game, agents, runs)
    profiles = table.unique("profile", keep="first", maintain_order=True)
    rows = []
    for label, idx in profiles.select("profile", "profile_index").iter_rows():
        ov = game.profile_overrides(tuple(idx))
        for rep in range(game.spec.replications):
            rid = run_id(ov, rep)
            for role in game.spec.roles:
                if (rid, role.name) in per:
                    rows.append(
                        {
                            "profile": label,
                            "role": role.name,
                            "run_id": rid,
                            "payoff": per[(rid, role.name)],
                        }
                    )
    if not rows:
        return []
    d = pl.DataFrame(rows)
    order = profiles["profile"].to_list()
    sections: list[tuple[str, object]] = []
    for role in game.spec.roles:
        part = d.filter(pl.col("role") == role.name)
        if not part.height:
            continue
        unit = game.spec.role_payoff(role)
        fig = go.Figure(
            go.Box(
                x=part["profile"].to_list(),
                y=part["payoff"].to_list(),
                boxpoints="all",
                jitter=0.35,
                pointpos=0,
                marker=dict(size=5, opacity=0.7),
                fillcolor="rgba(0,0,0,0)",
                text=[f"run {r}" for r in part["run_id"]],
                name=role.name,
                hovertemplate=f"%{{x}}<br>%{{y:{d3_number()}}}<br>%{{text}}<extra></extra>",
            )
        )
        fig.add_hline(y=0, line=dict(color="#9e9e9e", dash="dot"))
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=order)
        sections.append(
            (
                f"Payoff of {role.name}: every replication",
                layout(
                    fig,
                    f"Payoff of {role.name} ({unit}) in every run of each profile",
                    "profile",
                    unit,
                    height=max(420, 60 + 14 * len(order)),
                ),
            )
        )
    k = d.group_by("profile", "role", maintain_order=True).agg(
        (pl.col("payoff") > 0).sum().alias("above zero"),
        pl.len().alias("runs"),
        pl.col("payoff").median().alias("median"),
        pl.col("payoff").min().alias("worst"),
        pl.col("payoff").max().alias("best"),
    )
    ci = [wilson(a, n) for a, n in k.select("above zero", "runs").iter_rows()]
    k = k.with_columns(
        pl.Series("Wilson 95 % (%)", [f"{lo * 100:.0f} – {hi * 100:.0f}" for lo, hi in ci])
    )
    sections.append(("Payoff above zero in k of n runs", table_html(k)))
    return sections


def write_game_report(
    game: EmpiricalGame,
    g: Game,
    table: pl.DataFrame,
    regrets: list[dict[str, Any]],
    eqs: list[dict[str, Any]],
    answer: dict[str, Any],
    path: Path,
) -> None:
    """``game_report.html`` of a game over profiles: the verdict, payoff heatmaps (two roles), the
    gain of each deviation from the reference, replicator dynamics (full tables), every
    replication's payoff per profile (with k of n runs above zero) and the tables."""
    traj = (
        replicator(g, steps=600)
        if not answer["sampled_deviations_only"] and all(np.isfinite(m).all() for m in g.means)
        else None
    )
    sections: list[tuple[str, object]] = [
        ("Is the reference profile an equilibrium?", verdict_html(answer))
    ]
    if len(g.roles) == 2:
        for r in range(2):
            z = g.means[r]
            fig = go.Figure(
                go.Heatmap(
                    z=z,
                    x=g.strategies[1],
                    y=g.strategies[0],
                    colorscale="RdBu",
                    zmid=0,
                    text=[
                        [
                            f"{number(z[i][j])} ± {number(g.stderrs[r][i][j], 2)}"
                            for j in range(z.shape[1])
                        ]
                        for i in range(z.shape[0])
                    ],
                    hoverinfo="text",
                    texttemplate="%{text}",
                    colorbar=dict(title=answer["payoffs"][g.roles[r]]),
                )
            )
            sections.append(
                (
                    f"Payoff of {g.roles[r]}",
                    layout(
                        fig,
                        f"Payoff of {g.roles[r]} ({answer['payoffs'][g.roles[r]]} per agent; mean ± standard error)"
                        if answer["payoffs"][g.roles[r]] in ("profit", "roi")
                        else f"Payoff of {g.roles[r]} ({answer['payoffs'][g.roles[r]]}; mean ± standard error)",
                        f"{g.roles[1]} strategy",
                        f"{g.roles[0]} strategy",
                    ),
                )
            )
    ref_devs = (
        [d for d in deviations(g, tuple(0 for _ in g.roles))]
        if g.complete(tuple(0 for _ in g.roles))
        else []
    )
    if ref_devs:
        names = [f"{g.roles[d.role]} → {g.strategies[d.role][d.strategy]}" for d in ref_devs]
        fig = go.Figure(
            go.Bar(
                x=[d.gain for d in ref_devs],
                y=names,
                orientation="h",
                marker_color=["#c62828" if d.significant else "#90a4ae" for d in ref_devs],
                error_x=dict(
                    type="data",
                    symmetric=False,
                    # (no bar for an unbounded interval: one replication)
                    array=[_finite(d.ci_high - d.gain) for d in ref_devs],
                    arrayminus=[_finite(d.gain - d.ci_low) for d in ref_devs],
                ),
            )
        )
        fig.add_vline(x=0, line=dict(dash="dot"))
        sections.append(
            (
                "Deviations from the reference profile",
                layout(
                    fig,
                    "Gain of each unilateral deviation from the reference (95 % interval; red: significant)",
                    "gain (the deviating role's payoff)",
                    None,
                    height=max(300, 40 * len(ref_devs)),
                ),
            )
        )
    if traj is not None:
        fig = go.Figure()
        for r, role in enumerate(g.roles):
            for s, name in enumerate(g.strategies[r]):
                fig.add_trace(
                    go.Scatter(
                        x=list(range(len(traj))),
                        y=[t[r][s] for t in traj],
                        mode="lines",
                        name=f"{role}: {name}",
                    )
                )
        sections.append(
            (
                "Replicator dynamics",
                layout(
                    fig,
                    "Replicator dynamics from the uniform mix (one population per role)",
                    "iteration",
                    "share of the population",
                ),
            )
        )
    sections += payoff_spread_sections(game, table, path.parent / "sweep")
    sections.append(("Payoff table", table_html(table.drop("profile_index"))))
    if regrets:
        sections.append(("Regret of each profile", table_html(pl.DataFrame(regrets))))
    if eqs:
        sections.append(("Equilibria", table_html(pl.DataFrame(eqs))))
    page(f"sum_abm game — {game.spec.name}", game.spec.description, sections, path)


def write_population_report(
    game: EmpiricalGame,
    symmetric: list[tuple[str, SymmetricGame]],
    table: pl.DataFrame,
    regrets: list[dict[str, Any]],
    eqs: list[dict[str, Any]],
    answer: dict[str, Any],
    path: Path,
) -> None:
    """``game_report.html`` of a game with symmetric roles (profiles over strategy counts): the
    verdict, replicator dynamics of each symmetric role's shares, and the tables."""
    sym_sections: list[tuple[str, object]] = []
    for role, sg in symmetric:
        fig = go.Figure()
        for start in (None, np.array([0.95] + [0.05 / (sg.k - 1)] * (sg.k - 1))):
            tr = sg.replicator(start, steps=600)
            for s, name in enumerate(sg.strategies):
                fig.add_trace(
                    go.Scatter(
                        x=list(range(len(tr))),
                        y=tr[:, s],
                        mode="lines",
                        name=f"{name} (from {'uniform' if start is None else '95 % ' + sg.strategies[0]})",
                    )
                )
        sym_sections.append(
            (
                f"Replicator dynamics: {role}",
                layout(
                    fig,
                    f"{role}: share of each strategy under the replicator dynamics",
                    "iteration",
                    "share of the population",
                ),
            )
        )
    page(
        f"sum_abm game — {game.spec.name}",
        game.spec.description + " (population game over strategy counts)",
        [
            ("Is the reference profile an equilibrium?", verdict_html(answer)),
            *sym_sections,
            ("Payoff table", table_html(table.drop("profile_id"))),
            ("Regret of each profile", table_html(pl.DataFrame(regrets))),
            ("Equilibria", table_html(pl.DataFrame(eqs)) if eqs else "<p>none</p>"),
        ],
        path,
    )


def write_frontier_report(
    game: EmpiricalGame,
    param: str,
    across: tuple[str, list[Any]] | None,
    df: pl.DataFrame,
    path: Path,
) -> None:
    """``frontier_report.html``: the frontier line (with ``across``), every bisection point of the
    best attack's ROI with its 95 % interval, and the crossings table (``df``: frontier.parquet)."""
    sections: list[tuple[str, object]] = []
    found = df.filter(pl.col("found"))
    if across and found.height:
        fig = go.Figure(
            go.Scatter(
                x=found["across"],
                y=found["estimate"],
                mode="lines+markers",
                name="ROI = 0",
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=found["high"] - found["estimate"],
                    arrayminus=found["estimate"] - found["low"],
                ),
            )
        )
        sections.append(
            (
                "Frontier",
                layout(
                    fig,
                    "Attack-profitability frontier: where the best attack's ROI = 0",
                    across[0],
                    param,
                ),
            )
        )
    fig = go.Figure()
    for ev, a in zip(df["evaluations"], df["across"], strict=False):
        try:
            pts = sorted(json.loads(ev))
        except (TypeError, json.JSONDecodeError):
            continue
        fig.add_trace(
            go.Scatter(
                x=[p[0] for p in pts],
                y=[p[1] for p in pts],
                mode="markers+lines",
                error_y=dict(
                    array=[_finite(half_width((p[2],), (game.spec.replications,))) for p in pts]
                ),
                name=str(a or "best attack ROI"),
            )
        )
    fig.add_hline(y=0, line=dict(dash="dot"))
    sections.append(
        (
            "Bisection",
            layout(fig, "Best attack's ROI at each bisection point (95 % interval)", param, "ROI"),
        )
    )
    sections.append(("Crossings", table_html(df)))
    page(
        f"sum_abm frontier — {game.spec.name}", f"bisection on <code>{param}</code>", sections, path
    )
