"""Gas measured on a real EVM (titanoboa: the Vyper compiler and py-evm, offline) and fitted into the
contract layer's :class:`~sum_abm.chain.GasSchedule`.

For each learner kind (perceptron, multinomial_nb, nearest_centroid), number of features ``n`` and
number of classes ``c``, a fresh system is deployed (:func:`sum_abm.evm.system.deploy_system`) and
one transaction of each operation is measured in the case a fee should cover:

* ``deploy``: every deployment transaction (data handler, DRT, classifier, trainer, loading the
  nearest centroid's ``c`` initial centroids of ``n`` dimensions, three ownership transfers);
* ``add_data``: an add the model learns from, rewriting storage that is already non-zero (a trained
  model's steady state; the first add of a feature pays ``extra.add_data_new_slot_per_feature``
  more per feature, and a perceptron add without a mistake costs ``extra.add_data_no_update``);
* ``refund``: the submitter's refund after the wait, the model agreeing: the first verified
  contribution of the market, so both good-data counters are written for the first time (a later
  refund by an address with verified data costs ``extra.refund_counters_set``);
* ``report``: a take before the any-address wait, the model disagreeing, by a reporter with good data;
* ``predict``: a prediction sent as a transaction.

Sparse learners get ``n`` present features (indices spread over 2**20, as a hashing vectorizer's);
the nearest centroid gets a dense vector of ``n`` fixed-point values. Every operation is fitted as
``gas = b + f*n + k*c + kf*c*n`` by least squares of the relative error (``c`` fixed at 2 for the perceptron), the
coefficients rounded to whole gas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sum_abm.chain.gas import terms
from sum_abm.evm.system import PERCEPTRON_MEASURE_INTERCEPT, SCALE, deploy_system

OPS = ("deploy", "add_data", "refund", "report", "predict")
KINDS = ("perceptron", "multinomial_nb", "nearest_centroid")
#: Grid of the fit: features per kind, classes per kind.
FIT_FEATURES = (1, 10, 50, 100, 250, 500, 1000)
FIT_CLASSES = {"perceptron": (2,), "multinomial_nb": (2, 3, 5), "nearest_centroid": (2, 3, 5)}
#: The re-measured sample of ``--verify``: points off the fit grid (features, classes).
VERIFY_POINTS = {
    "perceptron": ((20, 2), (300, 2)),
    "multinomial_nb": ((20, 2), (300, 4)),
    "nearest_centroid": ((20, 2), (300, 4)),
}
#: Python learner kinds priced like a measured one.
ALIASES = {"sgd_perceptron": "perceptron"}
REFUND_S, ANY_S = 86_400, 9 * 86_400
# The measuring chain's clock starts here, not at the wall clock's time: a call's calldata costs 4
# gas per zero byte and 16 per other byte, and the claims pass their contribution's timestamp, so a
# clock-derived one with a zero byte made a refund 12 gas cheaper now and then. Every timestamp the
# measured calls pass (start + 1 h, + 1 day more) has no zero byte.
MEASURE_START_S = 1_700_000_000
SPARSE_DIMS = 2**20
TOLERANCE = 0.10


@dataclass(frozen=True)
class Measurement:
    """Gas of one transaction (or of the whole deployment) at ``n_features`` and ``n_classes``."""

    kind: str
    op: str
    n_features: int
    n_classes: int
    gas: int


def sample_features(kind: str, n: int) -> list[int]:
    """The measured sample: ``n`` increasing feature indices below 2**20, or a dense vector of
    ``n`` fixed-point values near 2 (nearest centroid)."""
    if kind == "nearest_centroid":
        return [2 * SCALE + (j % 5) * SCALE // 10 for j in range(n)]
    step = max(1, (SPARSE_DIMS - 1) // max(n, 1))
    return [13 + j * step for j in range(n)]


def measure_point(kind: str, n: int, c: int) -> dict[str, int]:
    """Gas of each operation, and of the extra cases, for one (kind, features, classes)."""
    import boa

    if not 1 <= n <= 1024:
        raise ValueError(f"features must be in 1..1024, got {n}")
    x = sample_features(kind, n)
    # A fresh EVM of its own: exact metering commits the state journal, which would break any
    # boa.env.anchor() of the caller's environment (pytest's isolation, for one).
    with boa.swap_env(boa.Env()):
        boa.env.evm.patch.timestamp = MEASURE_START_S
        if kind == "perceptron":
            model: Any = (PERCEPTRON_MEASURE_INTERCEPT, {})
            sys_ = deploy_system(
                kind,
                refund_time_s=REFUND_S,
                any_address_claim_wait_time_s=ANY_S,
                initial_model=model,
                exact_gas=True,
            )
            y_learn, y_good = 1, 0  # the model predicts 0 throughout
        elif kind == "multinomial_nb":
            sys_ = deploy_system(
                kind,
                refund_time_s=REFUND_S,
                any_address_claim_wait_time_s=ANY_S,
                n_classes=c,
                n_dims=SPARSE_DIMS,
                exact_gas=True,
            )
            y_learn, y_good = 0, 0
        else:
            model = [(1, [SCALE * (1 if k == 0 else -k)] * n) for k in range(c)]
            sys_ = deploy_system(
                kind,
                refund_time_s=REFUND_S,
                any_address_claim_wait_time_s=ANY_S,
                n_classes=c,
                n_dims=n,
                initial_model=model,
                exact_gas=True,
            )
            y_learn, y_good = 0, 0
        out = {"deploy": sys_.deploy_gas}
        a, b, d = (boa.env.generate_address(k) for k in "ABD")
        for who in (a, b, d):
            boa.env.set_balance(who, 10**24)
        boa.env.time_travel(seconds=3_600)
        value = 10**6
        sys_.add_data(b, x, y_learn, value)  # first add: new storage slots
        first = sys_.last_gas
        sys_.add_data(a, x, y_learn, value)
        out["add_data"] = sys_.last_gas
        out["add_data_new_slots"] = first
        t_add = int(boa.env.evm.patch.timestamp)
        if kind == "perceptron":
            sys_.add_data(d, x, y_good, value)  # no mistake: no update
            out["add_data_no_update"] = sys_.last_gas
            good, bad, y_bad = d, a, y_learn
        else:
            sys_.add_data(d, x, 1, value)
            good, bad, y_bad = a, d, 1
        boa.env.time_travel(seconds=REFUND_S)
        sys_.refund(good, x, y_good, t_add)
        out["refund"] = sys_.last_gas
        sys_.report(good, x, y_bad, t_add, bad)
        out["report"] = sys_.last_gas
        if sys_.predict(a, x) != y_good:
            raise RuntimeError(f"{kind}: the measured model should predict {y_good}")
        out["predict"] = sys_.last_gas
        # A second refund by the same address: its count and the total are non-zero already.
        sys_.add_data(good, x, y_good, value)
        t_again = int(boa.env.evm.patch.timestamp)
        boa.env.time_travel(seconds=REFUND_S)
        sys_.refund(good, x, y_good, t_again)
        out["refund_counters_set"] = sys_.last_gas
    return out


def measure(
    points: dict[str, Iterable[tuple[int, int]]], progress: Any = None
) -> list[Measurement]:
    """Measurements at every ``(features, classes)`` point of each kind."""
    out: list[Measurement] = []
    for kind, pts in points.items():
        for n, c in pts:
            for op, g in measure_point(kind, n, c).items():
                out.append(Measurement(kind, op, n, c, g))
            if progress is not None:
                progress(kind, n, c)
    return out


def fit_grid(
    features: Iterable[int] = FIT_FEATURES, kinds: Iterable[str] = KINDS
) -> dict[str, list[tuple[int, int]]]:
    """The fit's (features, classes) points for each kind."""
    return {k: [(n, c) for c in FIT_CLASSES[k] for n in features] for k in kinds}


