"""The market: a Mesa model of agents trading under an incentive mechanism, and its results.

Names are loaded lazily: the policies import :mod:`sum_abm.market.claims`, and the model imports
the policies.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MarketModel", "RunResult", "run"]


def __getattr__(name: str) -> Any:
    if name == "MarketModel":
        from sum_abm.market.model import MarketModel

        return MarketModel
    if name == "RunResult":
        from sum_abm.market.results import RunResult

        return RunResult
    if name == "run":
        from sum_abm.market.run import run

        return run
    raise AttributeError(name)
