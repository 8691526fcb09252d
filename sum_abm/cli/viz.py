"""``sum-abm viz``: the interactive SolaraViz server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import typer

from sum_abm.errors import InputError


def register(app: typer.Typer) -> None:
    @app.command()
    def viz(
        scenario: str = typer.Option("quickstart", help="starting scenario: a bundled name or a TOML file"),
        host: str = typer.Option("127.0.0.1", help="interface to bind (127.0.0.1 keeps it on this machine)"),
        port: int = typer.Option(8765, min=1, max=65535, help="TCP port"),
    ) -> None:
        """Serve the market in a browser: sliders for the mechanism, live charts, step/play/reset."""
        from sum_abm.cli.run import _resolve
        from sum_abm.scenario import load_scenario

        path = _resolve(scenario)
        load_scenario(path)  # a bad scenario answers in one line before the server starts
        app_py = Path(__file__).resolve().parents[1] / "market" / "app.py"
        env = {**os.environ, "SUM_ABM_VIZ_SCENARIO": str(path.resolve()), "SOLARA_CHECK_HOOKS": "off"}
        print(f"serving on http://{host}:{port}  (Ctrl-C stops)", flush=True)
        cmd = [sys.executable, "-m", "solara", "run", str(app_py), "--host", host, "--port", str(port),
               "--production", "--no-open"]
        try:
            rc = subprocess.call(cmd, env=env)
        except KeyboardInterrupt:
            rc = 0
        if rc not in (0, -2, 130):
            raise InputError(f"the server exited with status {rc} (is port {port} free?)")
