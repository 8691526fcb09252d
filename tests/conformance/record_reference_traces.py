"""Record random conformance traces by driving the reference implementation's own classes.

The shipped traces cover a few dozen seeds; this records as many more as wanted, with the
reference's Python classes (microsoft/0xDeCA10B, ``simulation/decai``) as the oracle, so that
``sum-abm replay`` can be checked on traces it has never seen. Two kinds, both ``reference-python``
(the Solidity rules have no Python reference):

* ``drt``: the reference's trainer, data handler, balances and Deposit-Refund-Take mechanism
  (``Stakeable``) with the oracle model of TRACE_FORMAT.md §3: random adds, refunds, reports and
  paid predictions, as in the shipped ``drt_reference_python.json``;
* ``pm``: its prediction market with the nearest-centroid model of §5.1: the phases of §5.2, every
  ``process_contribution``, refunds, and reports before and after the any-address wait (§5.5).

The driver applies the wallet rule and undoes a rejected step (a ``RejectException``, an
``AssertionError`` or the report bug's ``KeyError``), as §1 says. Expectations hold the status and
the balances (and for the prediction market the market balances and ``prev_acc``), which is what
the replay compares; ``reason`` is not recorded.

Needs a checkout of the reference and its ``injector`` package (not dependencies of sum_abm)::

    git clone https://github.com/microsoft/0xDeCA10B /tmp/0xDeCA10B
    python3 -m pip install injector
    python3 tests/conformance/record_reference_traces.py --reference /tmp/0xDeCA10B \\
        --kind pm --seeds 0 200 --out /tmp/pm_more.json
    sum-abm replay /tmp/pm_more.json
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

LOG = logging.getLogger("reference")
LOG.setLevel(logging.ERROR)


def _reference(checkout: Path) -> dict[str, Any]:
    """The reference's classes, imported from ``checkout`` (its ``simulation`` folder on the path)."""
    sys.path.insert(0, str(checkout / "simulation"))
    from decai.simulation.contract.balances import Balances
    from decai.simulation.contract.collab_trainer import DefaultCollaborativeTrainer
    from decai.simulation.contract.data.data_handler import DataHandler
    from decai.simulation.contract.incentive.prediction_market import (
        MarketPhase,
        PredictionMarket,
    )
    from decai.simulation.contract.incentive.stakeable import Stakeable
    from decai.simulation.contract.objects import Msg, RejectException, TimeMock

    return {
        "Balances": Balances,
        "DefaultCollaborativeTrainer": DefaultCollaborativeTrainer,
        "DataHandler": DataHandler,
        "MarketPhase": MarketPhase,
        "PredictionMarket": PredictionMarket,
        "Stakeable": Stakeable,
        "Msg": Msg,
        "RejectException": RejectException,
        "TimeMock": TimeMock,
    }


class Oracle:
    """The oracle model of the DRT traces: predicts what the step says."""

    def __init__(self) -> None:
        self.prediction, self.owner = 0, None

    def predict(self, data: Any) -> int:
        return self.prediction

    def update(self, data: Any, y: int) -> None:
        pass


class Centroids:
    """The nearest-centroid model of TRACE_FORMAT.md §5.1 (numpy float64, in that order)."""

    def __init__(self, X: list, y: list) -> None:
        X, y = np.asarray(X, dtype=float), np.asarray(y)
        self.start = (
            [X[y == k].mean(axis=0) for k in (0, 1)],
            [int((y == k).sum()) for k in (0, 1)],
        )
        self.owner = None
        self.reset_model()

    def reset_model(self) -> None:
        self.c, self.n = [a.copy() for a in self.start[0]], list(self.start[1])

    def update(self, x: Any, y: int) -> None:
        self.c[y] = (self.c[y] * self.n[y] + np.asarray(x, dtype=float)) / (self.n[y] + 1)
        self.n[y] += 1

    def predict(self, x: Any) -> int:
        x = np.asarray(x, dtype=float)
        d0, d1 = (float(((x - c) ** 2).sum()) for c in self.c)
        return int(d1 < d0)

    def evaluate(self, X: Any, y: Any) -> float:
        return float(np.mean([self.predict(x) == t for x, t in zip(X, y, strict=True)]))


