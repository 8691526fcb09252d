"""The run report: attack success against the clean baseline, model quality, balances, profit and
ROI per group, calls by kind and outcome, gas and fees, and the agents table.

Every builder is a function from a run's polars frames (as ``RunResult`` holds them or as
``RunResult.write`` stores them) to a Plotly figure or an HTML fragment; ``build_run_report`` reads a
run folder and assembles the page. Money is in token units, time in simulated days.
"""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from dashboards.style import (
    ACCURACY,
    ALL_DATA,
    ATTACKER,
    BASELINE,
    DAY_S,
    HONEST,
    OTHER,
    group_colors,
    kpis_html,
    layout,
    outcome_colors,
    page,
    table_html,
)
from sum_abm.chain.errors import REASONS
from sum_abm.mechanisms import MECHANISMS
from sum_abm.schema import FRAMES, RUN_FRAMES, read_frame, read_json_object

MAX_AGENT_LINES = 12  # beyond this many agents, balances are drawn per group


def group_palette(agents: pl.DataFrame) -> dict[str, str]:
    """``{group: colour}`` for a run's groups (attackers red, model users blue, contributors green)."""
    groups = (
        agents.select("group", "policy", "attacker")
        .unique(subset="group", maintain_order=True)
        .rows()
    )
    return group_colors(groups)


def accuracy_curve(timeseries: pl.DataFrame) -> pl.DataFrame:
    """One row per sample time: ``time_s``, ``accuracy`` (the timeseries repeats it for every agent)."""
    return (
        timeseries.select("time_s", "accuracy")
        .unique("time_s", keep="last", maintain_order=True)
        .sort("time_s")
    )


def balances_figure(
    timeseries: pl.DataFrame, agents: pl.DataFrame, max_lines: int = MAX_AGENT_LINES
) -> go.Figure:
    """Balance of every agent (or, with more than ``max_lines`` agents, of every group) over simulated days."""
    colors = group_palette(agents)
    fig = go.Figure()
    ts = timeseries.with_columns((pl.col("time_s") / DAY_S).alias("day"))
    if agents.height <= max_lines:
        for aid, grp in agents.select("agent_id", "group").rows():
            d = ts.filter(pl.col("agent_id") == aid).sort("time_s")
            fig.add_trace(
                go.Scatter(
                    x=d["day"],
                    y=d["balance"],
                    mode="lines",
                    name=aid,
                    legendgroup=grp,
                    line=dict(color=colors[grp]),
                    hovertemplate=f"{html.escape(aid)} ({html.escape(grp)})<br>day %{{x:.2f}}"
                    "<br>%{y:,.0f} token units<extra></extra>",
                )
            )
        title = "Balance of each agent"
    else:
        g = ts.group_by("time_s", "day", "group").agg(pl.col("balance").sum()).sort("time_s")
        for grp in agents["group"].unique(maintain_order=True):
            d = g.filter(pl.col("group") == grp)
            n = agents.filter(pl.col("group") == grp).height
            fig.add_trace(
                go.Scatter(
                    x=d["day"],
                    y=d["balance"],
                    mode="lines",
                    name=f"{grp} ({n} agents)",
                    line=dict(color=colors[grp]),
                    hovertemplate=f"{html.escape(grp)}<br>day %{{x:.2f}}<br>%{{y:,.0f}} token units"
                    "<extra></extra>",
                )
            )
        title = "Balance of each group (sum over its agents)"
    return layout(fig, title, "simulated time (days)", "balance (token units)")


