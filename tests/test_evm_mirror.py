"""``chain.backend = "evm"``: a small market's Deposit-Refund-Take calls run again on the Vyper
contracts (py-evm) and compared call by call, then state against state at the end."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl
import pytest

pytest.importorskip("boa")  # the "evm" extra is part of the test install

from sum_abm.contract import DepositRefundTake  # noqa: E402
from sum_abm.errors import CheckFailed, InputError  # noqa: E402
from sum_abm.market.model import MarketModel  # noqa: E402
from sum_abm.market.run import run  # noqa: E402
from sum_abm.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# 300 rows of 120 binary features (about 20 present per row), a week and a half of market.
SMALL = {
    "data.n_rows": 300,
    "data.n_features": 120,
    "run.max_time_s": 10 * 86_400,
    "learner.kind": "perceptron",
}


def _small(**over):
    return load_scenario(ROOT / "scenarios" / "quickstart.toml", {**SMALL, **over})


@pytest.fixture(scope="module")
def mirrored():
    """The small perceptron market mirrored on the EVM (seed 3): about 20 s of py-evm."""
    return run(_small(**{"chain.backend": "evm"}), seed=3, baseline=False)


@pytest.mark.slow
def test_perceptron_market_agrees_with_the_evm_and_the_mirror_changes_nothing(mirrored, tmp_path):
    sc = mirrored.scenario
    plain = run(sc.with_overrides({"chain.backend": "python"}), seed=3, baseline=False)
    s = mirrored.summary.row(0, named=True)
    assert s["evm_classifier"] == "perceptron" and s["evm_agrees"]
    tx = mirrored.transactions
    sent = tx.filter(pl.col("reason").is_null() | (pl.col("reason") != "insufficient_funds"))
    assert s["evm_calls"] == sent.height == mirrored.evm.height > 50
    assert set(mirrored.evm["call"]) >= {"add_data", "refund"}
    # every call, accepted or rejected, with the same amounts as the Python contract layer's log
    assert mirrored.evm["accepted"].to_list() == sent["accepted"].to_list()
    assert mirrored.evm["amount"].fill_null(0).to_list() == [
        int(a or 0) for a in sent["amount"].to_list()
    ]
    evm_gas = mirrored.evm.filter(pl.col("accepted"))["evm_gas"]
    assert evm_gas.min() > 21_000 and s["evm_gas_total"] == evm_gas.sum()
    assert 0 <= s["evm_gas_error_median"] <= s["evm_gas_error_max"]
    # the mirror only watches: the market's own results are those of the Python backend
    for name in ("transactions", "agents", "timeseries"):
        assert getattr(mirrored, name).equals(getattr(plain, name)), name
    out = mirrored.write(tmp_path / "run")
    assert pl.read_parquet(out / "evm.parquet").equals(mirrored.evm)
    from dashboards import build_run_report

    page = build_run_report(out).read_text()
    section = page[page.index("EVM spot check") :]
    assert f"{s['evm_calls']:,} calls sent again" in section and "refund" in section
    assert not (tmp_path / "plain").exists() and plain.evm is None


@pytest.mark.slow
def test_other_learners_run_against_the_oracle_with_fees_charged():
    """A learner the EVM cannot reproduce exactly (floats): the oracle is told its predictions, and
    the sender's balance change on the EVM equals the Python one plus the fee (py-evm charges none)."""
    sc = _small(
        **{
            "chain.backend": "evm",
            "learner.kind": "sgd_perceptron",
            "chain.gas_price": 1,
            "data.init_train_rows": 40,
            "agents.honest.start_balance": 10**9,
            "agents.attacker.start_balance": 10**9,
        }
    )
    r = run(sc, seed=5, baseline=False)
    s = r.summary.row(0, named=True)
    assert s["evm_classifier"] == "oracle" and s["evm_calls"] > 50 and s["fees_total"] > 0
    assert r.evm["schedule_gas"].to_list() == [
        g
        for g, reason in zip(r.transactions["gas"], r.transactions["reason"], strict=False)
        if reason != "insufficient_funds"
    ]


