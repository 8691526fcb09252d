"""``sum-abm viz``: the interactive SolaraViz server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from sum_abm.errors import InputError


def _check_port(host: str, port: int) -> None:
    """Fail in one line, before Solara starts, when ``host:port`` cannot be bound."""
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise InputError(
            f"--host {host}: not an address of this machine ({exc.strerror or exc})"
        ) from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(
            socket.SOL_SOCKET, socket.SO_REUSEADDR, 1
        )  # as the server will: TIME_WAIT is no conflict
        try:
            s.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:  # a name or address of another machine
                raise InputError(
                    f"--host {host}: not an address of this machine ({exc.strerror or exc})"
                ) from None
            raise InputError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                "choose another port with --port"
            ) from None


def register(app: typer.Typer) -> None:
    @app.command()
    def viz(
        scenario: str = typer.Option(
            "quickstart", help="starting scenario: a bundled name or a TOML file"
        ),
        host: str = typer.Option(
            "127.0.0.1", help="interface to bind (127.0.0.1 keeps it on this machine)"
        ),
        port: int = typer.Option(8765, min=1, max=65535, help="TCP port"),
    ) -> None:
        """Serve the market in a browser: sliders for the mechanism, live charts, step/play/reset."""
        from sum_abm.bundled import resolve
        from sum_abm.scenario import load_scenario

        path = resolve(scenario)
        # A bad scenario answers in one line before the server starts, data checks included.
        from sum_abm.data import load_dataset
        from sum_abm.market.contract_setup import check_setup

        sc = load_scenario(path)
        check_setup(sc, load_dataset(sc.data, sc.learner.kind, sc.name))
        _check_port(host, port)
        app_py = Path(__file__).resolve().parents[1] / "market" / "app.py"
        env = {
            **os.environ,
            "SUM_ABM_VIZ_SCENARIO": str(path.resolve()),
            "SOLARA_CHECK_HOOKS": "off",
        }
        print(f"serving on http://{host}:{port}  (Ctrl-C stops)", flush=True)
        cmd = [
            sys.executable,
            "-m",
            "solara",
            "run",
            str(app_py),
            "--host",
            host,
            "--port",
            str(port),
            "--production",
            "--no-open",
        ]
        # This process becomes the server: a signal to the PID the user sees (kill, a hang-up, a
        # service manager's stop) stops it, where a child server outlived its parent.
        os.execve(sys.executable, cmd, env)
