"""``sum-abm game`` and ``sum-abm frontier``: run the profiles through the sweep engine, solve the
empirical game, write the tables, and hand them to a report builder (``reports``; the command line
passes :mod:`dashboards.game_report`). The runner orchestrates: the tables live in
:mod:`sum_abm.game.tables`, the solvers in :mod:`~sum_abm.game.equilibria`,
:mod:`~sum_abm.game.search` and :mod:`~sum_abm.game.symmetric`, the HTML in ``dashboards/``."""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from sum_abm import schema
from sum_abm.atomic import write_parquet_atomic, write_text_atomic
from sum_abm.game.empirical import (
    EmpiricalGame,
    frontier_point,
    load_game,
    payoff_table,
    profiles_to_run,
    to_game,
)
from sum_abm.game.equilibria import (
    best_deviation,
    deviations,
    mixed_equilibria,
    mixed_regret,
    plausible_equilibria,
    pure_equilibria,
)
from sum_abm.game.search import bisect_zero, deviation_walk
from sum_abm.game.symmetric import SymmetricGame
from sum_abm.game.tables import Game


class GameReports(Protocol):
    """What writes the HTML reports (``dashboards.game_report`` is one: a module of these three
    functions). The game layer sits below the dashboards, so it is handed one, never imports it."""

    def write_game_report(
        self,
        game: EmpiricalGame,
        g: Game,
        table: pl.DataFrame,
        regrets: list[dict[str, Any]],
        eqs: list[dict[str, Any]],
        answer: dict[str, Any],
        path: Path,
    ) -> None: ...

    def write_population_report(
        self,
        game: EmpiricalGame,
        symmetric: list[tuple[str, SymmetricGame]],
        table: pl.DataFrame,
        regrets: list[dict[str, Any]],
        eqs: list[dict[str, Any]],
        answer: dict[str, Any],
        path: Path,
    ) -> None: ...

    def write_frontier_report(
        self,
        game: EmpiricalGame,
        param: str,
        across: tuple[str, list[Any]] | None,
        df: pl.DataFrame,
        path: Path,
    ) -> None: ...


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


def _one_executor(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Every sweep of the call on one executor: a Ray it starts serves all of them (warm actors,
    one start-up) and stops when the call returns."""

    @functools.wraps(fn)
    def wrapper(*args: Any, address: str | None = None, **kwargs: Any) -> Any:
        from sum_abm.sweeps.engine import shared_executor

        with shared_executor(address):
            return fn(*args, address=address, **kwargs)

    return wrapper


@_one_executor
def run_game(
    path: str | Path,
    out: str | Path,
    *,
    address: str | None = None,
    resume: bool = False,
    progress: Any = None,
    reports: GameReports | None = None,
) -> dict[str, Any]:
    """Build the empirical payoff table through the sweep engine, solve it, write the outputs
    (``payoffs.parquet``, ``regret.parquet``, ``equilibria.parquet``, ``answer.json``, and
    ``game_report.html`` when given ``reports``).

    Returns the answer: whether the reference (every role on its first strategy) profile is an
    equilibrium, its best deviation and gain (95 % interval), the equilibria found, and whether the
    table was too large so that only deviations from the reference were sampled.
    """
    from sum_abm.sweeps.spec import run_id

    game = load_game(path)
    out = Path(out)
    if any(r.symmetric for r in game.spec.roles):
        return _run_population_game(
            game, out, address=address, resume=resume, progress=progress, reports=reports
        )
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
    write_parquet_atomic(schema.frame("game_regret", regrets), out / "regret.parquet")

    eq_rows = _equilibria_rows(g, sampled)
    write_parquet_atomic(
        schema.frame("game_equilibria", eq_rows),
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
    if reports is not None:
        reports.write_game_report(
            game, g, table, regrets, eq_rows, answer, out / "game_report.html"
        )
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
                            # + 0.0: a solver's -1e-17 is printed as 0.0, not -0.0
                            s: round(float(x), 6) + 0.0
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
            # (JSON has no infinity: an unbounded end is null)
            "ci95": [x if math.isfinite(x) else None for x in (dev.ci_low, dev.ci_high)],
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
    game: EmpiricalGame, out: Path, *, address, resume, progress, reports: GameReports | None
) -> dict[str, Any]:
    """A game with symmetric roles: profiles over strategy counts (see :mod:`sum_abm.game.population`)."""
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
    write_parquet_atomic(schema.frame("game_regret", regs), out / "regret.parquet")
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
    symmetric: list[tuple[str, SymmetricGame]] = []  # complete ones, for the report
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
        symmetric.append((role, sg))
    write_parquet_atomic(
        schema.frame("game_equilibria", eqs),
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
    if reports is not None:
        reports.write_population_report(
            game, symmetric, table, regs, eqs, answer, out / "game_report.html"
        )
    write_text_atomic(out / "answer.json", json.dumps(answer, indent=1, default=float))
    return answer


@_one_executor
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
    reports: GameReports | None = None,
) -> list[dict[str, Any]]:
    """Bisection on ``param`` in [lo, hi] for where the best attack's ROI crosses zero (each point:
    every attack x ``replications``, default the game's); repeated for every value of an ``across``
    parameter (a frontier line). Writes frontier.parquet (and frontier_report.html when given
    ``reports``); returns the
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
            c = bisect_zero(
                f,
                lo,
                hi,
                iterations=iterations,
                tol=1.0 if integer else 0.0,
                replications=game.spec.replications,
            )
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
            ev = getattr(exc, "evaluations", None)  # (NoCrossing: the ends were measured)
            rows.append(
                {
                    "across": a_str,
                    "low": lo,
                    "high": hi,
                    "estimate": None,
                    "best_attack": None,
                    "evaluations": json.dumps(ev) if ev is not None else str(exc),
                    "found": False,
                }
            )
    df = schema.frame("frontier", rows)
    write_parquet_atomic(df, out / "frontier.parquet")
    if reports is not None:
        reports.write_frontier_report(game, param, across, df, out / "frontier_report.html")
    return rows