def accuracy_figure(
    timeseries: pl.DataFrame, summary: pl.DataFrame, baseline: pl.DataFrame | None = None
) -> go.Figure:
    """Model accuracy over time, with the clean baseline (same seed, no attackers) and the accuracy of
    the model trained on all the data as reference lines."""
    fig = go.Figure()
    acc = accuracy_curve(timeseries)
    fig.add_trace(
        go.Scatter(
            x=acc["time_s"] / DAY_S,
            y=acc["accuracy"],
            mode="lines",
            name="accuracy",
            line=dict(color=ACCURACY, width=2),
            hovertemplate="day %{x:.2f}<br>accuracy %{y:.3f}<extra></extra>",
        )
    )
    if baseline is not None and baseline.height:
        b = accuracy_curve(baseline)
        fig.add_trace(
            go.Scatter(
                x=b["time_s"] / DAY_S,
                y=b["accuracy"],
                mode="lines",
                name="clean baseline (no attackers)",
                line=dict(color=BASELINE, dash="dash"),
                hovertemplate="day %{x:.2f}<br>baseline %{y:.3f}<extra></extra>",
            )
        )
    s = summary.row(0, named=True)
    if s.get("accuracy_all_data") is not None:
        # a trace, not a shape: it has a legend entry and a hover value like the other lines
        t_end = float(acc["time_s"].max() or 0) / DAY_S
        fig.add_trace(
            go.Scatter(
                x=[0, t_end],
                y=[s["accuracy_all_data"]] * 2,
                mode="lines",
                name=f"trained on all data ({s['accuracy_all_data']:.3f})",
                line=dict(color=ALL_DATA, dash="dot"),
                hoverinfo="skip",
            )
        )
    return layout(
        fig,
        "Accuracy on the hidden test set",
        "simulated time (days)",
        "accuracy (fraction correct)",
    )


def attack_figure(
    timeseries: pl.DataFrame, agents: pl.DataFrame, baseline: pl.DataFrame | None
) -> go.Figure:
    """Attack success over time: accuracy destroyed against the clean baseline (points; the baseline's
    nearest sample in time) and the cumulative profit of attackers and of everyone else."""
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=("accuracy destroyed (baseline − attacked)", "cumulative profit"),
    )
    acc = accuracy_curve(timeseries)
    if baseline is not None and baseline.height:
        b = accuracy_curve(baseline).rename({"accuracy": "base"})
        # the baseline's nearest sample: the two runs sample one nominal time seconds apart
        j = acc.join_asof(b, on="time_s", strategy="nearest").drop_nulls("base")
        drop = (j["base"] - j["accuracy"]) * 100
        fig.add_trace(
            go.Scatter(
                x=j["time_s"] / DAY_S,
                y=drop,
                mode="lines",
                name="accuracy destroyed",
                line=dict(color=ATTACKER),
                fill="tozeroy",
                fillcolor="rgba(198,40,40,0.12)",
                hovertemplate="day %{x:.2f}<br>%{y:+.1f} points<extra></extra>",
            ),
            row=1,
            col=1,
        )
    kind = dict(agents.select("agent_id", "attacker").rows())
    start = dict(agents.select("agent_id", "start_balance").rows())
    ts = timeseries.with_columns(
        pl.col("agent_id").replace_strict(kind, default=False).alias("attacker"),
        (pl.col("balance") - pl.col("agent_id").replace_strict(start, default=0.0)).alias("profit"),
    )
    side = ts.group_by("time_s", "attacker").agg(pl.col("profit").sum()).sort("time_s")
    for is_att, name, color in ((True, "attackers", ATTACKER), (False, "everyone else", HONEST)):
        d = side.filter(pl.col("attacker") == is_att)
        if d.height:
            fig.add_trace(
                go.Scatter(
                    x=d["time_s"] / DAY_S,
                    y=d["profit"],
                    mode="lines",
                    name=name,
                    line=dict(color=color),
                    hovertemplate=f"{name}<br>day %{{x:.2f}}<br>%{{y:+,.0f}} token units<extra></extra>",
                ),
                row=2,
                col=1,
            )
    fig.add_hline(y=0, line=dict(color="#bdbdbd", width=1))
    fig.update_yaxes(title_text="accuracy points", row=1, col=1)
    fig.update_yaxes(title_text="profit (token units)", row=2, col=1)
    fig.update_xaxes(title_text="simulated time (days)", row=2, col=1)
    return layout(fig, "Attack success over time", None, None, height=560)


