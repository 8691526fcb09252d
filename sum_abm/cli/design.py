"""``sum-abm design``: find the settings where no known attack pays (a Stackelberg search)."""

from __future__ import annotations

from pathlib import Path

import typer

from sum_abm.cli.run import folder_option


def register(app: typer.Typer) -> None:
    @app.command()
    def design(
        design_file: str = typer.Argument(
            ..., help="design TOML file, or a bundled design's name (see scenarios/designs/)"
        ),
        out: Path = typer.Option(
            ...,
            parser=folder_option,
            help="output folder (designs.parquet, pareto.parquet, design_report.html, answer.json; "
            "the runs under sweep/)",
        ),
        address: str = typer.Option(
            None, help="Ray cluster address (host:port, auto, ray://...); default: local Ray"
        ),
        workers: int = typer.Option(
            None, min=1, help="local Ray worker processes (default: every core; 1: in this process)"
        ),
        resume: bool = typer.Option(
            False,
            "--resume/--no-resume",
            help="continue the search stored in --out (after Ctrl-C or a crash)",
        ),
        verify: int = typer.Option(
            0,
            min=0,
            max=10_000,
            help="re-run the recommended setting on this many fresh seeds (never used in the search)",
        ),
    ) -> None:
        """Search the designer's settings against the attacker's best response.

        For each candidate setting every attacker strategy runs on the same seeds; the best
        response's ROI (with its 95 % interval), the objectives and the constraints decide. Exit
        status 0 with a recommendation, 1 when no candidate met the constraints (or --verify found
        one that no longer holds), 2 for bad input, 130 when interrupted (continue with --resume).
        """
        import sys

        from rich.console import Console

        from dashboards.design_report import build_design_report
        from sum_abm.bundled import resolve
        from sum_abm.design import load_design, plain_answer, run_design
        from sum_abm.design.search import check_out_dir
        from sum_abm.sweeps.engine import check_address
        from sum_abm.sweeps.progress import runs_bar

        design_file = resolve(design_file, "design")
        d = load_design(design_file)
        check_out_dir(d, out, resume)  # bad input answers in one line, before any output
        if verify == 1 and any(c.confidence is not None for c in d.spec.constraints):
            from sum_abm.errors import InputError

            raise InputError(
                "--verify: a constraint with a confidence level needs at least 2 fresh seeds "
                "(an interval needs two), got 1"
            )
        if address:
            check_address(address)
        console = Console(stderr=True)
        console.print(
            f"{design_file}: {len(d.spec.parameters)} parameters, {len(d.strategies)} attacker "
            f"strategies x {d.spec.replications} seeds per candidate, at most {d.spec.budget} "
            f"candidates"
        )
        try:
            # one engine call per batch of candidates: the bar shows the current batch
            with runs_bar(console, f"{d.spec.name}: runs") as bar:
                ans = run_design(
                    design_file,
                    out,
                    address=address,
                    workers=workers,
                    resume=resume,
                    verify=verify,
                    progress=bar,
                    notify=bar.say,
                )
        except KeyboardInterrupt:
            console.print(
                f"interrupted; continue the search with: sum-abm design {design_file} "
                f"--out {out} --resume"
            )
            raise typer.Exit(130) from None
        report = build_design_report(out)
        print(plain_answer(ans))
        print(f"results: {out}/  (designs.parquet, pareto.parquet, answer.json)")
        print(f"report: {report}")
        sys.stdout.flush()
        held = ans.get("verify") is None or all(c["holds"] for c in ans["verify"]["constraints"])
        if not ans["feasible_found"] or not held:
            raise typer.Exit(1)
