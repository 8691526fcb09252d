"""``sum-abm game`` and ``sum-abm frontier``: run the profiles, solve, write tables and a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from sum_abm.game.empirical import (EmpiricalGame, frontier_point, load_game, payoff_table, profiles_to_run,
                                    to_game)
from sum_abm.game.solvers import best_deviation, bisect_zero, mixed_equilibria, mixed_regret, pure_equilibria, replicator
from sum_abm.market.results import write_parquet_atomic


def run_game(path: str | Path, out: str | Path, *, address: str | None = None, resume: bool = False,
             progress: Any = None) -> dict[str, Any]:
    """Build the empirical payoff table through the sweep engine, solve it, write the outputs.

    Returns the answer: whether the reference (all-first-strategy) profile is an equilibrium, its
    best deviation and gain (95 % interval), the equilibria found and whether deviations were sampled.
    """
    from sum_abm.sweeps import load_agents, run_many
    from sum_abm.sweeps.spec import run_id

    game = load_game(path)
    out = Path(out)
    if any(r.symmetric for r in game.spec.roles):
        return _run_population_game(game, path, out, address=address, resume=resume, progress=progress)
    profiles, sampled = profiles_to_run(game)
    points = [game.profile_overrides(p) for p in profiles]
    run_many(game.base, points, out / "sweep", replications=game.spec.replications, root_seed=game.spec.seed,
             address=address, resume=resume, baseline=False, progress=progress, source=str(path))
    run_profile = {run_id(ov, rep): prof for prof, ov in zip(profiles, points) for rep in range(game.spec.replications)}
    agents = load_agents(out / "sweep").collect()
    table = payoff_table(game, profiles, agents, run_profile)
    write_parquet_atomic(table, out / "payoffs.parquet")
    g = to_game(game, table)

    complete = [p for p in profiles if all(np.isfinite(g.means[r][p]) for r in range(len(g.roles)))]
    regrets = []
    for p in complete:
        d = best_deviation(g, p)
        regrets.append({"profile": g.label(p), "regret": max(0.0, d.gain),
                        "best_deviation_role": g.roles[d.role] if d.role >= 0 else None,
                        "best_deviation_strategy": g.strategies[d.role][d.strategy] if d.role >= 0 else None,
                        "gain": d.gain, "gain_ci_low": d.ci_low, "gain_ci_high": d.ci_high})
    write_parquet_atomic(pl.DataFrame(regrets), out / "regret.parquet")

    eq_rows = []
    if not sampled:
        for p in pure_equilibria(g):
            eq_rows.append({"kind": "pure", "method": "enumeration", "profile": g.label(p),
                            "mix": json.dumps({r: {g.strategies[i][p[i]]: 1.0} for i, r in enumerate(g.roles)}),
                            "regret": 0.0})
        mixed, method = mixed_equilibria(g)
        for m in mixed:
            eq_rows.append({"kind": "mixed", "method": method, "profile": "",
                            "mix": json.dumps({r: {s: round(float(x), 6) for s, x in zip(g.strategies[i], m[i])}
                                               for i, r in enumerate(g.roles)}),
                            "regret": float(mixed_regret(g, m))})
    write_parquet_atomic(pl.DataFrame(eq_rows) if eq_rows else pl.DataFrame({"kind": [], "profile": []}),
                         out / "equilibria.parquet")

    ref = tuple(0 for _ in g.roles)
    dev = best_deviation(g, ref)
    answer = {
        "game": game.spec.name,
        "reference_profile": g.label(ref),
        "reference_is_equilibrium": dev.gain <= 0,
        "best_deviation": None if dev.role < 0 else {
            "role": g.roles[dev.role], "strategy": g.strategies[dev.role][dev.strategy],
            "gain": dev.gain, "ci95": [dev.ci_low, dev.ci_high], "significant": dev.ci_low > 0},
        "payoff": game.spec.payoff,
        "profiles_run": len(profiles),
        "sampled_deviations_only": sampled,
        "pure_equilibria": [r["profile"] for r in eq_rows if r["kind"] == "pure"],
    }
    traj = replicator(g, steps=600) if not sampled and all(np.isfinite(m).all() for m in g.means) else None
    _report(game, g, table, regrets, eq_rows, answer, traj, out / "game_report.html")
    (out / "answer.json").write_text(json.dumps(answer, indent=1, default=float))
    return answer


def _run_population_game(game: EmpiricalGame, path, out: Path, *, address, resume, progress) -> dict[str, Any]:
    """A game with symmetric roles: profiles over strategy counts (see :mod:`sum_abm.game.population`)."""
    from dashboards.style import page, table_html
    from sum_abm.game import population as pop
    from sum_abm.sweeps import load_agents, run_many
    from sum_abm.sweeps.spec import run_id

    profs = pop.profiles(game)
    points = [pop.overrides(game, p) for p in profs]
    run_many(game.base, points, out / "sweep", replications=game.spec.replications, root_seed=game.spec.seed,
             address=address, resume=resume, baseline=False, progress=progress, source=str(path))
    run_profile = {run_id(ov, rep): i for i, ov in enumerate(points) for rep in range(game.spec.replications)}
    table = pop.payoff_table(game, profs, load_agents(out / "sweep").collect(), run_profile)
    write_parquet_atomic(table, out / "payoffs.parquet")
    regs = pop.regrets(game, profs, table)
    write_parquet_atomic(pl.DataFrame(regs), out / "regret.parquet")
    eqs = [{"kind": "pure", "method": "enumeration over strategy counts", "profile": r["profile"], "regret": 0.0}
           for r in regs if r["gain"] <= 0]
    write_parquet_atomic(pl.DataFrame(eqs) if eqs else pl.DataFrame({"kind": [], "profile": []}), out / "equilibria.parquet")
    ref_label = pop.label(game, profs[0])
    ref = next((r for r in regs if r["profile"] == ref_label), None)
    answer = {
        "game": game.spec.name, "reference_profile": ref_label,
        "reference_is_equilibrium": ref is not None and ref["gain"] <= 0,
        "best_deviation": None if ref is None else {
            "role": ref["best_deviation_role"], "strategy": ref["best_deviation_strategy"], "gain": ref["gain"],
            "ci95": [ref["gain_ci_low"], ref["gain_ci_high"]], "significant": ref["gain_ci_low"] > 0},
        "payoff": game.spec.payoff, "profiles_run": len(profs), "sampled_deviations_only": False,
        "pure_equilibria": [e["profile"] for e in eqs],
    }
    page(f"sum_abm game — {game.spec.name}", game.spec.description + " (population game over strategy counts)",
         [("Payoff table", table_html(table.drop("profile_id"))), ("Regret of each profile", table_html(pl.DataFrame(regs))),
          ("Pure equilibria", table_html(pl.DataFrame(eqs)) if eqs else "<p>none</p>")], out / "game_report.html")
    (out / "answer.json").write_text(json.dumps(answer, indent=1, default=float))
    return answer


def _report(game: EmpiricalGame, g, table: pl.DataFrame, regrets, eqs, answer, traj, path: Path) -> None:
    from dashboards.style import layout, page, table_html

    sections: list[tuple[str, object]] = []
    verdict = ("<b>is</b> an equilibrium" if answer["reference_is_equilibrium"] else "<b>is not</b> an equilibrium")
    bd = answer["best_deviation"]
    text = f"<p>The reference profile <code>{answer['reference_profile']}</code> {verdict}.</p>"
    if bd:
        text += (f"<p>Best deviation: <b>{bd['role']}</b> → <b>{bd['strategy']}</b>, gain {bd['gain']:+.4g} "
                 f"({answer['payoff']} per agent; 95 % interval {bd['ci95'][0]:+.4g} … {bd['ci95'][1]:+.4g}).</p>")
    if answer["sampled_deviations_only"]:
        text += "<p class='note'>The full table was too large: only the reference profile and its unilateral deviations were run.</p>"
    sections.append(("Is the reference profile an equilibrium?", text))
    if len(g.roles) == 2:
        for r in range(2):
            z = g.means[r]
            fig = go.Figure(go.Heatmap(z=z, x=g.strategies[1], y=g.strategies[0], colorscale="RdBu", zmid=0,
                                       text=[[f"{z[i][j]:.4g} ± {g.stderrs[r][i][j]:.2g}" for j in range(z.shape[1])]
                                             for i in range(z.shape[0])], hoverinfo="text",
                                       colorbar=dict(title=answer["payoff"])))
            sections.append((f"Payoff of {g.roles[r]}", layout(fig, f"{g.roles[r]}'s payoff ({answer['payoff']} per agent)",
                                                                f"{g.roles[1]} strategy", f"{g.roles[0]} strategy")))
    if traj is not None:
        fig = go.Figure()
        for r, role in enumerate(g.roles):
            for s, name in enumerate(g.strategies[r]):
                fig.add_trace(go.Scatter(x=list(range(len(traj))), y=[t[r][s] for t in traj], mode="lines",
                                         name=f"{role}: {name}"))
        sections.append(("Replicator dynamics", layout(fig, "Replicator dynamics from the uniform mix",
                                                       "iteration", "share of the population")))
    sections.append(("Payoff table", table_html(table.drop("profile_index"))))
    if regrets:
        sections.append(("Regret of each profile", table_html(pl.DataFrame(regrets))))
    if eqs:
        sections.append(("Equilibria", table_html(pl.DataFrame(eqs))))
    page(f"sum_abm game — {game.spec.name}", game.spec.description, sections, path)


def run_frontier(path: str | Path, out: str | Path, param: str, lo: float, hi: float, *, iterations: int = 5,
                 across: tuple[str, list[Any]] | None = None, address: str | None = None,
                 integer: bool = False) -> list[dict[str, Any]]:
    """Bisection on ``param`` in [lo, hi] for where the best attack's ROI crosses zero; repeated for
    every value of an ``across`` parameter (a frontier line). Writes frontier.parquet and a report."""
    game = load_game(path)
    out = Path(out)
    base = game.base
    for v in (lo, hi):
        base.with_overrides({param: int(v) if integer else v}, source=f"--param {param}")
    rows = []
    for a_val in (across[1] if across else [None]):
        g2 = game
        if across:
            g2 = EmpiricalGame(game.spec, base.with_overrides({across[0]: a_val}, source=f"--across {across[0]}"),
                               game.source)
        best_names = {}

        def f(x: float, g2=g2, a_val=a_val) -> tuple[float, float]:
            x = int(round(x)) if integer else x
            m, se, name = frontier_point(g2, param, x, out / "runs" / f"{across[0] if across else 'x'}={a_val}",
                                         address=address)
            best_names[x] = name
            return m, se

        try:
            c = bisect_zero(f, lo, hi, iterations=iterations, tol=1.0 if integer else 0.0)
            rows.append({"across": None if a_val is None else str(a_val), "low": c.low, "high": c.high,
                         "estimate": c.estimate, "evaluations": json.dumps(c.evaluations), "found": True})
        except ValueError as exc:
            rows.append({"across": None if a_val is None else str(a_val), "low": lo, "high": hi, "estimate": None,
                         "evaluations": str(exc), "found": False})
    df = pl.DataFrame(rows)
    write_parquet_atomic(df, out / "frontier.parquet")
    _frontier_report(game, param, across, df, out / "frontier_report.html")
    return rows


def _frontier_report(game, param, across, df: pl.DataFrame, path: Path) -> None:
    from dashboards.style import layout, page, table_html

    fig = go.Figure()
    found = df.filter(pl.col("found"))
    if across and found.height:
        fig.add_trace(go.Scatter(x=found["across"], y=found["estimate"], mode="lines+markers", name="ROI = 0",
                                 error_y=dict(type="data", symmetric=False, array=found["high"] - found["estimate"],
                                              arrayminus=found["estimate"] - found["low"])))
        fig = layout(fig, "Attack-profitability frontier: best attack's ROI = 0", across[0], param)
    else:
        for ev, a in zip(df["evaluations"], df["across"]):
            try:
                pts = sorted(json.loads(ev))
            except (TypeError, json.JSONDecodeError):
                continue
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="markers+lines",
                                     error_y=dict(array=[1.96 * p[2] for p in pts]), name=str(a or "best attack ROI")))
        fig.add_hline(y=0, line=dict(dash="dot"))
        fig = layout(fig, "Best attack's ROI along the bisection", param, "ROI")
    page(f"sum_abm frontier — {game.spec.name}", f"bisection on <code>{param}</code>",
         [("Frontier", fig), ("Crossings", table_html(df))], path)