def profit_figure(agents: pl.DataFrame) -> go.Figure:
    """Profit per group (token units, summed over its agents) and the ROI of each agent
    (profit / start balance), one point per agent, grouped."""
    colors = group_palette(agents)
    g = agents.group_by("group", maintain_order=True).agg(
        pl.col("profit").sum(), pl.col("start_balance").sum(), pl.len().alias("n")
    )
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("profit per group (sum)", "ROI of each agent"),
        horizontal_spacing=0.12,
    )
    roi = [p / s if s else 0.0 for p, s in zip(g["profit"], g["start_balance"], strict=False)]
    fig.add_trace(
        go.Bar(
            x=g["group"],
            y=g["profit"],
            marker_color=[colors[x] for x in g["group"]],
            text=[f"group ROI {r:+.1%}" for r in roi],
            textposition="auto",
            showlegend=False,
            customdata=g["n"],
            hovertemplate="%{x} (%{customdata} agents)<br>%{y:+,.0f} token units<extra></extra>",
        ),
        row=1,
        col=1,
    )
    for grp in g["group"]:
        d = agents.filter(pl.col("group") == grp)
        fig.add_trace(
            go.Box(
                x=[grp] * d.height,
                y=d["roi"],
                name=grp,
                boxpoints="all",
                jitter=0.4,
                pointpos=0,
                marker=dict(color=colors[grp]),
                line=dict(color=colors[grp]),
                showlegend=False,
                text=d["agent_id"],
                hovertemplate="%{text}<br>ROI %{y:+.1%}<extra></extra>",
            ),
            row=1,
            col=2,
        )
    fig.add_hline(y=0, line=dict(color="#bdbdbd", width=1))
    fig.update_yaxes(title_text="profit (token units)", row=1, col=1)
    fig.update_yaxes(title_text="ROI (profit / start balance)", tickformat="+.0%", row=1, col=2)
    fig.update_xaxes(title_text="group", row=1, col=2)
    return layout(fig, "Profit and ROI", "group", "profit (token units)")


def points_figure(agents: pl.DataFrame) -> go.Figure:
    """Points per group (the Points mechanism pays points, not money): sum and per agent."""
    colors = group_palette(agents)
    g = agents.group_by("group", maintain_order=True).agg(
        pl.col("points").sum(), pl.col("points").mean().alias("mean")
    )
    fig = go.Figure(
        go.Bar(
            x=g["group"],
            y=g["points"],
            marker_color=[colors[x] for x in g["group"]],
            text=[f"{m:.1f} per agent" for m in g["mean"]],
            textposition="auto",
            hovertemplate="%{x}<br>%{y} points<extra></extra>",
        )
    )
    return layout(fig, "Points scored per group", "group", "points (count)")


# Panels a mechanism may ask for (``Mechanism.report_panels``): name -> (title, builder of the
# agents frame).
MECHANISM_PANELS = {
    "profit_roi": ("Profit and ROI", profit_figure),
    "points_by_group": ("Points", points_figure),
}


def calls_figure(transactions: pl.DataFrame) -> go.Figure:
    """Contract calls by kind and outcome: accepted, or each rejection reason (stacked counts)."""
    fig = go.Figure()
    if transactions.height:
        t = transactions.with_columns(
            pl.when(pl.col("accepted"))
            .then(pl.lit("accepted"))
            .otherwise(pl.col("reason").fill_null("rejected"))
            .alias("outcome")
        )
        c = t.group_by("call", "outcome").agg(pl.len().alias("n")).sort("call", "outcome")
        calls = c["call"].unique().sort().to_list()
        colors = outcome_colors(c["outcome"].to_list(), list(REASONS))
        order = ["accepted"] + sorted(o for o in colors if o != "accepted")
        for outcome in order:
            d = c.filter(pl.col("outcome") == outcome)
            if d.height:
                fig.add_trace(
                    go.Bar(
                        x=d["call"],
                        y=d["n"],
                        name=outcome,
                        marker_color=colors[outcome],
                        hovertemplate=f"%{{x}}: %{{y:,}} {html.escape(outcome)}<extra></extra>",
                    )
                )
        fig.update_xaxes(categoryorder="array", categoryarray=calls)
    else:
        fig.add_annotation(
            text="no contract calls in this run", showarrow=False, xref="paper", yref="paper"
        )
    fig.update_layout(barmode="stack")
    return layout(fig, "Contract calls by kind and outcome", "call", "calls (count)")


