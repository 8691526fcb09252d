"""``sum-abm report DIR``: the Plotly report of a run folder or a sweep folder."""

from __future__ import annotations

from pathlib import Path

import typer

from sum_abm.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command()
    def report(
        folder: Path = typer.Argument(
            ..., help="a run folder (from sum-abm run) or a sweep folder"
        ),
        x: str = typer.Option(
            None, "--x", help="sweep report: parameter on the x axis (dotted path)"
        ),
        y: str = typer.Option(
            None, "--y", help="sweep report: parameter on the y axis (dotted path)"
        ),
    ) -> None:
        """Build FOLDER/report.html (self-contained; opens offline from the file)."""
        if (folder / "summary.parquet").exists():
            from dashboards import build_run_report

            if x or y:
                raise InputError(
                    f"--{'x' if x else 'y'}: {folder} is a run folder; --x and --y choose the axes"
                    " of a sweep folder's report"
                )

            out = build_run_report(folder)
        elif (folder / "runs").is_dir():
            from dashboards import build_sweep_report

            out = build_sweep_report(folder, x, y)
        else:
            raise InputError(
                f"{folder}: not a run folder (no summary.parquet) nor a sweep folder (no runs/)"
            )
        print(f"report: {out}")
