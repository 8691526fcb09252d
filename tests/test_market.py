"""The market: runs, determinism (byte-identical Parquet), skipping proven rejections changes no
outcome, attack metrics against a clean baseline run separately, a run that creates money is
stopped, and finished models are freed (Mesa's leak workaround, on the path users run)."""

from __future__ import annotations

import gc
import hashlib
import weakref
from pathlib import Path

import polars as pl
import pytest

import sum_abm
from sum_abm.errors import InputError
from sum_abm.market.run import run
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"data.n_rows": 1200, "run.max_time_s": 40 * 86_400}


def small(name: str, **more):
    return load_scenario(ROOT / "scenarios" / f"{name}.toml", {**SMALL, **more})


def digest(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.parquet"))}


@pytest.mark.slow
def test_same_seed_gives_byte_identical_parquet(tmp_path):
    sc = small("quickstart")
    a = run(sc, seed=3).write(tmp_path / "a")
    b = run(sc, seed=3).write(tmp_path / "b")
    c = run(sc, seed=4).write(tmp_path / "c")
    assert digest(a) == digest(b)
    assert digest(a)["agents.parquet"] != digest(c)["agents.parquet"]


@pytest.mark.parametrize(
    "scenario, learner",
    [
        # NB and nearest centroid walk more claims: several seconds each
        pytest.param(s, k, marks=[pytest.mark.slow] * (k in ("multinomial_nb", "nearest_centroid")))
        for s in ("reference_drt_nb", "quickstart")
        for k in ("sgd_perceptron", "perceptron", "multinomial_nb", "nearest_centroid")
    ],
)
def test_skipping_proven_rejections_gives_identical_outcomes(scenario, learner):
    # The fast walk skips calls the state proves would be rejected and reuses cached predictions
    # within the learner's margin bound; the naive walk sends every call and lets the contract
    # predict. Same balances, counters and accuracy prove both shortcuts exact.
    sc = small(scenario, **{"data.n_rows": 1600, "learner.kind": learner})
    fast = run(sc, seed=2, baseline=False)
    naive = run(sc.with_overrides({"run.naive_claims": True}), seed=2, baseline=False)
    assert fast.agents.select("agent_id", "end_balance", "refunded", "reports_won").equals(
        naive.agents.select("agent_id", "end_balance", "refunded", "reports_won")
    )
    assert fast.timeseries.equals(naive.timeseries)
    assert naive.summary["calls_rejected"][0] > fast.summary["calls_rejected"][0]


@pytest.mark.parametrize(
    "scenario,rows",
    [("attack_sybil", 2400), pytest.param("quickstart", 6000, marks=pytest.mark.slow)],
)
def test_corrected_drt_walk_equals_the_naive_walk(scenario, rows):
    # The fast walk's masks do not know the corrected rule; its free check refuses a report whose
    # share floors to 0 before sending, while the naive walk sends it and the contract rejects it.
    # (Sizes where such reports happen: at 1200 rows total_good stays too small for a zero share.)
    sc = small(scenario, **{"mechanism.semantics": "corrected", "data.n_rows": rows})
    fast = run(sc, seed=3, baseline=False)
    naive = run(sc.with_overrides({"run.naive_claims": True}), seed=3, baseline=False)
    cols = ("agent_id", "end_balance", "refunded", "reports_won", "taken")
    assert fast.agents.select(cols).equals(naive.agents.select(cols))
    assert fast.timeseries.equals(naive.timeseries)
    refused = naive.transactions.filter(pl.col("reason") == "share_rounds_to_zero").height
    assert refused > 0  # the corrected rule was exercised, not just allowed
    assert fast.transactions.filter(pl.col("reason") == "share_rounds_to_zero").height == 0


def worst_drop(base: dict[int, float], mine: dict[int, float]) -> float:
    """The largest baseline-minus-attacked accuracy: each attacked sample against the baseline's
    sample nearest in time (the two runs sample one nominal time seconds apart), and the two ends
    (each run holds its last value once it has ended)."""
    times = sorted(base)

    def nearest(t: int) -> float:
        return base[min(times, key=lambda x: (abs(x - t), x))]

    ends = base[max(base)] - mine[max(mine)]
    return max(max(nearest(t) - a for t, a in mine.items()), ends)


@pytest.mark.parametrize("seed", [2, 3])
def test_the_worst_drop_is_never_below_the_final_one(seed):
    # The attacked prediction market ends days before its baseline: its final drop compares the
    # two ends, and the worst drop, over the attacked run's samples only, came out below it.
    sc = load_scenario(
        ROOT / "scenarios" / "reference_pm.toml", {"data.n_rows": 3000, "data.train_rows": 1000}
    )
    r = run(sc, seed=seed)
    s = r.summary.row(0, named=True)
    assert s["end_time_s"] < r.baseline.timeseries["time_s"].max()  # the case in question
    base = dict(
        zip(r.baseline.timeseries["time_s"], r.baseline.timeseries["accuracy"], strict=True)
    )
    mine = dict(zip(r.timeseries["time_s"], r.timeseries["accuracy"], strict=True))
    assert s["accuracy_drop_final"] > 0
    assert s["accuracy_drop_max"] >= s["accuracy_drop_final"]
    assert s["accuracy_drop_max"] == pytest.approx(worst_drop(base, mine))


@pytest.mark.slow
def test_attack_metrics_use_a_clean_baseline():
    # A pure label flipper (no reporting, no taking of expired deposits) can only lose its deposits.
    sc = small("quickstart", **{"agents.attacker.report": False, "agents.attacker.take": False})
    r = run(sc, seed=1)
    s = r.summary.row(0, named=True)
    assert s["attacker_roi"] < 0  # the label flipper loses its deposits
    # the baseline is the same scenario and seed without the attacker, run on its own here
    clean = run(sc.without_attackers(), seed=1, baseline=False)
    assert "attacker" not in clean.agents["group"].to_list()
    assert r.baseline is not None and r.baseline.agents.equals(clean.agents)
    # accuracy by sample time (a time sampled twice, e.g. at the end, counts its last sample)
    base = dict(zip(clean.timeseries["time_s"], clean.timeseries["accuracy"], strict=True))
    mine = dict(zip(r.timeseries["time_s"], r.timeseries["accuracy"], strict=True))
    assert s["baseline_accuracy_final"] == base[max(base)]
    assert s["accuracy_drop_final"] == pytest.approx(base[max(base)] - mine[max(mine)])
    # the worst drop over time: each sample against the baseline's nearest one, and the ends
    assert s["accuracy_drop_max"] == pytest.approx(worst_drop(base, mine))
    att = r.agents.filter(pl.col("attacker"))
    assert s["attacker_roi"] == pytest.approx(att["profit"].sum() / att["start_balance"].sum())
    honest = r.agents.filter(~pl.col("attacker"))
    assert s["honest_profit"] == pytest.approx(honest["profit"].sum())


@pytest.mark.slow
def test_s1_like_run_good_ends_above_bad_below():
    r = run(
        small("reference_drt_nb", **{"data.n_rows": 3000, "run.max_time_s": 400 * 86_400}), seed=1
    )
    prof = dict(zip(r.agents["group"], r.agents["profit"], strict=False))
    assert prof["Good"] > 0 > prof["Bad"]


@pytest.mark.parametrize("semantics, bad_loses", [("reference-python", False), ("corrected", True)])
def test_s3_like_prediction_market(semantics, bad_loses):
    sc = load_scenario(
        ROOT / "scenarios" / "reference_pm.toml",
        {
            "mechanism.semantics": semantics,
            "data.train_rows": 400,
            "data.test_rows": 200,
            "data.n_rows": 2000,
            "mechanism.bounty": 2000,
        },
    )
    r = run(sc, seed=1, baseline=False)
    bad = r.agents.filter(pl.col("attacker"))["profit"].sum()
    assert (bad < 0) == bad_loses
    if semantics == "corrected":  # no contributor loses more than it staked (calls are free here)
        assert (r.agents["profit"] >= -r.agents["deposits_paid"]).all()


def _pm_with_gas(**extra):
    over = {
        "data.train_rows": 400,
        "data.test_rows": 200,
        "data.n_rows": 2000,
        "mechanism.bounty": 2000,
        "chain.gas_price": 3,
        **{f"agents.{g}.start_balance": 10**9 for g in ("Good1", "Good2", "Good3", "Bad1", "Bad2")},
        **extra,
    }
    return load_scenario(ROOT / "scenarios" / "reference_pm.toml", over)


def test_prediction_market_with_gas_the_provider_pays_its_calls():
    r = run(_pm_with_gas(), seed=1, baseline=False)
    tx = r.transactions
    mine = tx.filter(pl.col("sender") == "bounty_provider")
    process = mine.filter(pl.col("call") == "process_contribution")
    assert process.height > 100 and process["accepted"].all()
    # Every provider call paid its gas at the chain's price, as anyone's call does.
    assert (mine["fee"] == mine["gas"] * 3).all() and (mine["fee"] > 0).all()
    assert r.summary["money_conserved"][0]


@pytest.mark.parametrize("allowance", [700_000, 3_000_000])  # out in verification / reward phase
def test_prediction_market_provider_out_of_gas_stops_the_market_there(allowance):
    r = run(_pm_with_gas(**{"mechanism.provider_gas_allowance": allowance}), seed=1, baseline=False)
    mine = r.transactions.filter(pl.col("sender") == "bounty_provider")
    # the first call it cannot pay is not sent (a wallet does not sign it): the market stops there
    assert r.transactions.filter(~pl.col("accepted")).height == 0
    assert allowance - 200_000 < mine["fee"].sum() <= allowance  # (a call's fee: ~3 x 60,000)
    processed = mine.filter(pl.col("call") == "process_contribution").height
    assert (processed == 0) == (allowance == 700_000)
    assert r.summary["money_conserved"][0]


def test_prediction_market_provider_allowance_too_small_is_one_clear_error():
    with pytest.raises(InputError, match="provider_gas_allowance: 1000 tokens"):
        run(_pm_with_gas(**{"mechanism.provider_gas_allowance": 1000}), seed=1, baseline=False)


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "scenarios").glob("*.toml")))
def test_every_bundled_scenario_runs_at_reduced_size(name):
    over = {"run.max_time_s": 20 * 86_400}
    sc = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    if sc.data.kind == "imdb_synthetic":
        over["data.n_rows"] = 600
        if sc.data.train_rows:
            over.update({"data.train_rows": 200, "data.test_rows": 100, "mechanism.bounty": 500})
    r = run(sc.with_overrides(over), seed=1)
    assert len(r.agents) >= 2 and r.transactions["accepted"].any()