def fit(ms: list[Measurement]) -> dict[str, dict[str, dict[str, int]]]:
    """Least relative squares ``gas = b + f*n + k*c + kf*c*n`` per (kind, op); ``{kind: {op: coefs}}``
    with coefs ``base``, ``per_feature``, ``per_class``, ``per_class_feature`` (whole gas)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for kind in sorted({m.kind for m in ms}):
        out[kind] = {}
        for op in sorted({m.op for m in ms if m.kind == kind}):
            pts = [m for m in ms if m.kind == kind and m.op == op]
            n = np.array([m.n_features for m in pts], float)
            c = np.array([m.n_classes for m in pts], float)
            g = np.array([m.gas for m in pts], float)
            classes_vary = len(set(c)) > 1
            cols = [np.ones_like(n), n] + ([c, c * n] if classes_vary else [])
            # weighted by 1/gas: the schedule must be close in relative terms at every size
            coef, *_ = np.linalg.lstsq(
                np.column_stack(cols) / g[:, None], np.ones_like(g), rcond=None
            )
            if not classes_vary:  # fold the fixed class count into the intercept
                coef = np.array([coef[0], coef[1], 0.0, 0.0])
            out[kind][op] = dict(
                zip(
                    ("base", "per_feature", "per_class", "per_class_feature"),
                    (int(round(v)) for v in coef),
                    strict=False,
                )
            )
    return out


def apply_fit(
    data: dict[str, Any], coefs: dict[str, dict[str, dict[str, int]]], ms: list[Measurement]
) -> dict[str, Any]:
    """The gas-schedule JSON ``data`` with the measured operations replaced by the fit.

    ``base``/``per_feature["*"]`` (learner kinds without a measurement) take the perceptron's
    figures at two classes; Python kinds in :data:`ALIASES` share their on-chain kind's terms.
    """
    data = json.loads(json.dumps(data))
    for key in ("base_by_kind", "per_class", "per_class_feature"):
        data.setdefault(key, {})
    data.setdefault("per_feature", {})
    targets = {k: [k] + [a for a, t in ALIASES.items() if t == k] for k in coefs}
    for kind, ops in coefs.items():
        for op, cf in ops.items():
            if op not in OPS:
                continue
            for name in targets[kind]:
                data["base_by_kind"].setdefault(op, {})[name] = cf["base"]
                data["per_feature"].setdefault(op, {})[name] = cf["per_feature"]
                for key in ("per_class", "per_class_feature"):
                    if cf[key]:
                        data[key].setdefault(op, {})[name] = cf[key]
                    else:
                        data[key].get(op, {}).pop(name, None)
            if kind == "perceptron":
                data["base"][op] = terms(cf, 0, 2)
                data["per_feature"][op]["*"] = cf["per_feature"]
    for key in ("per_class", "per_class_feature"):
        data[key] = {op: v for op, v in data[key].items() if v}
    extra: dict[str, Any] = {}
    for kind, ops in coefs.items():
        for op in ("add_data_new_slots", "add_data_no_update", "refund_counters_set"):
            if op in ops:
                cf = ops[op]
                for name in targets[kind]:
                    if op == "add_data_new_slots":  # the surcharge of a feature's first write
                        extra.setdefault("add_data_new_slot_per_feature", {})[name] = (
                            cf["per_feature"]
                            + 2 * cf["per_class_feature"]
                            - (
                                ops["add_data"]["per_feature"]
                                + 2 * ops["add_data"]["per_class_feature"]
                            )
                        )
                    else:
                        extra.setdefault(op, {})[name] = {
                            k: v for k, v in cf.items() if v or k == "base"
                        }
    data["extra"] = extra
    grid = sorted({(m.kind, m.n_features, m.n_classes) for m in ms})
    data["source"] = (
        "deploy/add_data/refund/report/predict measured on py-evm (titanoboa, Prague rules) with sum_abm's "
        f"Vyper contracts by `sum-abm gas` at {len(grid)} (kind, features, classes) points: "
        "gas = base_by_kind (else base) + per_feature*n + per_class*c + per_class_feature*c*n; "
        "prediction-market steps (pm_*) remain estimates (the reference has no Solidity market)"
    )
    return data


def verify(
    points: dict[str, Iterable[tuple[int, int]]] | None = None,
    schedule_path: str | Path | None = None,
    progress: Any = None,
) -> list[dict[str, Any]]:
    """Re-measure ``points`` (default :data:`VERIFY_POINTS`) and compare with a schedule (default:
    the shipped one): one row per (kind, op, features, classes) with the relative error."""
    from sum_abm.chain import GasSchedule

    sched = GasSchedule.load(schedule_path)
    rows = []
    for m in measure(points or VERIFY_POINTS, progress):
        pred = schedule_gas(sched, m)
        if pred is not None:
            rows.append({**asdict(m), "schedule": pred, "rel_error": abs(pred - m.gas) / m.gas})
    return rows


#: The measured cases of an add and a refund beside the five operations, as the schedule prices them.
CASES = ("add_data_no_update", "add_data_new_slots", "refund_counters_set")


def schedule_gas(sched: Any, m: Measurement) -> int | None:
    """What ``sched`` (a :class:`~sum_abm.chain.GasSchedule`) charges for the measured transaction
    ``m`` (an operation or a case of :data:`CASES`), or None when it does not price it."""
    n, c = m.n_features, m.n_classes
    if m.op in OPS:
        return sched.gas(m.op, m.kind, n, n_classes=c)
    if m.op == "add_data_no_update":
        return sched.add_data_gas(m.kind, n, c, changes=False)
    if m.op == "add_data_new_slots":  # every present feature stored for the first time
        # (Naive Bayes is measured from an empty model: the class's two counters are new too)
        new = {"perceptron": n, "multinomial_nb": n + 2}.get(m.kind, 0)
        return sched.add_data_gas(m.kind, n, c, changes=True, new_slots=new)
    if m.op == "refund_counters_set":
        return sched.refund_gas(m.kind, n, c, sender_counted=True)
    return None
