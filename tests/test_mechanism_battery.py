"""The mechanism battery: every registered mechanism × semantics × learner must pass it.

In the spirit of scikit-learn's ``check_estimator`` and the policy battery (tests/test_policies.py),
it iterates the registry (:data:`sum_abm.mechanisms.MECHANISMS`), so a mechanism that is registered
is checked, and one that fails cannot stay registered with CI green. For random reachable states
(hypothesis: random adds, refunds, reports, predictions, time jumps, the end of the run), through the
mechanism's market adapter:

- money is conserved (exactly in integers; within 1e-6 where reference-python pays floats) and no
  balance goes negative;
- a rejected call changes nothing but its fee (which goes from the sender to the fee sink);
- the adapter's "would be accepted" equals what the contract does when the call is sent (the
  wallet rule, ``insufficient_funds``, aside), and ``can_add`` never skips an add that would pass;
- snapshot -> restore is exact, and the same calls after a restore give the same results;
- the summary extras are the columns the mechanism declares, which the results schema
  (:mod:`sum_abm.schema`) declares and a run's summary frame has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sum_abm import schema
from sum_abm.chain import Chain, Rejected
from sum_abm.contract.state import freeze
from sum_abm.data import Dataset
from sum_abm.learners import LEARNERS, make_learner
from sum_abm.mechanisms import MECHANISMS
from sum_abm.mechanisms.base import Call

SENDERS = ["A", "B", "C"]
N_FEATURES = 6
START_BALANCE = 2_000_000  # gas at price 1 costs ~10^4-10^5 per call

# Settings that make every rule reachable within a few dozen simulated seconds.
SMALL = {
    "refund_time_s": 5,
    "any_address_claim_wait_time_s": 40,
    "bounty": 500,
    "num_test_pieces": 2,
    "min_length_s": 3,
    "min_num_contributions": 1,
}


def combos() -> list[Any]:
    out = []
    for kind, mech in MECHANISMS.items():
        for sem in mech.semantics or (None,):
            for learner in LEARNERS:
                out.append(pytest.param(kind, sem, learner, id=f"{kind}-{sem or 'n/a'}-{learner}"))
    return out


def dataset() -> Dataset:
    """A small two-class set of non-negative counts (every learner accepts it)."""
    rng = np.random.default_rng(7)
    y = np.array([0, 1] * 12, dtype=np.int64)
    X = rng.integers(0, 3, size=(24, N_FEATURES)).astype(np.float64)
    X[y == 1, :2] += 2  # a learnable signal
    return Dataset(X[:6], y[:6], X[6:18], y[6:18], X[18:], y[18:], N_FEATURES, 2, name="battery")


DATA = dataset()


def deploy(kind: str, semantics: str | None, learner_kind: str, gas_price: int) -> tuple:
    mech = MECHANISMS[kind]
    fields = mech.Config.model_fields
    cfg = {k: v for k, v in SMALL.items() if k in fields}
    if semantics is not None:
        cfg["semantics"] = semantics
    config = mech.Config(kind=kind, **cfg)
    rows: list[tuple] = []
    chain = Chain(gas_price=gas_price, log=rows.append)
    params = {"sparse": False} if "sparse" in LEARNERS[learner_kind].Params.model_fields else {}
    learner = make_learner(learner_kind, N_FEATURES, 2, **params)
    learner.fit(DATA.X_init, DATA.y_init)
    learner.set_test_set(DATA.X_test, DATA.y_test)
    for s in SENDERS:
        chain.ledger.mint(s, START_BALANCE)
    adapter = mech.deploy(config, chain, learner)
    for s in adapter.accounts:  # the mechanism's own senders: gas money
        chain.ledger.mint(s, START_BALANCE)
    adapter.start(np.random.default_rng(0), DATA)
    return adapter, chain, rows


def comparable(adapter: Any) -> tuple:
    """The full state; the learner by its parameters (a restore bumps its cache version)."""
    state = adapter.state()
    return (*state[:-1], freeze(adapter.learner.snapshot()[1]))


actions = st.lists(
    st.tuples(
        st.sampled_from(["add_data", "add_data", "refund", "report", "predict", "end"]),
        st.integers(0, len(SENDERS) - 1),  # sender
        st.integers(0, len(DATA.y_pool) - 1),  # row (add) / contribution index (claims)
        st.integers(0, 1),  # label
        st.integers(0, 4_000),  # value offered (token units)
        st.integers(0, 25),  # seconds until the call
    ),
    min_size=1,
    max_size=30,
)


def make_call(adapter: Any, act: tuple, added: list[tuple]) -> Call | None:
    """The call an action stands for; claims point at an accepted contribution (or none)."""
    name, who, row, label, value, _ = act
    sender = SENDERS[who]
    if name == "add_data":
        return Call(name, sender, DATA.sample(row), label, value)
    if name == "predict":
        return Call(name, sender, DATA.sample(row), 0, min(value, 50))
    if not added:
        return Call(name, sender, DATA.sample(row), label, 0, 0, sender)  # nothing stored
    r, y, t, author = added[row % len(added)]
    return Call(name, sender, DATA.sample(r), y, 0, t, author)


def step(adapter: Any, chain: Chain, rows: list, act: tuple, added: list[tuple]) -> Any:
    """Run one action and check the per-call properties; returns its outcome."""
    chain.clock.advance_to(chain.clock.now + act[5])
    if act[0] == "end":
        return ("end", tuple(adapter.finish(list(SENDERS), DATA.sample)))
    call = make_call(adapter, act, added)
    if call.name not in adapter.calls:
        return None
    expect = adapter.would_accept(call)
    if call.name == "add_data":
        can = adapter.can_add(call.value, chain.ledger.balance(call.sender), chain.clock.now)
        assert can or not expect or call.value > chain.ledger.balance(call.sender), (
            f"{type(adapter).__name__}.can_add says no to an add of {call.value} that "
            f"would_accept says the contract takes"
        )
    before = comparable(adapter)
    n_rows = len(rows)
    try:
        result = adapter.send(call)
        ok = True
    except Rejected:
        result, ok = None, False
    assert len(rows) == n_rows + 1  # one transaction record per call
    reason = rows[-1][4]
    if reason != "insufficient_funds":
        assert ok == expect, (
            f"{type(adapter).__name__}.would_accept said {expect} for {call.name} by "
            f"{call.sender}; the contract {'accepted it' if ok else f'rejected it ({reason})'}"
        )
    if not ok:
        after = comparable(adapter)
        assert after[1:] == before[1:], f"a rejected {call.name} ({reason}) changed the state"
        fee = rows[-1][7]
        b, a = dict(before[0]), dict(after[0])
        b[call.sender] = b.get(call.sender, 0) - fee
        b[chain.fee_sink] = b.get(chain.fee_sink, 0) + fee
        assert {k: v for k, v in a.items() if v} == {k: v for k, v in b.items() if v}
    elif call.name == "add_data":
        added.append((int(call.x.key[1]), call.y, chain.clock.now, call.sender))
    return (call.name, ok, result)


def assert_money_ok(chain: Chain, total: Any) -> None:
    t = chain.ledger.total()
    if isinstance(t, int) and isinstance(total, int):
        assert t == total
    else:  # reference-python pays float report rewards
        assert abs(t - total) < 1e-6
    assert all(v >= 0 for v in chain.ledger.snapshot().values())


@pytest.mark.parametrize(("kind", "semantics", "learner"), combos())
@settings(max_examples=25, deadline=None)
@given(acts=actions, tail=actions, gas_price=st.sampled_from([0, 1]))
def test_mechanism_battery(kind, semantics, learner, acts, tail, gas_price):
    adapter, chain, rows = deploy(kind, semantics, learner, gas_price)
    total = chain.ledger.total()
    added: list[tuple] = []
    for act in acts:
        step(adapter, chain, rows, act, added)
        assert_money_ok(chain, total)
    # snapshot -> restore is exact, and the same calls then give the same outcomes
    snap, state0, now, n_added = (
        adapter.snapshot(),
        comparable(adapter),
        chain.clock.now,
        len(added),
    )
    first = [step(adapter, chain, rows, act, added) for act in tail]
    state1 = comparable(adapter)
    adapter.restore(snap)
    chain.clock.now = now
    del added[n_added:]
    assert comparable(adapter) == state0
    second = [step(adapter, chain, rows, act, added) for act in tail]
    assert second == first
    assert comparable(adapter) == state1
    assert_money_ok(chain, total)


@pytest.mark.parametrize("kind", list(MECHANISMS))
def test_summary_extras_are_declared_summary_columns(kind):
    """The extras are exactly the declared columns; the schema declares them; a run has them."""
    from sum_abm.market.run import run
    from sum_abm.scenario import parse_scenario

    mech = MECHANISMS[kind]
    cfg = {k: v for k, v in SMALL.items() if k in mech.Config.model_fields}
    adapter, _, _ = deploy(kind, None, "nearest_centroid", 0)
    assert set(adapter.summary_extra()) == set(adapter.summary_columns)
    sc = parse_scenario(
        {
            "name": f"battery-{kind}",
            "data": {"kind": "breast_cancer", "train_rows": 60, "init_train_rows": 20},
            "learner": {"kind": "nearest_centroid"},
            "mechanism": {"kind": kind, **cfg},
            "run": {"max_time_s": 20_000, "sample_interval_s": 5_000},
            "agents": [{"name": "honest", "policy": "honest", "count": 2}],
        }
    )
    summary = run(sc, baseline=False).summary
    assert set(adapter.summary_columns) <= set(summary.columns)
    assert set(adapter.summary_columns) <= set(schema.FRAMES["summary"].names)  # declared


@pytest.mark.parametrize("kind", list(MECHANISMS))
def test_registered_mechanism_is_complete(kind):
    """What the rest of the package asks a mechanism for is there and consistent."""
    from dashboards.run_report import MECHANISM_PANELS

    mech = MECHANISMS[kind]
    assert mech.kind == kind and mech.title
    default = mech.Config(kind=kind)  # every setting has a default
    assert getattr(default, "semantics", None) == (mech.semantics[0] if mech.semantics else None)
    for sem in mech.semantics:
        assert mech.Config(kind=kind, semantics=sem).semantics == sem
    assert mech.Config(kind=kind, **mech.interactive_defaults)  # the viz server's start is valid
    assert mech.report_panels and set(mech.report_panels) <= set(MECHANISM_PANELS)
    adapter, _, _ = deploy(kind, None, "nearest_centroid", 0)
    assert set(adapter.calls) <= {"add_data", "refund", "report", "predict"}
    assert "add_data" in adapter.calls


def test_the_market_implements_the_market_view():
    """Every member of the policies' MarketView (and ParticipantView) exists on the market."""
    from sum_abm.market.model import MarketModel
    from sum_abm.policies.view import MarketView, ParticipantView
    from sum_abm.scenario import parse_scenario

    sc = parse_scenario(
        {
            "data": {"kind": "breast_cancer", "train_rows": 60, "init_train_rows": 20},
            "learner": {"kind": "nearest_centroid"},
            "agents": [{"name": "honest", "policy": "honest", "count": 2}],
        }
    )
    model = MarketModel(scenario=sc)
    for proto, obj in ((MarketView, model), (ParticipantView, next(iter(model.participants)))):
        members = set(proto.__annotations__) | {
            k for k, v in vars(proto).items() if callable(v) or isinstance(v, property)
        }
        members -= {"__init__", "_is_protocol", "__subclasshook__"}
        missing = sorted(m for m in members if not m.startswith("_") and not hasattr(obj, m))
        assert not missing, f"{type(obj).__name__} lacks {missing}"
    assert len(model.participants) == len(model.agents) == 2


