"""The contract layer against a real EVM (titanoboa: Vyper + py-evm, offline).

Differential test: random Deposit-Refund-Take call sequences (adds with every kind of value, same-
second duplicates, refunds and reports by anyone, time steps that land on the refund and
any-address boundaries) run on the Python contract layer (``solidity`` semantics) and on the Vyper
contracts give the same accept/reject and reason for every call, the same integer balances after
every call, and the same mechanism and data-handler state at the end. The model is an oracle
whose predictions the test gives, and, in a second set, the integer perceptron learning on both.
"""

from __future__ import annotations

import numpy as np
import pytest

boa = pytest.importorskip("boa")  # the "evm" extra is part of the test install

from eth_abi import encode  # noqa: E402
from eth_utils import keccak  # noqa: E402

from sum_abm.chain import Chain, Rejected  # noqa: E402
from sum_abm.contract import CollaborativeTrainer, DepositRefundTake  # noqa: E402
from sum_abm.evm.system import deploy_system, revert_reason  # noqa: E402
from sum_abm.learners import Perceptron, Sample  # noqa: E402

RT, AW = 86_400, 777_600
COST_WEIGHTS = (0, 1, 2, 5)
N_ORACLE_SEQUENCES = 200
N_PERCEPTRON_SEQUENCES = 30
NAMES = ("A", "B", "C")


class Oracle:
    """The conformance traces' model on the Python side: never learns; predictions come from the test."""

    kind = "oracle"
    version = 0

    def predict_one(self, x):  # pragma: no cover - the test always passes the prediction
        raise AssertionError("the test gives every prediction")

    def update(self, x, y) -> int:
        return 0


@pytest.fixture(scope="module")
def systems():
    """One deployment per (model, cost weight), compiled once; each sequence runs in an anchor."""
    return {
        (kind, cw): deploy_system(
            kind, refund_time_s=RT, any_address_claim_wait_time_s=AW, cost_weight=cw
        )
        for kind in ("oracle", "perceptron")
        for cw in COST_WEIGHTS
    }


def _key(x, y, t, author) -> bytes:
    return keccak(encode(["int256[]", "uint256", "uint256", "address"], [list(x), y, t, author]))


class Pair:
    """The same contract on both sides: every call runs on the Python layer and on the EVM, and
    must give the same reason (None when accepted) and the same balances afterwards."""

    def __init__(self, systems, kind: str, cw: int, balances: dict[str, int]) -> None:
        self.kind, self.evm = kind, systems[(kind, cw)]
        self.addrs = {n: boa.env.generate_address(n) for n in NAMES}
        self.chain = Chain()
        self.learner = Oracle() if kind == "oracle" else Perceptron(16, integer_weights=True)
        self.py = CollaborativeTrainer(
            self.chain,
            self.learner,
            None,
            DepositRefundTake(
                RT, AW, cw, "solidity", deploy_time_s=int(self.evm.mechanism.last_update_time_s())
            ),
        )
        self.chain.clock.now = int(boa.env.evm.patch.timestamp)
        for n, amount in balances.items():
            boa.env.set_balance(self.addrs[n], amount)
            self.chain.ledger.mint(n, amount)
        self.adds: list[
            tuple[tuple[int, ...], int, int, str]
        ] = []  # attempted adds, accepted or not
        self.reasons: set[str] = set()
        self.calls = 0

    @property
    def now(self) -> int:
        return self.chain.clock.now

    def wait(self, dt: int) -> None:
        if dt > 0:
            boa.env.time_travel(seconds=dt)
            self.chain.clock.now += dt

    def add(self, who: str, x: tuple[int, ...], y: int, value: int) -> str | None:
        self.adds.append((x, y, self.now, who))
        return self._both(
            "add",
            lambda: self.py.add_data(who, value, _x(self.kind, x), y),
            lambda: self.evm.add_data(self.addrs[who], x, y, value),
        )

    def refund(self, who: str, ref: tuple, prediction: int | None = None) -> str | None:
        x, y, t, _ = ref
        self._tell(prediction)
        return self._both(
            "refund",
            lambda: self.py.refund(who, _x(self.kind, x), y, t, prediction),
            lambda: self.evm.refund(self.addrs[who], x, y, t),
        )

    def report(self, who: str, ref: tuple, prediction: int | None = None) -> str | None:
        x, y, t, author = ref
        self._tell(prediction)
        return self._both(
            "report",
            lambda: self.py.report(who, _x(self.kind, x), y, t, author, prediction),
            lambda: self.evm.report(self.addrs[who], x, y, t, self.addrs[author]),
        )

    def _tell(self, prediction: int | None) -> None:
        if self.kind == "oracle":
            self.evm.classifier.set_prediction(prediction)

    def _both(self, act: str, py_call, evm_call) -> str | None:
        try:
            py_call()
            py_reason = None
        except Rejected as r:
            py_reason = r.reason
        try:
            evm_call()
            evm_reason = None
        except Exception as err:  # a revert, or a value above the balance
            evm_reason = revert_reason(err)
            if py_reason == "insufficient_funds":  # the wallet refuses: no EVM reason string
                evm_reason = py_reason
        where = (self.kind, self.calls, act, self.adds[-1] if act == "add" else None)
        assert py_reason == evm_reason, where
        for n in NAMES:
            assert self.chain.ledger.balance(n) == boa.env.get_balance(self.addrs[n]), where
        assert self.chain.ledger.balance("contract") == boa.env.get_balance(self.evm.address), where
        self.reasons.add(py_reason or f"ok_{act}")
        self.calls += 1
        return py_reason

    def assert_same_state(self) -> None:
        im, evm = self.py.im, self.evm
        assert im.last_update_time_s == evm.mechanism.last_update_time_s()
        assert im.total_good == evm.mechanism.total_good()
        for n in NAMES:
            assert im.good_count(n) == evm.mechanism.num_good(self.addrs[n])
        for x, y, t, author in set(self.adds):
            stored = self.py.data.get(x, y, t, author)
            key = _key(x, y, t, self.addrs[author])
            on_chain = evm.data_handler.stored(key)
            if stored is None:
                assert on_chain.sender == "0x0000000000000000000000000000000000000000"
                continue
            assert (on_chain.initial_deposit, on_chain.claimable) == (
                stored.initial_deposit,
                stored.claimable,
            )
            for n in NAMES:
                assert evm.data_handler.claimed_by(key, self.addrs[n]) == (n in stored.claimed_by)
        if isinstance(self.learner, Perceptron):
            assert self.learner.b == evm.classifier.intercept()
            for i in range(16):
                assert self.learner.w[i] == evm.classifier.weights(i)


