"""Replay traces against the contract layer and report every step that differs.

Compared per step (absolute tolerance 1e-9): ``status``, every balance, an accepted call's
``result`` (a cost, an amount, a prediction and its payments, a reveal index), and for the
prediction market the market balances and ``prev_acc``. ``reason`` is informative
(TRACE_FORMAT.md §2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sum_abm.chain import Chain, Rejected
from sum_abm.contract import CollaborativeTrainer, DepositRefundTake, PredictionMarket, hash_piece
from sum_abm.learners import NearestCentroid
from sum_abm.replay.traces import TRACE_KINDS, load_trace_file

TOL = 1e-9


class OracleModel:
    """The traces' model: its prediction for each step is given by the trace; it never learns."""

    kind = "oracle"
    version = 0

    def __init__(self) -> None:
        self.next_prediction = 0

    def predict_one(self, x: Any) -> int:
        return self.next_prediction

    def update(self, x: Any, y: int) -> int:
        return 0


@dataclass
class Mismatch:
    trace: str
    step: int
    field: str
    expected: Any
    got: Any

    def __str__(self) -> str:
        return f"{self.trace} step {self.step}: {self.field}: expected {self.expected!r}, got {self.got!r}"


@dataclass
class FileReport:
    path: str
    traces: int = 0
    steps: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def mismatching_steps(self) -> int:
        return len({(m.trace, m.step) for m in self.mismatches})

    def headline(self) -> str:
        return f"{self.path}: {self.traces} traces, {self.steps} steps, {self.mismatching_steps} mismatching steps"


def _num_diff(a: Any, b: Any) -> bool:
    """Whether two expected/got values differ: integers exactly (token amounts past 2**53 lose
    units as floats), else within :data:`TOL`."""
    if type(a) is int and type(b) is int:
        return a != b
    try:
        return abs(float(a) - float(b)) > TOL
    except (TypeError, ValueError, OverflowError):
        return a != b


def _compare_map(
    out: list[Mismatch], trace: str, step: int, name: str, exp: dict, got: dict
) -> None:
    for k in sorted(set(exp) | set(got)):
        e, g = exp.get(k, 0), got.get(k, 0)
        if _num_diff(e, g):
            out.append(Mismatch(trace, step, f"{name}.{k}", e, g))


