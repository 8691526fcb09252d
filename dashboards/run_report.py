"""The run report: balances, accuracy against the clean baseline, profit and ROI per group, calls by
kind and outcome, gas and fees, and attack success."""

from __future__ import annotations

import html
import json
from pathlib import Path

import plotly.graph_objects as go
import polars as pl

from dashboards.style import ACCURACY, ALL_DATA, BASELINE, group_colors, layout, page

MAX_AGENT_LINES = 12  # beyond this many agents, balances are drawn per group


def _colors(agents: pl.DataFrame) -> dict[str, str]:
    groups = agents.select("group", "policy", "attacker").unique(subset="group", maintain_order=True).rows()
    return group_colors(groups)


def balances_figure(timeseries: pl.DataFrame, agents: pl.DataFrame) -> go.Figure:
    """Balance of every agent (or, when there are many, of every group) over simulated days."""
    colors = _colors(agents)
    fig = go.Figure()
    ts = timeseries.with_columns((pl.col("time_s") / 86_400).alias("day"))
    if agents.height <= MAX_AGENT_LINES:
        for aid, grp in agents.select("agent_id", "group").rows():
            d = ts.filter(pl.col("agent_id") == aid)
            fig.add_trace(go.Scatter(x=d["day"], y=d["balance"], mode="lines", name=aid, line=dict(color=colors[grp])))
        title = "Balance of each agent"
    else:
        g = ts.group_by("day", "group").agg(pl.col("balance").sum()).sort("day")
        for grp in agents["group"].unique(maintain_order=True):
            d = g.filter(pl.col("group") == grp)
            fig.add_trace(go.Scatter(x=d["day"], y=d["balance"], mode="lines", name=grp, line=dict(color=colors[grp])))
        title = "Balance of each group (sum over its agents)"
    return layout(fig, title, "simulated time (days)", "balance (tokens)")


def accuracy_figure(timeseries: pl.DataFrame, summary: pl.DataFrame, baseline: pl.DataFrame | None = None) -> go.Figure:
    """Model accuracy over time, with the clean baseline and the all-data accuracy for reference."""
    fig = go.Figure()
    acc = timeseries.select("time_s", "accuracy").unique("time_s", keep="last", maintain_order=True).sort("time_s")
    fig.add_trace(go.Scatter(x=acc["time_s"] / 86_400, y=acc["accuracy"], mode="lines+markers", name="accuracy",
                             line=dict(color=ACCURACY)))
    if baseline is not None and baseline.height:
        b = baseline.select("time_s", "accuracy").unique("time_s", keep="last", maintain_order=True).sort("time_s")
        fig.add_trace(go.Scatter(x=b["time_s"] / 86_400, y=b["accuracy"], mode="lines", name="clean baseline (no attackers)",
                                 line=dict(color=BASELINE, dash="dash")))
    s = summary.row(0, named=True)
    fig.add_hline(y=s["accuracy_all_data"], line=dict(color=ALL_DATA, dash="dot"),
                  annotation_text=f"trained on all data: {s['accuracy_all_data']:.3f}")
    return layout(fig, "Accuracy on the hidden test set", "simulated time (days)", "accuracy (fraction correct)")


def profit_figure(agents: pl.DataFrame) -> go.Figure:
    """Profit (tokens) and ROI per group."""
    colors = _colors(agents)
    g = agents.group_by("group", maintain_order=True).agg(
        pl.col("profit").sum(), pl.col("start_balance").sum(), pl.len().alias("agents"))
    roi = [p / s if s else 0.0 for p, s in zip(g["profit"], g["start_balance"])]
    fig = go.Figure(go.Bar(x=g["group"], y=g["profit"], marker_color=[colors[x] for x in g["group"]],
                           text=[f"ROI {r:+.1%}" for r in roi], textposition="outside", name="profit"))
    return layout(fig, "Profit per group (ROI = profit / start balance)", "group", "profit (tokens)")


def calls_figure(transactions: pl.DataFrame) -> go.Figure:
    """Contract calls by kind and outcome (accepted, or each rejection reason)."""
    fig = go.Figure()
    if transactions.height:
        t = transactions.with_columns(pl.when(pl.col("accepted")).then(pl.lit("accepted"))
                                      .otherwise(pl.col("reason")).alias("outcome"))
        c = t.group_by("call", "outcome").agg(pl.len().alias("n")).sort("call", "outcome")
        for outcome in c["outcome"].unique(maintain_order=True):
            d = c.filter(pl.col("outcome") == outcome)
            fig.add_trace(go.Bar(x=d["call"], y=d["n"], name=outcome,
                                 marker_color="#90a4ae" if outcome == "accepted" else None))
    fig.update_layout(barmode="stack")
    return layout(fig, "Contract calls by kind and outcome", "call", "calls (count)")


