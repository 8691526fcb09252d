"""``sum-abm sweep``: run a sweep file locally on Ray, on a cluster, or serially."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def sweep(
        sweep_file: Path = typer.Argument(..., help="sweep TOML file"),
        out: Path = typer.Option(..., help="output folder (runs/, agents/, sweep.json, failures.parquet)"),
        address: str = typer.Option(None, help="Ray cluster address (host:port, auto, ray://...); default: local Ray"),
        workers: int = typer.Option(None, min=1, help="local Ray worker processes (default: every core)"),
        resume: bool = typer.Option(False, help="skip runs whose results exist in --out"),
        serial: bool = typer.Option(False, help="run in this process, without Ray"),
    ) -> None:
        """Expand a sweep and run every point × replication, streaming each result to Parquet."""
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from sum_abm.sweeps import execute, load_sweep_file

        from sum_abm.sweeps.engine import check_address, check_out

        sw = load_sweep_file(sweep_file)
        check_out(out, resume)  # bad input answers in one line, before any output
        if address:
            check_address(address)
        n_points = len(sw.points())
        console = Console(stderr=True)
        console.print(f"{sweep_file}: {n_points} points × {sw.spec.replications} replications = {len(sw.runs)} runs")
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=console) as bar:
            task = bar.add_task(sw.spec.name, total=len(sw.runs), failed=0)

            def progress(done: int, failed: int, total: int) -> None:
                bar.update(task, completed=done, failed=failed)

            table = execute(sw.base, sw.runs, out, sweep_text=Path(sweep_file).read_text(), source=str(sweep_file),
                            address=address, workers=workers, resume=resume, serial=True if serial else None,
                            progress=progress)
        failures = out / "failures.parquet"
        n_fail = 0
        if failures.exists():
            import polars as pl

            n_fail = pl.read_parquet(failures).height
        print(f"{len(table)} of {len(sw.runs)} runs finished, {n_fail} failed")
        print(f"results: {out}/  (runs/*.parquet one row per run, agents/*.parquet, sweep.json"
              + (", failures.parquet" if n_fail else "") + ")")
        if n_fail:
            raise typer.Exit(1)
