"""DRT ``corrected`` rules in a market run: the quick start's label flipper loses its exploit, and an
address that never sent verified data takes nothing (the contract-level properties are in
``test_properties_contract.py``)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from sum_abm.market.run import run
from sum_abm.scenario import load_scenario

QUICKSTART = Path(__file__).resolve().parents[1] / "scenarios" / "quickstart.toml"


def attacker(semantics: str, seed: int = 1, **more) -> tuple[float, pl.DataFrame]:
    """The attacker's ROI and its calls in the quick start under ``semantics``."""
    sc = load_scenario(QUICKSTART, {"mechanism.semantics": semantics, **more})
    r = run(sc, seed=seed, baseline=False)
    roi = r.agents.filter(pl.col("attacker"))["roi"][0]
    return roi, r.transactions.filter(pl.col("sender") == "attacker")


@pytest.mark.slow
def test_quickstart_label_flipper_loses_under_corrected_and_keeps_the_exploit_under_solidity():
    # The acceptance run, at the README's size and seed: `sum-abm run quickstart` with
    # each semantics. Solidity pays the flipper whole honest deposits; corrected must not.
    solidity, _ = attacker("solidity")
    corrected, calls = attacker("corrected")
    assert solidity > 0 > corrected
    # what it still has is its own deposits, partly refunded: it never earns more than it paid
    paid = calls.filter(pl.col("call") == "add_data")["amount"].sum()
    earned = calls.filter(pl.col("call") != "add_data")["amount"].sum()
    assert 0 < paid and earned < paid


@pytest.mark.slow
def test_an_address_without_verified_data_takes_nothing_under_corrected():
    # A flipper that never gets an add in (it pays at most 0 per add) has no verified data. With
    # the Solidity rules it still harvests honest deposits once they pass the any-address wait;
    # corrected (FIX 3) leaves it with no accepted call at all.
    solidity, s_calls = attacker("solidity", **{"agents.attacker.max_deposit": 0})
    corrected, c_calls = attacker("corrected", **{"agents.attacker.max_deposit": 0})
    assert s_calls.filter(pl.col("call") == "add_data").height == 0
    assert s_calls.filter((pl.col("call") == "report") & pl.col("accepted")).height > 0
    assert solidity > 0
    assert c_calls.filter(pl.col("accepted")).height == 0
    assert corrected == 0
