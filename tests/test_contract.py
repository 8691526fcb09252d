"""The contract layer, call by call: DRT in both semantics, Points, and the prediction market's
lifecycle, commitments and the reference bugs the corrected market fixes (with real numbers)."""

from __future__ import annotations

import pytest

from sum_abm.chain import Chain, Rejected
from sum_abm.contract import (
    CollaborativeTrainer,
    DataHandler,
    DepositRefundTake,
    Points,
    PredictionMarket,
    hash_piece,
)
from sum_abm.learners import NearestCentroid


class Oracle:
    kind = "oracle"

    def __init__(self) -> None:
        self.p = 0

    def predict_one(self, x):
        return self.p

    def update(self, x, y):
        return 0


def drt(semantics: str, cw: int = 1, refund_s: int = 100, any_s: int = 1_000, **bal: int):
    chain = Chain()
    for a, b in (bal or {"A": 10_000, "B": 10_000, "C": 10_000}).items():
        chain.ledger.mint(a, b)
    oracle = Oracle()
    return (
        chain,
        oracle,
        CollaborativeTrainer(
            chain, oracle, DataHandler(), DepositRefundTake(refund_s, any_s, cw, semantics)
        ),
    )


def reason(fn, *args) -> str | None:
    try:
        fn(*args)
    except Rejected as r:
        return r.reason
    return None


# -- Deposit, Refund and Take -----------------------------------------------------------------


@pytest.mark.parametrize(
    "dt, solidity, python",
    [
        (0, 3_600, None),
        (1, 3_600, 60),
        (3, 3_600, 60),
        (4, 1_800, 30),
        (100, 360, 6),
        (3_600, 60, 1),
        (10_000, 36, 1),
    ],
)
def test_drt_deposit_formulas(dt, solidity, python) -> None:
    assert DepositRefundTake(cost_weight=1, semantics="solidity").required_deposit(dt) == solidity
    assert (
        DepositRefundTake(cost_weight=1, semantics="reference-python").required_deposit(dt)
        == python
    )
    assert DepositRefundTake(cost_weight=0, semantics="solidity").required_deposit(dt) == 0


def test_drt_add_pays_only_the_cost_and_the_cost_clock_restarts() -> None:
    chain, _, tr = drt("solidity")
    chain.clock.now = 100
    assert tr.add_data("A", 500, [1, 2], 1) == 360  # dt = 100: 3600 // 10
    assert chain.ledger.balance("A") == 10_000 - 360 and chain.ledger.balance("contract") == 360
    assert reason(tr.add_data, "B", 3_599, [1, 3], 1) == "insufficient_value"  # dt = 0 again: 3,600
    chain, _, tr = drt("reference-python")
    assert reason(tr.add_data, "A", 500, [1, 2], 1) == "add_too_soon"  # dt = 0


@pytest.mark.parametrize("semantics", ["solidity", "reference-python"])
def test_drt_add_with_the_clock_behind_the_last_add_is_too_soon(semantics) -> None:
    # Never on a chain, but a replayed trace's times can go back: a rejection, not a traceback
    # (isqrt of a negative age).
    chain, _, tr = drt(semantics)
    chain.clock.now = 100
    tr.add_data("A", 5_000, [1, 2], 1)
    before = chain.ledger.snapshot()
    chain.clock.now = 50
    assert reason(tr.add_data, "B", 5_000, [1, 3], 1) == "add_too_soon"
    assert chain.ledger.snapshot() == before and tr.im.last_update_time_s == 100


def test_drt_refund_window_is_one_second_later_in_reference_python() -> None:
    for semantics, first_ok_age in (("solidity", 100), ("reference-python", 101)):
        chain, oracle, tr = drt(semantics, refund_s=100)
        chain.clock.now = 1
        cost = tr.add_data("A", 3_600, [5], 1)
        oracle.p = 1
        chain.clock.now = 1 + first_ok_age - 1
        assert tr.check_refund("A", [5], 1, 1) == "too_early"
        chain.clock.now = 1 + first_ok_age
        assert tr.check_refund("A", [5], 1, 1) is None
        assert tr.check_refund("B", [5], 1, 1) == "data_not_found"  # the lookup uses the caller
        oracle.p = 0
        assert tr.check_refund("A", [5], 1, 1) == "model_disagrees"
        oracle.p = 1
        assert tr.refund("A", [5], 1, 1) == cost > 0
        assert tr.check_refund("A", [5], 1, 1) == "already_claimed_by_submitter"
        assert tr.im.num_good == {"A": 1} and tr.im.total_good == 1


