"""Gas measured on a real EVM (titanoboa: the Vyper compiler and py-evm, offline) and fitted into
the contract layer's :class:`~sum_abm.chain.GasSchedule`.

Measured for the DRT contract with the on-chain sparse perceptron (``contracts/drt_perceptron.vy``)
across feature counts: ``deploy``; ``add_data`` when the model learns from the sample (a mistake on
features it has not stored yet: the dearest case, new storage slots); ``refund`` (reads every
feature's weight); ``report`` after the any-address wait; ``predict`` sent as a transaction. Gas of a
transaction = 21,000 + calldata (16 gas per non-zero byte, 4 per zero byte) + execution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

CONTRACT = Path(__file__).with_name("contracts") / "drt_perceptron.vy"
OPS = ("add_data", "refund", "report", "predict")
FIT_FEATURES = (1, 8, 32, 64, 128, 256)
VERIFY_FEATURES = (16, 100, 200)
REFUND_S, ANY_S = 86_400, 777_600


@dataclass
class Measurement:
    op: str
    n_features: int
    gas: int


def _calldata_gas(fn: Any, *args: Any) -> int:
    """Intrinsic gas of the call's data: 4-byte selector + ABI arguments."""
    from eth_abi import encode

    sig = fn.signature if hasattr(fn, "signature") else None
    types = [a.typ.abi_type.selector_name() for a in fn.func_t.arguments] if hasattr(fn, "func_t") else None
    data = b"\x00" * 4 + (encode(types, list(args)) if types else b"")
    if sig is None and types is None:
        return 0
    return sum(16 if b else 4 for b in data[4:]) + 4 * 16


def _tx_gas(contract: Any, fn_name: str, args: tuple, sender: str, value: int = 0) -> int:
    import boa

    fn = getattr(contract, fn_name)
    with boa.env.prank(sender):
        fn(*args, value=value) if value else fn(*args)
    return 21_000 + _calldata_gas(fn, *args) + int(contract._computation.net_gas_used)


def measure(features: tuple[int, ...] = FIT_FEATURES) -> list[Measurement]:
    """Gas of every operation at each feature count (a fresh deployment per count)."""
    import boa

    out: list[Measurement] = []
    for n in features:
        with boa.env.anchor():
            c = boa.load(str(CONTRACT), REFUND_S, ANY_S, 1)
            out.append(Measurement("deploy", n, 21_000 + int(c._computation.net_gas_used)))
            a, b = boa.env.generate_address(), boa.env.generate_address()
            for who in (a, b):
                boa.env.set_balance(who, 10**24)
            boa.env.time_travel(seconds=3_600)
            x = list(range(n))
            out.append(Measurement("add_data", n, _tx_gas(c, "add_data", (x, 1), a, value=10**6)))
            boa.env.time_travel(seconds=REFUND_S)
            out.append(Measurement("refund", n, _tx_gas(c, "refund", (x, 1, boa.env.evm.patch.timestamp - REFUND_S), a)))
            x2 = list(range(1000, 1000 + n))
            _tx_gas(c, "add_data", (x2, 0), b, value=10**6)
            t2 = boa.env.evm.patch.timestamp
            boa.env.time_travel(seconds=ANY_S)
            out.append(Measurement("report", n, _tx_gas(c, "report", (x2, 0, t2, b), a)))
            fn = c.predict
            with boa.env.prank(a):
                fn(x)
            out.append(Measurement("predict", n, 21_000 + _calldata_gas(fn, x) + int(c._computation.net_gas_used)))
    return out


def fit(ms: list[Measurement]) -> dict[str, tuple[int, int]]:
    """Least-squares ``gas = base + per_feature × n`` per operation (deploy: its mean)."""
    coef: dict[str, tuple[int, int]] = {}
    for op in {m.op for m in ms}:
        pts = [(m.n_features, m.gas) for m in ms if m.op == op]
        if op == "deploy":
            coef[op] = (int(round(np.mean([g for _, g in pts]))), 0)
            continue
        n = np.array([p[0] for p in pts], float)
        g = np.array([p[1] for p in pts], float)
        slope, intercept = np.polyfit(n, g, 1)
        coef[op] = (int(round(intercept)), int(round(slope)))
    return coef


def apply_fit(schedule_path: Path, coef: dict[str, tuple[int, int]], learner: str = "perceptron") -> dict[str, Any]:
    """Write the fitted coefficients into a gas-schedule JSON (the perceptron learners' terms)."""
    data = json.loads(schedule_path.read_text())
    for op, (base, per) in coef.items():
        data["base"][op] = base
        if op != "deploy":
            data.setdefault("per_feature", {}).setdefault(op, {})
            for kind in (learner, "sgd_perceptron") if learner == "perceptron" else (learner,):
                data["per_feature"][op][kind] = per
    data["source"] = ("add_data/refund/report/predict/deploy for the perceptron learners measured on py-evm "
                      "(sum-abm gas); other learners' per-feature terms remain estimates")
    schedule_path.write_text(json.dumps(data, indent=2) + "\n")
    return data


def verify(features: tuple[int, ...] = VERIFY_FEATURES, learner: str = "perceptron") -> list[dict[str, Any]]:
    """Re-measure and compare with the shipped schedule: one row per (op, n) with relative error."""
    from sum_abm.chain import GasSchedule

    sched = GasSchedule.load()
    rows = []
    for m in measure(features):
        pred = sched.gas(m.op, learner, 0 if m.op == "deploy" else m.n_features)
        rows.append({"op": m.op, "n_features": m.n_features, "measured": m.gas, "schedule": pred,
                     "rel_error": abs(pred - m.gas) / m.gas})
    return rows
