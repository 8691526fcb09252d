"""Hypothesis properties of the contract layer: money is conserved, never negative, and a rejected
call changes nothing (for every mechanism and every semantics)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sum_abm.chain import Chain, Rejected
from sum_abm.contract import CollaborativeTrainer, DepositRefundTake, Points, PredictionMarket, hash_piece
from sum_abm.learners import NearestCentroid

ADDRS = ["A", "B", "C"]


class Oracle:
    kind, version = "oracle", 0

    def __init__(self) -> None:
        self.p = 0

    def predict_one(self, x):
        return self.p

    def update(self, x, y):
        return 0


call = st.tuples(
    st.sampled_from(["add", "refund", "report", "predict"]),
    st.sampled_from(ADDRS),
    st.integers(0, 60),  # value
    st.integers(0, 3),  # x id
    st.integers(0, 1),  # y / prediction
    st.integers(0, 200_000),  # time step
    st.integers(0, 30),  # which earlier add
)


def _drt_or_points(mech, calls, gas_price=0):
    chain = Chain(gas_price=gas_price)
    for a in ADDRS:
        chain.ledger.mint(a, 2_000_000 if gas_price else 500)
    oracle = Oracle()
    tr = CollaborativeTrainer(chain, oracle, mech)
    adds: list[tuple] = []
    total = chain.ledger.total()
    for kind, who, value, xid, y, dt, ref in calls:
        chain.clock.now += dt
        oracle.p = y
        before = tr.snapshot()
        fee_before = chain.ledger.balance(chain.fee_sink)
        try:
            if kind == "add":
                tr.add_data(who, value, [xid, 7], y)
                adds.append(([xid, 7], y, chain.clock.now, who))
            elif kind == "predict":
                tr.predict(who, [xid], value)
            elif adds:
                x, yy, t, author = adds[ref % len(adds)]
                if kind == "refund":
                    tr.refund(who, x, yy, t)
                else:
                    tr.report(who, x, yy, t, author)
        except Rejected:
            fee = chain.ledger.balance(chain.fee_sink) - fee_before
            after = tr.snapshot()
            if fee == 0:
                assert after == before
            else:  # only the fee moved: from the sender to the fee sink
                assert after[1:] == before[1:]
        assert chain.ledger.total() == total
        assert all(v >= 0 for v in chain.ledger.snapshot().values())
    chain.ledger.check_conserved()


@given(st.lists(call, max_size=30), st.sampled_from(["solidity", "reference-python"]), st.integers(0, 3))
def test_drt_conserves_money_and_rejections_change_nothing(calls, semantics, cw):
    _drt_or_points(DepositRefundTake(86_400, 9 * 86_400, cw, semantics), calls)


@given(st.lists(call, max_size=30))
def test_drt_with_gas_charges_rejected_calls_to_the_fee_sink(calls):
    _drt_or_points(DepositRefundTake(86_400, 9 * 86_400, 1, "solidity"), calls, gas_price=1)


@given(st.lists(call, max_size=30))
def test_points_conserve_money(calls):
    _drt_or_points(Points(3_600, 86_400), calls)


pm_case = st.tuples(
    st.lists(st.tuples(st.sampled_from(ADDRS), st.integers(1, 5), st.floats(-3, 3, allow_nan=False),
                       st.floats(-3, 3, allow_nan=False), st.integers(0, 1)), min_size=1, max_size=12),
    st.booleans(), st.booleans(), st.booleans(), st.integers(1, 200),
)


@given(pm_case, st.sampled_from(["corrected", "reference-python"]))
def test_prediction_market_lifecycle_conserves_money(case, semantics):
    adds, greater, group, reset, bounty = case
    chain = Chain()
    for a in ADDRS + ["P"]:
        chain.ledger.mint(a, 1_000)
    model = NearestCentroid(2).fit([[-2, -1], [-1, -2], [2, 1], [1, 2]], [0, 0, 1, 1])
    pm = PredictionMarket(chain, model, semantics=semantics, allow_greater_deposit=greater,
                          group_contributions=group, reset_model_during_reward_phase=reset)
    pieces = [[([x, x + 0.5], int(x > 0)) for x in (-2.5, 0.7, 1.9)], [([-1.2, -0.3], 0), ([2.2, 0.1], 1)],
              [([0.3, 2.1], 1), ([-0.9, -2.2], 0)]]
    total = chain.ledger.total()
    pm.initialize_market("P", bounty, [hash_piece(p) for p in pieces], 0, 1, 0)
    pm.reveal_init_test_set("P", pieces[0])
    staked: dict[str, float] = {}
    for i, (who, v, x0, x1, y) in enumerate(adds):
        chain.clock.now += 1
        cost = pm.add_data(who, v, [x0, x1], y)
        staked[who] = staked.get(who, 0) + cost
    pm.end_market("P")
    while pm.state == "REVEAL_TEST_SET":
        pm.verify_next_test_set("P", pieces[pm.next_verify])
    n = 0
    while pm.remaining_bounty_rounds > 0 and pm.market and n < 500:
        pm.process_contribution("P")
        n += 1
    for who in staked:
        pm.refund(who, [adds[[a[0] for a in adds].index(who)][2], adds[[a[0] for a in adds].index(who)][3]],
                  adds[[a[0] for a in adds].index(who)][4], 1 + [a[0] for a in adds].index(who))
    assert abs(chain.ledger.total() - total) < 1e-6
    if semantics == "corrected":
        pm.withdraw_unused_bounty("P")
        # bounty + stakes = everything paid out + what the contract still holds
        assert abs(bounty + sum(staked.values()) - (pm.paid_out + chain.ledger.balance("contract"))) < 1e-6
        assert chain.ledger.balance("contract") >= -1e-9
        for who, s in staked.items():  # a contributor never loses more than it staked
            assert chain.ledger.balance(who) >= 1_000 - s - 1e-9
