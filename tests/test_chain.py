"""The chain substrate: integer ledger, block clock, gas schedule, atomic calls with fees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sum_abm.chain import (
    TX_FIELDS,
    Chain,
    Clock,
    GasSchedule,
    InsufficientFunds,
    Ledger,
    MoneyNotConserved,
    Rejected,
)
from sum_abm.chain import gas as gas_module


def test_ledger_refuses_an_overdraft_and_never_caps() -> None:
    led = Ledger()
    led.mint("A", 100)
    led.mint("B", 5)
    led.transfer("A", "B", 40)
    assert (led.balance("A"), led.balance("B"), led.balance("nobody")) == (60, 45, 0)
    with pytest.raises(InsufficientFunds) as err:
        led.transfer("A", "B", 61)
    assert (err.value.address, err.value.balance, err.value.amount) == ("A", 60, 61)
    assert (led.balance("A"), led.balance("B")) == (60, 45)  # nothing moved
    with pytest.raises(ValueError):
        led.transfer("A", "B", -1)
    led.transfer("C", "A", 0)  # an empty transfer from an unknown account is fine
    assert led.total() == 105
    led.check_conserved()


def test_ledger_conservation_check_catches_created_money() -> None:
    led = Ledger()
    led.mint("A", 10)
    led.restore({"A": 10, "B": 1})  # a bug that creates a token
    with pytest.raises(MoneyNotConserved):
        led.check_conserved()
    with pytest.raises(ValueError):
        led.mint("A", -1)


def test_clock_blocks_and_monotonic_time() -> None:
    c = Clock(0, block_time_s=15)
    c.advance_to(44)
    assert c.now == 30  # the block containing t=44
    c.advance_to(45)
    assert c.now == 45
    with pytest.raises(ValueError):
        c.advance_to(10)
    with pytest.raises(ValueError):
        Clock(0, block_time_s=0)


def test_gas_schedule_figures_and_replacement(tmp_path: Path) -> None:
    g = GasSchedule.load()
    data = json.loads(gas_module._DEFAULT.read_text())
    base, per = data["base"]["add_data"], data["per_feature"]["add_data"]["perceptron"]
    assert g.gas("add_data", "perceptron", 10) == base + 10 * per
    assert (
        g.gas("add_data", "some_new_learner", 10)
        == base + 10 * data["per_feature"]["add_data"]["*"]
    )
    assert g.gas("unknown_call") == 21_000  # the EVM's base transaction cost
    assert g.fee("add_data", 3, "perceptron", 10) == 3 * (base + 10 * per)
    f = tmp_path / "g.json"
    f.write_text(
        json.dumps(
            {
                "base": {"add_data": 50_000},
                "per_feature": {"add_data": {"*": 100}},
                "source": "test",
            }
        )
    )
    g2 = GasSchedule.load(f)
    assert g2.gas("add_data", "perceptron", 3) == 50_300 and g2.source == "test"


def test_chain_call_charges_fee_even_when_rejected_and_logs_every_call() -> None:
    rows: list[tuple] = []
    chain = Chain(
        gas_price=2,
        log=rows.append,
        gas_schedule=GasSchedule(base={"ok": 1_000, "bad": 500}, per_feature={"ok": {"*": 10}}),
    )
    chain.ledger.mint("A", 10_000)
    chain.clock.advance_to(7)

    def good() -> int:
        chain.ledger.transfer("A", "contract", 100)
        return 100

    def bad() -> None:
        raise Rejected("too_early")

    assert chain.execute("A", "ok", 100, good, n_features=5) == 100
    fee_ok = (1_000 + 5 * 10) * 2
    with pytest.raises(Rejected) as err:
        chain.execute("A", "bad", 0, bad)
    assert err.value.reason == "too_early"
    assert chain.ledger.balance("fee_sink") == fee_ok + 500 * 2
    assert chain.ledger.balance("A") == 10_000 - 100 - fee_ok - 1_000
    assert [dict(zip(TX_FIELDS, r, strict=False)) for r in rows] == [
        dict(
            time_s=7,
            sender="A",
            call="ok",
            accepted=True,
            reason=None,
            value=100,
            gas=1_050,
            fee=fee_ok,
            amount=100.0,
        ),
        dict(
            time_s=7,
            sender="A",
            call="bad",
            accepted=False,
            reason="too_early",
            value=0,
            gas=500,
            fee=1_000,
            amount=None,
        ),
    ]
    chain.ledger.check_conserved()


def test_unsendable_call_is_refused_and_charges_nothing() -> None:
    rows: list[tuple] = []
    chain = Chain(gas_price=1, log=rows.append, gas_schedule=GasSchedule(base={"x": 100}))
    chain.ledger.mint("A", 150)
    ran = []
    with pytest.raises(Rejected) as err:
        chain.execute("A", "x", 51, lambda: ran.append(1))  # 51 + fee 100 > 150
    assert err.value.reason == "insufficient_funds" and not ran
    assert chain.ledger.balance("A") == 150 and chain.ledger.balance("fee_sink") == 0
    assert rows[-1][3:8] == (False, "insufficient_funds", 51, 0, 0)
    chain.execute("A", "x", 50, lambda: None)  # exactly affordable
    assert chain.ledger.balance("A") == 50


def test_a_fractional_gas_price_is_exact_and_each_fee_is_rounded_up() -> None:
    # 0.1 as a binary float times 30 is 3.0000000000000004: the exact decimal's fee is 3
    assert Chain(gas_price=0.1).fee(30) == 3 and Chain(gas_price=0.1).fee(31) == 4
    chain = Chain(gas_price=1e-05, gas_schedule=GasSchedule(base={"x": 1_280_000}))
    assert chain.fee(1_280_000) == 13 and chain.fee(1) == 1 and chain.fee(0) == 0
    chain.ledger.mint("A", 100)
    chain.execute("A", "x", 0, lambda: None)
    assert chain.ledger.balance("A") == 87 and chain.ledger.balance("fee_sink") == 13
    assert GasSchedule(base={"x": 30}).fee("x", 0.1) == 3  # the schedule's fee: the same rule
    assert Chain(gas_price=2.0).gas_price == 2 and Chain(gas_price=3).fee(7) == 21
    for bad in (-1e-9, True, "1"):
        with pytest.raises((ValueError, TypeError)):
            Chain(gas_price=bad)


def test_gas_price_zero_is_free() -> None:
    chain = Chain()
    chain.ledger.mint("A", 1)
    chain.execute("A", "add_data", 1, lambda: None, n_features=1_000)
    assert chain.ledger.balance("A") == 1 and chain.ledger.balance("fee_sink") == 0


@pytest.mark.parametrize("cap", [False, True])
def test_transfer_many_is_the_transfers_one_by_one(cap: bool) -> None:
    """Float shares (the reference-python report rewards) round exactly as one transfer at a
    time; with ``cap`` each step sends at most what the payer holds then."""
    amounts = [7 / 3, 0, 10 / 7, 5, 0.1, 0.2, 1e-9, 3]  # sum 12.06...
    held = 12 if cap else 14
    one, many = Ledger(), Ledger()
    for led in (one, many):
        led.mint("contract", held)
        led.mint("A", 1)
    for a in amounts:
        one.transfer("contract", "A", min(a, one.balance("contract")) if cap else a)
    many.transfer_many("contract", "A", amounts, cap=cap)
    assert many.snapshot() == one.snapshot()  # bit for bit, not approximately
    assert (many.balance("contract") == 0) == cap  # capped: the last 3 took what was left
    many.check_conserved()


@pytest.mark.parametrize("cap", [False, True])
def test_transfer_many_of_one_is_one_transfer(cap: bool) -> None:
    """A batch of one amount (the market's usual claim batch) moves what one transfer moves,
    capped at what the payer holds with ``cap``, and refuses an overdraft without it."""
    one, many = Ledger(), Ledger()
    for led in (one, many):
        led.mint("contract", 5)
    for a in [7 / 3, 0, 4]:  # the last one is more than the 2.67 left
        one.transfer("contract", "A", min(a, one.balance("contract")) if cap else min(a, 2))
        many.transfer_many("contract", "A", [a if cap else min(a, 2)], cap=cap)
        assert many.snapshot() == one.snapshot()
    assert (many.balance("contract") == 0) == cap
    if not cap:
        with pytest.raises(InsufficientFunds):
            many.transfer_many("contract", "A", [5])
        assert many.snapshot() == one.snapshot()


def test_transfer_many_keeps_the_steps_before_a_refused_one() -> None:
    led = Ledger()
    led.mint("C", 10)
    with pytest.raises(InsufficientFunds):
        led.transfer_many("C", "A", [4, 5, 2])
    assert (led.balance("C"), led.balance("A")) == (1, 9)
    led.transfer_many("C", "A", [0, 0])
    assert "A" in led.accounts() and led.snapshot() == {"C": 1, "A": 9}


def test_record_many_logs_what_record_logs() -> None:
    one, many = [], []
    chains = [Chain(log=one.append), Chain(log=many.append)]  # no log_many: one record each
    for chain in chains:
        chain.clock.advance_to(42)
    for call, amount in [("refund", 50), ("report", 12.5)]:
        chains[0].record("A", call, 0, 0, 0, amount)
    chains[1].record_many("A", ["refund", "report"], [50, 12.5])
    assert (
        many
        == one
        == [
            (42, "A", "refund", True, None, 0, 0, 0, 50.0),
            (42, "A", "report", True, None, 0, 0, 0, 12.5),
        ]
    )
    batches: list[tuple] = []
    chain = Chain(log=one.append, log_many=lambda *batch: batches.append(batch))
    chain.record_many("B", ["report"], [3])
    assert batches == [(0, "B", ["report"], [3])]
