"""``sum-abm sweep``: run a sweep file locally on Ray, on a cluster, or serially."""

from __future__ import annotations

from pathlib import Path

import typer

from sum_abm.cli.run import folder_option


def register(app: typer.Typer) -> None:
    @app.command()
    def sweep(
        sweep_file: Path = typer.Argument(
            ..., help="sweep TOML file, or a bundled sweep's name (scenarios/sweeps/)"
        ),
        out: Path = typer.Option(
            ...,
            parser=folder_option,
            help="output folder (runs/, agents/, sweep.json, failures.parquet)",
        ),
        address: str = typer.Option(
            None, help="Ray cluster address (host:port, auto, ray://...); default: local Ray"
        ),
        workers: int = typer.Option(
            None,
            min=1,
            help="cores for a local sweep: this process and a Ray worker per other core "
            "(default: every core; 1: in this process)",
        ),
        resume: bool = typer.Option(
            False,
            help="skip runs whose results exist in --out (after Ctrl-C, a crash, or to add points)",
        ),
        serial: bool = typer.Option(
            False, help="run in this process, without Ray (identical results)"
        ),
    ) -> None:
        """Expand a sweep and run every point x replication, streaming each result to Parquet.

        Exit status: 0 when every run finished, 1 when some raised (see failures.parquet),
        2 for bad input, 130 when interrupted (the folder resumes with --resume).
        """
        import contextlib

        from sum_abm.bundled import resolve
        from sum_abm.sweeps.executors import prepared_auto

        sweep_file = resolve(sweep_file, "sweep")  # a mistyped name: one line, no helper
        # A local sweep's Ray helper process starts first: it imports Ray while this process
        # loads the simulator and the sweep (it stops unused if the runs stay here).
        early = prepared_auto(address, workers, True if serial else None)
        with early or contextlib.nullcontext():
            from sum_abm.sweeps import load_sweep_file
            from sum_abm.sweeps.engine import check_address, check_out, init_ray, shutdown_ray
            from sum_abm.sweeps.store import folder_lock
            from sum_abm.sweeps.task import check_data

            sw = load_sweep_file(sweep_file)
            if early is not None:
                early.prepare(len(sw.runs), resume=resume)  # a long sweep: Ray starts now
            # What only the data can refuse, before any output (the first runs reuse its data).
            check_data(sw.base, sw.runs, str(sweep_file))
            # One sweep per folder: a second driver is refused in one line (the lock dies with
            # its process, so a killed driver leaves nothing stuck); bad input answers before
            # any output.
            with folder_lock(out):
                check_out(out, resume, sw.base, sw.runs, whole=True)
                connected = False
                if address and not serial:
                    check_address(address)
                    connected = init_ray(address, None)  # a refused driver (token auth): one line
                try:
                    _run(sw, sweep_file, out, address, workers, resume, serial, early)
                finally:
                    if connected:
                        shutdown_ray()

    def _run(
        sw,
        sweep_file: Path,
        out: Path,
        address: str | None,
        workers: int | None,
        resume: bool,
        serial: bool,
        early,
    ) -> None:
        import time

        from rich.console import Console

        from sum_abm.sweeps import execute, load_failures
        from sum_abm.sweeps.progress import runs_bar
        from sum_abm.sweeps.store import readable, run_part

        console = Console(stderr=True)
        console.print(
            f"{sweep_file}: {len(sw.points())} points x {sw.spec.replications} replications = {len(sw.runs)} runs"
        )
        t0 = time.perf_counter()
        with runs_bar(console, sw.spec.name, len(sw.runs)) as bar:
            if early is not None:
                early.notify = bar.say
            try:
                table = execute(
                    sw.base,
                    sw.runs,
                    out,
                    sweep_text=Path(sweep_file).read_text(),
                    source=str(sweep_file),
                    address=address,
                    workers=workers,
                    resume=resume,
                    serial=True if serial else None,
                    executor=early,
                    progress=bar,
                    notify=bar.say,
                    whole=True,
                )
            except KeyboardInterrupt:
                bar.stop()
                # Counted on disk: workers may have written parts the driver had not yet heard
                # of (execute stops them before it lets the interrupt through).
                done = sum(readable(run_part(out, r.run_id)) for r in sw.runs)
                console.print(
                    f"interrupted: {done} of {len(sw.runs)} runs are in {out}/; "
                    f"complete them with: sum-abm sweep {sweep_file} --out {out} --resume"
                )
                raise typer.Exit(130) from None
        n_fail = load_failures(out).height
        elapsed = time.perf_counter() - t0
        ran = bar.done - (bar.start or 0)
        print(
            f"{len(table)} of {len(sw.runs)} runs finished, {n_fail} failed"
            + (
                f"; {ran} ran in {elapsed:.1f} s "
                + (
                    f"({ran / elapsed:.1f} runs/s)"
                    if ran >= elapsed
                    else f"({elapsed / ran:.1f} s per run)"
                )
                if ran and elapsed > 0
                else ""
            )
        )
        print(
            f"results: {out}/  (runs/*.parquet one row per run, agents/*.parquet, sweep.json"
            + (", failures.parquet" if n_fail else "")
            + ")"
        )
        if n_fail:
            raise typer.Exit(1)