def sender_groups(transactions: pl.DataFrame, agents: pl.DataFrame) -> pl.Series:
    """The group of each transaction's sender; a Sybil's extra addresses (``agent.k``) count for the
    agent, and senders that are no agent (the bounty provider) are "other"."""
    group_of = dict(agents.select("agent_id", "group").rows())
    agent = (
        pl.when(pl.col("sender").is_in(list(group_of)))
        .then(pl.col("sender"))
        .otherwise(pl.col("sender").str.replace(r"\.\d+$", ""))
    )
    return transactions.select(agent.replace_strict(group_of, default="other").alias("group"))[
        "group"
    ]


def gas_figure(transactions: pl.DataFrame, agents: pl.DataFrame) -> go.Figure:
    """Gas used per call kind, stacked by the sender's group, and the fees each group paid
    (fee = gas × gas price, token units)."""
    colors = {**group_palette(agents), "other": OTHER}
    t = transactions.with_columns(sender_groups(transactions, agents))
    by_call = t.group_by("call", "group").agg(pl.col("gas").sum(), pl.len().alias("n")).sort("call")
    fees = t.group_by("group", maintain_order=True).agg(pl.col("fee").sum(), pl.len().alias("n"))
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("gas used per call kind", "fees paid per group"),
        horizontal_spacing=0.12,
    )
    for grp in t["group"].unique(maintain_order=True):
        d = by_call.filter(pl.col("group") == grp)
        fig.add_trace(
            go.Bar(
                x=d["call"],
                y=d["gas"],
                name=grp,
                legendgroup=grp,
                marker_color=colors.get(grp, OTHER),
                customdata=d["n"],
                hovertemplate=f"{html.escape(grp)}: %{{x}}<br>%{{y:,}} gas in %{{customdata:,}} calls"
                "<extra></extra>",
            ),
            row=1,
            col=1,
        )
    fig.add_trace(
        go.Bar(
            x=fees["group"],
            y=fees["fee"],
            marker_color=[colors.get(x, OTHER) for x in fees["group"]],
            showlegend=False,
            text=[f"{v:,}" for v in fees["fee"]],
            textposition="auto",
            hovertemplate="%{x}<br>%{y:,} token units<extra></extra>",
        ),
        row=1,
        col=2,
    )
    fig.update_layout(barmode="stack")
    fig.update_yaxes(title_text="gas (units)", row=1, col=1)
    fig.update_yaxes(title_text="fees (token units)", row=1, col=2)
    fig.update_xaxes(title_text="group", row=1, col=2)
    return layout(fig, "Gas and fees", "call", "gas (units)")


def attack_kpis(summary: pl.DataFrame) -> str:
    """Key figures of attack success (against the clean baseline), or a note when nobody attacked."""
    s = summary.row(0, named=True)
    if s.get("accuracy_drop_final") is None:
        if s.get("attacker_profit") is not None:
            return (
                "<p class='note'>Attackers ran without a clean baseline (<code>--no-baseline</code>): "
                f"attacker profit {s['attacker_profit']:+,.0f} token units.</p>"
            )
        return "<p class='note'>No attacking group in this scenario.</p>"
    spp = s.get("attacker_spend_per_point")
    return kpis_html(
        [
            ("accuracy destroyed (final)", f"{s['accuracy_drop_final'] * 100:+.1f} points"),
            ("accuracy destroyed (worst)", f"{s['accuracy_drop_max'] * 100:+.1f} points"),
            ("attacker ROI", f"{s['attacker_roi']:+.1%}"),
            (
                "spend per accuracy point destroyed",
                "n/a (no final drop)" if spp is None else f"{spp:,.0f} token units",
            ),
            ("honest profit", f"{s['honest_profit']:+,.0f}"),
            ("honest profit in the baseline", f"{s.get('baseline_honest_profit') or 0:+,.0f}"),
        ]
    )