def test_drt_report_share_floors_in_solidity_and_is_a_float_in_reference_python() -> None:
    got = {}
    for semantics in ("solidity", "reference-python"):
        chain, oracle, tr = drt(semantics, cw=1, refund_s=10, any_s=10_000)
        # A and B each get data verified; C adds data the model will disagree with
        chain.clock.now = 1
        tr.add_data("A", 3_600, [1], 1)
        chain.clock.now = 2
        tr.add_data("B", 3_600, [2], 1)
        chain.clock.now = 3
        tr.add_data("B", 3_600, [3], 1)
        chain.clock.now = 7
        c_cost = tr.add_data("C", 3_600, [4], 1)
        chain.clock.now = 100
        oracle.p = 1
        tr.refund("A", [1], 1, 1)
        tr.refund("B", [2], 1, 2)
        tr.refund("B", [3], 1, 3)
        oracle.p = 0
        assert reason(tr.report, "C", [4], 1, 7, "C") == "own_deposit"
        assert reason(tr.report, "A", [9], 1, 7, "C") == "data_not_found"
        got[semantics] = (c_cost, tr.report("A", [4], 1, 7, "C"))
        assert reason(tr.report, "A", [4], 1, 7, "C") == "already_claimed_by_reporter"
        oracle.p = 1
        assert reason(tr.report, "B", [4], 1, 7, "C") == "model_agrees"
        chain.ledger.check_conserved()
    # C's deposit: python int(60/isqrt(4)) = 30, solidity 3600 // isqrt(4) = 1800; A holds 1 of 3 good
    assert got["solidity"] == (1_800, 600)
    assert got["reference-python"] == (30, pytest.approx(10.0))
    assert isinstance(got["reference-python"][1], float)


def test_drt_after_the_long_wait_anyone_takes_the_rest() -> None:
    chain, oracle, tr = drt("solidity", refund_s=10, any_s=50)
    chain.clock.now = 1
    cost = tr.add_data("A", 3_600, [1], 0)
    chain.clock.now = 51
    oracle.p = 0  # the model agrees, but after any_s nothing else is checked
    assert tr.report("B", [1], 0, 1, "A") == cost
    assert tr.check_report("C", [1], 0, 1, "A") == "nothing_left_to_claim"


def test_drt_duplicate_key_overwrites_only_in_solidity_when_nothing_is_claimable() -> None:
    chain, _, tr = drt("solidity", cw=0)  # zero-cost adds: nothing claimable
    tr.add_data("A", 0, [1], 1)
    assert tr.add_data("A", 0, [1], 1) == 0
    chain, _, tr = drt("solidity", cw=1)
    tr.add_data("A", 3_600, [1], 1)
    assert reason(tr.add_data, "A", 3_600, [1], 1) == "duplicate_data"
    chain, _, tr = drt("reference-python", cw=0)
    chain.clock.now = 5
    tr.add_data("A", 1, [1], 1)
    tr.im.last_update_time_s = 0  # allow a second add in the same second under the python rules
    assert reason(tr.add_data, "A", 1, [1], 1) == "duplicate_data"


