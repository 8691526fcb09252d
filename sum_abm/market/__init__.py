"""The market: a Mesa model of agents trading under an incentive mechanism, and its results."""

from __future__ import annotations

from sum_abm.market.model import MarketModel
from sum_abm.market.results import RunResult
from sum_abm.market.run import run

__all__ = ["MarketModel", "RunResult", "run"]
