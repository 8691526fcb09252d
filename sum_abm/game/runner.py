"""``sum-abm game`` and ``sum-abm frontier``: run the profiles through the sweep engine, solve the
empirical game, write the tables and a self-contained report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import polars as pl

from sum_abm.game.empirical import (
    EmpiricalGame,
    frontier_point,
    load_game,
    payoff_table,
    profiles_to_run,
    to_game,
)
from sum_abm.game.solvers import (
    Game,
    best_deviation,
    bisect_zero,
    deviation_walk,
    deviations,
    mixed_equilibria,
    mixed_regret,
    plausible_equilibria,
    pure_equilibria,
    replicator,
)
from sum_abm.market.results import write_parquet_atomic, write_text_atomic

_EMPTY_EQ = {
    "kind": pl.String,
    "method": pl.String,
    "profile": pl.String,
    "mix": pl.String,
    "regret": pl.Float64,
}


def _simulate(
    game: EmpiricalGame, points: list[dict[str, Any]], out: Path, *, address, resume, progress
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Run every point x replications into ``out/sweep`` (resumable); returns (agents rows, runs
    rows, number of failed runs)."""
    from sum_abm.sweeps import load_agents, run_many
    from sum_abm.sweeps.engine import load_failures, load_runs

    run_many(
        game.base,
        points,
        out / "sweep",
        replications=game.spec.replications,
        root_seed=game.spec.seed,
        address=address,
        resume=resume,
        baseline=False,
        progress=progress,
        source=game.source,
    )
    return (
        load_agents(out / "sweep").collect(),
        load_runs(out / "sweep").collect(),
        load_failures(out / "sweep").height,
    )


