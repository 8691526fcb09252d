"""Run results: polars frames, metrics against a clean baseline, and atomic Parquet output.

Frames (one :class:`RunResult` per run): ``transactions`` (one row per contract call),
``timeseries`` (the accuracy and every agent's balance at every sample time), ``agents`` (one row
per agent), ``summary`` (one row: model quality, money check, attack success when there are
attackers) and, with ``chain.backend = "evm"``, ``evm`` (:mod:`sum_abm.evm.mirror`). Their columns,
types and meaning are declared once, in :mod:`sum_abm.schema`, and the frames are built through it.

Timings never go into the Parquet files: the same scenario and seed give byte-identical files.
"""

from __future__ import annotations

import json
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from sum_abm import schema
from sum_abm.atomic import write_parquet_atomic, write_text_atomic
from sum_abm.market.model import MarketModel
from sum_abm.market.notes import GroupActivity, no_add_notes
from sum_abm.scenario import Scenario


@dataclass
class RunResult:
    """The frames of one run, plus its scenario, seed and wall time (seconds; not in the frames)."""

    scenario: Scenario
    seed: int
    transactions: pl.DataFrame
    timeseries: pl.DataFrame
    agents: pl.DataFrame
    summary: pl.DataFrame
    wall_time_s: float = 0.0
    baseline: RunResult | None = field(default=None, repr=False)
    evm: pl.DataFrame | None = None
    # MB; only for a run that had a process of its own (the clean baseline run in parallel)
    peak_rss_mb: float | None = None
    # per group: wake-ups and adds not sent, by reason (for the run's notes; not in the frames)
    activity: dict[str, GroupActivity] = field(default_factory=dict, repr=False)

    def frames(self) -> dict[str, pl.DataFrame]:
        """The frames written to Parquet (``evm`` too when the run was mirrored on the EVM)."""
        out = {name: getattr(self, name) for name in schema.RUN_FRAMES}
        if self.evm is not None:
            out["evm"] = self.evm
        return out

    def notes(self) -> list[str]:
        """What a reader of the run must be told of groups that sent no add, and why (see
        :func:`sum_abm.market.notes.no_add_notes`), a line each; the mechanism's own notes aside."""
        return no_add_notes(
            self.scenario, self.summary.row(0, named=True), self.activity, self.transactions
        )

    def write(self, out_dir: str | Path) -> Path:
        """Write the Parquet files (one per frame) and ``run.json`` into ``out_dir`` atomically; returns it."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, df in self.frames().items():
            write_parquet_atomic(df, out / schema.FRAMES[name].file)
        if self.baseline is not None:
            write_parquet_atomic(
                self.baseline.timeseries, out / schema.FRAMES["baseline_timeseries"].file
            )
        meta = {
            "scenario": self.scenario.to_dict(),
            "seed": self.seed,
            "wall_time_s": round(self.wall_time_s, 3),
            "versions": versions(),
        }
        write_text_atomic(out / "run.json", json.dumps(meta, indent=2, sort_keys=True))
        return out


def versions() -> dict[str, str]:
    """Versions of sum_abm and the libraries that shape its results."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("sum_abm", "mesa", "numpy", "scipy", "scikit-learn", "polars"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "unknown"
    return out


# -- frames from a finished model ---------------------------------------------------------------
def collect(model: MarketModel) -> dict[str, pl.DataFrame]:
    """Build the transactions, timeseries and agents frames (and ``evm``) from a finished model."""
    tx = model.tx_rows.frame()
    ts = schema.frame("timeseries", model.samples)
    # Fees per sender over the calls that paid one (a run at gas price 0 pays none: no grouping
    # of its millions of rows, the run's peak memory at 1,000 agents)
    paid = tx.filter(pl.col("fee") != 0)
    fees = dict(paid.group_by("sender").agg(pl.col("fee").sum()).iter_rows()) if len(paid) else {}
    rows = []
    for a in model.participants:
        end = a.balance
        start = a.start_balance
        rows.append(
            {
                "agent_id": a.address if len(a.addresses) == 1 else a.address.rsplit(".", 1)[0],
                "group": a.group.name,
                "policy": a.group.policy,
                "attacker": a.group.is_attacker,
                "addresses": len(a.addresses),
                "start_balance": float(start),
                "end_balance": float(end),
                "profit": float(end - start),
                "roi": float((end - start) / start) if start else 0.0,
                "fees": int(sum(fees.get(x, 0) for x in a.addresses)),
                "deposits_paid": int(a.deposits_paid),
                "adds_accepted": a.adds_accepted,
                "refunded": a.refunded,
                "taken": a.taken,
                "reports_won": a.reports_won,
                "predictions": a.predictions,
                "points": a.points,
            }
        )
    agents = schema.frame("agents", rows)
    out = {"transactions": tx, "timeseries": ts, "agents": agents}
    if model.contract.evm is not None:
        out["evm"] = model.contract.evm.frame()
    return out