def quality_kpis(summary: pl.DataFrame) -> str:
    """Model quality: initial, final, minimum and time-weighted accuracy, and the gap to all data."""
    s = summary.row(0, named=True)
    items = [
        ("initial", f"{s['accuracy_initial']:.3f}"),
        ("final", f"{s['accuracy_final']:.3f}"),
        ("minimum", f"{s['accuracy_min']:.3f}"),
        ("time-weighted", f"{s['accuracy_time_weighted']:.3f}"),
    ]
    if s.get("accuracy_all_data") is not None:
        items.append(
            (
                "gap to all-data model",
                f"{(s['accuracy_all_data'] - s['accuracy_final']) * 100:+.1f} points",
            )
        )
    return kpis_html(items)


def market_kpis(summary: pl.DataFrame) -> str:
    """Mechanism-specific facts (prediction market: state, bounty, share paid)."""
    s = summary.row(0, named=True)
    items = []
    if s.get("pm_state") is not None:
        items += [
            ("market state", str(s["pm_state"])),
            ("bounty", f"{s.get('bounty') or 0:,} token units"),
        ]
        if s.get("bounty_paid_fraction") is not None:
            items.append(("bounty paid out", f"{s['bounty_paid_fraction']:.1%}"))
    items.append(("fees collected", f"{s.get('fees_total') or 0:,} token units"))
    return kpis_html(items)


def agents_table(agents: pl.DataFrame) -> str:
    """Every agent's figures, sortable."""
    cols = [
        c
        for c in (
            "agent_id",
            "group",
            "policy",
            "attacker",
            "addresses",
            "start_balance",
            "end_balance",
            "profit",
            "roi",
            "fees",
            "deposits_paid",
            "adds_accepted",
            "refunded",
            "taken",
            "reports_won",
            "predictions",
            "points",
        )
        if c in agents.columns
    ]
    return table_html(agents.select(cols))


def run_figures(
    frames: dict[str, pl.DataFrame],
    baseline: pl.DataFrame | None = None,
    gas_price: float = 0,
) -> list[tuple[str, object]]:
    """The report's sections, in order, from a run's frames (``baseline``: the clean baseline's
    timeseries; ``gas_price``: the run's, token units per gas, from its ``run.json``)."""
    ts, ag, sm, tx = (
        frames["timeseries"],
        frames["agents"],
        frames["summary"],
        frames["transactions"],
    )
    s = sm.row(0, named=True)
    sections: list[tuple[str, object]] = []
    if ag["attacker"].any():
        sections.append(("Attack success", attack_kpis(sm)))
        sections.append(("Attack success over time", attack_figure(ts, ag, baseline)))
    sections += [
        ("Model quality", quality_kpis(sm)),
        ("Accuracy", accuracy_figure(ts, sm, baseline)),
        ("Balances", balances_figure(ts, ag)),
    ]
    # The mechanism names its panels (Points pays points, not money); results of a mechanism
    # that is no longer registered get the money panel.
    mech = MECHANISMS.get(s["mechanism"])
    for name in mech.report_panels if mech is not None else ("profit_roi",):
        title, build = MECHANISM_PANELS[name]
        sections.append((title, build(ag)))
    sections.append(("Calls", calls_figure(tx)))
    if tx.height and tx["gas"].sum() > 0:
        sections.append(("Gas and fees", gas_figure(tx, ag)))
    elif gas_price:
        sections.append(
            (
                "Gas and fees",
                f"<p class='note'>Gas price {html.escape(str(gas_price))} token units per gas, "
                "and no call was sent: no sender's balance paid a call's fee (gas × price; an "
                "add is 10<sup>5</sup> to 10<sup>6</sup> gas).</p>",
            )
        )
    else:
        sections.append(
            (
                "Gas and fees",
                "<p class='note'>Gas price 0: every call was free and gas was not "
                "metered (as in the reference simulator). Set <code>chain.gas_price</code> "
                "to charge gas × price per call.</p>",
            )
        )
    sections.append(("Market", market_kpis(sm)))
    sections.append(("Agents (click a header to sort)", agents_table(ag)))
    if frames.get("evm") is not None:
        sections.append(("EVM spot check", evm_table(frames["evm"], s)))
    return sections


