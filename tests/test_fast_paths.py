"""The market's fast paths (claim book, skipped proven rejections) against the naive walk.

``run.naive_claims = true`` sends every call the reference simulator would, rejected ones
included, and lets the contract predict. The fast market must reach the same end: the same
accepted transactions in the same order (time, sender, call, value, gas, fee, amount), the same
final contract state (balances, stored contributions with their claimers, mechanism counters) and
bit-identical learner parameters, over every mechanism and the strategic policies.
"""

from __future__ import annotations

from pathlib import Path

import mesa
import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sum_abm.market.model import MarketModel
from sum_abm.market.results import collect
from sum_abm.policies.reference import ReferencePolicy
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"data.n_rows": 1200, "run.max_time_s": 40 * 86_400}


def _final(sc, seed, end=None):
    """A run's accepted transactions, final contract state, counters and accuracy (and what
    ``end(model)`` reads of the model at the end)."""
    m = MarketModel(scenario=sc, seed=seed)
    try:
        m.run()
        tx = collect(m)["transactions"].filter(pl.col("accepted"))
        contract = m.contract.mech.contract  # the trainer, or the prediction market
        snap = getattr(contract, "state_snapshot", None) or contract.snapshot
        state = snap()
        counters = [
            (a.address, a.adds_accepted, a.refunded, a.taken, a.reports_won, a.points)
            for a in m.participants
        ]
        return tx, state, counters, m.accuracy, end(m) if end is not None else None
    finally:
        mesa.Agent._ids.pop(m, None)


def _ended(m):
    return m.time, m.finished, len(m.book)


def _assert_same(sc, seed=2):
    fast = _final(sc, seed, _ended)
    naive = _final(sc.with_overrides({"run.naive_claims": True}), seed, _ended)
    assert len(fast[0]) > 0
    assert fast[0].equals(naive[0]), "accepted transactions differ"
    assert fast[1] == naive[1], "final contract or learner state differs"
    assert fast[2] == naive[2]
    assert fast[3] == naive[3]
    assert fast[4] == naive[4], "the runs end at different times (or books)"


def test_contributions_with_nothing_to_claim_leave_the_book_as_the_naive_walk_drops_them():
    # Free adds under DRT (cost weight 0): every claim of such a contribution is refused. The
    # naive walk drops one at its first visit (a refused claim with nothing left); the fast
    # market kept it until the any-address wait, so the run (days, time-weighted accuracy)
    # ended a day later than the naive one (found by a random search over small markets).
    from sum_abm.scenario import parse_scenario

    sc = parse_scenario(
        {
            "name": "free_adds",
            "seed": 20938,
            "data": {"kind": "breast_cancer", "init_train_rows": 40, "train_rows": 60},
            "learner": {"kind": "multinomial_nb"},
            "mechanism": {
                "kind": "deposit_refund_take",
                "refund_time_s": 0,
                "any_address_claim_wait_time_s": 86_400,
                "cost_weight": 0,
            },
            "run": {"max_time_s": 864_000, "sample_interval_s": 43_200},
            "agents": [
                {"name": "careless", "policy": "careless", "count": 3, "start_balance": 30,
                 "mean_wait_s": 600, "stdev_wait_s": 100, "mistake_prob": 0.5},
                {"name": "honest", "policy": "honest", "count": 2, "mean_wait_s": 120,
                 "stdev_wait_s": 100, "refund": False},
                {"name": "users", "policy": "model_user", "count": 2, "mean_wait_s": 1800,
                 "stdev_wait_s": 100, "pay_to_call": 0},
            ],
        },
        "free_adds",
    )  # fmt: skip
    fast = _final(sc, sc.seed, _ended)
    naive = _final(sc.with_overrides({"run.naive_claims": True}), sc.seed, _ended)
    assert fast[0].equals(naive[0]) and fast[1:] == naive[1:]
    end, finished, left = fast[4]
    assert finished and left == 0
    assert end == fast[0]["time_s"].max() < 86_400  # at its last call, not a day later


@pytest.mark.parametrize(
    "name",
    [
        "quickstart",
        "points",
        "reference_drt_nb",
        "reference_pm",
        "reference_pm_corrected",
        "attack_sybil",
        "attack_free_rider",
        "attack_deposit_hunter",
        "attack_adaptive",
        "attack_targeted",
        "attack_targeted_boundary",
    ],
)
def test_fast_market_equals_naive_walk(name):
    over = dict(SMALL)
    sc0 = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    if sc0.data.kind != "imdb_synthetic":
        over.pop("data.n_rows")
    elif sc0.data.train_rows:
        over.update({"data.train_rows": 300, "data.test_rows": 100, "mechanism.bounty": 500})
    _assert_same(load_scenario(ROOT / "scenarios" / f"{name}.toml", over))


@pytest.mark.parametrize(
    "learner",
    # NB's naive walk takes several seconds: the slow lane's
    ["sgd_perceptron", "perceptron", pytest.param("multinomial_nb", marks=pytest.mark.slow)],
)
def test_reference_walk_equals_naive_walk_per_learner(learner):
    sc = load_scenario(
        ROOT / "scenarios" / "reference_drt_perceptron.toml",
        {"data.n_rows": 3000, "learner.kind": learner, "run.max_time_s": 60 * 86_400},
    )
    _assert_same(sc, seed=1)


def test_walks_across_the_rules_thresholds_equal_naive_walk(monkeypatch):
    # Waits short beside the rules' ages put a threshold (the refund wait, the any-address
    # wait) inside many walks' windows: _segments cuts those into segments, and answers a
    # window no threshold cuts from its two ends alone. Both must send the naive walk's claims.
    segments = MarketModel._segments
    cut = []

    def counting(self, now, lo, hi, rules):
        segs = segments(self, now, lo, hi, rules)
        cut.append(len(segs or ()))
        return segs

    monkeypatch.setattr(MarketModel, "_segments", counting)
    sc = load_scenario(
        ROOT / "scenarios" / "reference_drt_perceptron.toml",
        {
            "data.n_rows": 2000,
            "mechanism.refund_time_s": 3_600,
            "mechanism.any_address_claim_wait_time_s": 9_000,
            "run.max_time_s": 20 * 86_400,
        },
    )
    _assert_same(sc, seed=3)
    assert sum(c > 1 for c in cut) > 50  # windows a threshold cuts
    assert sum(c == 1 for c in cut) > 50