def fees_figure(transactions: pl.DataFrame, agents: pl.DataFrame) -> go.Figure:
    """Gas used and fees paid per group."""
    colors = _colors(agents)
    addr_group = {}
    for aid, grp, n in agents.select("agent_id", "group", "addresses").rows():
        addr_group[aid] = grp
    t = transactions.with_columns(
        pl.col("sender").map_elements(lambda s: addr_group.get(s, addr_group.get(s.rsplit(".", 1)[0], "other")),
                                      return_dtype=pl.String).alias("group"))
    g = t.group_by("group", maintain_order=True).agg(pl.col("gas").sum(), pl.col("fee").sum())
    fig = go.Figure(go.Bar(x=g["group"], y=g["fee"], marker_color=[colors.get(x, "#6d4c41") for x in g["group"]],
                           text=[f"{v:,} gas" for v in g["gas"]], textposition="outside", name="fees"))
    return layout(fig, "Fees paid per group (gas × gas price)", "group", "fees (tokens)")


def attack_html(summary: pl.DataFrame) -> str:
    """Key figures of attack success, when the run had attackers."""
    s = summary.row(0, named=True)
    if s.get("accuracy_drop_final") is None:
        return "<p class='note'>No attacking group in this scenario.</p>"
    spp = s.get("attacker_spend_per_point")
    items = [
        ("accuracy drop (final)", f"{s['accuracy_drop_final'] * 100:+.1f} points"),
        ("accuracy drop (worst)", f"{s['accuracy_drop_max'] * 100:+.1f} points"),
        ("attacker ROI", f"{s['attacker_roi']:+.1%}"),
        ("spend per accuracy point destroyed", "n/a (no drop)" if spp is None else f"{spp:,.0f} tokens"),
        ("honest profit", f"{s['honest_profit']:+,.0f} tokens (baseline {s.get('baseline_honest_profit', 0):+,.0f})"),
    ]
    return "".join(f"<div class='kpi'>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in items)


def run_figures(frames: dict[str, pl.DataFrame], baseline: pl.DataFrame | None = None) -> list[tuple[str, object]]:
    """The report's sections, in order, from a run's frames."""
    ts, ag, sm, tx = frames["timeseries"], frames["agents"], frames["summary"], frames["transactions"]
    return [
        ("Attack success", attack_html(sm)),
        ("Balances", balances_figure(ts, ag)),
        ("Model quality", accuracy_figure(ts, sm, baseline)),
        ("Profit and ROI", profit_figure(ag)),
        ("Calls", calls_figure(tx)),
        ("Gas and fees", fees_figure(tx, ag) if tx.height and tx["fee"].sum() > 0 else
         "<p class='note'>Gas price 0: every call was free (as in the reference simulator). Set "
         "<code>chain.gas_price</code> to charge gas × price per call.</p>"),
    ]


def build_run_report(run_dir: str | Path) -> Path:
    """Write ``run_dir/report.html`` from the Parquet files of a run; returns its path."""
    d = Path(run_dir)
    frames = {n: pl.read_parquet(d / f"{n}.parquet") for n in ("transactions", "timeseries", "agents", "summary")}
    base_f = d / "baseline_timeseries.parquet"
    baseline = pl.read_parquet(base_f) if base_f.exists() else None
    s = frames["summary"].row(0, named=True)
    meta = json.loads((d / "run.json").read_text()) if (d / "run.json").exists() else {}
    desc = html.escape(meta.get("scenario", {}).get("description", ""))
    intro = (f"{desc}<br>mechanism <b>{s['mechanism']}</b> ({s['semantics']}), learner <b>{s['learner']}</b>, "
             f"seed {s['seed']}, {s['n_agents']} agents, {s['days']:.1f} simulated days, {s['calls']:,} calls; "
             f"accuracy {s['accuracy_initial']:.3f} → {s['accuracy_final']:.3f}")
    return page(f"sum_abm run report — {s['scenario']}", intro, run_figures(frames, baseline), d / "report.html")
