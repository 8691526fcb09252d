"""The design report: the answer, the Pareto front, the best-response map over two parameters with
the feasible region shaded, every strategy's ROI at the recommended setting, and all candidates.

Reads only the files ``sum-abm design`` writes (``designs.parquet``, ``answer.json``,
``design.json``).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from dashboards.style import ATTACKER, BASELINE, HONEST, kpis_html, layout, page, table_html
from sum_abm.design.search import plain_answer

MAX_FACETS = 4  # a third parameter with more values is folded (best candidate per cell)
MAX_LEVELS = 12  # more distinct values than this: a scatter instead of a grid
FEASIBLE_FILL = "rgba(46, 125, 50, 0.22)"


def _label(v) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _objective_axes(designs: pl.DataFrame, spec: dict) -> tuple[str, str]:
    objs = [o["metric"] for o in spec["objectives"]]
    if len(objs) >= 2:
        return objs[0], objs[1]
    return ("constraint_0" if "constraint_0" in designs.columns else "best_response_roi"), objs[0]


def pareto_figure(designs: pl.DataFrame, spec: dict) -> go.Figure:
    """Every candidate in objective space: feasible green, infeasible grey, the Pareto front joined,
    the recommended setting starred."""
    x, y = _objective_axes(designs, spec)
    params = list(spec["parameters"])
    d = designs.filter(pl.col(x).is_not_null() & pl.col(y).is_not_null())
    hover = [
        "<br>".join(f"{p} = {_label(r[p])}" for p in params)
        + f"<br>best response: {r['best_response']}"
        for r in d.iter_rows(named=True)
    ]
    fig = go.Figure()
    for feasible, colour, name in ((False, BASELINE, "infeasible"), (True, HONEST, "feasible")):
        mask = (d["feasible"] == feasible).to_numpy()
        fig.add_trace(
            go.Scatter(
                x=d[x].to_numpy()[mask],
                y=d[y].to_numpy()[mask],
                mode="markers",
                name=name,
                marker=dict(color=colour, size=9, opacity=0.8),
                text=[h for h, m in zip(hover, mask, strict=True) if m],
                hovertemplate="%{text}<extra></extra>",
            )
        )
    front = d.filter(pl.col("pareto")).sort(x)
    if front.height:
        fig.add_trace(
            go.Scatter(
                x=front[x],
                y=front[y],
                mode="lines",
                name="Pareto front (feasible)",
                line=dict(color=HONEST, width=2),
            )
        )
    rec = d.filter(pl.col("recommended"))
    if rec.height:
        fig.add_trace(
            go.Scatter(
                x=rec[x],
                y=rec[y],
                mode="markers",
                name="recommended",
                marker=dict(
                    symbol="star", size=18, color="gold", line=dict(color="black", width=1)
                ),
            )
        )
    title = (
        "Pareto front over the objectives (under the attacker's best response)"
        if x != "constraint_0"
        else "Objective against the attacker constraint's value (feasible: left of its bound)"
    )
    return layout(fig, title, x, y)


def _axes(designs: pl.DataFrame, params: list[str]) -> tuple[str, str | None, str | None]:
    """(x, y, facet): the two parameters with the most values, then a small third one."""
    varied = sorted(
        (p for p in params if designs[p].n_unique() > 1),
        key=lambda p: -designs[p].n_unique(),
    )
    if not varied:
        return params[0], None, None
    x = varied[0]
    y = varied[1] if len(varied) > 1 else None
    facet = next((p for p in varied[2:] if designs[p].n_unique() <= MAX_FACETS), None)
    return x, y, facet


def _sorted_values(s: pl.Series) -> list:
    vals = s.unique().to_list()
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def best_response_map(designs: pl.DataFrame, spec: dict) -> go.Figure:
    """The best response's mean ROI over two parameters (a panel per value of a third); each cell
    names the best response; feasible cells are shaded green with a border; the recommended setting
    is starred. Other parameters are folded: each cell shows its least-violating candidate."""
    params = list(spec["parameters"])
    x, y, facet = _axes(designs, params)
    d = designs.filter(pl.col("valid"))
    panels = (
        [(None, d)]
        if facet is None
        else [
            (f"{facet} = {_label(v)}", d.filter(pl.col(facet) == v))
            for v in _sorted_values(d[facet])
        ]
    )
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=[t for t, _ in panels] if facet else None,
        shared_yaxes=True,
        horizontal_spacing=0.05,
    )
    roi = d["best_response_roi"].drop_nulls().to_numpy() * 100
    r = (float(np.abs(roi).max()) if roi.size else 0.0) or 1.0  # symmetric around 0 %
    grid = y is not None and d[x].n_unique() <= MAX_LEVELS and d[y].n_unique() <= MAX_LEVELS
    for k, (_, sub) in enumerate(panels):
        col = k + 1
        if not grid:
            _scatter_panel(fig, sub, x, y, col, r, k == 0)
            continue
        xs, ys = _sorted_values(d[x]), _sorted_values(d[y])
        z = np.full((len(ys), len(xs)), np.nan)
        text = [["" for _ in xs] for _ in ys]
        feas = np.zeros_like(z, dtype=bool)
        rec = None
        for i, yv in enumerate(ys):
            for j, xv in enumerate(xs):
                cell = sub.filter((pl.col(x) == xv) & (pl.col(y) == yv))
                if not cell.height:
                    continue
                best = cell.sort("violation").row(0, named=True)
                v = best["best_response_roi"]
                z[i, j] = np.nan if v is None else v * 100
                text[i][j] = f"{best['best_response']}<br>{z[i, j]:+.1f}%"
                feas[i, j] = bool(cell["feasible"].any())
                if cell["recommended"].any():
                    rec = (xv, yv)
        fig.add_trace(
            go.Heatmap(
                x=[_label(v) for v in xs],
                y=[_label(v) for v in ys],
                z=z,
                text=text,
                texttemplate="%{text}",
                zmin=-r,
                zmax=r,
                colorscale="RdBu_r",
                showscale=k == 0,
                colorbar=dict(title="best response ROI (%)"),
                hovertemplate=f"{html.escape(x)} = %{{x}}<br>{html.escape(y)} = %{{y}}<br>"
                "best response ROI %{z:+.1f}%<extra></extra>",
            ),
            row=1,
            col=col,
        )
        for i in range(len(ys)):
            for j in range(len(xs)):
                if feas[i, j]:
                    fig.add_shape(
                        type="rect",
                        x0=j - 0.5,
                        x1=j + 0.5,
                        y0=i - 0.5,
                        y1=i + 0.5,
                        fillcolor=FEASIBLE_FILL,
                        line=dict(color=HONEST, width=3),
                        row=1,
                        col=col,
                    )
        if rec is not None:
            fig.add_trace(
                go.Scatter(
                    x=[_label(rec[0])],
                    y=[_label(rec[1])],
                    mode="markers",
                    name="recommended",
                    showlegend=k == 0,
                    marker=dict(  # small and translucent: the cell's text stays readable
                        symbol="star",
                        size=14,
                        color="gold",
                        opacity=0.8,
                        line=dict(color="black", width=1),
                    ),
                ),
                row=1,
                col=col,
            )
        fig.update_xaxes(title_text=x, type="category", row=1, col=col)
    fig.update_yaxes(title_text=y or "", type="category" if grid else "-", row=1, col=1)
    return layout(
        fig,
        "Attacker's best response over the designer's settings (cell: strategy and mean ROI; "
        "green border: feasible)",
        None,
        None,
        height=460,
    )


def _scatter_panel(fig, sub: pl.DataFrame, x: str, y: str | None, col: int, r: float, first: bool):
    yv = sub[y] if y is not None else sub["best_response_roi"] * 100
    feas = sub["feasible"].to_numpy().astype(bool)
    if feas.any():
        fig.add_trace(
            go.Scatter(
                x=sub[x].to_numpy()[feas],
                y=yv.to_numpy()[feas],
                mode="markers",
                name="feasible",
                showlegend=first,
                marker=dict(size=24, color=FEASIBLE_FILL, line=dict(color=HONEST, width=2)),
                hoverinfo="skip",
            ),
            row=1,
            col=col,
        )
    fig.add_trace(
        go.Scatter(
            x=sub[x],
            y=yv,
            mode="markers+text",
            text=sub["best_response"],
            textposition="top center",
            name="candidates",
            showlegend=first,
            marker=dict(
                size=10,
                color=sub["best_response_roi"] * 100,
                colorscale="RdBu_r",
                cmin=-r,
                cmax=r,
                showscale=first,
                colorbar=dict(title="best response ROI (%)"),
            ),
        ),
        row=1,
        col=col,
    )
    rec = sub.filter(pl.col("recommended"))
    if rec.height:
        fig.add_trace(
            go.Scatter(
                x=rec[x],
                y=rec[y] if y is not None else rec["best_response_roi"] * 100,
                mode="markers",
                name="recommended",
                showlegend=first,
                marker=dict(
                    symbol="star", size=20, color="gold", line=dict(color="black", width=1)
                ),
            ),
            row=1,
            col=col,
        )
    fig.update_xaxes(title_text=x, row=1, col=col)


def strategies_figure(answer: dict) -> go.Figure:
    """At the recommended (or closest) setting: each strategy's mean ROI with its 95 % interval,
    and the honest contributors' ROI against it; strategies beside the constraint in grey."""
    fig = go.Figure()
    for group, colour, label in (
        ("attacker", ATTACKER, "constrained strategy"),
        ("beside", BASELINE, "beside the constraint"),
    ):
        items = answer.get(group) or {}
        names = list(items)
        if not names:
            continue
        mean = [items[n]["attacker_roi"] for n in names]
        lo = [items[n]["attacker_roi_low"] for n in names]
        hi = [items[n]["attacker_roi_high"] for n in names]
        fig.add_trace(
            go.Bar(
                x=names,
                y=[100 * (m or 0) for m in mean],
                name=f"attacker ROI ({label})",
                marker_color=colour,
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=[
                        100 * ((h or m) - m) if m is not None else 0
                        for m, h in zip(mean, hi, strict=True)
                    ],
                    arrayminus=[
                        100 * (m - (lo_ or m)) if m is not None else 0
                        for m, lo_ in zip(mean, lo, strict=True)
                    ],
                ),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=names,
                y=[100 * (items[n]["honest_roi"] or 0) for n in names],
                mode="markers",
                name=f"honest ROI against it ({label})",
                marker=dict(color=HONEST, size=12, symbol="diamond"),
            )
        )
    return layout(
        fig,
        "Every attacker strategy at the recommended setting (mean, 95 % interval)",
        "attacker strategy",
        "ROI (%)",
    )