class Recorder:
    """Runs steps on a reference trainer; a rejected step is undone (the reference does not)."""

    def __init__(self, ref: dict[str, Any], trainer: Any, accounts: dict[str, Any], clock: Any):
        self.ref, self.trainer, self.accounts, self.clock = ref, trainer, accounts, clock
        self.contract = trainer.address
        self.steps: list[dict] = []
        self.expect: list[dict] = []

    def do(self, step: dict, call, market: bool = False) -> str:
        """Run ``call(trainer)`` as ``step``; records the step and its expectation."""
        self.clock.set_time(step["time"])
        # the logger and the clock are shared, not copied (the logger holds the logging tree)
        saved = copy.deepcopy(self.trainer, {id(LOG): LOG, id(self.clock): self.clock})
        status = "ok"
        try:
            if step.get("value", 0) > self.trainer._balances[step.get("from", "P")]:
                raise self.ref["RejectException"]("insufficient_funds")  # the wallet rule
            call(self.trainer)
        except (self.ref["RejectException"], AssertionError, KeyError):
            status, self.trainer = "rejected", saved
        bal = self.trainer._balances
        out = {a: bal[a] for a in self.accounts}
        out["contract"] = bal[self.contract] if self.contract in bal else 0
        exp: dict[str, Any] = {"status": status, "balances": out}
        if market:
            im = self.trainer.im
            exp["pm"] = {"market_balances": {k: v for k, v in im._market_balances.items() if v}}
            if getattr(im, "prev_acc", None) is not None:
                exp["pm"]["prev_acc"] = im.prev_acc
        self.steps.append(step)
        self.expect.append(exp)
        return status


def _drt_call(msg: Any, st: dict, added: dict | None):
    """The reference call of DRT step ``st`` (``added``: the add step it refers to)."""

    def call(tr: Any) -> Any:
        if st["call"] == "add_data":
            return tr.add_data(msg, st["x"], st["y"])
        if st["call"] == "predict":
            return tr.predict(msg, st["x"])
        if st["call"] == "refund":
            return tr.refund(msg, added["x"], added["y"], added["time"])
        return tr.report(msg, added["x"], added["y"], added["time"], added["from"])

    return call


def drt_trace(ref: dict[str, Any], seed: int) -> dict:
    """A random Deposit-Refund-Take trace (reference-python) of 10-60 steps."""
    r = random.Random(seed)
    refund = r.choice([3600, 86400])
    wait = refund + 7 * 86400 + r.choice([1, 3600, 86400, 2 * 86400])
    weight = r.choice([0, 1, 4, 5, 20])
    names = "ABCDE"[: r.randint(3, 5)]
    accounts = {a: r.choice([500, 1000, 5000, 10000]) for a in names}
    clock, bal = ref["TimeMock"](), ref["Balances"](LOG)
    im = ref["Stakeable"](bal, LOG, clock, refund, wait, weight)
    trainer = ref["DefaultCollaborativeTrainer"](bal, ref["DataHandler"](clock), im, Oracle())
    for a, b in accounts.items():
        bal.initialize(a, b)
    rec, Msg = Recorder(ref, trainer, accounts, clock), ref["Msg"]
    t, adds = r.randint(0, 200_000), []
    for i in range(r.randint(10, 60)):
        gaps = [0, 0, r.randint(1, 600), r.randint(1, 4000), r.randint(1, 90_000), refund]
        t += r.choice(gaps + [refund + 1, r.randint(1, 400_000), wait - refund, wait])
        kind = r.choices(["add_data", "refund", "report", "predict"], [4, 2, 3, 1.3])[0]
        if kind in ("refund", "report") and not adds:
            kind = "add_data"
        st: dict[str, Any] = {"time": t, "call": kind, "from": r.choice(names)}
        if kind == "add_data":
            st["value"] = r.choice([0, 1, 2, 5, 15, 50, r.randint(0, 300), 15_000])
            st["x"], st["y"] = [r.randint(0, 9) for _ in range(3)], r.randint(0, 1)
            if adds and r.random() < 0.1:  # data added before, again
                old = rec.steps[r.choice(adds)]
                st["x"], st["y"] = old["x"], old["y"]
        elif kind == "predict":
            st["value"] = r.choice([0, 1, 10, 100, 20_000])
            st["x"], st["prediction"] = [r.randint(0, 9) for _ in range(3)], r.randint(0, 1)
        else:
            st["data_ref"], st["prediction"] = r.choice(adds), r.randint(0, 1)
            if kind == "refund" and r.random() < 0.7:
                st["from"] = rec.steps[st["data_ref"]]["from"]
        rec.trainer.model.prediction = st.get("prediction", 0)  # (a rejection swaps the trainer)
        added = rec.steps[st["data_ref"]] if "data_ref" in st else None
        rec.do(st, _drt_call(Msg(st["from"], st.get("value", 0)), st, added))
        if kind == "add_data":
            adds.append(i)
    mech = {"kind": "deposit_refund_take", "semantics": "reference-python", "refund_time_s": refund}
    mech |= {"any_address_claim_wait_time_s": wait, "cost_weight": weight, "deploy_time_s": 0}
    return {
        "format": "sum-abm-trace/1",
        "name": f"recorded-drt-refpy-{seed}",
        "seed": seed,
        "mechanism": mech,
        "model": {"kind": "oracle"},
        "accounts": accounts,
        "steps": rec.steps,
        "expect": rec.expect,
    }


