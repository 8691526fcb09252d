"""``sum-abm game`` and ``sum-abm frontier``: empirical game-theoretic analysis of attacks."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from sum_abm.cli.run import check_out_folder, folder_option
from sum_abm.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command()
    def game(
        game_file: Path = typer.Argument(
            ..., help="game TOML file, or a bundled game's name (scenarios/games/)"
        ),
        out: Path = typer.Option(..., parser=folder_option, help="output folder"),
        address: str = typer.Option(
            None, help="Ray cluster address (default: local Ray, or in-process when tiny)"
        ),
        resume: bool = typer.Option(
            False, help="reuse finished runs in --out (an interrupted game completes)"
        ),
    ) -> None:
        """Estimate the payoff table by simulation, solve it, and say whether all-honest is an equilibrium.

        Writes payoffs.parquet, regret.parquet, equilibria.parquet, game_report.html and answer.json
        into OUT (the runs themselves under OUT/sweep). Exit status 2 for bad input, 130 when
        interrupted (complete it with --resume).
        """
        from rich.console import Console

        from dashboards import game_report
        from sum_abm.bundled import resolve
        from sum_abm.game.empirical import load_game
        from sum_abm.game.equilibria import interval_text
        from sum_abm.game.runner import run_game
        from sum_abm.sweeps.engine import check_address, check_out
        from sum_abm.sweeps.progress import runs_bar

        game_file = resolve(game_file, "game")
        g = load_game(game_file)
        check_out_folder(out)
        check_out(out / "sweep", resume, g.base)
        if address:
            check_address(address)
        console = Console(stderr=True)
        with runs_bar(console, f"{g.spec.name}: runs") as bar:
            try:
                ans = run_game(
                    game_file,
                    out,
                    address=address,
                    resume=resume,
                    progress=bar,
                    reports=game_report,
                )
            except KeyboardInterrupt:
                bar.stop()
                console.print(
                    f"interrupted; finished runs are in {out}/sweep; complete the game with: "
                    f"sum-abm game {game_file} --out {out} --resume"
                )
                raise typer.Exit(130) from None
        verdict = "IS" if ans["reference_is_equilibrium"] else "is NOT"
        pays = ", ".join(f"{r}: {p}" for r, p in ans["payoffs"].items())
        print(
            f"{ans['reference_profile']}: {verdict} an equilibrium ({pays}; {ans['profiles_run']} profiles x "
            f"{ans['replications']} replications{', deviations from the reference sampled' if ans['sampled_deviations_only'] else ''})"
        )
        bd = ans["best_deviation"]
        if bd:
            word = "gain" if bd["gain"] >= 0 else "loss"  # (a gain of 0 is no loss)
            sig = "" if bd["gain"] <= 0 or bd["significant"] else "; not significant"
            print(
                f"best deviation: {bd['role']} -> {bd['strategy']}: {word} {abs(bd['gain']):.4g} "
                f"(gain 95% interval {interval_text(*bd['ci95'])}{sig})"
            )
        if ans["sampled_deviations_only"]:
            se = ans["search"]
            print(
                f"the table ({se['table_size']} profiles) is larger than max_profiles: {ans['profiles_run']} profiles "
                f"sampled by a best-deviation walk from the reference: {' -> '.join(se['path'])} "
                f"(stopped: {se['stopped']})"
            )
        if ans["pure_equilibria"]:
            print("pure equilibria: " + "; ".join(ans["pure_equilibria"]))
        elif not ans["sampled_deviations_only"]:
            print("pure equilibria: none (see equilibria.parquet for mixed ones)")
        if ans["failed_runs"]:
            print(
                f"warning: {ans['failed_runs']} runs failed (see {out}/sweep/failures.parquet); their profiles "
                f"have fewer replications"
            )
        print(
            f"results: {out}/  (payoffs.parquet, equilibria.parquet, regret.parquet, game_report.html, answer.json)"
        )

    @app.command()
    def frontier(
        game_file: Path = typer.Argument(
            ..., help="game TOML file (its last agents role is the attacker)"
        ),
        param: str = typer.Option(
            ..., help="dotted scenario path to bisect, e.g. mechanism.cost_weight"
        ),
        range_: tuple[float, float] = typer.Option(..., "--range", help="LO HI"),
        out: Path = typer.Option(Path("runs/frontier"), parser=folder_option, help="output folder"),
        across: str = typer.Option(
            None, help="second parameter: path=v1,v2,... (traces a frontier line)"
        ),
        iterations: int = typer.Option(5, min=1, max=30, help="bisection steps"),
        integer: bool = typer.Option(False, help="the parameter takes integers"),
        replications: int = typer.Option(
            None, min=1, max=1000, help="runs per attack and point (default: the game's)"
        ),
        address: str = typer.Option(None, help="Ray cluster address"),
    ) -> None:
        """Find where the best attack's ROI crosses zero along PARAM (bisection with replications)."""
        from dashboards import game_report
        from sum_abm.bundled import resolve
        from sum_abm.game.runner import run_frontier

        lo, hi = range_
        if not lo < hi:
            raise InputError(f"--range {lo} {hi}: expected LO < HI")
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise InputError(f"--range {lo} {hi}: expected finite numbers")
        if integer and not (-(2**63) <= lo and hi < 2**63):
            raise InputError(
                f"--range {lo:g} {hi:g}: with --integer, values within 64 bits expected"
            )
        if integer and not (lo.is_integer() and hi.is_integer()):
            raise InputError(f"--range {lo:g} {hi:g}: with --integer, whole numbers expected")
        acr = None
        if across:
            path, eq, vals = across.partition("=")
            if not eq or not path.strip() or not all(v.strip() for v in vals.split(",")):
                raise InputError(f"--across {across!r}: expected path=v1,v2,...")
            if path.strip() == param:
                raise InputError(
                    f"--across {across!r}: {param} is the parameter bisected (--param);"
                    " trace the line across another"
                )
            acr = (path.strip(), [_value(v) for v in vals.split(",")])
        check_out_folder(out)
        rows = run_frontier(
            resolve(game_file, "game"),
            out,
            param,
            lo,
            hi,
            iterations=iterations,
            across=acr,
            address=address,
            integer=integer,
            replications=replications,
            reports=game_report,
        )
        for r in rows:
            where = f" at {acr[0]}={r['across']}" if acr else ""
            if r["found"]:
                print(
                    f"best attack's ROI crosses zero{where} at {param} ≈ {r['estimate']:.4g} "
                    f"(between {r['low']:.4g} and {r['high']:.4g}; best attack there: {r['best_attack']})"
                )
            else:
                print(f"no crossing{where}: {_ends(r['evaluations'], param)}")
        print(f"results: {out}/  (frontier.parquet, frontier_report.html)")


def _ends(evaluations: str, param: str) -> str:
    """Why a frontier has no crossing, from its evaluations (JSON, the two ends first)."""
    import json

    try:
        (lo, f_lo, _), (hi, f_hi, _) = json.loads(evaluations)[:2]
    except (ValueError, TypeError):
        return evaluations  # a reason in words
    side = "pays at both ends" if f_lo > 0 else "pays at neither end"
    return (
        f"the best attack's ROI is {f_lo:+.4g} at {param} = {lo:.4g} and {f_hi:+.4g} at "
        f"{hi:.4g}: it {side}"
    )


def _value(text: str):
    """A value given on the command line: a TOML literal (1, 2.5, true, "x"), else the bare string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()