def run_game(
    path: str | Path,
    out: str | Path,
    *,
    address: str | None = None,
    resume: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Build the empirical payoff table through the sweep engine, solve it, write the outputs
    (``payoffs.parquet``, ``regret.parquet``, ``equilibria.parquet``, ``game_report.html``,
    ``answer.json``).

    Returns the answer: whether the reference (every role on its first strategy) profile is an
    equilibrium, its best deviation and gain (95 % interval), the equilibria found, and whether the
    table was too large so that only deviations from the reference were sampled.
    """
    from sum_abm.sweeps.spec import run_id

    game = load_game(path)
    out = Path(out)
    if any(r.symmetric for r in game.spec.roles):
        return _run_population_game(game, out, address=address, resume=resume, progress=progress)
    profiles, sampled = profiles_to_run(game)
    run_profile: dict[str, tuple[int, ...]] = {}

    def measure(profs: list[tuple[int, ...]], resume_now: bool) -> tuple[pl.DataFrame, Game, int]:
        points = [game.profile_overrides(p) for p in profs]
        run_profile.update(
            {
                run_id(ov, rep): p
                for p, ov in zip(profs, points, strict=False)
                for rep in range(game.spec.replications)
            }
        )
        agents, runs, n_failed = _simulate(
            game, points, out, address=address, resume=resume_now, progress=progress
        )
        t = payoff_table(game, profs, agents, run_profile, runs)
        return t, to_game(game, t), n_failed

    table, g, failed = measure(profiles, resume)
    ref = tuple(0 for _ in g.roles)
    search = None
    if sampled:
        state = {"table": table, "failed": failed}

        def grow(profs: list[tuple[int, ...]]) -> Game:
            state["table"], g2, state["failed"] = measure(
                profs, True
            )  # finished runs kept; only new ones run
            return g2

        g, walk = deviation_walk(g, profiles, grow, game.spec.max_profiles)
        table, failed, profiles = state["table"], state["failed"], walk.profiles
        search = {
            "path": [g.label(p) for p in walk.path],
            "stopped": walk.stopped,
            "table_size": int(np.prod(g.shape)),
        }
    write_parquet_atomic(table, out / "payoffs.parquet")

    plausible = set(plausible_equilibria(g))
    regrets = []
    for p in profiles:
        if not g.complete(p):
            continue
        d = best_deviation(g, p)
        regrets.append(
            {
                "profile": g.label(p),
                "regret": d.regret,
                "best_deviation_role": g.roles[d.role] if d.role >= 0 else None,
                "best_deviation_strategy": g.strategies[d.role][d.strategy]
                if d.role >= 0
                else None,
                "gain": d.gain,
                "gain_ci_low": d.ci_low,
                "gain_ci_high": d.ci_high,
                "significant": d.significant,
                "deviations_measured": len(deviations(g, p)),
                "plausible_equilibrium": p in plausible,
            }
        )
    write_parquet_atomic(pl.DataFrame(regrets), out / "regret.parquet")

    eq_rows = _equilibria_rows(g, sampled)
    write_parquet_atomic(
        pl.DataFrame(eq_rows, schema=_EMPTY_EQ) if eq_rows else pl.DataFrame(schema=_EMPTY_EQ),
        out / "equilibria.parquet",
    )

    answer = _answer(
        game,
        g.label(ref),
        best_deviation(g, ref) if g.complete(ref) else None,
        g,
        len(profiles),
        sampled,
        [r["profile"] for r in eq_rows if r["kind"] == "pure"],
        [g.label(p) for p in sorted(plausible)],
        failed,
    )
    answer["search"] = search
    traj = (
        replicator(g, steps=600)
        if not sampled and all(np.isfinite(m).all() for m in g.means)
        else None
    )
    _report(game, g, table, regrets, eq_rows, answer, traj, out / "game_report.html")
    write_text_atomic(out / "answer.json", json.dumps(answer, indent=1, default=float))
    return answer


def _equilibria_rows(g: Game, sampled: bool) -> list[dict[str, Any]]:
    """Pure equilibria (enumeration over the measured table) and, for a full table, mixed ones."""
    rows = []
    for p in pure_equilibria(g):
        rows.append(
            {
                "kind": "pure",
                "method": "enumeration",
                "profile": g.label(p),
                "mix": json.dumps({r: {g.strategies[i][p[i]]: 1.0} for i, r in enumerate(g.roles)}),
                "regret": 0.0,
            }
        )
    if sampled or not all(np.isfinite(m).all() for m in g.means):
        return rows  # mixed equilibria need every profile (a failed profile leaves a hole)
    mixed, method = mixed_equilibria(g)
    for m in mixed:
        if all(np.isclose(x.max(), 1.0) for x in m):
            continue  # a pure equilibrium, listed above
        rows.append(
            {
                "kind": "mixed",
                "method": method,
                "profile": "",
                "mix": json.dumps(
                    {
                        r: {
                            s: round(float(x), 6)
                            for s, x in zip(g.strategies[i], m[i], strict=False)
                        }
                        for i, r in enumerate(g.roles)
                    }
                ),
                "regret": float(mixed_regret(g, m)),
            }
        )
    return rows


def _answer(
    game: EmpiricalGame,
    ref_label: str,
    dev,
    g: Game | None,
    n_profiles: int,
    sampled: bool,
    pure: list[str],
    plausible: list[str],
    failed: int,
    *,
    dev_names: tuple[str, str] | None = None,
) -> dict[str, Any]:
    best = None
    if dev is not None and (dev_names is not None or dev.role >= 0):
        role, strategy = (
            dev_names if dev_names else (g.roles[dev.role], g.strategies[dev.role][dev.strategy])
        )
        best = {
            "role": role,
            "strategy": strategy,
            "gain": dev.gain,
            "ci95": [dev.ci_low, dev.ci_high],
            "significant": dev.ci_low > 0,
        }
    return {
        "game": game.spec.name,
        "reference_profile": ref_label,
        "reference_is_equilibrium": dev is not None and dev.gain <= 0,
        "best_deviation": best,
        "payoff": game.spec.payoff,
        "payoffs": {r.name: game.spec.role_payoff(r) for r in game.spec.roles},
        "profiles_run": n_profiles,
        "replications": game.spec.replications,
        "failed_runs": failed,
        "sampled_deviations_only": sampled,
        "pure_equilibria": pure,
        "plausible_equilibria": plausible,
    }


class _Dev:
    """A deviation given by names (population games) with the fields the answer needs."""

    def __init__(self, gain: float, lo: float, hi: float) -> None:
        self.gain, self.ci_low, self.ci_high = gain, lo, hi


def _run_population_game(
    game: EmpiricalGame, out: Path, *, address, resume, progress
) -> dict[str, Any]:
    """A game with symmetric roles: profiles over strategy counts (see :mod:`sum_abm.game.population`)."""
    from dashboards.style import layout, page, table_html
    from sum_abm.game import population as pop
    from sum_abm.sweeps.spec import run_id

    profs = pop.profiles(game)
    points = [pop.overrides(game, p) for p in profs]
    agents, runs, failed = _simulate(
        game, points, out, address=address, resume=resume, progress=progress
    )
    run_profile = {
        run_id(ov, rep): i for i, ov in enumerate(points) for rep in range(game.spec.replications)
    }
    table = pop.payoff_table(game, profs, agents, run_profile, runs)
    write_parquet_atomic(table, out / "payoffs.parquet")
    regs = pop.regrets(game, profs, table)
    write_parquet_atomic(pl.DataFrame(regs), out / "regret.parquet")
    eqs = [
        {
            "kind": "pure",
            "method": "enumeration over strategy counts",
            "profile": r["profile"],
            "mix": "",
            "regret": 0.0,
        }
        for r in regs
        if r["gain"] <= 0
    ]
    sym_sections: list[tuple[str, object]] = []
    for role, sg in pop.symmetric_games(game, profs, table):
        if not sg.complete:
            continue  # a failed run left a hole: no expected payoffs
        for x in sg.equilibria():
            eqs.append(
                {
                    "kind": "symmetric" if x.max() < 1 - 1e-9 else "symmetric pure",
                    "method": "symmetric mix over counts (others at reference)",
                    "profile": f"{role} mixes",
                    "mix": json.dumps(
                        {role: dict(zip(sg.strategies, map(float, x), strict=False))}
                    ),
                    "regret": sg.regret(x),
                }
            )
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
    write_parquet_atomic(
        pl.DataFrame(eqs, schema=_EMPTY_EQ) if eqs else pl.DataFrame(schema=_EMPTY_EQ),
        out / "equilibria.parquet",
    )
    ref_label = pop.label(game, profs[0])
    ref = next((r for r in regs if r["profile"] == ref_label), None)
    dev = None if ref is None else _Dev(ref["gain"], ref["gain_ci_low"], ref["gain_ci_high"])
    answer = _answer(
        game,
        ref_label,
        dev,
        None,
        len(profs),
        False,
        [e["profile"] for e in eqs if e["kind"] == "pure"],
        [r["profile"] for r in regs if not r["significant"]],
        failed,
        dev_names=None
        if ref is None
        else (ref["best_deviation_role"], ref["best_deviation_strategy"]),
    )
    page(
        f"sum_abm game — {game.spec.name}",
        game.spec.description + " (population game over strategy counts)",
        [
            ("Is the reference profile an equilibrium?", _verdict_html(answer)),
            *sym_sections,
            ("Payoff table", table_html(table.drop("profile_id"))),
            ("Regret of each profile", table_html(pl.DataFrame(regs))),
            ("Equilibria", table_html(pl.DataFrame(eqs)) if eqs else "<p>none</p>"),
        ],
        out / "game_report.html",
    )
    write_text_atomic(out / "answer.json", json.dumps(answer, indent=1, default=float))
    return answer


def _verdict_html(answer: dict[str, Any]) -> str:
    import html

    verdict = (
        "<b>is</b> an equilibrium"
        if answer["reference_is_equilibrium"]
        else "<b>is not</b> an equilibrium"
    )
    text = f"<p>The reference profile <code>{html.escape(answer['reference_profile'])}</code> {verdict}.</p>"
    bd = answer["best_deviation"]
    if bd:
        word = "gains" if bd["gain"] > 0 else "loses"
        text += (
            f"<p>Best deviation: <b>{html.escape(bd['role'])}</b> → <b>{html.escape(bd['strategy'])}</b> "
            f"{word} {abs(bd['gain']):.4g} ({html.escape(answer['payoffs'].get(bd['role'], answer['payoff']))} "
            f"per agent; 95 % interval {bd['ci95'][0]:+.4g} … {bd['ci95'][1]:+.4g}"
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


def _report(
    game: EmpiricalGame, g: Game, table: pl.DataFrame, regrets, eqs, answer, traj, path: Path
) -> None:
    from dashboards.style import layout, page, table_html

    sections: list[tuple[str, object]] = [
        ("Is the reference profile an equilibrium?", _verdict_html(answer))
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
                        [f"{z[i][j]:.4g} ± {g.stderrs[r][i][j]:.2g}" for j in range(z.shape[1])]
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
                    array=[d.ci_high - d.gain for d in ref_devs],
                    arrayminus=[d.gain - d.ci_low for d in ref_devs],
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
    sections.append(("Payoff table", table_html(table.drop("profile_index"))))
    if regrets:
        sections.append(("Regret of each profile", table_html(pl.DataFrame(regrets))))
    if eqs:
        sections.append(("Equilibria", table_html(pl.DataFrame(eqs))))
    page(f"sum_abm game — {game.spec.name}", game.spec.description, sections, path)


def run_frontier(
    path: str | Path,
    out: str | Path,
    param: str,
    lo: float,
    hi: float,
    *,
    iterations: int = 5,
    across: tuple[str, list[Any]] | None = None,
    address: str | None = None,
    integer: bool = False,
    replications: int | None = None,
) -> list[dict[str, Any]]:
    """Bisection on ``param`` in [lo, hi] for where the best attack's ROI crosses zero (each point:
    every attack x ``replications``, default the game's); repeated for every value of an ``across``
    parameter (a frontier line). Writes frontier.parquet and frontier_report.html; returns the
    crossings (estimate: the middle of the final bisection bracket; low, high: the 95 % interval,
    bounded by the nearest points whose ROI is clearly positive and clearly negative)."""
    game = load_game(path)
    if replications is not None:
        game = EmpiricalGame(
            game.spec.model_copy(update={"replications": replications}), game.base, game.source
        )
    out = Path(out)
    base = game.base
    for v in (lo, hi):
        base.with_overrides({param: int(v) if integer else v}, source=f"--param {param}")
    rows = []
    for a_val in across[1] if across else [None]:
        g2 = game
        if across:
            g2 = EmpiricalGame(
                game.spec,
                base.with_overrides({across[0]: a_val}, source=f"--across {across[0]}"),
                game.source,
            )
        best_names: dict[float, str] = {}

        def f(x: float, g2=g2, a_val=a_val, best_names=best_names) -> tuple[float, float]:
            x = int(round(x)) if integer else x
            m, se, name = frontier_point(
                g2,
                param,
                x,
                out / "runs" / f"{across[0] if across else 'x'}={a_val}",
                address=address,
            )
            best_names[x] = name
            return m, se

        a_str = None if a_val is None else str(a_val)
        try:
            c = bisect_zero(f, lo, hi, iterations=iterations, tol=1.0 if integer else 0.0)
            near = min(
                best_names, key=lambda x: abs(x - c.estimate)
            )  # the evaluation nearest the crossing
            rows.append(
                {
                    "across": a_str,
                    "low": c.low,
                    "high": c.high,
                    "estimate": float(c.estimate),
                    "best_attack": best_names[near],
                    "evaluations": json.dumps(c.evaluations),
                    "found": True,
                }
            )
        except ValueError as exc:
            rows.append(
                {
                    "across": a_str,
                    "low": lo,
                    "high": hi,
                    "estimate": None,
                    "best_attack": None,
                    "evaluations": str(exc),
                    "found": False,
                }
            )
    df = pl.DataFrame(
        rows,
        schema={
            "across": pl.String,
            "low": pl.Float64,
            "high": pl.Float64,
            "estimate": pl.Float64,
            "best_attack": pl.String,
            "evaluations": pl.String,
            "found": pl.Boolean,
        },
    )
    write_parquet_atomic(df, out / "frontier.parquet")
    _frontier_report(game, param, across, df, out / "frontier_report.html")
    return rows


def _frontier_report(game, param, across, df: pl.DataFrame, path: Path) -> None:
    from dashboards.style import layout, page, table_html

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
                error_y=dict(array=[1.96 * p[2] for p in pts]),
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