def build_design_report(design_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the report of a design folder (default ``design_dir/design_report.html``)."""
    d = Path(design_dir)
    designs = pl.read_parquet(d / "designs.parquet")
    answer = json.loads((d / "answer.json").read_text())
    spec = json.loads((d / "design.json").read_text())["spec"]
    br = answer.get("best_response") or {}
    kpis = [
        ("candidates", f"{answer['candidates']} ({answer['search']})"),
        ("feasible", f"{int(designs['feasible'].sum())} of {designs.height}"),
    ]
    if br:
        kpis.append(
            (
                f"best response: {br['strategy']}",
                f"{(br['attacker_roi'] or 0):+.1%} "
                f"[{(br['attacker_roi_low'] or 0):+.1%}, {(br['attacker_roi_high'] or 0):+.1%}]",
            )
        )
    v = answer.get("verify")
    if v:
        held = all(c["holds"] for c in v["constraints"])
        kpis.append((f"out of sample ({len(v['seeds'])} seeds)", "holds" if held else "FAILS"))
    words = "<pre style='white-space: pre-wrap'>" + html.escape(plain_answer(answer)) + "</pre>"
    cols = [c for c in designs.columns if not c.startswith("violation_")]
    sections = [
        ("Answer", kpis_html(kpis) + words),
        ("Pareto front", pareto_figure(designs, spec)),
        ("Best response over the settings", best_response_map(designs, spec)),
        ("Strategies at the recommended setting", strategies_figure(answer)),
        ("All candidates", table_html(designs.select(cols))),
    ]
    intro = (
        f"{html.escape(spec.get('description') or '')}<br>base scenario "
        f"<code>{html.escape(answer['base'])}</code>; attacker group "
        f"<code>{html.escape(answer['attacker_group'])}</code>; {answer['replications']} common seeds "
        f"per candidate and strategy."
    )
    title = f"sum_abm design report — {spec.get('name', d.name)}"
    return page(title, intro, sections, Path(out) if out else d / "design_report.html")


__all__ = ["best_response_map", "build_design_report", "pareto_figure", "strategies_figure"]