def test_walks_over_claimed_bits_equal_naive_walk(monkeypatch):
    # Every reporter's claimed marks kept as bits (as past the first 64 reporters of a large
    # market): the few-slot walk tests a mark in place, bit ``slot & 7`` of byte ``slot >> 3``,
    # and must still send exactly the naive walk's accepted claims.
    import collections

    from sum_abm.market.claims import ClaimBook

    monkeypatch.setattr(ClaimBook, "BOOL_REPORTERS", 0)
    seen: collections.Counter = collections.Counter()
    marks = ClaimBook.marks

    def counting(self, reporter):
        arr, bits = marks(self, reporter)
        seen["bits"] += arr is not None and bits
        return arr, bits

    monkeypatch.setattr(ClaimBook, "marks", counting)
    sc = load_scenario(
        ROOT / "scenarios" / "reference_drt_perceptron.toml",
        {"data.n_rows": 3000, "run.max_time_s": 60 * 86_400},
    )
    _assert_same(sc, seed=1)
    assert seen["bits"] > 100  # walks read marks kept as bits


@pytest.mark.slow
def test_many_agent_market_equals_naive_walk():
    # 100 walkers (80 Good, 20 Bad; ~5 s, the naive walk's 350 k calls): many walks between two
    # model changes (the predictions kept per learner version), 100 reporters per contribution
    # (claimed marks sharing bytes), and book compactions under them (Good adds slowly, so its
    # refunds empty slots while adds go on).
    sc = load_scenario(
        ROOT / "scenarios" / "reference_drt_perceptron.toml",
        {
            "data.n_rows": 6000,
            "agents.Good.count": 80,
            "agents.Bad.count": 20,
            "agents.Good.mean_wait_s": 6000,
            "run.max_time_s": 30 * 86_400,
        },
    )
    _assert_same(sc, seed=4)


@pytest.mark.parametrize("own_wait, compiled", [(False, True), (False, False), (True, True)])
def test_skipped_idle_wake_ups_equal_waking_each(monkeypatch, own_wait, compiled):
    # Once the pool is dry, a reference walker's wake-up only draws its next wait while the
    # oldest contribution is younger than the walk's stop age: the market processes those
    # without waking the agent (MarketModel._skip_idle). Waking each one instead must give the
    # same run, bit for bit: transactions, contract state, counters, the random generator's
    # state (the same draws in the same order) and the queue left behind. A block time of 7 s
    # puts the stop age between two blocks. The waits are drawn ahead in blocks (BlockNormals);
    # ``own_wait``: a policy with a next_wait of its own (here mixing other draws with the
    # normal ones) is asked for it, and draws from the generator itself. ``compiled``: the
    # skipped wake-ups of the Policy's own wait in one compiled loop (_compiled.dry_wakes), else
    # one by one in Python.
    import sum_abm.learners._compiled as kernels

    if not compiled:
        monkeypatch.setattr(kernels, "dry_wakes", None)
    elif not kernels.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    if own_wait:

        def next_wait(self, agent):
            rng = agent.model.rng
            return int(rng.integers(300, 900)) if rng.random() < 0.5 else self.draw_wait(rng)

        monkeypatch.setattr(ReferencePolicy, "next_wait", next_wait)
    sc = load_scenario(
        ROOT / "scenarios" / "reference_drt_perceptron.toml",
        {
            "data.n_rows": 1500,
            "agents.Good.count": 40,
            "agents.Bad.count": 10,
            "chain.block_time_s": 7,
            "run.max_time_s": 40 * 86_400,
        },
    )
    skip, skipped = MarketModel._skip_idle, []

    def counted(self, limit):
        n = len(self.events)
        seq = self.events._seq
        done = skip(self, limit)
        skipped.append(self.events._seq - seq + n - len(self.events))
        return done

    def end(m):
        queue = sorted((t, p, fn.__self__.address) for t, p, _, fn in m.events._heap)
        return m.rng.bit_generator.state, m.events.time, m.clock.now, queue

    monkeypatch.setattr(MarketModel, "_skip_idle", counted)
    fast = _final(sc, 3, end)
    monkeypatch.setattr(MarketModel, "_skip_idle", lambda self, limit: False)
    each = _final(sc, 3, end)
    assert sum(skipped) > 5_000  # most of the dry pool's wake-ups
    assert fast[0].equals(each[0])
    assert fast[1:] == each[1:]


@pytest.mark.parametrize(
    "over, fewer",
    [
        # corrected DRT: a walker without verified data is refused its takes (few walks are
        # refused whole there: the memo must still keep the naive market's end)
        (
            {
                "mechanism.semantics": "corrected",
                "mechanism.any_address_claim_wait_time_s": 172_800,
            },
            1,
        ),
    ],
)
def test_a_walk_refused_whole_waits_for_a_change(monkeypatch, over, fewer):
    # A walk whose every claim the contract refuses changed nothing, so it waits, as a walk that
    # found nothing, for the model, the walker's verified data, the pool or an age threshold to
    # change (MarketModel._refused_walk); before, it re-sent every refused claim at every
    # wake-up. The naive market, which sends them all, must still reach the same end.
    from sum_abm.market.contract_setup import MarketContract

    sc = load_scenario(
        ROOT / "scenarios" / "reference_drt_perceptron.toml",
        {"data.n_rows": 600, "agents.Good.count": 4, "agents.Bad.count": 2, **over}
        | ({} if "run.max_time_s" in over else {"run.max_time_s": 20 * 86_400}),
    )
    send, memo, refusals, walks = MarketContract.claims, MarketModel._refused_walk, [0], []

    def counted(self, addr, claims):
        out = send(self, addr, claims)
        refusals[0] += sum(not ok for ok, _, _ in out)
        return out

    def remembered(self, *args):
        walks.append(args)
        memo(self, *args)

    monkeypatch.setattr(MarketContract, "claims", counted)
    monkeypatch.setattr(MarketModel, "_refused_walk", remembered)
    _assert_same(sc, seed=1)  # (the naive market sends its claims one by one, not in batches)
    assert len(walks) > 20
    with_memo, refusals[0] = refusals[0], 0
    monkeypatch.setattr(MarketModel, "_refused_walk", lambda self, *args: None)
    _final(sc, 1)
    assert refusals[0] >= fewer * with_memo > 0  # refused claims are not sent again at once


# The reference walk under Points (no take), with waits short beside the run: once the pool is
# dry the walk goes on to contributions past the any-address wait only (its stop age there).
POINTS_REFERENCE = {
    "data.n_rows": 600,
    "agents.Good.count": 4,
    "agents.Bad.count": 2,
    "mechanism.kind": "points",
    "mechanism.refund_time_s": 86_400,
    "mechanism.any_address_claim_wait_time_s": 2 * 86_400,
}


