"""Policy conformance battery, in the spirit of scikit-learn's check_estimator: every registered
policy under every mechanism runs, is deterministic for a seed, never offers money it does not
have (no add or paid prediction offered above its balance, no call refused for it), and every agent's books, recomputed from the
transactions frame alone, match the agents frame."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sum_abm.market.run import run
from sum_abm.policies import POLICIES, BlockNormals
from sum_abm.policies.base import draw_positive_int
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


def owner_of(agents: pl.DataFrame):
    """Sender address -> agent id (a Sybil's addresses are ``<agent id>.<n>``)."""
    ids = set(agents["agent_id"])

    def owner(sender: str) -> str | None:
        if sender in ids:
            return sender
        base = sender.rsplit(".", 1)[0]
        return base if base in ids else None

    return owner


def books_from_transactions(
    tx: pl.DataFrame, agents: pl.DataFrame, market: bool
) -> dict[str, dict]:
    """Each agent's fees, deposits, adds, refunds, reports, predictions and profit, replayed from
    the transaction log alone (token units). A paid prediction is shared as the contract's rule
    says, ``int(value * num_good / total_good)`` per verified contributor, where ``num_good``
    counts each address's accepted refunds so far. ``market``: the prediction market, whose
    end-of-run refund counts as a refund only when it pays something."""
    owner = owner_of(agents)
    keys = ("fees", "deposits_paid", "adds_accepted", "refunded", "reports_won", "predictions")
    out = {a: dict.fromkeys((*keys, "profit", "prediction_income"), 0) for a in agents["agent_id"]}
    num_good: dict[str, int] = {}
    for r in tx.iter_rows(named=True):
        who = owner(r["sender"])
        me = out.get(
            who, dict.fromkeys((*keys, "profit", "prediction_income"), 0)
        )  # the bounty provider: no agent
        me["fees"] += r["fee"]
        me["profit"] -= r["fee"]
        if not r["accepted"]:
            continue
        call, amount = r["call"], r["amount"]
        if call == "add_data":
            me["adds_accepted"] += 1
            me["deposits_paid"] += int(amount)  # the deposit taken (the call returns it)
            me["profit"] -= amount
        elif call == "refund":
            me["refunded"] += 1 if amount > 0 or not market else 0
            me["profit"] += amount
            num_good[r["sender"]] = num_good.get(r["sender"], 0) + 1
        elif call == "report":
            me["reports_won"] += 1
            me["profit"] += amount
        elif call == "predict":
            me["predictions"] += 1
            total = sum(num_good.values())
            if r["value"] > 0 and total:
                for addr, ng in num_good.items():
                    paid = int(r["value"] * ng / total)
                    me["profit"] -= paid
                    out[owner(addr)]["profit"] += paid
                    out[owner(addr)]["prediction_income"] += paid
    return out


def overspending(monkeypatch) -> list[tuple[str, str, int, int]]:
    """Record every add or paid prediction a policy offers above the balance of the address it
    offers from, as ``(call, address, value, balance)``, for the runs in the test."""
    from sum_abm.market.model import MarketModel

    seen: list[tuple[str, str, int, int]] = []
    add, predict = MarketModel.add_data, MarketModel.predict

    def checked_add(self, agent, row, y, value, address=None):
        addr = address or agent.address
        if value > self.ledger.balance(addr):
            seen.append(("add_data", addr, value, self.ledger.balance(addr)))
        return add(self, agent, row, y, value, address)

    def checked_predict(self, agent, row, value):
        if value > self.ledger.balance(agent.address):
            seen.append(("predict", agent.address, value, self.ledger.balance(agent.address)))
        return predict(self, agent, row, value)

    monkeypatch.setattr(MarketModel, "add_data", checked_add)
    monkeypatch.setattr(MarketModel, "predict", checked_predict)
    return seen


def test_the_battery_sees_an_offer_above_the_balance(monkeypatch):
    """The check can fail: an honest policy broken to offer 10 tokens more than it holds is
    caught, though the market drops each such add before the contract (no insufficient_funds
    refusal ever shows in the transactions)."""
    from sum_abm.policies.strategic import ContributorPolicy

    def broken(self, agent, address=None):
        pick = self.choose(agent)
        if pick is None or not agent.model.accepting_data():
            return False
        row, y = pick
        return agent.model.add_data(agent, row, y, agent.balance + 10, address=address)

    monkeypatch.setattr(ContributorPolicy, "contribute", broken)
    sc = parse_scenario(scenario("honest", MECHANISMS["deposit_refund_take"]), "battery")
    over = overspending(monkeypatch)
    tx = run(sc, seed=5, baseline=False).transactions
    assert over and all(call == "add_data" and v == bal + 10 for call, _, v, bal in over)
    assert tx.filter(pl.col("reason") == "insufficient_funds").height == 0


# the cases that take more than about 3 s on 2 cores (measured with --durations)
SLOW = {
    ("targeted", "prediction_market"),
    ("label_flip", "deposit_refund_take"),
    ("sybil", "deposit_refund_take"),
    ("free_rider", "prediction_market"),
    ("adaptive", "deposit_refund_take"),
    ("free_rider", "deposit_refund_take-python"),
}


@pytest.mark.parametrize(
    "policy, mech",
    [
        pytest.param(p, m, marks=[pytest.mark.slow] * ((p, m) in SLOW), id=f"{p}-{m}")
        for m in MECHANISMS
        for p in sorted(POLICIES)
    ],
)
def test_policy_battery(policy, mech, monkeypatch):
    sc = parse_scenario(scenario(policy, MECHANISMS[mech]), "battery")
    over = overspending(monkeypatch)
    a = run(sc, seed=5, baseline=False)
    b = run(sc, seed=5, baseline=False)
    assert a.agents.equals(b.agents) and a.transactions.equals(b.transactions)  # deterministic
    tx = a.transactions
    # never offers what it lacks: no offer above the offering address's balance (the market does
    # not send an add it can tell would fail, so this is checked where the policy offers)...
    assert over == [], over[:3]
    # ... and no call refused for it
    assert tx.filter(pl.col("reason") == "insufficient_funds").height == 0
    ag = a.agents
    books = books_from_transactions(tx, ag, market=mech == "prediction_market")
    for row in ag.iter_rows(named=True):
        mine = books[row["agent_id"]]
        # the prediction market's predictions are free view calls, not transactions
        counted = ["fees", "deposits_paid", "adds_accepted", "refunded", "reports_won"]
        for k in counted + ([] if mech == "prediction_market" else ["predictions"]):
            assert row[k] == mine[k], (row["agent_id"], k)
        assert row["profit"] == pytest.approx(mine["profit"], abs=1e-6), row["agent_id"]
        assert row["end_balance"] == pytest.approx(row["start_balance"] + mine["profit"], abs=1e-6)


@pytest.mark.slow
def test_books_with_fees_and_paid_predictions():
    """Every policy in one market with a gas price and a model user paying for predictions: fees,
    deposits, refunds, reports and the prediction payments of each agent, replayed from the
    transactions frame, give the agents frame's figures."""
    groups = [
        {"name": p, "policy": p, "count": 1, "start_balance": 10**9, "mean_wait_s": 900}
        for p in sorted(POLICIES)
    ]
    for g in groups:
        if g["policy"] == "model_user":
            g["pay_to_call"] = 10_000
    sc = parse_scenario(
        {
            **scenario("honest", MECHANISMS["deposit_refund_take"]),
            "chain": {"gas_price": 3},
            "agents": groups,
        },
        "fees",
    )
    a = run(sc, seed=2, baseline=False)
    tx, ag = a.transactions, a.agents
    assert tx["fee"].sum() > 0 and tx.filter(pl.col("call") == "predict").height > 0
    books = books_from_transactions(tx, ag, market=False)
    for row in ag.iter_rows(named=True):
        mine = books[row["agent_id"]]
        for k in ("fees", "deposits_paid", "adds_accepted", "refunded", "reports_won"):
            assert row[k] == mine[k], (row["agent_id"], k)
        assert row["predictions"] == mine["predictions"]
        assert row["profit"] == pytest.approx(mine["profit"], abs=1e-6), row["agent_id"]
    # the replayed payments did reach verified contributors, so the sharing rule was exercised
    assert sum(b["prediction_income"] for b in books.values()) > 0


@pytest.mark.parametrize(
    "policy", sorted(p for p, cls in POLICIES.items() if cls.dry_walk is not None)
)
@pytest.mark.parametrize("mech", ["deposit_refund_take", "points"])
def test_a_declared_dry_pool_wake_up_is_only_the_walk(policy, mech, monkeypatch):
    # Policy.dry_walk lets the market process a dry-pool wake-up whose walk finds nothing without
    # calling act() (MarketModel._skip_idle). Hold each policy that declares it to that: with the
    # pool dry, act() draws nothing, sends nothing, walks once with the declared rules for its
    # main address, and keeps going exactly while its balance is positive.
    import mesa

    from sum_abm.market.model import MarketModel

    sc = parse_scenario(scenario(policy, MECHANISMS[mech]), "battery")
    m = MarketModel(scenario=sc, seed=5)
    try:
        for _ in range(5):
            m.step()
        assert m.data_left() and len(m.tx_rows) > 0
        m.cursor = m.n_pool  # the pool runs dry
        walks = []
        monkeypatch.setattr(
            m,
            "claim_walk",
            lambda agent, rules, address=None: walks.append((agent, rules, address)),
        )
        mine = [a for a in m.participants if a.group.policy == policy]
        m.ledger.transfer(mine[0].address, "h-0", mine[0].balance)  # one of them broke
        for agent in mine:
            state, n_tx = m.rng.bit_generator.state, len(m.tx_rows)
            walks.clear()
            keep = agent.policy.act(agent)
            assert m.rng.bit_generator.state == state and len(m.tx_rows) == n_tx
            assert walks == [(agent, agent.policy.dry_walk, None)]
            assert keep is (agent.balance > 0)
        assert [a.balance > 0 for a in mine] == [False, True]
    finally:
        mesa.Agent._ids.pop(m, None)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    runs=st.lists(st.integers(0, 300), min_size=1, max_size=6),
    first=st.integers(1, 16),
)
def test_block_normals_give_the_single_draws_and_leave_the_generator_as_they_do(seed, runs, first):
    # The dry wake-ups' waits are drawn through BlockNormals (MarketModel._skip_idle): runs of
    # draws, each closed before anything else draws (here a uniform draw), must give the values
    # and leave the generator exactly as single standard_normal() calls do.
    single, block = np.random.default_rng(seed), np.random.default_rng(seed)
    normals = BlockNormals(block, first_block=first, max_block=64)
    for i, k in enumerate(runs):
        want = [single.standard_normal() for _ in range(k)]
        got = []
        while len(got) < k:
            if (i + len(got)) % 3:
                got.append(normals.standard_normal())
            else:  # a compiled reader's way: the block, then how far it read
                values, pos = normals.block()
                take = min(k - len(got), len(values) - pos, 1 + len(got) % 5)
                got += values[pos : pos + take].tolist()
                normals.advance(pos + take)
        normals.close()
        assert got == want
        assert block.bit_generator.state == single.bit_generator.state
        assert block.random() == single.random()
    # the wait rule through it: the same waits as from the generator itself
    waits = [draw_positive_int(single, 5.0, 4.0) for _ in range(50)]
    assert [draw_positive_int(normals, 5.0, 4.0) for _ in range(50)] == waits
    normals.close()
    assert block.bit_generator.state == single.bit_generator.state
    with pytest.raises(ValueError):
        BlockNormals(block, first_block=0)
    normals.block()
    normals.advance(2)
    with pytest.raises(ValueError, match="cannot advance"):
        normals.advance(1)  # backwards
