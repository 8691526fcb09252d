"""The contract layer against a real EVM (titanoboa: Vyper + py-evm, offline).

Differential test: random Deposit-Refund-Take call sequences (adds, refunds, reports, time steps
that land on the refund and any-address boundaries) run on the Python contract layer (solidity
semantics, integer perceptron) and on the Vyper contract give the same accept/reject for every call
and the same integer balances. And the shipped gas schedule is within 10 % of fresh measurements."""

from __future__ import annotations

import numpy as np
import pytest

import boa  # the "evm" extra: part of the test install (README), so this test always runs

from sum_abm.chain import Chain, Rejected  # noqa: E402
from sum_abm.contract import CollaborativeTrainer, DepositRefundTake  # noqa: E402
from sum_abm.evm.gas import CONTRACT, verify  # noqa: E402
from sum_abm.learners import Perceptron, Sample  # noqa: E402

RT, AW = 86_400, 777_600
N_SEQUENCES = 200


def _sample(x):
    idx = np.asarray(x, dtype=np.int32)
    return Sample(idx, np.ones(len(idx)), key=tuple(x))


@pytest.fixture(scope="module")
def deployer():
    return boa.load_partial(str(CONTRACT))


def _run_sequence(deployer, seed: int) -> int:
    rng = np.random.default_rng(seed)
    cw = int(rng.choice([0, 1, 2, 5]))
    with boa.env.anchor():
        evm = deployer.deploy(RT, AW, cw)
        t0 = boa.env.evm.patch.timestamp
        names = ["A", "B", "C"]
        addrs = {n: boa.env.generate_address(n) for n in names}
        chain = Chain()
        py = CollaborativeTrainer(chain, Perceptron(64, integer_weights=True),
                                  DepositRefundTake(RT, AW, cw, "solidity", deploy_time_s=t0))
        for n in names:
            boa.env.set_balance(addrs[n], 50_000)
            chain.ledger.mint(n, 50_000)
        chain.clock.now = t0
        adds: list[tuple[list[int], int, int, str]] = []
        checked = 0
        for _ in range(int(rng.integers(8, 25))):
            kind = rng.choice(["add", "add", "refund", "report", "wait"])
            who = str(rng.choice(names))
            if kind == "wait" or (kind != "add" and not adds):
                if adds and rng.random() < 0.5:  # land on a boundary of an earlier contribution
                    t_add = adds[int(rng.integers(len(adds)))][2]
                    target = t_add + int(rng.choice([RT - 1, RT, RT + 1, AW - 1, AW, AW + 1]))
                    dt = max(0, target - chain.clock.now)
                else:
                    dt = int(rng.choice([0, 1, 60, 3_600, RT // 2, RT, 3 * RT]))
                if dt:
                    boa.env.time_travel(seconds=dt)
                    chain.clock.now += dt
                continue
            if kind == "add":
                x = sorted(int(v) for v in rng.choice(12, size=int(rng.integers(1, 6)), replace=False))
                y = int(rng.integers(2))
                value = int(rng.choice([0, 10, 100, 4_000, 20_000]))
                args_py = (who, value, _sample(x), y)
                call_evm = lambda: evm.add_data(x, y, value=value)  # noqa: E731
                py_call = lambda: py.add_data(*args_py)  # noqa: E731
            else:
                x, y, t, author = adds[int(rng.integers(len(adds)))]
                if kind == "refund":
                    py_call = lambda: py.refund(who, _sample(x), y, t)  # noqa: E731
                    call_evm = lambda: evm.refund(x, y, t)  # noqa: E731
                else:
                    py_call = lambda: py.report(who, _sample(x), y, t, author)  # noqa: E731
                    call_evm = lambda: evm.report(x, y, t, addrs[author])  # noqa: E731
            try:
                py_call()
                py_ok = True
            except Rejected:
                py_ok = False
            try:
                with boa.env.prank(addrs[who]):
                    call_evm()
                evm_ok = True
            except Exception:  # a revert
                evm_ok = False
            assert py_ok == evm_ok, (seed, kind, who, py_ok, evm_ok)
            if kind == "add" and py_ok:
                adds.append((x, y, chain.clock.now, who))
            for n in names:
                assert chain.ledger.balance(n) == boa.env.get_balance(addrs[n]), (seed, n)
            assert chain.ledger.balance("contract") == boa.env.get_balance(evm.address)
            checked += 1
        return checked


def test_python_contract_layer_matches_the_evm(deployer):
    calls = sum(_run_sequence(deployer, seed) for seed in range(N_SEQUENCES))
    assert calls > N_SEQUENCES * 5


def test_shipped_gas_schedule_within_ten_percent():
    rows = verify((16, 100))
    assert max(r["rel_error"] for r in rows) <= 0.10, rows
