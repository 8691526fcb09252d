"""Errors that reach the user.

Every user-facing command turns an :class:`InputError` into one line on stderr and exit status 2;
the Python API lets it propagate as a typed exception.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (a file, a field, a value). ``str(err)`` is the one line shown to the user.

    By convention the message names the file, then the field, then what was expected, e.g.
    ``scenarios/x.toml: agents[1].deposit: expected an integer >= 0, got 'abc'``.
    """


class CheckFailed(RuntimeError):
    """A cross-check found a disagreement (e.g. the EVM mirror of a run). ``str(err)`` is the one
    line shown to the user; commands exit with status 1."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type when empty): what a one-line error
    quotes of a library's error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