def replay_trace(tr: dict[str, Any]) -> tuple[int, list[Mismatch]]:
    """Replay one validated trace; returns (steps, mismatches)."""
    mech = tr["mechanism"]
    chain = Chain()
    for a, b in tr["accounts"].items():
        chain.ledger.mint(a, b)
    accounts = list(tr["accounts"]) + ["contract"]
    name = tr["name"]
    out: list[Mismatch] = []
    spec = TRACE_KINDS[mech["kind"]]
    pieces = None
    if spec.oracle:
        model = OracleModel()
        im = DepositRefundTake(
            mech["refund_time_s"],
            mech["any_address_claim_wait_time_s"],
            mech["cost_weight"],
            semantics=mech["semantics"],
            deploy_time_s=mech.get("deploy_time_s", 0),
        )
        target = CollaborativeTrainer(chain, model, im)
    else:
        m = tr["model"]
        model = NearestCentroid(len(m["init_x"][0]), m.get("num_classes", 2)).fit(
            m["init_x"], m["init_y"]
        )
        target = PredictionMarket(
            chain,
            model,
            semantics=mech["semantics"],
            min_stake=mech.get("min_stake", 1),
            allow_greater_deposit=mech.get("allow_greater_deposit", False),
            group_contributions=mech.get("group_contributions", False),
            reset_model_during_reward_phase=mech.get("reset_model_during_reward_phase", False),
            any_address_claim_wait_time_s=mech.get("any_address_claim_wait_time_s", 7 * 86_400),
        )
        pieces = [[(p["x"], p["y"]) for p in piece] for piece in tr["test_set_pieces"]]
    steps = tr["steps"]
    for j, (st, ex) in enumerate(zip(steps, tr["expect"], strict=False)):
        chain.clock.now = st["time"]
        if isinstance(model, OracleModel) and "prediction" in st:
            model.next_prediction = st["prediction"]
        status, got = "ok", None
        try:
            got = _result(st["call"], _run_step(target, st, steps, pieces))
        except Rejected:
            status = "rejected"
        if status != ex["status"]:
            out.append(Mismatch(name, j, "status", ex["status"], status))
        elif "result" in ex and got is not None:
            for k, e in ex["result"].items():
                if isinstance(e, dict):
                    _compare_map(out, name, j, f"result.{k}", e, got.get(k) or {})
                elif _num_diff(e, got.get(k)):
                    out.append(Mismatch(name, j, f"result.{k}", e, got.get(k)))
        # every account the chain holds, not only the listed ones: a sender missing from
        # ``accounts`` starts at 0 and may be paid (the format lists all in each expectation)
        got_bal = {a: chain.ledger.balance(a) for a in accounts} | chain.ledger.snapshot()
        _compare_map(out, name, j, "balances", ex["balances"], got_bal)
        pm = ex.get("pm")
        if pm is not None and not spec.oracle:
            _compare_map(
                out,
                name,
                j,
                "market_balances",
                pm.get("market_balances", {}),
                target.market_balances,
            )
            if "prev_acc" in pm and _num_diff(pm["prev_acc"], target.prev_acc):
                out.append(Mismatch(name, j, "prev_acc", pm["prev_acc"], target.prev_acc))
    return len(steps), out


def _result(call: str, ret: Any) -> dict[str, Any] | None:
    """A call's return value under the names a trace's ``result`` gives it (§3, §5)."""
    if call == "add_data":
        return {"cost": ret}
    if call in ("refund", "report"):
        return {"amount": ret}
    if call == "predict":
        prediction, payments = ret
        return {"returned_prediction": prediction, "payments": payments}
    if call == "initialize_market":
        return {"test_reveal_index": ret}
    return None


def _ref(steps: list[dict], st: dict) -> dict:
    return steps[st["data_ref"]]


def _run_step(target: Any, st: dict, steps: list[dict], pieces: list | None) -> Any:
    """Send one step's call; returns what the call returns."""
    call, sender, value = st["call"], st.get("from", ""), st.get("value", 0)
    if call == "add_data":
        return target.add_data(sender, value, st["x"], st["y"])
    elif call == "refund":
        a = _ref(steps, st)
        return target.refund(sender, a["x"], a["y"], a["time"])
    elif call == "report":
        a = _ref(steps, st)
        return target.report(sender, a["x"], a["y"], a["time"], a["from"])
    elif call == "predict":
        return target.predict(sender, st["x"], value)
    elif call == "initialize_market":
        hashes = [hash_piece(p) for p in pieces]
        return target.initialize_market(
            sender,
            value,
            hashes,
            st["min_length_s"],
            st["min_num_contributions"],
            st["reveal_index"],
        )
    elif call == "reveal_init_test_set":
        target.reveal_init_test_set(sender or target.provider, pieces[st["piece"]])
    elif call == "end_market":
        target.end_market(sender)
    elif call == "verify_next_test_set":
        target.verify_next_test_set(sender or target.provider, pieces[st["piece"]])
    elif call == "process_contribution":
        target.process_contribution(sender or target.provider)
    else:  # pragma: no cover - the loader rejects unknown calls
        raise ValueError(call)


def replay_file(path: str | Path) -> FileReport:
    """Replay every trace of a file (validated first; bad files raise InputError)."""
    traces = load_trace_file(path)
    rep = FileReport(str(path), traces=len(traces))
    for tr in traces:
        n, mm = replay_trace(tr)
        rep.steps += n
        rep.mismatches += mm
    return rep
