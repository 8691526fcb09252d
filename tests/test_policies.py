"""Policy conformance battery, in the spirit of scikit-learn's check_estimator: every registered
policy under every mechanism runs, is deterministic for a seed, never offers money it does not
have (no call refused for insufficient funds), and its agent's books balance."""

from __future__ import annotations

import polars as pl
import pytest

from sum_abm.market.run import run
from sum_abm.policies import POLICIES
from sum_abm.scenario import parse_scenario

MECHANISMS = {
    "deposit_refund_take": {
        "kind": "deposit_refund_take",
        "refund_time_s": 3_600,
        "any_address_claim_wait_time_s": 20_000,
    },
    "deposit_refund_take-python": {
        "kind": "deposit_refund_take",
        "semantics": "reference-python",
        "refund_time_s": 3_600,
        "any_address_claim_wait_time_s": 20_000,
    },
    "points": {"kind": "points", "refund_time_s": 3_600, "any_address_claim_wait_time_s": 20_000},
    "prediction_market": {"kind": "prediction_market", "bounty": 300, "num_test_pieces": 4},
}


def scenario(policy: str, mech: dict) -> dict:
    group = {"name": "x", "policy": policy, "count": 2, "start_balance": 400, "mean_wait_s": 400}
    return {
        "name": f"battery-{policy}",
        "seed": 5,
        "data": {"kind": "breast_cancer", "init_train_portion": 0.1},
        "learner": {"kind": "multinomial_nb"},
        "mechanism": mech,
        "run": {"max_time_s": 3 * 86_400, "sample_interval_s": 3_600, "first_sample_s": 0},
        "agents": [
            {"name": "h", "policy": "honest", "count": 2, "start_balance": 400, "mean_wait_s": 300},
            group,
        ],
    }


@pytest.mark.parametrize("mech", list(MECHANISMS))
@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_policy_battery(policy, mech):
    sc = parse_scenario(scenario(policy, MECHANISMS[mech]), "battery")
    a = run(sc, seed=5, baseline=False)
    b = run(sc, seed=5, baseline=False)
    assert a.agents.equals(b.agents) and a.transactions.equals(b.transactions)  # deterministic
    tx = a.transactions
    assert (
        tx.filter(pl.col("reason") == "insufficient_funds").height == 0
    )  # never offers what it lacks
    assert a.summary["money_conserved"][0]
    ag = a.agents
    assert (
        (ag["end_balance"] - ag["start_balance"] - ag["profit"]).abs() < 1e-9
    ).all()  # books balance
    assert (ag["end_balance"] >= 0).all()
