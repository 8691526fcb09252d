"""``sum-abm version``."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Print the sum_abm version."""
        from importlib.metadata import version as _v

        print(_v("sum_abm"))