def _point(r: random.Random) -> list[float]:
    return [r.randrange(-20, 21) / 4, r.randrange(-20, 21) / 4]


def _truth(x: list[float]) -> int:
    return 1 if x[0] + 2 * x[1] > 0.5 else 0


def pm_trace(ref: dict[str, Any], seed: int) -> dict | None:
    """A random prediction-market trace (reference-python); None when no contribution was
    accepted (the reference cannot score an empty market)."""
    r = random.Random(seed)
    greater, group, reset = r.random() < 0.5, r.random() < 0.5, r.random() < 0.5
    wait = r.choice([3600, 604_800])
    names = ["A", "B", "C", "D"][: r.randint(2, 4)]
    accounts = {"P": r.choice([100, 500, 1000, 5000])} | {
        a: r.choice([50, 100, 500]) for a in names
    }
    flippers = [a for a in names if r.random() < 0.4]
    init_x, init_y = [[-3, -2], [-2, -1], [2, 1], [3, 2]], [0, 0, 1, 1]
    pieces = []
    for _ in range(r.randint(2, 5)):
        pts = [_point(r) for _ in range(r.randint(2, 5))]
        pieces.append([{"x": p, "y": _truth(p)} for p in pts])
    clock, bal = ref["TimeMock"](), ref["Balances"](LOG)
    model = Centroids(init_x, init_y)
    im = ref["PredictionMarket"](bal, LOG, model, clock, wait, greater, group, reset)
    trainer = ref["DefaultCollaborativeTrainer"](bal, ref["DataHandler"](clock), im, model)
    for a, b in accounts.items():
        bal.initialize(a, b)
    rec, Msg, phase = Recorder(ref, trainer, accounts, clock), ref["Msg"], ref["MarketPhase"]
    now = [10]

    def tick(d: int | None = None) -> int:
        now[0] += r.randint(1, 500) if d is None else d
        return now[0]

    def piece(i: int) -> list:
        return [(np.array(q["x"]), q["y"]) for q in pieces[i]]

    def claim(call: str, who: str, ref_step: int, at: int | None = None) -> None:
        s0 = rec.steps[ref_step]
        st = {
            "time": tick(1) if at is None else at,
            "call": call,
            "from": who,
            "data_ref": ref_step,
        }
        args = (np.array(s0["x"]), s0["y"], s0["time"])
        if call == "refund":
            rec.do(st, lambda tr: tr.refund(Msg(who, 0), *args), market=True)
        else:
            rec.do(st, lambda tr: tr.report(Msg(who, 0), *args, s0["from"]), market=True)

    random.seed(seed)  # the reference draws the revealed piece with the module's generator
    hashes = [ref["PredictionMarket"].hash_test_set(piece(i)) for i in range(len(pieces))]
    bounty = min(accounts["P"], r.choice([10, 50, 100]))
    min_len, min_n = r.choice([100, 10_000]), r.randint(2, 8)
    st = {"time": tick(0), "call": "initialize_market", "from": "P", "value": bounty}
    st |= {"num_test_pieces": len(pieces), "min_length_s": min_len}
    st |= {"min_num_contributions": min_n, "reveal_index": 0}
    rec.do(st, lambda tr: tr.im.initialize_market(Msg("P", bounty), hashes, min_len, min_n), True)
    st["reveal_index"] = reveal = rec.trainer.im.test_reveal_index
    step = {"time": tick(10), "call": "reveal_init_test_set", "from": "P", "piece": reveal}
    rec.do(step, lambda tr: tr.im.reveal_init_test_set(piece(reveal)), True)
    first: dict[str, int] = {}
    for _ in range(r.randint(2, 12)):
        a, x = r.choice(names), _point(r)
        y = 1 - _truth(x) if a in flippers and r.random() < 0.8 else _truth(x)
        v = r.choice([1, 1, 2, 3, 5]) if r.random() > 0.08 else 0
        st = {"time": tick(), "call": "add_data", "from": a, "value": v, "x": x, "y": y}
        add = lambda tr, a=a, v=v, x=x, y=y: tr.add_data(Msg(a, v), np.array(x), y)  # noqa: E731
        if rec.do(st, add, True) == "ok":
            first.setdefault(a, len(rec.steps) - 1)
        if r.random() < 0.1:  # perhaps too early
            rec.do(
                {"time": tick(), "call": "end_market", "from": "P"},
                lambda tr: tr.im.end_market(),
                True,
            )
        if r.random() < 0.05 and a in first:  # a refund during participation
            claim("refund", a, first[a])
        if rec.trainer.im.state != phase.PARTICIPATION:
            break
    if not first:
        return None
    while rec.trainer.im.state == phase.PARTICIPATION:
        step = {"time": tick(), "call": "end_market", "from": "P"}
        if rec.do(step, lambda tr: tr.im.end_market(), True) == "rejected":
            tick(20_000)
    x = _point(r)  # an add after the end
    step = {
        "time": tick(1),
        "call": "add_data",
        "from": names[0],
        "value": 1,
        "x": x,
        "y": _truth(x),
    }
    rec.do(step, lambda tr: tr.add_data(Msg(names[0], 1), np.array(x), _truth(x)), True)
    while rec.trainer.im.state == phase.REVEAL_TEST_SET:
        i = rec.trainer.im.next_test_set_index_to_verify
        step = {"time": tick(1), "call": "verify_next_test_set", "from": "P", "piece": i}
        rec.do(step, lambda tr, i=i: tr.im.verify_next_test_set(piece(i)), True)
    for _ in range(400):
        if rec.trainer.im.remaining_bounty_rounds <= 0:
            break
        step = {"time": tick(1), "call": "process_contribution", "from": "P"}
        rec.do(step, lambda tr: tr.im.process_contribution(), True)
    order = list(first)
    r.shuffle(order)
    reports, late_first = r.random() < 0.5, r.random() < 0.5

    def late_reports() -> None:  # at the end of the wait and one second later
        end = rec.trainer.im.reward_phase_end_time_s
        if not (reports and end):
            return
        for at in (end + wait, end + wait + 1):
            now[0] = max(now[0], at)
            claim("report", r.choice(names), first[r.choice(order)], now[0])

    if late_first:
        late_reports()
    for a in order:
        if reports and r.random() < 0.5:
            claim("report", r.choice(names), first[a])
        claim("refund", a, first[a])
    claim("refund", order[0], first[order[0]])  # a second refund pays 0
    if not late_first:
        late_reports()
    mech = {"kind": "prediction_market", "semantics": "reference-python", "min_stake": 1}
    mech |= {"any_address_claim_wait_time_s": wait, "refund_time_s": None}
    mech |= {"allow_greater_deposit": greater, "group_contributions": group}
    mech |= {"reset_model_during_reward_phase": reset}
    return {
        "format": "sum-abm-trace/1",
        "name": f"recorded-pm-{seed}",
        "seed": seed,
        "mechanism": mech,
        "model": {"kind": "nearest_centroid", "init_x": init_x, "init_y": init_y, "num_classes": 2},
        "accounts": accounts,
        "bounty_provider": "P",
        "bad_contributors": flippers,
        "test_set_pieces": pieces,
        "steps": rec.steps,
        "expect": rec.expect,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, required=True, help="a checkout of 0xDeCA10B")
    ap.add_argument("--kind", choices=["drt", "pm"], required=True)
    ap.add_argument("--seeds", type=int, nargs=2, default=[0, 100], metavar=("FROM", "TO"))
    ap.add_argument("--out", type=Path, required=True, help="the trace file to write (JSON)")
    args = ap.parse_args()
    if not (args.reference / "simulation" / "decai").is_dir():
        ap.error(f"--reference: {args.reference} holds no simulation/decai (a 0xDeCA10B checkout)")
    ref = _reference(args.reference)
    make = drt_trace if args.kind == "drt" else pm_trace
    traces = [t for t in (make(ref, s) for s in range(*args.seeds)) if t is not None]
    args.out.write_text(json.dumps(traces))
    print(f"{args.out}: {len(traces)} traces, {sum(len(t['steps']) for t in traces)} steps")


if __name__ == "__main__":
    main()
