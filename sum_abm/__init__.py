"""sum_abm: agent-based market simulator for Sharing Updatable Models on a blockchain.

``sum_abm.run(scenario, seed=...)`` runs one scenario and returns a ``RunResult`` of polars frames.
"""

from __future__ import annotations

from typing import Any

__all__ = ["load_scenario", "load_sweep", "run", "sweep"]


def __getattr__(name: str) -> Any:  # lazy: importing sum_abm stays cheap
    if name == "run":
        from sum_abm.market.run import run

        return run
    if name == "load_scenario":
        from sum_abm.scenario import load_scenario

        return load_scenario
    if name in ("sweep", "load_sweep"):
        from sum_abm import sweeps  # the package is "sweeps": "sum_abm.sweep" is the function

        return getattr(sweeps, name)
    raise AttributeError(name)