def evm_table(evm: pl.DataFrame, s: dict) -> str:
    """A run mirrored on the EVM (``chain.backend = "evm"``): calls per kind and the schedule's gas
    against the EVM's (relative error over the accepted calls)."""
    acc = evm.filter(pl.col("accepted") & pl.col("evm_gas").is_not_null()).with_columns(
        err=(pl.col("schedule_gas") - pl.col("evm_gas")).abs() / pl.col("evm_gas")
    )
    by = (
        acc.group_by("call")
        .agg(
            pl.len().alias("accepted calls"),
            pl.col("schedule_gas").median().round(0).cast(pl.Int64).alias("schedule gas (median)"),
            pl.col("evm_gas").median().round(0).cast(pl.Int64).alias("EVM gas (median)"),
            (pl.col("err").median() * 100).round(1).alias("error % (median)"),
            (pl.col("err").max() * 100).round(1).alias("error % (largest)"),
        )
        .sort("call")
    )
    intro = (
        f"<p>{s.get('evm_calls', evm.height):,} calls sent again to the Vyper contracts on py-evm "
        f"({html.escape(str(s.get('evm_classifier', '')))} classifier): every call and the final state agree "
        "(a difference stops the run). The gas the schedule charges beside the EVM's:</p>"
    )
    return intro + table_html(by)


def read_run(run_dir: str | Path) -> tuple[dict[str, pl.DataFrame], pl.DataFrame | None, dict]:
    """A run folder's frames, the baseline timeseries (or None) and ``run.json`` (or {})."""
    from sum_abm.errors import InputError

    d = Path(run_dir)
    missing = [FRAMES[n].file for n in RUN_FRAMES if not (d / FRAMES[n].file).exists()]
    if missing:
        raise InputError(f"{d}: not a complete run folder: missing {', '.join(missing)}")
    frames = {n: read_frame(d / FRAMES[n].file, n) for n in RUN_FRAMES}
    if frames["summary"].height != 1:
        raise InputError(
            f"{d / FRAMES['summary'].file}: expected one row, got {frames['summary'].height}"
        )
    if (d / FRAMES["evm"].file).exists():
        frames["evm"] = read_frame(d / FRAMES["evm"].file, "evm")
    base_f = d / FRAMES["baseline_timeseries"].file
    baseline = read_frame(base_f, "baseline_timeseries") if base_f.exists() else None
    meta = read_json_object(d / "run.json") if (d / "run.json").exists() else {}
    return frames, baseline, meta


def build_run_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of a run folder (default ``run_dir/report.html``); returns its path."""
    d = Path(run_dir)
    frames, baseline, meta = read_run(d)
    s = frames["summary"].row(0, named=True)
    desc = html.escape(meta.get("scenario", {}).get("description", ""))
    conserved = (
        ""
        if s.get("money_conserved", True)
        else " <span class='bad'>money was NOT conserved in this run</span>"
    )
    intro = (
        f"{desc}<br>mechanism <b>{html.escape(s['mechanism'])}</b> ({html.escape(str(s['semantics']))}), "
        f"learner <b>{html.escape(s['learner'])}</b>, seed {s['seed']}, {s['n_agents']} agents, "
        f"{s['days']:.1f} simulated days, {s['calls']:,} calls ({s['calls_rejected']:,} rejected); "
        f"accuracy {s['accuracy_initial']:.3f} → {s['accuracy_final']:.3f}; money in token units.{conserved}"
    )
    return page(
        f"sum_abm run report — {s['scenario']}",
        intro,
        run_figures(
            frames, baseline, meta.get("scenario", {}).get("chain", {}).get("gas_price", 0)
        ),
        Path(out) if out else d / "report.html",
    )
