"""The attacker's best response, the objectives and the constraints of one candidate setting.

Pure functions of per-run measurements (no market here), so a test can feed a payoff function with a
known answer. A run's measurements (:data:`sum_abm.design.spec.METRICS`): the attacker group's ROI
(profit / start balance, a ratio), the honest groups' ROI, profit and fees (token units), the
market's total fees, the model's accuracies and the share of the pool contributed. Every (setting,
strategy) pair is measured on the same seeds (common random numbers), so differences between
strategies and settings are not seed noise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl
from scipy import stats

from sum_abm.design.spec import METRICS, DesignSpec

LEVEL = 0.95  # the two-sided level of every reported interval


def mean_interval(
    values: list[float] | np.ndarray, level: float = LEVEL
) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean at ``level`` (NaN bounds for n < 2)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if len(x) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - half, m + half


def one_sided_bound(values: list[float] | np.ndarray, confidence: float, upper: bool) -> float:
    """The one-sided Student-t bound of the mean: the mean is below it (``upper``) or above it with
    probability ``confidence``; +inf / -inf when fewer than 2 values (nothing can be claimed)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return math.inf if upper else -math.inf
    half = float(stats.t.ppf(confidence, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return float(x.mean()) + (half if upper else -half)


def run_metrics(
    agents: pl.DataFrame, summary: dict[str, Any], attackers: list[str], honest: list[str]
) -> dict[str, float]:
    """One run's measurements (ROI over the attacker groups together) from its agents rows (group, start_balance, profit, fees) and its
    summary row (accuracies, total fees)."""

    def side(groups: list[str]) -> pl.DataFrame:
        return agents.filter(pl.col("group").is_in(groups))

    att, hon = side(attackers), side(honest)

    def roi(df: pl.DataFrame) -> float:
        start = df["start_balance"].sum()
        return float(df["profit"].sum() / start) if start else math.nan

    return {
        "attacker_roi": roi(att),
        "honest_roi": roi(hon),
        "honest_profit": float(hon["profit"].sum()),
        "honest_fees": float(hon["fees"].sum()),
        "fees_total": float(summary.get("fees_total") or 0),
        "accuracy_final": float(summary["accuracy_final"]),
        "accuracy_min": float(summary["accuracy_min"]),
        "accuracy_time_weighted": float(summary["accuracy_time_weighted"]),
        "pool_used": float(summary.get("pool_used") or 0),
    }


def evaluate_candidate(runs: pl.DataFrame, spec: DesignSpec) -> dict[str, Any]:
    """Best response, objectives and constraints of one candidate from its runs (one row per
    strategy x replication, columns ``strategy`` and the metrics).

    The best response is the constrained strategy with the highest mean attacker ROI (first in the
    file on a tie); the objectives and the non-attacker constraints are measured under it. The
    ``attacker_roi`` constraint covers every constrained strategy: its value is the highest of
    their bounds, so a strategy with a lower mean but a wider spread cannot slip through.
    """
    out: dict[str, Any] = {}
    per: dict[str, pl.DataFrame] = {}
    for s in spec.attacker.strategies:
        rows = runs.filter(pl.col("strategy") == s.name)
        per[s.name] = rows
        m, lo, hi = mean_interval(rows["attacker_roi"].to_numpy())
        # An ROI is never below -100 % (no balance goes negative): the t interval is cut there.
        lo = max(lo, -1.0) if not math.isnan(lo) else lo
        out[f"{s.name}.attacker_roi"] = m
        out[f"{s.name}.attacker_roi_lo"] = lo
        out[f"{s.name}.attacker_roi_hi"] = hi
        out[f"{s.name}.honest_roi"] = mean_interval(rows["honest_roi"].to_numpy())[0]
        out[f"{s.name}.runs"] = rows.height
    constrained = spec.attacker.constrained_names
    means = [out[f"{n}.attacker_roi"] for n in constrained]
    finite = [i for i, m in enumerate(means) if not math.isnan(m)]
    br = constrained[max(finite, key=lambda i: (means[i], -i))] if finite else constrained[0]
    out["best_response"] = br
    out["best_response_roi"] = out[f"{br}.attacker_roi"]
    out["best_response_roi_lo"] = out[f"{br}.attacker_roi_lo"]
    out["best_response_roi_hi"] = out[f"{br}.attacker_roi_hi"]
    under = per[br]
    for metric in METRICS:
        out[metric] = mean_interval(under[metric].to_numpy())[0] if under.height else math.nan
    violations = []
    for i, c in enumerate(spec.constraints):
        value = constraint_value(c, per, under, constrained)
        out[f"constraint_{i}"] = value
        v = (value - c.max) if c.max is not None else (c.min - value)
        violations.append(math.inf if math.isnan(v) else v)
    out["violation"] = float(sum(max(v, 0.0) for v in violations))
    out["feasible"] = all(v <= 0 for v in violations)
    out["_violations"] = violations
    return out


def constraint_value(
    c: Any, per: dict[str, pl.DataFrame], under: pl.DataFrame, constrained: list[str]
) -> float:
    """The value a constraint compares with its bound (see :class:`ConstraintSpec`)."""
    upper = c.max is not None

    def value(x: np.ndarray) -> float:
        if c.confidence is None:
            return mean_interval(x)[0]
        return one_sided_bound(x, c.confidence, upper)

    if c.metric == "attacker_roi":
        vals = [value(per[n]["attacker_roi"].to_numpy()) for n in constrained]
        return max(vals) if upper else min(vals)
    return value(under[c.metric].to_numpy())


def objective_matrix(designs: pl.DataFrame, spec: DesignSpec) -> np.ndarray:
    """The objectives as columns to *minimise* (maximised ones negated), one row per design."""
    cols = []
    for o in spec.objectives:
        v = designs[o.metric].cast(pl.Float64).to_numpy()
        cols.append(-v if o.direction == "maximize" else v)
    return np.column_stack(cols) if cols else np.zeros((designs.height, 0))


def pareto_mask(values: np.ndarray) -> np.ndarray:
    """True for the rows no other row dominates (all columns minimised; NaN rows never optimal)."""
    n = len(values)
    ok = ~np.isnan(values).any(axis=1) if n else np.zeros(0, dtype=bool)
    mask = ok.copy()
    for i in np.flatnonzero(ok):
        others = values[ok]
        dominated = np.any(np.all(others <= values[i], axis=1) & np.any(others < values[i], axis=1))
        mask[i] = not dominated
    return mask


def recommend(designs: pl.DataFrame, spec: DesignSpec) -> tuple[int | None, np.ndarray]:
    """(the recommended row, the Pareto mask over the feasible rows).

    The recommendation is the feasible Pareto point best on the first objective, the next ones
    breaking ties (objectives are listed in priority order); None when nothing is feasible.
    """
    feas = designs["feasible"].to_numpy().astype(bool) if designs.height else np.zeros(0, bool)
    mask = np.zeros(designs.height, dtype=bool)
    if not feas.any():
        return None, mask
    vals = objective_matrix(designs, spec)
    idx = np.flatnonzero(feas)
    mask[idx[pareto_mask(vals[idx])]] = True
    best = min(np.flatnonzero(mask), key=lambda i: (tuple(vals[i]), i))
    return int(best), mask


def closest(designs: pl.DataFrame) -> int | None:
    """The row with the least total constraint violation (when nothing is feasible)."""
    if designs.height == 0:
        return None
    v = designs["violation"].to_numpy()
    return int(np.argmin(np.where(np.isnan(v), np.inf, v)))
