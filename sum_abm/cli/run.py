"""``sum-abm run``, ``sum-abm validate`` and ``sum-abm scenarios``."""

from __future__ import annotations

from pathlib import Path

import typer

from sum_abm.bundled import bundled, resolve
from sum_abm.errors import InputError


def folder_option(value: str | Path) -> Path:
    """``--out`` as typed, read as a folder (typer's ``parser``): an empty value (e.g. an unset
    shell variable) is refused instead of meaning the current folder."""
    if not str(value).strip():
        raise typer.BadParameter("expected a folder, got an empty value")
    return Path(value)


def check_out_folder(out: Path) -> None:
    """``--out`` must be a folder or one that can be made (it is made now): refused before any
    run, in one line."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out: {str(out)!r} is a file, expected a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--out: cannot create {str(out)!r} ({exc.strerror or exc})") from None


def _question(path: Path) -> str:
    """What a bundled file's header comment asks (its ``# Question:`` line), else its first
    comment line."""
    lines = [ln[1:].strip() for ln in path.read_text().splitlines() if ln.startswith("#")]
    asked = [ln.removeprefix("Question:").strip() for ln in lines if ln.startswith("Question:")]
    return (asked or lines or [""])[0]


#: Keys only one kind of file has (a scenario has none of them), so that a file missing its
#: ``base`` or its ``roles`` is still checked as what it is, and told what it lacks.
_KIND_KEYS = {
    "game": {"roles", "payoff", "max_profiles"},
    "design": {"objectives", "attacker", "constraints", "parameters", "budget", "batch", "honest"},
    "sweep": {"base", "grid", "zip", "random"},
}


def file_kind(raw: object) -> str:
    """Which kind of file ``raw`` (a parsed TOML table) is: game, design, sweep or scenario."""
    keys = set(raw) if isinstance(raw, dict) else set()
    return next((kind for kind, own in _KIND_KEYS.items() if keys & own), "scenario")


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        scenario: str = typer.Argument(..., help="scenario TOML file or bundled scenario name"),
        seed: int = typer.Option(None, help="seed (default: the scenario's)"),
        out: Path = typer.Option(
            None, parser=folder_option, help="output folder (default: runs/<scenario>-seed<N>)"
        ),
        set_: list[str] = typer.Option(
            None, "--set", help="override a field: dotted.path=value (repeatable)"
        ),
        baseline: bool = typer.Option(
            True,
            "--baseline/--no-baseline",
            help="also run the clean baseline (the scenario without attackers) for attack metrics",
        ),
        report: bool = typer.Option(True, "--report/--no-report", help="write report.html"),
        parallel: bool = typer.Option(
            None,
            "--parallel-baseline/--serial-baseline",
            help="run the clean baseline in a second process at the same time as the run "
            "(same results; default: when this process may use two or more cores)",
        ),
    ) -> None:
        """Run one scenario; print a summary and where the Parquet results are."""
        from rich.console import Console
        from rich.table import Table

        from sum_abm.market.run import run as run_scenario
        from sum_abm.market.run import usable_cores
        from sum_abm.scenario import load_scenario, parse_set_options

        path = resolve(scenario)
        sc = load_scenario(path, parse_set_options(set_, "--set"))
        if seed is not None:  # checked like the scenario's own seed: 0 .. 2**63 - 1
            sc = sc.with_overrides({"seed": seed}, "--seed")
        seed = sc.seed
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        from sum_abm.data import load_dataset
        from sum_abm.market.contract_setup import check_setup

        # loaded and checked before the progress bar and the output folder, so that a bad data
        # setting is one clean line and leaves nothing behind
        dataset = load_dataset(sc.data, sc.learner.kind, sc.name)
        check_setup(sc, dataset)
        out_dir = out or Path("runs") / f"{sc.name}-seed{seed}"
        # (runs/ alone is no sweep: it is where every run goes by default)
        if (out_dir / "sweep.json").exists() or (
            (out_dir / "runs").is_dir() and (out_dir / "agents").is_dir()
        ):
            raise InputError(
                f"--out: {str(out_dir)!r} holds a sweep's results (a run's files would mix with "
                f"them); choose another folder"
            )
        check_out_folder(out_dir)
        try:  # a folder that cannot be written is refused before the run, not after it
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"--out: cannot write results to {str(out_dir)!r}: {exc.strerror}"
            ) from None

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}% of the pool"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            tasks: dict[str, int] = {}

            def progress(label: str, fraction: float) -> None:
                if label not in tasks:
                    what = "clean baseline" if label == "baseline" else f"{sc.name} (seed {seed})"
                    tasks[label] = bar.add_task(what, total=1.0)
                bar.update(tasks[label], completed=fraction)

            if parallel is None:
                parallel = usable_cores() >= 2
            result = run_scenario(
                sc,
                seed,
                baseline=baseline,
                dataset=dataset,
                progress=progress,
                parallel_baseline=parallel,
            )
        result.write(out_dir)
        s = result.summary.row(0, named=True)
        t = Table(
            title=f"{sc.name} — seed {seed} — {result.wall_time_s:.2f} s wall, {s['days']:.1f} simulated days"
        )
        import polars as pl

        from sum_abm.mechanisms import MECHANISMS

        g = result.agents.group_by("group", "policy", "attacker", maintain_order=True).agg(
            pl.len().alias("n"),
            pl.col("start_balance").sum(),
            pl.col("end_balance").sum(),
            pl.col("profit").sum(),
            pl.col("points").sum(),
        )
        # a mechanism that scores points (Points) is read by its points; its money columns only
        # when money moved (gas)
        points = MECHANISMS[sc.mechanism.kind].Adapter.points_per_refund > 0
        money = not points or bool((g["profit"] != 0).any() or s["fees_total"])
        cols = ["group", "policy", "attacker", "agents"]
        cols += ["start", "end", "profit", "roi"] if money else []
        for col in cols + (["points"] if points else []):
            t.add_column(col)
        for r in g.iter_rows(named=True):
            roi = r["profit"] / r["start_balance"] if r["start_balance"] else 0.0
            row = [r["group"], r["policy"], str(r["attacker"]), str(r["n"])]
            if money:
                row += [f"{r['start_balance']:,.0f}", f"{r['end_balance']:,.0f}"]
                row += [f"{r['profit']:+,.0f}", f"{roi:+.1%}"]
            t.add_row(*row, *([f"{r['points']:,}"] if points else []))
        Console().print(t)
        print(
            f"accuracy: initial {s['accuracy_initial']:.3f}, final {s['accuracy_final']:.3f}, "
            f"min {s['accuracy_min']:.3f}, all data {s['accuracy_all_data']:.3f}"
        )
        if s.get("accuracy_drop_final") is not None:
            print(
                f"attack: accuracy drop {s['accuracy_drop_final']:+.3f} (worst {s['accuracy_drop_max']:+.3f}), "
                f"attacker ROI {s['attacker_roi']:+.1%}"
            )
        print(
            f"calls: {s['calls']:,} ({s['calls_rejected']:,} rejected); money conserved: {s['money_conserved']}"
        )
        for line in MECHANISMS[sc.mechanism.kind].run_notes(sc.mechanism, s):
            print(f"note: {line}")
        price = sc.chain.gas_price
        if price:
            print(
                f"fees: {s['fees_total']:,} token units at gas price {price} (token units per gas)"
            )
        for line in result.notes():  # groups that sent no add, and why
            print(f"note: {line}")
        if s.get("evm_calls") is not None:
            err = (
                ""
                if s["evm_gas_error_median"] is None
                else (
                    f"; schedule gas vs EVM gas: median error {s['evm_gas_error_median']:.1%}, "
                    f"largest {s['evm_gas_error_max']:.1%}"
                )
            )
            print(
                f"EVM: {s['evm_calls']:,} calls mirrored ({s['evm_classifier']} classifier), every call and the "
                f"final state agree{err}"
            )
        if result.baseline is not None and result.baseline.peak_rss_mb is not None:
            print(
                f"clean baseline: run in a second process alongside, "
                f"{result.baseline.wall_time_s:.2f} s, peak RSS {result.baseline.peak_rss_mb:.0f} MB"
            )
        frames = ", ".join(result.frames())
        print(f"results: {out_dir}/  ({frames} .parquet; run.json)")
        if report:
            from dashboards import build_run_report

            print(f"report: {build_run_report(out_dir)}")

    @app.command()
    def validate(
        files: list[Path] = typer.Argument(
            ..., help="scenario, sweep, game or design files, or bundled names"
        ),
        data: bool = typer.Option(
            False,
            "--data",
            help="also load the data of each file (generated data from the disk cache when "
            "present) and check it as a run would: files, columns, labels, and what the "
            "mechanism needs of the data (e.g. enough test rows for every piece)",
        ),
    ) -> None:
        """Check scenario, sweep, game and design files (paths or bundled names); one line per
        file, exit 2 at the first invalid one."""
        from sum_abm.bundled import resolve_any
        from sum_abm.market.contract_setup import check_setup
        from sum_abm.scenario import parse_scenario, read_toml
        from sum_abm.sweeps.spec import RunSpec, parse_sweep
        from sum_abm.sweeps.task import check_data, dataset_for

        for f in map(resolve_any, files):
            raw = read_toml(f)
            kind = file_kind(raw)
            if kind == "design":
                from sum_abm.design.spec import load_design

                d = load_design(f)
                line = (
                    f"{f}: ok (design of {d.spec.base}: parameters {', '.join(d.spec.parameters)}; "
                    f"attacker strategies {', '.join(d.strategies)})"
                )
                base = d.base
                # each attacker strategy at the base's values (candidates change mechanism fields)
                runs = [RunSpec(s, d.strategy_overrides(s), 0, base.seed) for s in d.strategies]
            elif kind == "game":
                from sum_abm.game.empirical import load_game

                g = load_game(f)
                line = f"{f}: ok (game of {g.spec.base}: roles {', '.join(g.roles)})"
                base = g.base
                # a designer's strategies may set data, learner or mechanism fields
                runs = [
                    RunSpec(s.name, g.overrides_for({r.name: s}), 0, base.seed)
                    for r in g.spec.roles
                    for s in r.strategies
                ]
            elif kind == "sweep":
                sw = parse_sweep(raw, f)
                line = f"{f}: ok (sweep of {sw.spec.base}: {len(sw.points())} points, {len(sw.runs)} runs)"
                base, runs = sw.base, sw.runs
            else:
                base = parse_scenario(raw, str(f))
                line = f"{f}: ok ({base.mechanism.kind}, {len(base.agents)} groups)"
                runs = None
            if data:
                # the same checks as `run`, `sweep` and `game` make before their first run
                if runs is None:
                    try:
                        check_setup(base, dataset_for(base))
                    except InputError as exc:
                        raise InputError(f"{f}: {exc}") from None
                else:
                    check_data(base, runs, str(f))
                line += "; data checked"
            print(line)

    @app.command()
    def scenarios() -> None:
        """List the bundled scenarios, a line each, then the bundled sweep, game and design files
        (each by the name its command takes, with the question its header asks)."""
        from sum_abm.scenario import load_scenario, read_toml

        for f in bundled("scenario"):
            sc = load_scenario(f)
            print(f"{f.stem:28s} {sc.description}")
        for kind in ("sweep", "game", "design"):
            # (a kind's folder also holds the scenarios its files start from, e.g. games/pm_small)
            files = [f for f in bundled(kind) if file_kind(read_toml(f)) == kind]
            if files:
                print(f"\n{kind} files (sum-abm {kind} NAME):")
            width = max((len(f.stem) for f in files), default=0) + 2
            for f in files:
                print(f"{f.stem:{width}s}{_question(f)}")