def test_drt_paid_prediction_shares_by_good_count() -> None:
    chain, oracle, tr = drt("solidity", refund_s=1)
    chain.clock.now = 1
    tr.add_data("A", 3_600, [1], 1)
    chain.clock.now = 2
    tr.add_data("B", 3_600, [2], 1)
    chain.clock.now = 3
    tr.add_data("B", 3_600, [3], 1)
    chain.clock.now = 10
    oracle.p = 1
    for who, x, t in (("A", [1], 1), ("B", [2], 2), ("B", [3], 3)):
        tr.refund(who, x, 1, t)
    before = {a: chain.ledger.balance(a) for a in "ABC"}
    pred, paid = tr.predict("C", [7], 100)
    assert pred == 1 and paid == {"A": 33, "B": 66}  # int(100*1/3), int(100*2/3); C keeps 1
    assert chain.ledger.balance("C") == before["C"] - 99
    # Past 2**53 the float quotient rounds up: int(v*2/3) is 2**59 while v*2//3 is 2**59 - 1;
    # integer rules pay the exact floors and never more than the value sent.
    v = 3 * 2**58 - 1
    chain.ledger.mint("D", v)
    _, paid = tr.predict("D", [7], v)
    assert paid == {"A": v // 3, "B": 2 * v // 3} and int(v * 2 / 3) > 2 * v // 3
    assert sum(paid.values()) <= v and chain.ledger.balance("D") == v - sum(paid.values())


@pytest.mark.parametrize(
    "kind, x, y, says",
    [
        ("perceptron", [1.0, 0.0], 2, "label 2 outside 0..1"),
        ("multinomial_nb", [1.0, -1.0], 1, "non-negative"),
        ("sgd_perceptron", [0.0, 0.0, 1.0], 1, "index"),  # a feature past the model's 2
        ("nearest_centroid", [0.0, 0.0, 1.0], 0, "index"),
    ],
)
def test_an_add_the_model_cannot_learn_is_rejected_with_nothing_changed(kind, x, y, says) -> None:
    """The model's update checks the sample before it writes, and runs before the contract's other
    effects: a sample it refuses is rejected (invalid_sample, its fee kept) with no deposit moved
    and nothing stored (the deposit moved, then the update raised)."""
    from sum_abm.learners import make_learner

    chain = Chain()
    chain.ledger.mint("A", 10_000)
    model = make_learner(kind, 2, 2).fit([[1.0, 0.0], [0.0, 1.0]], [0, 1])
    tr = CollaborativeTrainer(chain, model, DataHandler(), DepositRefundTake(cost_weight=0))
    before = tr.state_snapshot()
    with pytest.raises(Rejected) as err:
        tr.add_data("A", 5, x, y)
    assert err.value.reason == "invalid_sample" and says in str(err.value), str(err.value)
    assert tr.state_snapshot() == before and len(tr.data) == 0


def test_the_prediction_market_refuses_a_stake_on_data_its_model_cannot_learn() -> None:
    """Staked data is learned in the reward phase: a label outside the classes (or a feature
    outside the model) would stop every reward pass there, bounty and stakes locked."""
    chain = Chain()
    for a in ("A", "P"):
        chain.ledger.mint(a, 10_000)
    model = NearestCentroid(2).fit([[-2, -1], [-1, -2], [2, 1], [1, 2]], [0, 0, 1, 1])
    pm = PredictionMarket(chain, model, semantics="corrected", any_address_claim_wait_time_s=1_000)
    pm.initialize_market("P", 5, [hash_piece(p) for p in PIECES], 50, 10, 0)
    pm.reveal_init_test_set("P", PIECES[pm.reveal_index])
    before = pm.state_snapshot()
    for x, y in (([0.5, 0.5], 7), ([0.5, 0.5, 3.0], 1), ([float("inf"), 0.0], 0), ([0.5], True)):
        assert reason(pm.add_data, "A", 1, x, y) == "invalid_sample", (x, y)
    assert pm.state_snapshot() == before
    assert pm.add_data("A", 1, [0.5, 0.5], 1) == 1


def test_rejected_add_leaves_a_real_model_untouched() -> None:
    chain = Chain()
    chain.ledger.mint("A", 100)
    model = NearestCentroid(2).fit([[0.0, 0.0], [1.0, 1.0]], [0, 1])
    tr = CollaborativeTrainer(chain, model, DataHandler(), DepositRefundTake(cost_weight=1))
    before = tr.state_snapshot()
    assert reason(tr.add_data, "A", 99, [5.0, 5.0], 1) == "insufficient_value"  # needs 3,600
    assert tr.state_snapshot() == before
    tr.im.cost_weight = 0
    tr.add_data("A", 0, [5.0, 5.0], 1)
    after = tr.state_snapshot()
    assert after[3] != before[3] and model.centroids[1].tolist() == [3.0, 3.0]


def test_a_rejected_add_keeps_its_fee_logs_one_record_and_changes_nothing_else() -> None:
    """An add runs as Chain.execute runs a call (without its closure): priced and charged
    first; a check that rejects it keeps the fee, logs one rejected record with the gas and the
    fee, and writes nothing else; a sender who cannot pay value + fee is refused before any fee;
    an accepted add logs its cost as the amount."""
    rows: list = []
    chain = Chain(gas_price=2, log=rows.append)
    chain.ledger.mint("A", 10**6)  # the add's fee: 2 x ~200,000 gas
    model = NearestCentroid(2).fit([[0.0, 0.0], [1.0, 1.0]], [0, 1])
    tr = CollaborativeTrainer(chain, model, DataHandler(), DepositRefundTake(cost_weight=1))
    chain.clock.now = 100
    state, fee = tr.state_snapshot(), 2 * tr.call_gas("add_data", [5.0, 5.0], 1, "A")
    assert reason(tr.add_data, "A", 99, [5.0, 5.0], 1) == "insufficient_value"  # needs 360
    assert rows[-1] == (100, "A", "add_data", False, "insufficient_value", 99, fee // 2, fee, None)
    assert chain.ledger.balance("A") == 10**6 - fee and chain.ledger.balance("fee_sink") == fee
    assert tr.state_snapshot()[1:] == state[1:] and len(rows) == 1  # [0]: the balances
    assert reason(tr.add_data, "A", 10**6 - fee, [5.0, 5.0], 1) == "insufficient_funds"
    assert rows[-1][3:9] == (False, "insufficient_funds", 10**6 - fee, 0, 0, None)
    assert chain.ledger.balance("A") == 10**6 - fee and tr.state_snapshot()[1:] == state[1:]
    assert tr.add_data("A", 400, [5.0, 5.0], 1) == 360
    assert rows[-1] == (100, "A", "add_data", True, None, 400, fee // 2, fee, 360.0)
    assert chain.ledger.balance("A") == 10**6 - 2 * fee - 360 and len(rows) == 3


def test_trainer_accepts_the_older_three_argument_form() -> None:
    chain = Chain()
    im = Points()
    assert CollaborativeTrainer(chain, Oracle(), im).im is im
    dh = DataHandler()
    tr = CollaborativeTrainer(chain, Oracle(), dh, im, address="c2")
    assert tr.data is dh and tr.im is im and tr.address == "c2"
    with pytest.raises(TypeError):
        CollaborativeTrainer(chain, Oracle(), dh)


# -- Points ---------------------------------------------------------------------------------


def test_points_claim_once_and_reports_block_the_author() -> None:
    chain = Chain()
    oracle = Oracle()
    tr = CollaborativeTrainer(
        chain, oracle, DataHandler(), Points(refund_time_s=100, any_address_claim_wait_time_s=1_000)
    )
    assert tr.add_data("A", 0, [1], 1) == 0 and tr.add_data("A", 0, [2], 0) == 0
    oracle.p = 1
    chain.clock.now = 99
    assert tr.check_refund("A", [1], 1, 0) == "too_early"
    assert tr.check_report("B", [2], 0, 0, "A") == "too_early"
    chain.clock.now = 100
    assert tr.refund("A", [1], 1, 0) == 0
    assert tr.im.num_valid == {"A": 1}
    assert tr.check_refund("A", [1], 1, 0) == "nothing_left_to_claim"  # once only
    assert tr.check_report("B", [1], 1, 0, "A") == "nothing_left_to_claim"
    # [2] labelled 0; the model says 1: the author cannot score it, others may report it
    assert tr.check_refund("A", [2], 0, 0) == "model_disagrees"
    assert tr.check_report("A", [2], 0, 0, "A") == "own_deposit"
    assert tr.report("B", [2], 0, 0, "A") == 0
    oracle.p = 0  # even if the model changes its mind, the report has used it up
    assert tr.check_refund("A", [2], 0, 0) == "nothing_left_to_claim"
    assert tr.im.num_valid == {"A": 1} and tr.remaining([2], 0, 0, "A") == 0
    assert chain.ledger.total() == 0  # no money moves


# -- Prediction market ----------------------------------------------------------------------

PIECES = [
    [([-2.5, -2.0], 0), ([0.7, 1.2], 1), ([1.9, 2.4], 1)],
    [([-1.2, -0.3], 0), ([2.2, 0.1], 1), ([0.4, -0.2], 0)],
    [([0.3, 2.1], 1), ([-0.9, -2.2], 0), ([-0.1, 0.6], 1)],
    [([1.1, -0.4], 1), ([-0.5, 0.2], 0)],
]


def market(semantics: str, bounty: int = 5, **opts):
    chain = Chain()
    for a in ("A", "B", "P"):
        chain.ledger.mint(a, 100)
    model = NearestCentroid(2).fit([[-2, -1], [-1, -2], [2, 1], [1, 2]], [0, 0, 1, 1])
    pm = PredictionMarket(
        chain, model, semantics=semantics, any_address_claim_wait_time_s=1_000, **opts
    )
    pm.initialize_market("P", bounty, [hash_piece(p) for p in PIECES], 50, 10, 0)
    return chain, pm


def finish(pm: PredictionMarket) -> None:
    pm.end_market("P")
    while pm.state == "REVEAL_TEST_SET":
        pm.verify_next_test_set("P", PIECES[pm.next_verify])
    while pm.state in ("REWARD", "REWARD_RESTART"):
        pm.process_contribution("P")


def test_pm_commitments_are_checked_and_phases_enforced() -> None:
    chain, pm = market("corrected")
    assert pm.bounty == 5 and chain.ledger.balance("contract") == 5
    before = pm.state_snapshot()
    assert reason(pm.add_data, "A", 1, [0.0, 0.0], 1) == "wrong_phase"
    assert reason(pm.reveal_init_test_set, "P", PIECES[1]) == "test_set_mismatch"
    tampered = [(PIECES[0][0][0], 1)] + PIECES[0][1:]
    assert reason(pm.reveal_init_test_set, "P", tampered) == "test_set_mismatch"
    assert pm.state_snapshot() == before
    pm.reveal_init_test_set("P", PIECES[0])
    assert reason(pm.add_data, "A", 0, [0.0, 0.0], 1) == "insufficient_value"
    pm.add_data("A", 3, [1.5, 1.5], 1)
    assert chain.ledger.balance("A") == 99  # without greater deposits the stake is min_stake
    assert reason(pm.end_market, "P") == "market_cannot_end_yet"  # 1 < 10 contributions, t < 50
    chain.clock.now = 50
    pm.end_market("P")
    assert reason(pm.verify_next_test_set, "P", PIECES[2]) == "test_set_mismatch"  # order: 1, 2, 3
    pm.verify_next_test_set("P", PIECES[1])
    assert reason(pm.process_contribution, "P") == "wrong_phase"
    pm.verify_next_test_set("P", PIECES[2])
    pm.verify_next_test_set("P", PIECES[3])
    assert pm.state == "REWARD_RESTART" and len(pm.test_y) == 8  # the revealed piece is not scored
    assert reason(pm.refund, "A", [1.5, 1.5], 1, 0) == "rewards_not_processed"


def test_a_pm_add_runs_as_chain_execute_runs_a_call() -> None:
    """A stake (PredictionMarket.add_data, without Chain.execute's closure) is priced by the
    schedule's add_data gas for the features sent, charged first; a check that rejects it keeps
    the fee, logs one rejected record with the gas and the fee and writes nothing else; a sender
    who cannot pay value + fee is refused before any fee; an accepted stake logs its cost."""
    rows: list = []
    chain = Chain(gas_price=2, log=rows.append)
    for a in ("A", "P"):
        chain.ledger.mint(a, 10**7)
    model = NearestCentroid(2).fit([[-2, -1], [-1, -2], [2, 1], [1, 2]], [0, 0, 1, 1])
    pm = PredictionMarket(chain, model, semantics="corrected", any_address_claim_wait_time_s=1_000)
    pm.initialize_market("P", 5, [hash_piece(p) for p in PIECES], 50, 10, 0)
    x = [0.5, 0.0]  # a dense list sends every feature: 2
    gas = chain.gas_schedule.gas("add_data", "nearest_centroid", 2)
    fee, before, n = 2 * gas, pm.state_snapshot(), len(rows)
    assert reason(pm.add_data, "A", 1, x, 1) == "wrong_phase"  # before the test set's reveal
    assert rows[-1] == (0, "A", "add_data", False, "wrong_phase", 1, gas, fee, None)
    assert pm.state_snapshot()[1:] == before[1:] and chain.ledger.balance("A") == 10**7 - fee
    pm.reveal_init_test_set("P", PIECES[pm.reveal_index])
    chain.clock.now = 7
    assert reason(pm.add_data, "A", pm.min_stake - 1, x, 1) == "insufficient_value"
    assert rows[-1][3:9] == (False, "insufficient_value", pm.min_stake - 1, gas, fee, None)
    held = chain.ledger.balance("A")
    assert reason(pm.add_data, "A", held, x, 1) == "insufficient_funds"  # held + fee > held
    assert rows[-1][3:9] == (False, "insufficient_funds", held, 0, 0, None)
    assert chain.ledger.balance("A") == held
    assert pm.add_data("A", pm.min_stake, x, 1) == pm.min_stake
    assert rows[-1] == (7, "A", "add_data", True, None, pm.min_stake, gas, fee, float(pm.min_stake))
    assert chain.ledger.balance("A") == held - fee - pm.min_stake
    assert reason(pm.add_data, "A", pm.min_stake, x, 1) == "duplicate_data"
    assert rows[-1][3:9] == (False, "duplicate_data", pm.min_stake, gas, fee, None)
    assert len(rows) == n + 6 and len(pm.market) == 1
    chain.ledger.check_conserved()


def test_pm_bad_contributor_is_paid_more_than_its_stake_only_by_the_reference() -> None:
    """Bug 2: without grouping, a removed contribution's losses are never debited."""
    out = {}
    for semantics in ("reference-python", "corrected"):
        chain, pm = market(semantics, bounty=5)
        pm.reveal_init_test_set("P", PIECES[0])
        for t, (x, y) in enumerate((([-3.0, -3.0], 1), ([-3.0, 1.5], 0), ([-3.0, 3.0], 0))):
            chain.clock.now = t
            pm.add_data("A", 1, x, y)
        chain.clock.now = 50
        finish(pm)
        assert pm.best_change["A"] <= 0  # A's data never raised the accuracy
        got = sum(
            pm.refund("A", x, y, t)
            for t, (x, y) in enumerate((([-3.0, -3.0], 1), ([-3.0, 1.5], 0), ([-3.0, 3.0], 0)))
        )
        out[semantics] = (got, chain.ledger.balance("A"))
        assert 5 + 3 == pm.paid_out + chain.ledger.balance("contract")
    assert out["reference-python"] == (pytest.approx(3.375), pytest.approx(100.375))  # staked 3
    assert out["corrected"] == (1, 98)  # 1.375 owed, paid in whole units, never above the stake


def test_pm_report_bug_and_its_fix() -> None:
    """Bug 1: the reference's report deletes the reporter's balance instead of the submitter's."""
    res = {}
    for semantics in ("reference-python", "corrected"):
        chain, pm = market(semantics, bounty=4, allow_greater_deposit=True)
        pm.reveal_init_test_set("P", PIECES[0])
        pm.add_data("A", 10, [1.5, 1.5], 1)
        pm.add_data("B", 10, [-1.5, -1.5], 0)
        chain.clock.now = 50
        finish(pm)
        end = pm.reward_phase_end_time_s
        assert pm.report("B", [1.5, 1.5], 1, 0, "A") == 0  # before the wait: nothing
        chain.clock.now = end + 1_000
        mb = dict(pm.market_balances)
        took = pm.report("B", [1.5, 1.5], 1, 0, "A")
        a_refund = pm.refund("A", [1.5, 1.5], 1, 0)
        b_refund = pm.refund("B", [-1.5, -1.5], 0, 0)
        res[semantics] = (mb, took, a_refund, b_refund)
        assert chain.ledger.total() == pytest.approx(300)
    mb, took, a_refund, b_refund = res["reference-python"]
    assert took == mb["A"] and a_refund == mb["A"] and b_refund == 0  # A paid twice, B lost its own
    mb, took, a_refund, b_refund = res["corrected"]
    assert took == int(mb["A"]) and a_refund == 0 and b_refund == int(mb["B"])


def test_pm_reference_collections_read_balances_as_the_reference_does() -> None:
    """The reference keeps market balances in a ``defaultdict``: a collection that reads a missing
    balance leaves a 0 entry, which a later report's deletion of the reporter's entry finds; and
    it pays a negative balance, which its ledger refuses. (Both found by replaying traces
    recorded from the reference with other seeds.)"""
    chain, pm = market("reference-python", bounty=4, allow_greater_deposit=True)
    pm.reveal_init_test_set("P", PIECES[0])
    pm.add_data("A", 10, [1.5, 1.5], 1)
    pm.add_data("B", 10, [-1.5, -1.5], 0)
    chain.clock.now = 50
    finish(pm)
    chain.clock.now = pm.reward_phase_end_time_s + 1_000
    owed_a = pm.market_balances["A"]
    assert pm.report("B", [1.5, 1.5], 1, 0, "A") == owed_a  # B's own entry goes (the bug)
    assert reason(pm.report, "B", [1.5, 1.5], 1, 0, "A") == "reference_report_bug"
    assert pm.refund("B", [-1.5, -1.5], 0, 0) == 0  # reads B's missing balance: a 0 entry
    assert pm.market_balances["B"] == 0
    assert pm.report("B", [1.5, 1.5], 1, 0, "A") == owed_a  # so this report finds it
    assert chain.ledger.balance("B") == pytest.approx(90 + 2 * owed_a)
    # A negative balance: the reference's report pays it and its ledger refuses the payment.
    pm.market_balances["A"] = -0.5
    before = pm.state_snapshot()
    assert reason(pm.report, "P", [1.5, 1.5], 1, 0, "A") == "negative_amount"
    assert pm.state_snapshot() == before
    assert pm.refund("A", [1.5, 1.5], 1, 0) == 0  # a refund pays nothing instead
    # A reward phase that ended at time 0: the reference asserts the end time is > 0.
    for semantics, refused in (("reference-python", "rewards_not_processed"), ("corrected", None)):
        chain = Chain()
        for a in ("A", "P"):
            chain.ledger.mint(a, 100)
        model = NearestCentroid(2).fit([[-2, -1], [-1, -2], [2, 1], [1, 2]], [0, 0, 1, 1])
        pm = PredictionMarket(chain, model, semantics=semantics, any_address_claim_wait_time_s=0)
        pm.initialize_market("P", 5, [hash_piece(p) for p in PIECES], 0, 1, 0)
        pm.reveal_init_test_set("P", PIECES[0])
        pm.add_data("A", 1, [1.5, 1.5], 1)
        finish(pm)
        assert pm.reward_phase_end_time_s == 0
        assert reason(pm.report, "P", [1.5, 1.5], 1, 0, "A") == refused


def test_pm_withdraw_unused_bounty_only_corrected_and_only_the_provider() -> None:
    chain, pm = market("corrected", bounty=7)
    pm.reveal_init_test_set("P", PIECES[0])
    pm.add_data("A", 1, [1.5, 1.5], 1)
    chain.clock.now = 50
    assert reason(pm.withdraw_unused_bounty, "P") == "wrong_phase"
    finish(pm)
    assert reason(pm.withdraw_unused_bounty, "A") == "not_provider"
    owed = pm.outstanding()
    got = pm.withdraw_unused_bounty("P")
    assert got == 8 - owed and chain.ledger.balance("contract") == owed
    assert pm.refund("A", [1.5, 1.5], 1, 0) == owed and chain.ledger.balance("contract") == 0
    chain.ledger.check_conserved()
    _, ref = market("reference-python")
    assert reason(ref.withdraw_unused_bounty, "P") == "wrong_phase"


def test_pm_empty_market_ends_its_reward_phase() -> None:
    chain, pm = market("corrected")
    pm.reveal_init_test_set("P", PIECES[0])
    chain.clock.now = 50
    finish(pm)
    assert pm.state == "REWARD_COLLECT" and pm.withdraw_unused_bounty("P") == 5


def test_an_add_pays_gas_for_what_its_update_writes():
    """Perceptron: a mistake on unseen features writes new slots (dearest); the same sample again is
    no mistake and writes nothing (cheapest); a mistake on seen features rewrites slots, here back
    to zero, which earns the EVM's storage refund."""
    import numpy as np

    from sum_abm.chain.gas import SSTORE_CLEARS_REFUND
    from sum_abm.learners import Perceptron, Sample

    chain = Chain(gas_price=3)
    chain.ledger.mint("A", 10**9)
    p = Perceptron(8)
    tr = CollaborativeTrainer(chain, p, DataHandler(), DepositRefundTake(cost_weight=0))
    sched, fees = chain.gas_schedule, []

    def add(idx, y):
        before = chain.ledger.balance("A")
        tr.add_data(
            "A", 0, Sample(np.array(idx, dtype=np.int32), np.ones(len(idx)), key=tuple(idx)), y
        )
        chain.clock.now += 1
        fees.append(before - chain.ledger.balance("A"))

    add(
        [1, 2, 3], 1
    )  # score 0: a mistake; three weights and the intercept stored for the first time
    add([1, 2, 3], 1)  # score 4 > 0: nothing written
    add(
        [2, 3, 5], 0
    )  # score 3 for class 0: a mistake; weight 5 new; weights 2, 3 and the intercept back to 0
    new = sched.extra["add_data_new_slot_per_feature"]["perceptron"]
    full = sched.gas("add_data", "perceptron", 3)
    no = sched.extra["add_data_no_update"]["perceptron"]
    assert fees == [
        3 * (full + 4 * new),
        3 * (no["base"] + 3 * no["per_feature"]),
        3 * (full + new - 3 * SSTORE_CLEARS_REFUND),
    ]
    assert fees[1] < fees[2] < fees[0]


def test_a_refund_pays_gas_for_the_counters_it_writes_first():
    """The market's first refund writes the sender's good-data count and the total for the first
    time; another address's first refund, one of them; a repeat refund, neither."""
    import numpy as np

    from sum_abm.learners import Perceptron, Sample

    rows: list = []
    chain = Chain(gas_price=1, log=rows.append)
    for a in "AB":
        chain.ledger.mint(a, 10**9)
    p = Perceptron(8)
    tr = CollaborativeTrainer(
        chain, p, DataHandler(), DepositRefundTake(refund_time_s=10, cost_weight=1)
    )
    x = Sample(np.array([1, 2], dtype=np.int32), np.ones(2), key=(1, 2))
    adds = []
    for who in "ABA":
        tr.add_data(
            who, 10**6, x, 0
        )  # score 0: class 0 learnt; the model agrees with every later refund
        adds.append((who, chain.clock.now))
        chain.clock.now += 1
    chain.clock.now += 10
    sched, fees = chain.gas_schedule, []
    for who, t in adds:
        assert tr.refund(who, x, 0, t) > 0
        fees.append(rows[-1][7])  # the fee field of the refund's record
    first = sched.gas("refund", "perceptron", 2)
    steady = sched.refund_gas("perceptron", 2, 2, sender_counted=True)
    assert fees == [first, (first + steady) // 2, steady]
    assert (
        abs(first - steady - 2 * 17_100) <= 2
    )  # two first writes; fitted terms rounded to whole gas


@pytest.mark.parametrize("gas_price", [0, 1])
@pytest.mark.parametrize("semantics", ["solidity", "reference-python", "corrected"])
def test_a_batch_of_claims_is_the_same_claims_one_by_one(semantics, gas_price) -> None:
    """claims_if_accepted (the market's lean path) against claim_if_accepted claim by claim:
    same results, balances, contract state and log, a refund verifying data for the reports
    after it in the same batch."""

    def deployed():
        log: list[tuple] = []
        chain = Chain(gas_price=gas_price, log=log.append)
        for a in "ABC":
            chain.ledger.mint(a, 10**8)
        tr = CollaborativeTrainer(chain, Oracle(), DepositRefundTake(10, 10_000, 1, semantics))
        for t, (who, x) in enumerate([("A", 1), ("B", 2), ("C", 3), ("C", 4)], start=1):
            chain.clock.now = t * 4
            tr.add_data(who, 3_600, [x], 1)
        chain.clock.now = 100
        tr.claim_if_accepted("B", "refund", [2], 1, 8, "B", prediction=1)
        return chain, tr, log

    claims = [
        ("report", [3], 1, 12, "C", 0),  # A has no verified data yet: not sent
        ("refund", [1], 1, 4, "A", 1),  # verifies A's data
        ("report", [3], 1, 12, "C", 0),  # now accepted: A's share of C's deposit
        ("report", [3], 1, 12, "C", 0),  # already claimed by A
        ("report", [4], 1, 16, "C", 1),  # the model agrees
        ("report", [9], 1, 16, "C", 0),  # no such contribution
    ]
    chain1, tr1, log1 = deployed()
    one_by_one = [tr1.claim_if_accepted("A", *c) for c in claims]
    chain2, tr2, log2 = deployed()
    batch = tr2.claims_if_accepted("A", claims)
    assert batch == one_by_one
    assert tr2.state_snapshot() == tr1.state_snapshot() and log2 == log1
    dep = tr1.data.get([3], 1, 12, "C").initial_deposit
    share = dep * 1 / 2 if semantics == "reference-python" else dep * 1 // 2
    assert [ok for ok, _, _ in batch] == [False, True, True, False, False, False]
    assert batch[2][1] == share and batch[2][2] == dep - share
    assert [r[2] for r in log2[-2:]] == ["refund", "report"]
    assert all(r[7] == (r[6] if gas_price else 0) for r in log2)
    chain2.ledger.check_conserved()


def test_claimers_read_like_the_set_of_addresses_they_replace() -> None:
    import copy
    import pickle

    from sum_abm.contract.data_handler import Claimers

    names = [f"claimer-{i}" for i in (0, 7, 300, 999)]
    c = Claimers(names[:3])
    c.add(names[3])
    c.add(names[0])  # a second claim by the same address changes nothing
    assert len(c) == 4 and c == set(names) and set(c) == set(names)
    assert names[2] in c and "claimer-1" not in c and "never-seen" not in c
    assert not Claimers() and c
    twin = copy.deepcopy(c)
    twin.add("claimer-1")
    assert "claimer-1" not in c and len(twin) == 5
    # pickled by address (another process numbers addresses its own way)
    assert b"claimer-300" in pickle.dumps(c) and pickle.loads(pickle.dumps(c)) == c