def test_a_run_that_creates_money_is_stopped(monkeypatch):
    """A ledger that credits one token more than it debits, once: ``sum_abm.run`` raises at the
    end of the run instead of reporting results."""
    from sum_abm.chain import Ledger, MoneyNotConserved

    honest = Ledger.transfer
    tampered = []

    def transfer(self, src, dst, amount):
        honest(self, src, dst, amount)
        if not tampered and amount > 0:
            tampered.append(dst)
            self._bal[dst] += 1  # a token from nowhere

    monkeypatch.setattr(Ledger, "transfer", transfer)
    with pytest.raises(MoneyNotConserved):
        sum_abm.run(small("quickstart"), seed=1, baseline=False)
    assert tampered


def test_finished_models_are_freed(monkeypatch):
    """No model outlives its run on the path users take (``sum_abm.run``, baseline included)."""
    from sum_abm.market.model import MarketModel

    refs = []
    original = MarketModel.run

    def run_and_watch(self, *args, **kwargs):
        refs.append(weakref.ref(self))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MarketModel, "run", run_and_watch)
    result = sum_abm.run(small("quickstart"), seed=1)
    assert len(refs) == 2 and result.baseline is not None  # the run and its clean baseline
    gc.collect()
    assert [r() for r in refs] == [None, None]


