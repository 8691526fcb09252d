"""Shared pytest set-up: hypothesis profiles, quiet Solara hooks, and the in-process command line."""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("SOLARA_CHECK_HOOKS", "off")

# CI runs 1,000 examples per property (issue: contract core), but for the properties that set their
# own count (each example a whole market or a CLI command: 25 to 300); "dev" is for quick local
# loops and for the fast lane (`pytest -m "not slow"`).
settings.register_profile(
    "ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config: pytest.Config) -> None:
    """The fast lane (a run that deselects the slow tests) runs the properties with the "dev"
    profile, unless HYPOTHESIS_PROFILE names one; a plain run keeps 1,000 examples."""
    if "HYPOTHESIS_PROFILE" not in os.environ and "not slow" in (config.option.markexpr or ""):
        settings.load_profile("dev")


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli():
    """``cli(*args)`` runs ``sum-abm ARGS`` in this process with typer's CliRunner: what a user
    sees (one line and exit status 2 for bad input), without a process start-up per call."""
    from typer.testing import CliRunner

    from sum_abm.cli import app

    def invoke(*args: object) -> CliResult:
        r = CliRunner().invoke(app, [str(a) for a in args])
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception  # a traceback a user would see: fail loudly
        return CliResult(r.exit_code, r.stdout, r.stderr)

    return invoke


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test's ``compiled=True`` case needs the C extension: skipped, with the reason, in an
    install made without a C compiler (``test_the_compiled_loops_are_built...`` fails there)."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("compiled") is True:
        import sum_abm.learners._compiled as compiled

        if not compiled.BUILT:
            pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
