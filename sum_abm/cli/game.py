"""``sum-abm game`` and ``sum-abm frontier``: empirical game-theoretic analysis of attacks."""

from __future__ import annotations

from pathlib import Path

import typer

from sum_abm.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command()
    def game(
        game_file: Path = typer.Argument(..., help="game TOML file"),
        out: Path = typer.Option(..., help="output folder"),
        address: str = typer.Option(None, help="Ray cluster address (default: local Ray, or in-process when tiny)"),
        resume: bool = typer.Option(False, help="reuse finished runs in --out"),
    ) -> None:
        """Estimate the payoff table by simulation, solve it, and say whether all-honest is an equilibrium."""
        from sum_abm.game.empirical import load_game
        from sum_abm.game.runner import run_game
        from sum_abm.sweeps.engine import check_address, check_out

        load_game(game_file)
        check_out(out / "sweep", resume)
        if address:
            check_address(address)
        ans = run_game(game_file, out, address=address, resume=resume)
        verdict = "IS" if ans["reference_is_equilibrium"] else "is NOT"
        print(f"{ans['reference_profile']}: {verdict} an equilibrium ({ans['payoff']} per agent, "
              f"{ans['profiles_run']} profiles{', deviations sampled' if ans['sampled_deviations_only'] else ''})")
        bd = ans["best_deviation"]
        if bd:
            print(f"best deviation: {bd['role']} -> {bd['strategy']}: gain {bd['gain']:+.4g} "
                  f"(95% interval {bd['ci95'][0]:+.4g} .. {bd['ci95'][1]:+.4g}"
                  f"{'' if bd['significant'] else '; not significant'})")
        if ans["pure_equilibria"]:
            print("pure equilibria: " + "; ".join(ans["pure_equilibria"]))
        print(f"results: {out}/  (payoffs.parquet, equilibria.parquet, regret.parquet, game_report.html)")

    @app.command()
    def frontier(
        game_file: Path = typer.Argument(..., help="game TOML file (its last role is the attacker)"),
        param: str = typer.Option(..., help="dotted scenario path to bisect, e.g. mechanism.cost_weight"),
        range_: tuple[float, float] = typer.Option(..., "--range", help="LO HI"),
        out: Path = typer.Option(Path("runs/frontier"), help="output folder"),
        across: str = typer.Option(None, help="second parameter: path=v1,v2,... (traces a frontier line)"),
        iterations: int = typer.Option(5, min=1, max=30, help="bisection steps"),
        integer: bool = typer.Option(False, help="the parameter takes integers"),
        address: str = typer.Option(None, help="Ray cluster address"),
    ) -> None:
        """Find where the best attack's ROI crosses zero along PARAM (bisection with replications)."""
        import tomllib

        from sum_abm.game.runner import run_frontier

        lo, hi = range_
        if not lo < hi:
            raise InputError(f"--range {lo} {hi}: expected LO < HI")
        acr = None
        if across:
            if "=" not in across:
                raise InputError(f"--across {across!r}: expected path=v1,v2,...")
            path, vals = across.split("=", 1)
            acr = (path, [tomllib.loads(f"v = {v}")["v"] for v in vals.split(",")])
        rows = run_frontier(game_file, out, param, lo, hi, iterations=iterations, across=acr, address=address,
                            integer=integer)
        for r in rows:
            where = f" at {acr[0]}={r['across']}" if acr else ""
            if r["found"]:
                print(f"best attack's ROI crosses zero{where} at {param} ≈ {r['estimate']:.4g} "
                      f"(between {r['low']:.4g} and {r['high']:.4g})")
            else:
                print(f"no crossing{where}: {r['evaluations']}")
        print(f"results: {out}/  (frontier.parquet, frontier_report.html)")
