"""The ``sum-abm`` command line.

Each module in this package defines ``register(app)`` and adds its commands to the one typer app;
modules are discovered, so a feature adds a command by adding a module here. Heavy libraries (Ray,
Mesa, Solara, Plotly) are imported inside the command functions, so ``sum-abm --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from sum_abm.errors import CheckFailed, InputError

app = typer.Typer(
    name="sum-abm",
    help="Agent-based market simulator for Sharing Updatable Models on a blockchain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_mod}").register(app)


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` as one line on stderr and exit with ``code`` (2 = bad input)."""
    print(f"sum-abm: {message}", file=sys.stderr)
    raise SystemExit(code)


def main() -> None:
    """Console-script entry point: bad input becomes one line and exit status 2, never a traceback."""
    try:
        rv = app(standalone_mode=False)
    except InputError as err:
        fail(str(err))
    except CheckFailed as err:
        fail(str(err), 1)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except SystemExit:
        raise
    except Exception as err:  # click usage errors come through here in non-standalone mode
        import click

        usage_errors: list[type] = [click.exceptions.ClickException]
        try:  # typer >= 0.25 raises the usage errors of its own vendored click
            from typer._click import exceptions as _typer_click

            usage_errors.append(_typer_click.ClickException)
        except ImportError:
            pass
        if isinstance(err, tuple(usage_errors)):
            fail(err.format_message())
        if isinstance(err, click.exceptions.Abort):
            fail("aborted", 130)
        raise
    raise SystemExit(rv if isinstance(rv, int) else 0)