def accuracy_curve(ts: pl.DataFrame) -> pl.DataFrame:
    """One row per sample time: (time_s, accuracy)."""
    return (
        ts.select("time_s", "accuracy")
        .unique(subset="time_s", keep="last", maintain_order=True)
        .sort("time_s")
    )


def time_weighted(curve: pl.DataFrame) -> float:
    """Accuracy averaged over simulated time (a step function between samples)."""
    t = curve["time_s"].to_numpy()
    a = curve["accuracy"].to_numpy()
    if len(t) < 2 or t[-1] == t[0]:
        return float(a[-1]) if len(a) else float("nan")
    return float(np.sum(a[:-1] * np.diff(t)) / (t[-1] - t[0]))


def summarize(
    model: MarketModel, frames: dict[str, pl.DataFrame], baseline: RunResult | None
) -> pl.DataFrame:
    """The one-row summary: run facts, model quality and, with a baseline, attack success."""
    sc = model.scenario
    tx, agents = frames["transactions"], frames["agents"]
    curve = accuracy_curve(frames["timeseries"])
    acc = curve["accuracy"]
    row: dict[str, Any] = {
        "scenario": sc.name,
        "seed": model.seed_value,
        "mechanism": sc.mechanism.kind,
        "semantics": getattr(sc.mechanism, "semantics", "n/a"),
        "learner": sc.learner.kind,
        "n_agents": len(model.participants),
        "end_time_s": int(model.time),
        "days": float(model.time / 86_400),
        "calls": int(len(tx)),
        "calls_rejected": int((~tx["accepted"]).sum()) if len(tx) else 0,
        "adds_accepted": int(agents["adds_accepted"].sum()),
        "pool_used": float(model.cursor / max(1, model.n_pool)),
        "accuracy_initial": float(model.accuracy_initial),
        "accuracy_final": float(acc[-1]),
        "accuracy_min": float(acc.min()),
        "accuracy_time_weighted": time_weighted(curve),
        "accuracy_all_data": float(model.contract.accuracy_all_data()),
        # Exact for integer money; float rewards (reference-python) within 1e-6 tokens.
        "money_conserved": bool(abs(model.ledger.total() - model.ledger_total) <= 1e-6),
        "fees_total": int(tx["fee"].sum()) if len(tx) else 0,
    }
    row.update(model.contract.summary_extra())
    att = agents.filter(pl.col("attacker"))
    hon = agents.filter(~pl.col("attacker"))
    row["honest_profit"] = float(hon["profit"].sum()) if len(hon) else 0.0
    row["attacker_profit"] = float(att["profit"].sum()) if len(att) else None
    if len(att) and baseline is not None:
        b = accuracy_curve(baseline.timeseries)
        drop_final = float(b["accuracy"][-1] - acc[-1])
        # Each sample against the baseline's nearest one in time: a run samples at the first event
        # after each nominal time, so the two runs' samples of one time are seconds apart and the
        # baseline's latest sample at or before one was mostly the previous (half a day older).
        # Then the two ends (each run holds its last value once it has ended), so the largest
        # drop is never below the final one.
        joined = curve.join_asof(b.rename({"accuracy": "base"}), on="time_s", strategy="nearest")
        drop_max = max(float((joined["base"] - joined["accuracy"]).max()), drop_final)
        start = float(att["start_balance"].sum())
        spend = max(0.0, -float(att["profit"].sum()))  # (profit is after fees: no second count)
        row.update(
            {
                "baseline_accuracy_final": float(b["accuracy"][-1]),
                "accuracy_drop_final": drop_final,
                "accuracy_drop_max": drop_max,
                "attacker_roi": float(att["profit"].sum()) / start if start else 0.0,
                "attacker_spend_per_point": spend / (100 * drop_final) if drop_final > 0 else None,
                "baseline_honest_profit": float(
                    baseline.agents.filter(~pl.col("attacker"))["profit"].sum()
                ),
            }
        )
    return schema.frame("summary", [row])