def _run_sequence(systems, seed: int, kind: str) -> tuple[int, set[str]]:
    rng = np.random.default_rng(seed)
    cw = int(rng.choice(COST_WEIGHTS))
    with boa.env.anchor():
        pair = Pair(
            systems, kind, cw, {n: int(rng.choice([20_000, 200_000, 2_000_000])) for n in NAMES}
        )
        accepted: list[tuple[tuple[int, ...], int, int, str]] = []
        last_report = None
        for _ in range(int(rng.integers(10, 30))):
            act = str(rng.choice(["add"] * 3 + ["refund"] * 3 + ["report"] * 3 + ["wait"] * 3))
            who = str(rng.choice(NAMES))
            if act == "wait" or (act != "add" and not pair.adds):
                if pair.adds and rng.random() < 0.6:  # land on a window boundary of an earlier add
                    t_add = _pick(rng, pair.adds, accepted)[2]
                    pair.wait(
                        t_add + int(rng.choice([RT - 1, RT, RT + 1, AW - 1, AW, AW + 1])) - pair.now
                    )
                else:
                    pair.wait(int(rng.choice([1, 60, 3_600, RT // 2, RT, RT, 3 * RT, AW])))
                continue
            if act == "add":
                if (
                    pair.adds and rng.random() < 0.25
                ):  # the same data again, often by its author in the same second
                    x, y, _, author = pair.adds[-1]
                    who = author if rng.random() < 0.7 else who
                else:
                    x = tuple(
                        sorted(
                            int(v)
                            for v in rng.choice(12, size=int(rng.integers(1, 6)), replace=False)
                        )
                    )
                    y = int(rng.integers(2))
                value = int(
                    rng.choice([0, 100, 4_000, 20_000, 20_000, 100_000, 100_000, 3_000_000])
                )
                if pair.add(who, x, y, value) is None:
                    accepted.append(pair.adds[-1])
                continue
            repeat = act == "report" and last_report is not None and rng.random() < 0.5
            if repeat:  # the same reporter again on data it took part of
                ref, who, prediction = last_report
            else:
                ref = _pick(rng, pair.adds, accepted)
                if act == "refund" and rng.random() < 0.75:
                    who = ref[3]  # mostly by the submitter (anyone else: data_not_found)
                prediction = (
                    None if kind != "oracle" else int(ref[1] if rng.random() < 0.5 else 1 - ref[1])
                )
            if act == "refund":
                pair.refund(who, ref, prediction)
            elif pair.report(who, ref, prediction) is None:
                last_report = (ref, who, prediction)
        pair.assert_same_state()
    return pair.calls, pair.reasons


def _pick(rng, adds, accepted):
    """An earlier add, mostly an accepted one (a rejected one's lookup gives data_not_found)."""
    pool = accepted if accepted and rng.random() < 0.85 else adds
    return pool[int(rng.integers(len(pool)))]


def _x(kind: str, x: tuple[int, ...]):
    if kind == "oracle":
        return x
    idx = np.asarray(x, dtype=np.int32)
    return Sample(idx, np.ones(len(idx)), key=x)


@pytest.mark.slow
def test_python_drt_matches_the_evm_with_an_oracle_model(systems):
    calls, reasons = 0, set()
    for seed in range(N_ORACLE_SEQUENCES):
        c, r = _run_sequence(systems, seed, "oracle")
        calls, reasons = calls + c, reasons | r
    assert calls > N_ORACLE_SEQUENCES * 8
    # every Solidity-semantics reason code and every kind of success occurred
    assert reasons >= {
        "insufficient_funds",
        "insufficient_value",
        "duplicate_data",
        "data_not_found",
        "already_claimed_by_submitter",
        "nothing_left_to_claim",
        "too_early",
        "model_disagrees",
        "own_deposit",
        "model_agrees",
        "reporter_has_no_good_data",
        "ok_add",
        "ok_refund",
        "ok_report",
    }, reasons


@pytest.mark.slow
def test_python_drt_matches_the_evm_with_the_integer_perceptron(systems):
    calls, reasons = 0, set()
    for seed in range(N_PERCEPTRON_SEQUENCES):
        c, r = _run_sequence(systems, 10_000 + seed, "perceptron")
        calls, reasons = calls + c, reasons | r
    assert calls > N_PERCEPTRON_SEQUENCES * 8
    assert {"ok_add", "ok_refund", "ok_report", "model_agrees", "too_early"} <= reasons, reasons


def test_partial_takes_repeat_reports_and_the_long_wait(systems):
    """Scripted: takes split by verified-good counts, a repeat report, own deposits, the any-address
    wait, and a share that floors to 0 (then the whole claimable is taken)."""
    with boa.env.anchor():
        pair = Pair(systems, "oracle", 1, {n: 10**6 for n in NAMES})
        pair.wait(3_600)
        steps = []
        steps.append(pair.add("A", (1, 2), 1, 10**5))
        steps.append(pair.add("B", (3,), 1, 10**5))
        steps.append(pair.add("C", (4, 5), 0, 10**5))  # same second: cost 3600
        r1, r2, r3 = pair.adds
        pair.wait(RT)
        steps.append(pair.refund("A", r1, 1))
        steps.append(pair.refund("B", r2, 1))  # total_good = 2
        steps.append(pair.report("A", r3, 1))  # 3600*1//2 = 1800 of 3600
        assert pair.py.data.get(*r3).claimable == 1_800
        steps.append(pair.report("A", r3, 1))
        steps.append(pair.report("C", r3, 1))
        steps.append(pair.report("B", r3, 1))  # the other half
        steps.append(pair.refund("C", r3, 0))
        steps.append(pair.report("C", r1, 0))
        pair.wait(3_600**2 - RT)  # dt = 3600**2 since the last add: cost 3600 // isqrt(dt) = 1
        steps.append(pair.add("B", (7,), 1, 10))
        r5 = pair.adds[-1]
        pair.wait(RT)
        steps.append(pair.report("A", r5, 0))  # 1*1//2 = 0: takes the whole 1
        steps.append(pair.add("A", (8,), 0, 10**5))  # same second as the last add: 3600
        r6 = pair.adds[-1]
        pair.wait(AW)
        steps.append(pair.report("C", r6, 0))  # after the long wait anyone takes it all
        steps.append(pair.report("A", r6, 0))
        pair.assert_same_state()
    assert steps == [
        None,
        None,
        None,
        None,
        None,
        None,
        "already_claimed_by_reporter",
        "own_deposit",
        None,
        "nothing_left_to_claim",
        "nothing_left_to_claim",
        None,
        None,
        None,
        None,
        "nothing_left_to_claim",
    ]


@pytest.mark.parametrize("cw, again", [(0, None), (1, "duplicate_data")])
def test_same_data_in_the_same_second(systems, cw, again):
    """Solidity lets a key be stored again when nothing is claimable on it (free data)."""
    with boa.env.anchor():
        pair = Pair(systems, "oracle", cw, {n: 10**6 for n in NAMES})
        assert pair.add("A", (1, 2), 1, 10**4) is None
        assert pair.add("A", (1, 2), 1, 10**4) == again
        assert pair.add("B", (1, 2), 1, 100) == (
            None if cw == 0 else "insufficient_value"
        )  # cost 3600 when cw = 1
        pair.assert_same_state()