def test_points_walk_has_no_take_and_equals_naive_walk(monkeypatch):
    # Points has no take: past the any-address wait its author still refunds (scores) its data
    # the model agrees with and others report what it disagrees with; nobody may take it. The
    # walk had sent every such contribution as a take (a report call, refused for the author's
    # own data), so the authors' agreeing data stayed in the book and the run went on to
    # run.max_time_s (400 days) after its last call at 2.5 days. Fast and naive walks must agree,
    # and the fast one sends no claim the contract refuses.
    from sum_abm.market.contract_setup import MarketContract

    sc = load_scenario(ROOT / "scenarios" / "reference_drt_perceptron.toml", POINTS_REFERENCE)
    send, refusals, old_refunds = MarketContract.claims, [0], [0]

    def counted(self, addr, claims):
        out = send(self, addr, claims)
        refusals[0] += sum(not ok for ok, _, _ in out)
        now = self.chain.clock.now
        old_refunds[0] += sum(
            ok and c[0] == "refund" and now - c[3] > 2 * 86_400
            for c, (ok, _, _) in zip(claims, out, strict=True)
        )
        return out

    monkeypatch.setattr(MarketContract, "claims", counted)
    fast = _final(sc, 1, lambda m: (m.time, m.finished, len(m.book)))
    assert refusals[0] == 0
    assert old_refunds[0] > 100  # (245 of the 245 refunds: the dry reference walk's stop age)
    naive = _final(sc.with_overrides({"run.naive_claims": True}), 1, lambda m: m.time)
    assert fast[0].equals(naive[0])
    assert fast[1:4] == naive[1:4]
    end, finished, left = fast[4]
    assert (finished, left) == (True, 0)
    assert end == naive[4] == fast[0]["time_s"].max()  # the run ends at its last claim
    assert 2 * 86_400 < end < 3 * 86_400


@pytest.mark.parametrize(
    "name, over", [("reference_drt_perceptron", POINTS_REFERENCE), ("points", {})]
)
def test_points_run_ends_when_its_book_is_dead_as_the_naive_walk_does(name, over):
    # One contributor under Points (the reference agent, whose dry wake-ups the market skips, or
    # the honest one): once the pool is dry the model stays, and its own data the model
    # disagrees with can be claimed by nobody (MarketModel._book_dead). Both markets end at the
    # same time (the fast one's last claim) with the same book left, generator state and queue.
    from sum_abm.scenario import parse_scenario, read_toml

    data = read_toml(ROOT / "scenarios" / f"{name}.toml")
    data["agents"] = [{**data["agents"][0], "count": 1}]
    sc = parse_scenario(data, name).with_overrides(
        {k: v for k, v in over.items() if not k.startswith("agents.")}
    )

    def end(m):
        queue = sorted((t, p, fn.__self__.address) for t, p, _, fn in m.events._heap)
        return m.time, m.finished, len(m.book), m.rng.bit_generator.state, queue

    fast = _final(sc, 1, end)
    naive = _final(sc.with_overrides({"run.naive_claims": True}), 1, end)
    assert fast[0].equals(naive[0])
    assert fast[1:] == naive[1:]
    t_end, finished, left = fast[4][:3]
    assert finished and left > 0  # (17 and 18 contributions nobody can claim)
    assert t_end == fast[0]["time_s"].max() < 5 * 86_400  # not run.max_time_s (400 days)


@pytest.mark.slow
def test_full_size_s1_equals_naive_walk():
    # The naive walk of S1 sends ~9 M calls (minutes); the fast one ~55 k.
    _assert_same(load_scenario(ROOT / "scenarios" / "reference_drt_perceptron.toml"), seed=1)


