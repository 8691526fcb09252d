"""The ``sum-abm`` command line.

Each module in this package defines ``register(app)`` and adds its commands to the one typer app;
modules are discovered, so a feature adds a command by adding a module here. Heavy libraries (Ray,
Mesa, Solara, Plotly) are imported inside the command functions, so ``sum-abm --help`` stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any, NoReturn

import typer
from typer.core import TyperGroup

from sum_abm.errors import CheckFailed, InputError


class Group(TyperGroup):
    """The ``sum-abm`` command group: bad input becomes one line on stderr and exit status 2, never
    a traceback, whether run as the console script or by typer's ``CliRunner`` in the tests."""

    def main(self, args: Any = None, prog_name: str | None = None, **extra: Any) -> Any:
        extra["standalone_mode"] = False  # errors come here, to be printed as one line
        try:
            rv = super().main(args=args, prog_name=prog_name, **extra)
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
                if not err.format_message():  # no arguments: the help was shown
                    raise SystemExit(err.exit_code) from None
                fail(err.format_message())
            if isinstance(err, click.exceptions.Abort):
                fail("aborted", 130)
            raise
        raise SystemExit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: Any) -> Any:
        # Typer >= 0.26 turns a Ctrl-C inside a command into a silent exit 130 before main() sees
        # it: caught here first, it says so in one line, as any other way the command can end.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            fail("interrupted", 130)


app = typer.Typer(
    name="sum-abm",
    cls=Group,
    help="Agent-based market simulator for Sharing Updatable Models on a blockchain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_mod}").register(app)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` as one line on stderr and exit with ``code`` (2 = bad input)."""
    print(f"sum-abm: {message}", file=sys.stderr)
    raise SystemExit(code)


def main() -> None:
    """Run the command line in this process (see :class:`Group` for how errors are shown); ends
    with ``SystemExit``, as a library call should."""
    app()


def console() -> NoReturn:
    """The ``sum-abm`` console script: :func:`main`, then :func:`exit_now` with its exit status
    (an uncaught exception still ends the process the usual way, with its traceback)."""
    try:
        main()
    except SystemExit as exc:
        exit_now(exc.code)
    exit_now(0)


def exit_now(code: int | str | None) -> NoReturn:
    """End the process with ``code`` (as ``SystemExit`` would) after the exit handlers and the
    flush of stdout and stderr, skipping the teardown of every module and object: about 0.15 s
    after a run and 0.25-0.4 s after a sweep that started Ray (measured on 2 cores), all of it
    freeing memory the system takes back anyway. Only when no other thread is left; else it
    raises ``SystemExit`` so that the interpreter waits for them as usual."""
    import atexit
    import os
    import threading

    if threading.active_count() > 1:
        raise SystemExit(code)
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # Ray's shutdown, logging, temporary folders' finalizers, ...
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(code if isinstance(code, int) else 0)