def test_a_contract_that_departs_from_the_solidity_rules_is_caught(monkeypatch):
    base = DepositRefundTake.required_deposit
    monkeypatch.setattr(
        DepositRefundTake, "required_deposit", lambda self, now: base(self, now) + 1
    )
    with pytest.raises(
        CheckFailed, match=r"EVM disagrees at t=\d+ s: add_data by \S+: balance changes"
    ):
        run(_small(chain="evm"), seed=3, baseline=False)


@pytest.mark.slow
def test_a_state_difference_at_the_end_is_caught():
    model = MarketModel(scenario=_small(chain="evm"), seed=3)
    model.run_until(86_400)
    model.contract.evm.check_state()  # equal so far
    model.contract.im.total_good += 1
    with pytest.raises(CheckFailed, match="total_good: Python"):
        model.contract.evm.check_state()


def test_the_cli_reports_a_disagreement_in_one_line_with_status_1(monkeypatch, capsys, tmp_path):
    from sum_abm.cli import main

    base = DepositRefundTake.required_deposit
    monkeypatch.setattr(
        DepositRefundTake, "required_deposit", lambda self, now: base(self, now) + 1
    )
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "sum-abm",
            "run",
            str(ROOT / "scenarios" / "quickstart.toml"),
            "--no-baseline",
            "--no-report",
            "--out",
            str(tmp_path / "r"),
        ]
        + [a for k, v in {**SMALL, "chain": "evm"}.items() for a in ("--set", f"{k}={v}")],
    )
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        exit_.value.code == 1
        and len(err) == 1
        and err[0].startswith("sum-abm: EVM disagrees at t=")
    ), err


@pytest.mark.parametrize(
    "over, message",
    [
        ({"mechanism.semantics": "reference-python"}, "semantics 'solidity' only"),
        ({"mechanism": {"kind": "points"}}, "Deposit-Refund-Take"),
        ({"chain": "evmm"}, "expected one of 'python' or 'evm'"),
    ],
)
def test_what_the_evm_cannot_run_is_refused_at_validation(over, message):
    with pytest.raises(InputError, match=message):
        _small(**{"chain.backend": "evm", **over})


@pytest.mark.slow
def test_adds_are_priced_by_what_they_write_as_the_evm_charges(mirrored):
    """A perceptron market's adds: most are no mistake (no weight written), the first adds of a
    feature store new slots, and on 120 binary features weights often return to zero (a storage
    refund); priced by case, the schedule stays near the EVM's gas for each (one figure for every
    add was 77 % off at the median, and leaving out the refunds, up to 26 %)."""
    calls = mirrored.evm.filter(pl.col("accepted")).with_columns(
        err=(pl.col("schedule_gas") - pl.col("evm_gas")).abs() / pl.col("evm_gas")
    )
    adds = calls.filter(pl.col("call") == "add_data")
    assert (
        adds["schedule_gas"].n_unique() > adds["n_features"].n_unique()
    )  # more than one price per size
    assert adds["err"].median() < 0.03 and adds["err"].max() < 0.05, (
        adds["err"].median(),
        adds["err"].max(),
    )
    # refunds priced by the good-data counters they write first (one figure was 6 % off at the median)
    refunds = calls.filter(pl.col("call") == "refund")
    assert refunds.height > 20 and refunds["err"].median() < 0.02, refunds["err"].median()


@pytest.mark.slow
def test_with_the_evm_a_wallet_that_cannot_pay_a_fee_sends_nothing():
    # Fees of ~200 tokens per call leave the quick start's agents broke within days, deposits still
    # to claim: the mirrored path, as the plain one, sends no call the wallet cannot pay.
    sc = _small(**{"chain.backend": "evm", "chain.gas_price": 0.0003})
    r = run(sc, seed=3, baseline=False)
    tx = r.transactions
    assert r.summary["evm_agrees"][0] and tx.filter(pl.col("accepted"))["fee"].min() > 0
    assert tx.filter(pl.col("reason") == "insufficient_funds").height == 0
    assert (r.agents["end_balance"] < 300).sum() >= 3  # most of them did go broke
    plain = run(sc.with_overrides({"chain.backend": "python"}), seed=3, baseline=False)
    assert plain.transactions.equals(tx)