@pytest.mark.parametrize(
    ("kind", "semantics"),
    [(k, s) for k, m in MECHANISMS.items() for s in m.semantics or (None,)],
)
def test_has_take_is_the_contracts_own_take(kind, semantics):
    """``has_take`` (the market's claim walk takes every contribution past the any-address
    wait only for a mechanism with one) says what the contract's own report rule says: its
    author, with verified data and the model agreeing or not, may claim (take) a contribution
    that old by a report; and the contract accepts that take from the author."""
    adapter, chain, _ = deploy(kind, semantics, "nearest_centroid", 0)
    if not adapter.uses_claim_book:
        assert not adapter.has_take
        return
    im = adapter.im
    old = np.int64(adapter.any_wait_s + adapter.refund_time_s + 1)
    agree, yes, no = np.array([False, True]), np.ones(2, dtype=bool), np.zeros(2, dtype=bool)
    takes = np.asarray(im.reportable(old, agree, yes, no, yes), dtype=bool)
    assert takes.all() == takes.any() == adapter.has_take
    # the contract: A verifies data (a refund the model agrees with), then reports its own
    # contribution once it is that old
    rows = [
        r
        for r in range(len(DATA.y_pool))
        if adapter.learner.predict_one(DATA.sample(r)) == DATA.y_pool[r]
    ]
    chain.clock.advance_to(chain.clock.now + 1)  # (reference-python: no add in the deploy's second)
    req = adapter.required_deposit(chain.clock.now)
    x0, x1 = DATA.sample(rows[0]), DATA.sample(rows[1])
    y0, y1 = int(DATA.y_pool[rows[0]]), int(DATA.y_pool[rows[1]])
    adapter.send(Call("add_data", "A", x0, y0, max(req, 1)))
    t0 = chain.clock.now
    chain.clock.advance_to(t0 + 1)
    adapter.send(Call("add_data", "A", x1, y1, max(adapter.required_deposit(chain.clock.now), 1)))
    t1 = chain.clock.now
    chain.clock.advance_to(t1 + int(old))
    if adapter.would_accept(Call("refund", "A", x0, y0, 0, t0, "A")):
        adapter.send(Call("refund", "A", x0, y0, 0, t0, "A"))
    assert adapter.num_good("A") > 0 or not adapter.report_needs_good_data
    assert adapter.would_accept(Call("report", "A", x1, y1, 0, t1, "A")) == adapter.has_take