def test_the_cyclic_collector_is_paused_during_a_run_and_restored_after(monkeypatch):
    from sum_abm.market.model import MarketModel

    seen = []
    original = MarketModel.run

    def run_and_look(self, *args, **kwargs):
        seen.append(gc.isenabled())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MarketModel, "run", run_and_look)
    assert gc.isenabled()
    sum_abm.run(small("quickstart"), seed=1, baseline=False)
    assert seen == [False] and gc.isenabled()

    def fail(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(MarketModel, "run", fail)
    with pytest.raises(RuntimeError, match="boom"):
        sum_abm.run(small("quickstart"), seed=1, baseline=False)
    assert gc.isenabled()  # restored when the run fails too
    gc.disable()  # a caller that keeps it off: left off
    try:
        monkeypatch.setattr(MarketModel, "run", run_and_look)
        sum_abm.run(small("quickstart"), seed=1, baseline=False)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_market_run_imports_mesa_core_only_and_mesa_stays_whole():
    # sum_abm.market.mesa_core loads Mesa's Model and Agent without Mesa's __init__ (which pulls
    # in networkx and pandas); the first other use of ``mesa`` still gets the whole package.
    import subprocess
    import sys

    code = (
        "import sys; import sum_abm.market.run\n"
        "heavy = [m for m in ('networkx', 'pandas', 'mesa.space') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import mesa\n"
        "from sum_abm.market.mesa_core import Agent, Model\n"
        "assert mesa.Agent is Agent and mesa.Model is Model\n"
        "assert mesa.DataCollector.__name__ == 'DataCollector' and 'mesa.space' in sys.modules\n"
        # imported with source-free stack inspection: same logger names, inspect restored
        "import inspect, mesa.model, mesa.mesa_logging as ml\n"
        "assert mesa.model._mesa_logger.name == 'MESA.mesa.model'\n"
        "assert inspect.stack.__module__ == 'inspect' and inspect.getouterframes.__module__ == 'inspect'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_event_queue_orders_by_time_priority_then_scheduling_and_checks_its_input():
    # Wake-ups go through schedule_after (the hot path); it must order exactly as
    # schedule_event, and send anything but an int >= 0 through the same checks.
    from sum_abm.market.events import EventQueue

    ran: list[str] = []
    q, r = EventQueue(), EventQueue()
    plan = [(5, 1, "a"), (3, 0, "b"), (5, 0, "c"), (3, 0, "d"), (0, 2, "e"), (5, 1, "f")]
    for after, prio, name in plan:
        q.schedule_event(lambda n=name: ran.append(n), after=after, priority=prio)
        r.schedule_after(lambda n=name: ran.append(n), after, prio)
    for queue in (q, r):
        while len(queue):
            t, fn = queue.pop()
            fn()
            assert queue.time == t
    assert ran[:6] == ["e", "b", "d", "c", "a", "f"] and ran[6:] == ran[:6]
    r.schedule_after(ran.clear, 2.9)  # a float wait: truncated, as schedule_event does
    assert r.peek_time() == 5 + 2
    with pytest.raises(ValueError, match="in the past"):
        r.schedule_after(ran.clear, -1)
    with pytest.raises(TypeError):
        r.schedule_after(ran.clear, None)
    # reschedule_head (the dry wake-ups' step) leaves the queue a pop and a schedule_after
    # leave, and returns the new head
    a, b = EventQueue(), EventQueue()
    for after, prio, name in plan:
        a.schedule_after(name, after, prio)  # (any object as the callback: never called here)
        b.schedule_after(name, after, prio)
    for after, prio in [(4, 1), (0, 0), (1, 2), (7, 0), (0, 1), (3, 1)]:
        new_head = a.reschedule_head(after, prio)
        _, fn = b.pop()
        b.schedule_after(fn, after, prio)
        assert new_head == b.head() and a.time == b.time
        assert sorted(a._heap) == sorted(b._heap)


def test_stepping_gets_past_an_interval_that_holds_no_event():
    # Agents waiting ~3.5 days between wake-ups, sampled hourly: most hours hold no event. Each
    # step (the interactive server's) must still move the market on, and the progress loop of
    # `sum-abm run` must end with the results of one run() (it used to loop for ever at the
    # first empty hour: the model's time moves only with its events).
    from polars.testing import assert_frame_equal

    from sum_abm.market.model import MarketModel

    waits = {"agents.honest.mean_wait_s": 300_000, "agents.attacker.mean_wait_s": 300_000}
    sc = small("quickstart", **waits, **{"run.sample_interval_s": 3_600})
    m = MarketModel(scenario=sc, seed=2)
    first = m.events.peek_time()
    assert first > 3_600
    m.step()
    assert m.time == first  # the first wake-up ran, though no event fell in the first hour
    times = [m.time]
    for _ in range(5):
        m.step()
        times.append(m.time)
    assert times == sorted(set(times))  # every step moved on

    steps = []

    def progress(label: str, fraction: float) -> None:
        steps.append(fraction)
        assert len(steps) < 5_000, "the progress loop is not getting anywhere"

    stepped, whole = run(sc, seed=2, baseline=False, progress=progress), run(sc, 2, baseline=False)
    assert stepped.summary["calls"][0] > 20 and len(steps) > 10
    for name in ("summary", "timeseries", "transactions", "agents"):
        a, b = getattr(stepped, name), getattr(whole, name)
        assert_frame_equal(a.drop("wall_time_s", strict=False), b.drop("wall_time_s", strict=False))


def test_a_class_without_initial_data_runs_without_numpy_warnings():
    """One initial row leaves Naive Bayes a class with no data (log-prior -inf) until the first
    add of that class: the incremental accuracy's step took -inf - -inf (a numpy warning on
    stderr of every such run) before sending it to a full pass."""
    import warnings

    sc = load_scenario(
        ROOT / "scenarios" / "quickstart.toml",
        {
            "mechanism.cost_weight": 3,
            "data.init_train_rows": 1,
            "data.n_rows": 600,
            "run.max_time_s": 864000,
            "learner.kind": "multinomial_nb",
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = run(sc, seed=1, baseline=True)
    s = r.summary.row(0, named=True)
    assert 0.0 < s["accuracy_final"] <= 1.0 and s["calls"] > 0


def test_attack_spend_counts_fees_once_and_timeseries_keeps_fractional_balances():
    """With gas, an attacker's fees are in its profit already: spend per point is its loss (not
    loss + fees again). Under reference-python rules balances have fractions; the timeseries'
    last balance of each agent is its end balance, not its integer part."""
    sc = load_scenario(
        ROOT / "scenarios" / "quickstart.toml",
        {
            "data.n_rows": 1200,
            "run.max_time_s": 20 * 86_400,
            "chain.gas_price": 1,
            "agents.honest.start_balance": 10**9,
            "agents.attacker.start_balance": 10**9,
        },
    )
    r = run(sc, seed=6)  # (a seed whose attack lowers the final accuracy: a spend per point)
    s = r.summary.row(0, named=True)
    att = r.agents.filter(pl.col("attacker"))
    assert att["fees"].sum() > 0 and s["accuracy_drop_final"] > 0
    loss = -float(att["profit"].sum())  # fees included
    assert loss > 0 and s["attacker_spend_per_point"] == pytest.approx(
        loss / (100 * s["accuracy_drop_final"])
    )
    py = run(small("reference_drt_perceptron", **{"data.n_rows": 1200}), seed=1, baseline=False)
    last = py.timeseries.group_by("agent_id").agg(pl.col("balance").last())
    ends = dict(zip(py.agents["agent_id"], py.agents["end_balance"], strict=True))
    assert any(b != int(b) for b in ends.values())  # fractions to keep
    for agent, bal in zip(last["agent_id"], last["balance"], strict=True):
        assert bal == pytest.approx(ends[agent], abs=1e-9), agent


def test_a_wallet_that_cannot_pay_the_fee_sends_nothing():
    """Whole tokens per gas make one add's fee (~1 M tokens) more than any balance: nothing is
    sent (it was 86,421 adds refused for insufficient funds on the full quick start). At a
    fraction of a token per gas the market runs: every fee is the gas times the price rounded up
    to a whole token, and no call is sent that the sender's balance does not pay."""
    sc = small("quickstart")
    frozen = run(sc.with_overrides({"chain.gas_price": 1}), seed=1, baseline=False)
    assert frozen.transactions.height == 0 and frozen.summary["adds_accepted"][0] == 0
    for name, price in (
        ("quickstart", 1e-05),
        ("reference_drt_perceptron", 1e-05),
        ("model_users", 1e-04),  # the users' predictions: their fees leave them broke in days
    ):
        r = run(small(name, **{"chain.gas_price": price}), seed=1, baseline=False)
        tx = r.transactions
        assert tx.filter(pl.col("call") == "add_data")["accepted"].sum() > 100
        assert tx.filter(pl.col("reason") == "insufficient_funds").height == 0
        per = round(1 / price)
        assert (tx["fee"] == (tx["gas"] + per - 1) // per).all() and tx["fee"].min() > 0
        assert r.summary["money_conserved"][0] and (r.agents["end_balance"] >= 0).all()
    users = r.agents.filter(pl.col("policy") == "model_user")
    assert users["predictions"].sum() > 50 and (users["fees"] > users["start_balance"] / 2).all()


def test_a_walk_refused_for_its_fee_is_walked_again_when_the_balance_grows():
    # Fees at 0.001 per gas leave the quick start's agents broke with deposits still to refund:
    # their walks are refused by their wallets and kept idle while the balance stays. Funded,
    # the same walk is sent at the next wake-up.
    import mesa

    from sum_abm.market.model import MarketModel

    sc = small("quickstart", **{"chain.gas_price": 0.001})
    m = MarketModel(scenario=sc, seed=1)
    try:
        m.run_until(5 * 86_400)
        stuck = [
            (key, memo) for key, memo in m._idle_walks.items() if memo[4] is not None
        ]  # fmt: skip
        assert stuck, "no walk was refused for its fee"
        claimed = 0
        for (me, _), memo in stuck:
            addr = m.addresses[me]
            agent = m.addr_owner[addr]
            assert m.ledger.balance(addr) == memo[4]
            before = len(m.tx_rows)
            m.claim_walk(agent, agent.policy.walk)  # idle: nothing changed
            assert len(m.tx_rows) == before
            m.contract.fund(addr, 10**6)
            m.claim_walk(agent, agent.policy.walk)
            sent = [r for r in list(m.tx_rows)[before:] if r[1] == addr]
            assert all(r[3] for r in sent)
            claimed += len(sent)
        assert claimed > 0
    finally:
        mesa.Agent._ids.pop(m, None)


@pytest.mark.parametrize("allowance", [None, 1000])
def test_prediction_market_with_gas_sends_no_call_a_wallet_cannot_pay(allowance):
    # At 0.0003 per gas a refund costs ~63 tokens, more than a broke contributor holds; an
    # allowance of 1,000 tokens stops the provider's reward phase part way (its next call
    # unaffordable): nothing is sent that the sender cannot pay or the contract would refuse
    # (the refunds of an unfinished reward phase), and nothing raises.
    over = {
        "data.n_rows": 1200,
        "data.train_rows": 500,
        "data.test_rows": 100,
        "run.max_time_s": 864_000,
        "chain.gas_price": 0.0003,
    }
    if allowance is not None:
        over["mechanism.provider_gas_allowance"] = allowance
    for name in ("reference_pm", "reference_pm_corrected"):
        r = run(load_scenario(ROOT / "scenarios" / f"{name}.toml", over), seed=1, baseline=False)
        tx = r.transactions
        assert tx.filter(~pl.col("accepted")).height == 0, tx.filter(~pl.col("accepted"))
        process = tx.filter(pl.col("call") == "process_contribution")
        assert process.height > 0 and r.summary["money_conserved"][0]
        if allowance is not None:  # the phase stopped: no refund, stakes locked
            assert r.summary["pm_state"][0] != "REWARD_COLLECT"
            assert tx.filter(pl.col("call") == "refund").height == 0
            assert process["fee"].sum() <= allowance
        else:
            assert tx.filter(pl.col("call") == "refund").height > 0


def _points_contributors(*groups: tuple[str, int]):
    """scenarios/points.toml with only the named groups, ``count`` agents each."""
    from sum_abm.scenario import parse_scenario, read_toml

    data = read_toml(ROOT / "scenarios" / "points.toml")
    by_name = {g["name"]: g for g in data["agents"]}
    data["agents"] = [{**by_name[name], "count": count} for name, count in groups]
    return parse_scenario(data, "points (test)")


def test_points_run_with_one_contributor_ends_when_nothing_left_can_be_claimed():
    # One honest contributor under Points: once the pool is dry (day 1.24) the model no longer
    # changes, and of its 359 contributions 18 stay that the model disagrees with: Points lets
    # nobody take them and their author cannot report them, so nobody can ever claim them. The
    # run went on to run.max_time_s (400 days) with nothing left to happen (summary days 400.0,
    # accuracy_time_weighted over 400 days); it ends at its last claim now.
    r = run(_points_contributors(("honest", 1)))
    s, a = r.summary.row(0, named=True), r.agents.row(0, named=True)
    tx = r.transactions
    assert s["end_time_s"] == tx["time_s"].max() == 111_372  # the last refund, day 1.29
    assert 1.2 < s["days"] < 1.3
    assert tx["accepted"].all() and s["calls_rejected"] == 0
    # points conserved: one per accepted refund, and every contribution is scored or left
    assert (a["adds_accepted"], a["refunded"], a["points"]) == (359, 341, 341)
    assert (tx["call"] == "refund").sum() == a["points"]
    assert s["money_conserved"] and s["fees_total"] == 0 and a["end_balance"] == 0
    assert s["accuracy_time_weighted"] == pytest.approx(0.9006, abs=5e-4)  # was 0.8889


def test_points_run_goes_on_while_another_contributor_could_report():
    # With a second contributor the disagreed data can still be reported: nothing is dead, the
    # run ends when the book is empty (every contribution scored or reported).
    r = run(_points_contributors(("honest", 1), ("careless", 1)))
    s = r.summary.row(0, named=True)
    calls = r.transactions.group_by("call").len().rows()
    n = dict(calls)
    assert n["add_data"] == n["refund"] + n["report"] == s["adds_accepted"]
    assert s["end_time_s"] == r.transactions["time_s"].max() and s["days"] < 2


def test_a_dry_points_book_is_dead_exactly_when_no_active_participant_may_claim_it():
    # MarketModel._book_dead against its rule, slot by slot: with the pool dry (the model stays)
    # a live contribution can still be claimed by its author, while active and its policy
    # refunds, if the model agrees (a refund scores it), and by another active address whose
    # policy reports, if the model disagrees (a report).
    import itertools

    import mesa

    from sum_abm.market.model import MarketModel
    from sum_abm.policies import WalkRules

    sc = _points_contributors(("honest", 1), ("careless", 1))
    m = MarketModel(scenario=sc, seed=1)
    try:
        while m.data_left():
            m.run_until(m.events.peek_time())
        b = m.book
        live = [s for s in range(b.head, b.n) if b.live[s]]
        assert len(live) > 5
        agrees = {s: m.model_predict(int(b.row[s])) == int(b.label[s]) for s in live}
        assert len(set(agrees.values())) == 2  # both kinds are left
        people = list(m.participants)
        owner = {s: m._owners[int(b.author[s])] for s in live}

        def expected():
            def may(p, what):
                r = p.policy.claim_rules
                return p.active and r is not None and getattr(r, what)

            return not any(
                (may(owner[s], "refund") and agrees[s])
                or (any(may(p, "report") for p in people if p is not owner[s]) and not agrees[s])
                for s in live
            )

        # every combination of who is active and which claims its policy may send, from a
        # fresh memo; then, reusing it, participants stopping one by one (as in a run: a
        # participant that stopped never wakes again)
        flags = list(itertools.product([True, False], repeat=3))  # active, refund, report
        runs = [[c] for c in itertools.product(flags, repeat=2)]
        on = (True, True, True)
        runs += [[(on, on), (on, (False, True, True)), ((False, True, True),) * 2]]
        runs += [[(on, on), ((False, True, True), on), ((False, True, True),) * 2]]
        answers = set()
        for steps in runs:
            m._dead_scan = None
            for step in steps:
                for p, (active, refund, report) in zip(people, step, strict=True):
                    p.active = active
                    p.policy.claim_rules = WalkRules(refund=refund, report=report)
                answers.add(expected())
                assert m._book_dead() == expected(), (steps, step)
        assert answers == {True, False}
    finally:
        mesa.Agent._ids.pop(m, None)


def test_points_run_ends_when_the_only_possible_reporters_never_report():
    # Two contributors whose policy never reports (report = false): each one's data the model
    # disagrees with stays, and the other, still active for its own such data, would never
    # report it (its claim_rules say so). The run went on to 400 days; it ends at its last
    # claim.
    sc = _points_contributors(("honest", 2)).with_overrides({"agents.honest.report": False})
    r = run(sc)
    s = r.summary.row(0, named=True)
    assert s["end_time_s"] == r.transactions["time_s"].max() and s["days"] < 1
    assert r.agents["reports_won"].sum() == 0
    assert r.agents["refunded"].sum() == r.agents["points"].sum() == 341 < s["adds_accepted"]