def test_book_scores_follow_perceptron_steps():
    # ClaimBook.shift moves each slot's score by step * overlap + intercept step: after a few
    # hundred steps every score still equals X @ w + b (to rounding) with the same sign.
    import numpy as np

    from sum_abm.market.claims import ClaimBook

    rng = np.random.default_rng(5)
    d, n = 300, 120
    book = ClaimBook(binary_words=-(-d // 64))
    rows = [np.sort(rng.choice(d, size=rng.integers(5, 60), replace=False)) for _ in range(n)]
    w, b = rng.normal(size=d), 0.3
    for i, r in enumerate(rows):
        slot = book.add(i, 0, i, 1, r.astype(np.int32), np.ones(len(r)))
        book.set_scores(slot, w[r].sum() + b, 0.0)
    for _ in range(300):
        f = np.sort(rng.choice(d, size=rng.integers(5, 60), replace=False))
        step, db = float(rng.normal()), float(rng.normal() * 0.01)
        w[f] += step
        b += db
        book.shift(book.bitset(f), step, db)
    exact = np.array([w[r].sum() + b for r in rows])
    assert np.allclose(book.score[:n], exact, rtol=0, atol=1e-9)
    assert np.array_equal(book.score[:n] > 0, exact > 0)
    assert ClaimBook(binary_words=5).scored and not ClaimBook().scored


def test_book_shift_compiled_equals_numpy(monkeypatch):
    # The compiled shift and the numpy passes move every score and allowance bit for bit alike
    # and log the same slots: sign changes, slots near zero once any is, only live ones; slack
    # and intercept steps included, dead slots and a head past 0.
    import numpy as np

    import sum_abm.learners._compiled as compiled
    from sum_abm.market.claims import ClaimBook

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(11)
    d, n = 200, 150
    # Every fifth slot has only features 150+, which no step touches: its score near 0 stays
    # there (within the rounding allowance), so the near-zero test runs at every step.
    rows = [
        np.sort(rng.choice(d, size=rng.integers(1, 40), replace=False))
        if i % 5
        else np.sort(rng.choice(np.arange(150, d), size=3, replace=False))
        for i in range(n)
    ]
    w = rng.normal(size=d) * 0.05
    w[150:] = 0.0

    def book_and_log(kernel):
        monkeypatch.setattr(compiled, "book_shift", kernel)
        r = np.random.default_rng(3)
        book = ClaimBook(binary_words=-(-d // 64))
        for i, row in enumerate(rows):
            slot = book.add(i, 0, i, 1, row.astype(np.int32), np.ones(len(row)))
            book.set_scores(slot, float(w[row].sum()) + 1e-9 * (i % 3 - 1), 0.0)
        book.w_bound, book.b_bound, book.head = 1.0, 0.5, 7
        for s in (20, 40, 41, 90):
            book.remove(s)
        for _ in range(200):
            f = np.sort(r.choice(150, size=r.integers(1, 40), replace=False))
            step, db, slack = float(r.normal() * 0.01), float(r.normal() * 1e-11), 1e-12
            book.shift(book.bitset(f), step, db, slack if r.random() < 0.5 else 0.0)
        return book.score.copy(), book.mag.copy(), [s.tolist() for _, s in book.flip_log]

    fast = book_and_log(compiled.book_shift)
    slow = book_and_log(None)
    assert np.array_equal(fast[0], slow[0]) and np.array_equal(fast[1], slow[1])
    assert fast[2] == slow[2]
    assert sum(len(s) for s in fast[2]) > 50  # classes did change
    assert fast[0][:7].tolist() == [
        float(w[r].sum()) + 1e-9 * (i % 3 - 1) for i, r in enumerate(rows[:7])
    ]


@pytest.mark.parametrize(
    ("name", "over", "bool_reporters"),
    [
        ("quickstart", SMALL, 64),  # claimed marks read, walkers gaining verified data in a walk
        ("quickstart", SMALL, 0),  # ... the marks kept as bits
        ("points", {"run.max_time_s": 40 * 86_400}, 64),
        (  # the take branch, 100 walkers
            "reference_drt_perceptron",
            {"data.n_rows": 3000, "agents.Good.count": 80, "agents.Bad.count": 20,
             "run.max_time_s": 20 * 86_400},
            64,
        ),
    ],
)  # fmt: skip
def test_walk_candidates_compiled_equals_numpy(monkeypatch, name, over, bool_reporters):
    # Every array walk of a whole market: the compiled scan finds the same candidate slots, in
    # the same order, and the same verified-data flag as the numpy tables.
    import collections

    import sum_abm.learners._compiled as compiled
    from sum_abm.market.claims import ClaimBook

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    monkeypatch.setattr(ClaimBook, "BOOL_REPORTERS", bool_reporters)
    walk = MarketModel._walk_candidates
    seen = collections.Counter()

    scan = compiled.walk_scan

    def both(self, segs, me, good, agree, p_lo, rules):
        fast = walk(self, segs, me, good, agree, p_lo, rules)
        compiled.walk_scan = None  # the numpy tables, on the same state
        try:
            slow = walk(self, segs, me, good, agree, p_lo, rules)
        finally:
            compiled.walk_scan = scan
        assert fast[0].tolist() == slow[0].tolist() and fast[1] == slow[1]
        marks, bits = self.book.marks(me)
        reads = [t[3] for *_, t in segs if t is not None]
        seen["bits read" if bits else "bools read"] += marks is not None and any(reads)
        seen["agree read"] += any(t[2] for *_, t in segs if t is not None)
        seen["take"] += any(t is None and take for _, _, take, t in segs)
        seen["found"] += len(fast[0]) > 0
        seen["became good"] += fast[1] and not good
        return fast

    monkeypatch.setattr(MarketModel, "_walk_candidates", both)
    m = MarketModel(scenario=load_scenario(ROOT / "scenarios" / f"{name}.toml", over), seed=2)
    try:
        m.run()
    finally:
        mesa.Agent._ids.pop(m, None)
    assert seen["found"] > 100 and seen["agree read"] > 100
    if name == "quickstart":
        assert seen["became good"] > 0
        assert seen["bits read" if bool_reporters == 0 else "bools read"] > 100
    if name == "reference_drt_perceptron":
        assert seen["take"] > 100


def _walk_claims_both(book, samples, names, slots, me, take_end, pred, p_lo, p_hi):
    """MarketModel._walk_claims compiled and in Python on the same stand-in market (the samples
    list each made its own copy of, so each path fills it alone)."""
    from types import SimpleNamespace

    import sum_abm.learners._compiled as compiled

    out = []
    for fn in (compiled.walk_claims, None):
        xs = list(samples)
        made = []

        def sample(row, xs=xs, made=made):
            made.append(row)
            xs[row] = ("made", row)
            return xs[row]

        m = SimpleNamespace(book=book, _samples=xs, sample=sample, addresses=names)
        kernel = compiled.walk_claims
        compiled.walk_claims = fn
        try:
            got = MarketModel._walk_claims(m, slots, me, take_end, pred, p_lo, p_hi)
        finally:
            compiled.walk_claims = kernel
        out.append((got, xs, made))
    return out


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_book=st.integers(1, 60),
    pred_kind=st.sampled_from([None, "bool", "int64", "int32"]),
)
def test_walk_claims_compiled_equals_python(seed, n_book, pred_kind):
    # The walk's batch (one claim tuple per candidate slot, the slots and the authors) built in
    # one compiled pass: the same lists, tuples and types as the Python path, the predictions
    # read only in [max(p_lo, take_end), p_hi), a row not sampled yet made by sample().
    from types import SimpleNamespace

    import numpy as np

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(seed)
    n_rows, n_names = 40, 6
    book = SimpleNamespace(
        row=rng.integers(0, n_rows, n_book),
        label=rng.integers(0, 3, n_book),
        time=rng.integers(0, 2**40, n_book),
        author=rng.integers(0, n_names, n_book),
    )
    samples = [None if rng.random() < 0.3 else ("pool", r) for r in range(n_rows)]
    names = [f"agent-{i}" for i in range(n_names)]
    slots = np.flatnonzero(rng.random(n_book) < 0.5).astype(np.int64)
    me = int(rng.integers(0, n_names))
    take_end = int(rng.integers(0, n_book + 1))
    p_lo = int(rng.integers(0, n_book + 1))
    p_hi = int(rng.integers(p_lo, n_book + 1))
    pred = None
    if pred_kind == "bool":
        pred = rng.random(p_hi - p_lo) < 0.5
    elif pred_kind is not None:
        pred = rng.integers(0, 3, p_hi - p_lo).astype(pred_kind)
    (fast, xs_f, made_f), (slow, xs_s, made_s) = _walk_claims_both(
        book, samples, names, slots, me, take_end, pred, p_lo, p_hi
    )
    assert fast == slow and xs_f == xs_s and made_f == made_s
    claims, slot_list, authors = fast
    assert slot_list == slots.tolist() and all(type(s) is int for s in slot_list + authors)
    for c, s in zip(claims, slot_list, strict=True):
        assert c[0] == ("refund" if book.author[s] == me and s >= take_end else "report")
        assert c[5] is None or (type(c[5]) is int and max(p_lo, take_end) <= s < p_hi)
        assert all(type(v) is int for v in c[2:4])


@pytest.mark.parametrize(
    ("name", "over"),
    [
        ("quickstart", SMALL),  # scored book: the kept classes as bools
        (
            "reference_drt_nb",
            {
                "data.n_rows": 3000,
                "agents.Good.count": 8,
                "agents.Bad.count": 2,
                "run.max_time_s": 30 * 86_400,
            },
        ),  # tracked
    ],
)
def test_walk_claims_compiled_equals_python_in_a_market(monkeypatch, name, over):
    # Every full walk's batch of a whole market, compiled and in Python on the same state.
    import collections

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    build = MarketModel._walk_claims
    kernel = compiled.walk_claims
    seen = collections.Counter()

    def both(self, slots, me, take_end, pred, p_lo, p_hi):
        fast = build(self, slots, me, take_end, pred, p_lo, p_hi)
        compiled.walk_claims = None
        try:
            slow = build(self, slots, me, take_end, pred, p_lo, p_hi)
        finally:
            compiled.walk_claims = kernel
        assert fast == slow
        seen[str(None if pred is None else pred.dtype)] += 1
        seen["predicted"] += sum(c[5] is not None for c in fast[0])
        seen["refunds"] += sum(c[0] == "refund" for c in fast[0])
        return fast

    monkeypatch.setattr(MarketModel, "_walk_claims", both)
    _final(load_scenario(ROOT / "scenarios" / f"{name}.toml", over), 2)
    assert seen["predicted"] > 100 and seen["refunds"] > 10
    assert seen["bool" if name == "quickstart" else "int64"] > 20


def test_walk_claims_refuses_what_it_cannot_read():
    from types import SimpleNamespace

    import numpy as np

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    z = np.zeros(4, dtype=np.int64)
    book = SimpleNamespace(row=z, label=z, time=z, author=z)
    names, xs = ["a"], [("pool", 0)]

    def call(slots, pred=None, p_lo=0, p_hi=0, row=z):
        return compiled.walk_claims(
            np.array(slots, dtype=np.int64), row, z, z, z, 0, 0, pred, p_lo, p_hi, xs,
            lambda r: xs[r], names, "refund", "report",
        )  # fmt: skip

    assert call([0, 3])[0] == [("refund", ("pool", 0), 0, 0, "a", None)] * 2
    with pytest.raises(IndexError, match="outside the book"):
        call([4])
    with pytest.raises(IndexError, match="out of range"):
        call([1], row=np.array([0, 1, 0, 0]))  # row 1: no sample slot
    with pytest.raises(IndexError, match="past the predictions"):
        call([3], pred=np.zeros(2, dtype=bool), p_lo=0, p_hi=4)
    with pytest.raises(TypeError, match="pred"):
        call([0], pred=np.zeros(4), p_lo=0, p_hi=4)  # floats are no classes
    assert _walk_claims_both(book, xs, names, np.array([0]), 0, 0, None, 0, 0)[0][0][1] == [0]


def test_walk_scan_refuses_arrays_it_cannot_read():
    import numpy as np

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    author = np.array([0, 1, 1, 0, 1], dtype=np.int64)
    live = np.array([1, 1, 0, 1, 1], dtype=bool)
    agree = np.array([1, 0, 1, 1, 0], dtype=bool)
    marks = bytearray([0b10010])  # slots 1 and 4 claimed
    table = np.zeros(8, dtype=bool)
    table[3] = True  # own, claimed, disagreeing
    out = np.zeros(5, dtype=np.int64)
    args = (author, 1, 0, 5, agree, 0, marks, True, live, table, out, 5)
    assert compiled.walk_scan(*args) == 2 and out[:2].tolist() == [1, 4]
    assert compiled.walk_scan(*args[:-1], 1) == 1  # at most `limit`
    table[4] = True  # not own, agreeing, not claimed: slots 0 and 3 (2 is not live)
    assert compiled.walk_scan(*args) == 4 and out.tolist()[:4] == [0, 1, 3, 4]
    assert compiled.walk_scan(*args[:2], 1, 4, *args[4:]) == 2 and out[:2].tolist() == [1, 3]
    bools = np.array([0, 1, 0, 0, 1], dtype=bool)  # the same marks, one bool per slot
    assert compiled.walk_scan(*args[:6], bools, False, *args[8:]) == 4
    assert compiled.walk_scan(*args[:4], None, 0, *args[6:]) == 2  # no agreement: code 0 or 3
    assert out[:2].tolist() == [1, 4]
    assert compiled.walk_scan(author, 1, 1, 5, agree[1:], 1, *args[6:]) == 3  # from slot 1 on
    assert out[:3].tolist() == [1, 3, 4]
    with pytest.raises(ValueError, match="shapes do not match"):
        compiled.walk_scan(author, 1, 0, 6, *args[4:])  # past the arrays
    with pytest.raises(ValueError, match="shapes do not match"):
        compiled.walk_scan(*args[:4], agree[:3], 0, *args[6:])  # agreement too short
    with pytest.raises(ValueError, match="shapes do not match"):
        compiled.walk_scan(*args[:4], agree[1:], 1, *args[6:])  # agreement starts past lo
    with pytest.raises(ValueError, match="shapes do not match"):
        compiled.walk_scan(*args[:8], live, table[:4], out, 5)
    with pytest.raises(TypeError, match="live: unexpected item type"):
        compiled.walk_scan(*args[:8], live.astype(np.int64), table, out, 5)


class _Waker:
    """A stand-in participant for the dry_wakes oracle: ``wake`` is its event callback."""

    def __init__(self, i, active, mean, stdev):
        self.active, self.address, self.rank = active, f"p{i}", i % 3
        self.config = type("Config", (), {"mean_wait_s": mean, "stdev_wait_s": stdev})()

    def wake(self):  # pragma: no cover - never called: the loop only reschedules it
        raise AssertionError


def _dry_wakes_in_python(heap, infos, balances, normals, pos, limit, h0, h1, seq):
    """What _compiled.dry_wakes does, with heapq: the oracle of the test below."""
    import heapq

    n = time = 0
    while heap:
        t, _, _, fn = heap[0]
        info = infos.get(fn)
        if t > limit or info is None:
            break
        agent, address, ref, rank, cfg = info
        if t >= (h1 if ref else h0) or not agent.active or not balances.get(address, 0) > 0:
            break
        for p in range(pos, len(normals)):
            v = int(cfg.mean_wait_s + cfg.stdev_wait_s * normals[p])  # draw_positive_int
            if v > 0:
                break
        else:
            return n, pos, seq, time, 1  # the normals ran out
        heapq.heapreplace(heap, (t + v, rank, seq + 1, fn))
        n, pos, seq, time = n + 1, p + 1, seq + 1, t
    return n, pos, seq, time, 0


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    n_normals=st.integers(0, 300),
    mean=st.sampled_from([1.0, 5.0, 600.0, 3600, 0.5]),
)
def test_dry_wakes_reschedule_as_heapq_does(seed, n, n_normals, mean):
    # MarketModel._skip_idle hands the dry wake-ups that only draw their next wait to a compiled
    # loop. It must leave the queue's list, the draws used and the sequence exactly as the same
    # loop in Python with heapq: stopping at a wake-up of a participant it was not given, an
    # inactive one, one without a positive balance (or none at all), one past the limit or at
    # its horizon, and asking for more normals when they run out (nothing of that wake-up done).
    import heapq
    from types import MappingProxyType

    import numpy as np

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    rng = np.random.default_rng(seed)
    wakers = [_Waker(i, rng.random() < 0.9, mean, float(rng.choice([0.0, 1.0, 9.0, 900.0])))
              for i in range(n)]  # fmt: skip
    heap, times = [], rng.integers(0, 4_000, n).tolist()
    for i, w in enumerate(wakers):
        heapq.heappush(heap, (times[i], w.rank, i, w.wake))
    infos = {w.wake: (w, w.address, bool(rng.random() < 0.5), w.rank, w.config)
             for w in wakers if rng.random() < 0.95}  # fmt: skip
    balances = {w.address: int(rng.choice([0, 5, 100])) for w in wakers if rng.random() < 0.95}
    normals = rng.standard_normal(n_normals)
    pos = int(rng.integers(0, n_normals + 1))
    # the limit and the horizons at, just below or just past some wake-up's time, or far on
    limit, h0, h1 = (int(rng.choice(times)) + int(rng.integers(-1, 2)) if rng.random() < 0.5
                     else 10**6 for _ in range(3))  # fmt: skip
    args = (infos, MappingProxyType(balances), normals, pos, limit, h0, h1, n)
    ours, theirs = list(heap), list(heap)
    got = compiled.dry_wakes(ours, *args)
    want = _dry_wakes_in_python(theirs, infos, balances, normals.tolist(), *args[3:])
    assert got == want
    assert ours == theirs  # the same items, in the same places


def test_dry_wakes_leave_a_queue_they_cannot_order():
    import numpy as np

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    w = [_Waker(i, True, 600.0, 1.0) for i in range(3)]
    infos = {x.wake: (x, x.address, False, x.rank, x.config) for x in w}
    balances = {x.address: 10 for x in w}
    normals = np.zeros(10)
    # (a float priority, a sequence past 64 bits, a list, the third item's key: Python would
    # compare the callbacks)
    odds = (
        (9, 0.5, 2, w[1].wake),
        (9, 0, 2**70, w[1].wake),
        [9, 0, 2, w[1].wake],
        (9, 0, 3, w[1].wake),
    )
    for odd in odds:
        heap = [(0, 0, 1, w[0].wake), odd, (9, 0, 3, w[2].wake)]
        before = list(heap)
        # the first wake-up's new place needs the odd item's order (times tie): nothing done
        assert compiled.dry_wakes(heap, infos, balances, normals, 0, 99, 99, 99, 3)[:2] == (0, 0)
        assert heap == before
    # a wait rule it cannot read as numbers: left to Python, nothing done
    w[0].config.mean_wait_s = "600"
    heap = [(0, 0, 1, w[0].wake), (9, 0, 3, w[2].wake)]
    assert compiled.dry_wakes(heap, infos, balances, normals, 0, 99, 99, 99, 3) == (0, 0, 3, 0, 0)
    with pytest.raises(ValueError, match="pos outside"):
        compiled.dry_wakes(heap, infos, balances, normals, 11, 99, 99, 99, 3)
    with pytest.raises(TypeError, match="infos holds"):
        compiled.dry_wakes(heap, {w[0].wake: (1, 2)}, balances, normals, 0, 99, 99, 99, 3)


@pytest.mark.parametrize("semantics", ["solidity", "reference-python", "corrected", "points"])
def test_claim_rules_are_the_contracts_checks(semantics):
    # The book selects claims with the mechanism's refundable/reportable; they must say exactly
    # what the contract's checks accept, for every age around the waits and every flag.
    import itertools

    import numpy as np

    from sum_abm.chain import Rejected
    from sum_abm.contract.data_handler import StoredData
    from sum_abm.contract.drt import DepositRefundTake
    from sum_abm.contract.points import Points

    rt, aw = 100, 300
    im = Points(rt, aw) if semantics == "points" else DepositRefundTake(rt, aw, 1, semantics)
    now = 1_000
    for age, agrees, own, claimed, good in itertools.product(
        (0, rt - 1, rt, rt + 1, aw - 1, aw, aw + 1), (False, True), *[(False, True)] * 3
    ):
        if own and claimed:
            continue  # an author that claimed its own contribution emptied it
        author = "me" if own else "other"
        claimers = {"me"} if claimed else set()
        if semantics == "points" and claimed:
            continue  # a claimed contribution is out of the book
        im.num_good = {"me": 1} if good else {}
        im.total_good = 1 if good else 0
        stored = StoredData(author, now - age, 1, 10, 10, set(claimers))
        pred = 1 if agrees else 0
        a = np.array([age])
        if own:
            try:
                im.refund_amount("me", stored, pred, now)
                ok = True
            except Rejected:
                ok = False
            assert bool(im.refundable(a, np.array([agrees]))[0]) == ok, (age, agrees)
        try:
            im.report_amount("me", stored, pred, now)
            ok = True
        except Rejected:
            ok = False
        got = im.reportable(a, np.array([agrees]), np.array([own]), np.array([claimed]), good)
        assert bool(got[0]) == ok, (age, agrees, own, claimed, good)


@settings(max_examples=300, deadline=None)
@given(
    times=st.lists(st.integers(0, 40), max_size=30).map(sorted),
    ages=st.sets(st.integers(0, 15), min_size=1, max_size=6),
    t_prev=st.integers(0, 60),
    gap=st.integers(-2, 20),
    bounds=st.tuples(st.integers(0, 30), st.integers(0, 30)).map(sorted),
    flipped=st.sets(st.integers(0, 35), max_size=6).map(sorted),
)
# a run of two ages: a time each side of where it ends; no time passed (nothing crossed)
@example([10, 11, 12, 13, 14, 15], {4, 5}, 14, 4, (0, 6), [])
@example([5, 6, 7], {2, 3}, 9, 0, (0, 3), [])
def test_crossed_spans_are_the_slots_whose_age_crossed_a_threshold(
    times, ages, t_prev, gap, bounds, flipped
):
    # _crossed (the incremental walk's slots to re-examine) against its definition, slot by slot:
    # a slot in [lo, hi) whose age crossed one of the ages in (t_prev, now], or a flipped slot
    # there, as maximal runs of slots. Ages in runs (a, a + 1, ...) are searched per run.
    from types import SimpleNamespace

    from sum_abm.market.model import age_runs

    now = t_prev + gap
    lo, hi = bounds
    hi = min(hi, len(times))
    desc = sorted(ages, reverse=True)
    model = SimpleNamespace(book=SimpleNamespace(times=times), _crossing_runs=age_runs(desc))
    got = MarketModel._crossed(model, t_prev, now, lo, hi, flipped)
    want = [
        s for s in range(lo, hi) if s in flipped or any(t_prev < times[s] + a <= now for a in ages)
    ]
    runs: list[list[int]] = []
    for s in want:
        if runs and runs[-1][1] == s:
            runs[-1][1] = s + 1
        else:
            runs.append([s, s + 1])
    assert got == [tuple(r) for r in runs]
    assert [a for run in age_runs(desc) for a in range(run[0], run[1] - 1, -1)] == desc


def test_book_logs_the_slots_whose_class_may_have_changed():
    # ClaimBook.shift names the live slots whose score changed sign (what an incremental claim
    # walk re-examines); a compaction renumbers slots, so the log restarts and older epochs
    # are no longer answerable.
    import numpy as np

    from sum_abm.market.claims import ClaimBook

    book = ClaimBook(binary_words=1)
    rows = [np.array([0, 1], dtype=np.int32), np.array([2], dtype=np.int32)]
    for i, r in enumerate(rows):
        slot = book.add(i, 0, i, 1, r, np.ones(len(r)))
        book.set_scores(slot, 0.5, 0.0)
    book.w_bound, book.b_bound = 1.0, 0.0
    assert len(book.flipped_since(0)) == 0
    book.shift(book.bitset(np.array([1])), -1.0, 0.0)  # slot 0: 0.5 -> -0.5; slot 1 unmoved
    assert book.flipped_since(0) == [0] and len(book.flipped_since(1)) == 0
    book.shift(book.bitset(np.array([2])), 0.25, 0.0)  # slot 1 stays positive: nothing logged
    assert book.flip_epoch == 1
    book.remove(1)
    book._compact()
    assert book.flipped_since(0) is None and len(book.flipped_since(1)) == 0


def test_book_counts_logged_flips_and_new_slots_start_unclaimed():
    # flip_count (what claim_walk weighs against its window) counts the logged slots after an
    # epoch with repeats; flipped_since gives them once each, sorted. A slot added after a
    # compaction or a growth is claimed by nobody, though a reporter's array held marks there.
    import numpy as np

    from sum_abm.market.claims import ClaimBook

    book = ClaimBook(capacity=4, binary_words=1)
    for i in range(3):
        slot = book.add(i, 0, i, 1, np.array([i], dtype=np.int32), np.ones(1))
        book.set_scores(slot, 0.5, 0.0)
    book.w_bound, book.b_bound = 1.0, 0.0
    assert book.flip_count(0) == 0
    book.shift(book.bitset(np.array([0, 2])), -1.0, 0.0)  # slots 0 and 2 flip
    book.shift(book.bitset(np.array([2])), 1.0, 0.0)  # slot 2 flips back
    assert book.flip_count(0) == 3 and book.flip_count(1) == 1 and book.flip_count(2) == 0
    assert book.flipped_since(0) == [0, 2] and book.flipped_since(1) == [2]
    book.mark_claimed(1, 7)
    book.mark_claimed(2, 7)
    # as a tracking pass leaves them: predicted, in a drift epoch, with a class proven up to a cap
    book.pred_ver[:3], book.epoch_at[:3], book.cap[:3] = 2, 3, 1.5
    book.remove(0)
    book.remove(1)
    book._compact()  # slot 2 becomes slot 0, keeping its mark; slot 1 is free again
    assert book.flip_count(0) is None
    assert book.claimed_by(7, 0, 2).tolist() == [True, False]
    for t in range(3, 8):  # refills slot 1 and grows past the capacity of 4
        book.add(t, 0, t, 1, np.array([0, t], dtype=np.int32), np.ones(2))
    assert book.claimed_by(7, 0, book.n).tolist() == [True] + [False] * 5
    # ... and neither predicted nor tracked, while the kept slot keeps its own; every slot's
    # features where fptr says
    assert book.pred_ver[: book.n].tolist() == [2] + [-1] * 5
    assert book.epoch_at[: book.n].tolist() == [3] + [-1] * 5
    assert book.cap[: book.n].tolist() == [1.5] + [np.inf] * 5
    feats = [book.fidx[book.fptr[s] : book.fptr[s + 1]].tolist() for s in range(book.n)]
    assert feats == [[2]] + [[0, t] for t in range(3, 8)]


def test_book_claimed_marks_follow_a_set_through_growth_and_compaction():
    # The claimed marks (bools, or one bit per slot): against a plain set of (reporter, contribution)
    # pairs, through single and batched marks (several in one byte), removals, compactions and
    # growth, every reporter's marks over every range read the same.
    import numpy as np

    from sum_abm.market.claims import ClaimBook

    rng = np.random.default_rng(5)
    book = ClaimBook(capacity=12)
    book.BOOL_REPORTERS = 2  # reporters 1..3 as they come: two as bools, the others as bits
    marks: set[tuple[int, int]] = set()
    for t in range(400):
        book.add(t, t % 3, t, 0, np.array([t % 7], dtype=np.int32), np.ones(1))
        live = [s for s in range(book.head, book.n) if book.live[s]]
        ids = book.time.tolist()
        r = int(rng.integers(4))
        picks = sorted({int(x) for x in rng.choice(live, size=min(len(live), 5), replace=False)})
        if r == 0:
            book.mark_claimed(picks[0], 1)
        else:
            book.mark_claimed_many(picks, r)
        marks |= {(r if r else 1, ids[s]) for s in picks}
        for s in rng.choice(live, size=min(len(live), 2), replace=False).tolist():
            book.remove(int(s))
        ids = book.time.tolist()
        lo = int(rng.integers(0, book.n))
        hi = int(rng.integers(lo, book.n + 1))
        for rep in range(4):
            want = [(rep, ids[s]) in marks for s in range(lo, hi)]
            assert book.claimed_by(rep, lo, hi).tolist() == want, (t, rep, lo, hi)
    assert book.n < 400  # it compacted along the way
    assert sorted(type(a).__name__ for a in book.claimed.values()) == [
        "bytearray",
        "ndarray",
        "ndarray",
    ]


def test_book_tracks_nb_classes_through_updates_and_logs_every_change():
    # For Naive Bayes the book follows each pending slot's class through every update by the
    # learner's margin bound: a tracked class always equals a fresh prediction, and a slot whose
    # class changed after flip epoch e is named by flipped_since(e).
    import numpy as np

    sc = load_scenario(
        ROOT / "scenarios" / "reference_drt_nb.toml",
        {"data.n_rows": 1000, "run.max_time_s": 20 * 86_400},
    )
    m = MarketModel(scenario=sc, seed=3)
    try:
        b, L = m.book, m.learner
        assert b.tracked and b.follows and not b.scored
        seen = {}  # pool row -> (flip epoch, class) when last checked
        checked = changed = 0
        for t in range(600, 20 * 86_400, 600):  # about one update per step
            m.run_until(t)
            if m.finished:
                break
            if b.scored_version != L.version:
                continue
            live = np.flatnonzero(b.live[b.head : b.n]) + b.head
            tracked = live[b.epoch_at[live] == L.drift_epoch]
            rows = b.row[tracked]
            fresh = L.predict(m.data.X_pool[rows])
            assert np.array_equal(b.pred[tracked], fresh)
            checked += len(tracked)
            for slot, row, cls in zip(tracked.tolist(), rows.tolist(), fresh.tolist(), strict=True):
                e0, c0 = seen.get(row, (None, cls))
                since = None if e0 is None else b.flipped_since(e0)
                if c0 != cls and since is not None:  # (None: the log no longer reaches e0)
                    changed += 1
                    assert slot in since  # slot numbers as they are now
                seen[row] = (b.flip_epoch, cls)
        assert checked > 1000
        assert changed > 0  # the log was put to the test
    finally:
        mesa.Agent._ids.pop(m, None)


def test_tracking_pass_compiled_equals_numpy(monkeypatch):
    # Every tracking pass of a Naive Bayes market, made both ways from the same state: the
    # compiled pass re-predicts the same slots to the same classes and caps (bit for bit), logs
    # the same flips and leaves the same smallest budget and value maxima as the numpy pass.
    import copy

    import numpy as np

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    select = compiled.track_select
    npass = MarketModel._track_pass
    seen = {"passes": 0, "re-predicted": 0, "flips": 0}
    fields = ("pred", "cap", "epoch_at")
    flip = ("flip_epoch", "flip_base", "flip_log", "flip_before", "flip_total")

    def state(m):
        b = m.book
        arrays = tuple(getattr(b, f)[: b.n].tobytes() for f in fields)
        log = tuple(copy.deepcopy(getattr(b, f)) for f in flip)
        track = (m._track_budget, m._track_base, list(m._track_xmax), m._track_updates)
        return arrays, log, track

    def restore(m, saved):
        b = m.book
        arrays, log, track = saved
        for f, raw in zip(fields, arrays, strict=True):
            getattr(b, f)[: b.n] = np.frombuffer(raw, dtype=getattr(b, f).dtype)
        for f, v in zip(flip, log, strict=True):
            setattr(b, f, copy.deepcopy(v))
        m._track_budget, m._track_base, xm, m._track_updates = copy.deepcopy(track)
        m._track_xmax[:] = xm

    def same(a, b):
        (arr_a, log_a, tr_a), (arr_b, log_b, tr_b) = a, b
        assert arr_a == arr_b
        assert [log_a[i] for i in (0, 1, 3, 4)] == [log_b[i] for i in (0, 1, 3, 4)]
        assert [(e, s.tolist()) for e, s in log_a[2]] == [(e, s.tolist()) for e, s in log_b[2]]
        assert np.array_equal(np.array(tr_a[0]), np.array(tr_b[0]), equal_nan=True)
        assert tr_a[1:] == tr_b[1:]

    def both(self):
        before = state(self)
        compiled.track_select = None
        try:
            npass(self)  # the numpy pass
        finally:
            compiled.track_select = select
        slow = state(self)
        restore(self, before)
        npass(self)  # the compiled pass, from the same state
        fast = state(self)
        same(fast, slow)
        seen["passes"] += 1
        # slots re-predicted (their caps rewritten); passes that logged flips (a new flip epoch)
        seen["re-predicted"] += np.count_nonzero(
            np.frombuffer(before[0][1]) != np.frombuffer(fast[0][1])
        )
        seen["flips"] += fast[1][0] > before[1][0]

    monkeypatch.setattr(MarketModel, "_track_pass", both)
    sc = load_scenario(
        ROOT / "scenarios" / "reference_drt_nb.toml",
        {"data.n_rows": 2000, "run.max_time_s": 40 * 86_400},
    )
    m = MarketModel(scenario=sc, seed=4)
    try:
        assert m._pool_binary and m.book.tracked
        m.run()
    finally:
        mesa.Agent._ids.pop(m, None)
    assert seen["passes"] > 100 and seen["re-predicted"] > 100 and seen["flips"] > 5


def test_tracking_kernels_check_their_arrays():
    import numpy as np

    import sum_abm.learners._compiled as compiled

    if not compiled.BUILT:
        pytest.skip("sum_abm/learners/_kernels.c was not compiled at install")
    n = 5
    x_inf, x_l1 = np.ones(n), np.array([3.0, 2.0, 4.0, 1.0, 2.0])
    cap = np.array([10.0, 0.5, np.inf, 10.0, 10.0])
    live = np.array([True, True, True, False, True])
    epoch = np.array([7, 7, 7, 7, 6])
    out, total = np.zeros(n, dtype=np.int64), np.zeros(n)
    # bound 0.1 + 0.2 * l1; budgets ~9.3, -0.1 (redo), inf, ~9.7, redo (live, epoch 6)
    k, rest = compiled.track_select(
        0, n, x_inf, x_l1, cap, live, epoch, 7, 0.1, 0.0, 0.2, 1.0, out, total
    )
    assert k == 2 and out[:2].tolist() == [1, 4]
    assert total[:2].tolist() == [0.0 * 1 + 2.0 * 0.2 + 0.1, 0.0 * 1 + 2.0 * 0.2 + 0.1]
    assert rest == 10.0 - (0.0 + 3.0 * 0.2 + 0.1) * (1 + 2e-9) - 2e-12  # slot 0's, below 3's
    assert compiled.track_select(
        1, 1, x_inf, x_l1, cap, live, epoch, 7, 0, 0, 0, 0, out, total
    ) == (0, np.inf)
    cap[0] = np.nan
    assert np.isnan(
        compiled.track_select(0, n, x_inf, x_l1, cap, live, epoch, 7, 0, 0, 0, 1.0, out, total)[1]
    )
    with pytest.raises(ValueError, match="shapes"):
        compiled.track_select(0, n + 1, x_inf, x_l1, cap, live, epoch, 7, 0, 0, 0, 0, out, total)
    with pytest.raises(TypeError, match="live"):
        compiled.track_select(
            0, n, x_inf, x_l1, cap, live.astype(np.int64), epoch, 7, 0, 0, 0, 0, out, total
        )
    # apply: slots 1 and 4, rows [0, 2) and [2, 5) of the features
    fptr = np.array([0, 0, 2, 2, 2, 5])
    fidx = np.array([0, 2, 1, 2, 3], dtype=np.int32)
    w = np.array([0.5, -1.0, 0.25, -0.125])
    pred = np.array([0, 0, 0, 0, 1])
    cap[:] = 0.0
    flipped = np.zeros(2, dtype=np.int64)
    res = compiled.track_apply(
        out, 2, total, fptr, fidx, w, -0.5, pred, cap, epoch, 7, x_inf, x_l1, flipped, 3.0, 0.5, 9.0
    )
    s1, s4 = (0.0 + 0.5 + 0.25) + -0.5, (0.0 + -1.0 + 0.25 + -0.125) + -0.5
    assert res[0] == 1 and flipped[0] == 1  # slot 1 was class 0 in this epoch; slot 4's another
    assert pred.tolist() == [0, 1, 0, 0, 0] and epoch.tolist() == [7, 7, 7, 7, 7]
    assert cap[1] == abs(s1) + total[0] and cap[4] == abs(s4) + total[1]
    assert res[1] == min(
        3.0, cap[1] - total[0] * (1 + 2e-9) - 2e-12, cap[4] - total[1] * (1 + 2e-9) - 2e-12
    )
    assert res[2:] == (1.0, 9.0)  # max(0.5, 1, 1); max(9, 2, 2): the earlier value unless exceeded
    with pytest.raises(IndexError, match="slot 1"):
        compiled.track_apply(
            out,
            2,
            total,
            fptr,
            fidx,
            w[:3],
            0.0,
            pred,
            cap,
            epoch,
            7,
            x_inf,
            x_l1,
            flipped,
            0,
            0,
            0,
        )
    with pytest.raises(ValueError, match="shapes"):
        compiled.track_apply(
            out, 3, total, fptr, fidx, w, 0.0, pred, cap, epoch, 7, x_inf, x_l1, flipped, 0, 0, 0
        )
