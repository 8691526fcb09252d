"""The sweep report: heatmaps of attacker ROI, accuracy destroyed and honest profit over two swept
parameters (mean over replications, spread in every cell), the frontier where attacker ROI crosses
zero, a sortable table of runs, and the failures.

The builders take the runs table (``sum_abm.load_sweep(DIR).collect()``: one row per run, parameter
columns named by their dotted paths, then the run's summary columns). With more than two swept
parameters the third one splits the heatmaps into panels, and any further ones are averaged over (the
report says so).
"""

from __future__ import annotations

import html
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.subplots import make_subplots

from dashboards.style import d3_number, kpis_html, layout, number, page, table_html
from sum_abm.schema import read_json_object
from sum_abm.sweeps.stats import wilson

MAX_FACETS = 6  # a third parameter with more values than this is averaged over instead of split
MAX_LEVELS = 12  # an axis parameter with more values than this (random draws) is binned


@dataclass(frozen=True)
class Metric:
    """How one summary column is shown: title, unit, scale factor, number format (empty:
    :func:`number`), colours."""

    column: str
    title: str
    unit: str
    scale: float
    fmt: str
    colorscale: str
    zmid: float | None


METRICS = {
    # red = good for the attacker, in every chart
    "attacker_roi": Metric(
        "attacker_roi", "Attacker ROI", "ROI (profit / budget, %)", 100, "{:+.1f}%", "RdBu_r", 0.0
    ),
    "accuracy_drop_final": Metric(
        "accuracy_drop_final",
        "Accuracy destroyed (final, vs clean baseline)",
        "accuracy points",
        100,
        "{:+.1f}",
        "RdBu_r",
        0.0,
    ),
    "honest_profit": Metric(
        "honest_profit",
        "Non-attackers' profit",
        "profit (token units)",
        1,
        "{:+,.0f}",
        "RdYlGn",
        0.0,
    ),
    "accuracy_final": Metric(
        "accuracy_final",
        "Final accuracy",
        "accuracy (fraction correct)",
        1,
        "{:.3f}",
        "Viridis",
        None,
    ),
}
ATTACK_METRICS = ("attacker_roi", "accuracy_drop_final", "honest_profit")
TABLE_METRICS = (
    "attacker_roi",
    "accuracy_drop_final",
    "accuracy_drop_max",
    "attacker_spend_per_point",
    "honest_profit",
    "accuracy_final",
    "accuracy_time_weighted",
    "calls",
    "money_conserved",
)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _key(v):
    return (0, v, "") if _is_number(v) else (1, 0, str(v))


def _label(v) -> str:
    return f"{v:,}" if _is_number(v) and float(v).is_integer() else str(v)


def parameter_columns(runs: pl.DataFrame, manifest: dict | None = None) -> list[str]:
    """The swept parameters that take more than one value, in the sweep's order (from ``sweep.json``
    when given, else the dotted column names)."""
    names: list[str] = []
    for r in (manifest or {}).get("runs", []):
        names += [k for k in r.get("overrides", {}) if k not in names]
    if not names:
        names = [c for c in runs.columns if "." in c]
    return [c for c in names if c in runs.columns and runs[c].n_unique() > 1]


def default_axes(runs: pl.DataFrame, manifest: dict | None = None) -> tuple[str | None, str | None]:
    """The heatmap's axes when the user names none. x: a numeric parameter (so the frontier can be
    interpolated along it), a mechanism parameter if there is one (the designer's knob), then the one
    with the most values; y: the numeric parameter with the most values among the rest. Ties keep
    the sweep's order."""
    params = parameter_columns(runs, manifest)

    def numeric(c: str) -> bool:
        return all(_is_number(v) for v in runs[c].drop_nulls().to_list())

    xs = sorted(
        params,
        key=lambda c: (
            not numeric(c),
            not c.startswith("mechanism."),
            -runs[c].n_unique(),
            params.index(c),
        ),
    )
    x = xs[0] if xs else None
    ys = sorted(
        (c for c in params if c != x),
        key=lambda c: (not numeric(c), -runs[c].n_unique(), params.index(c)),
    )
    return x, (ys[0] if ys else None)


@dataclass
class Grid:
    """Mean, standard deviation, count and share of positive values of a metric on an (x, y) grid."""

    xs: list
    ys: list
    mean: np.ndarray
    std: np.ndarray
    n: np.ndarray
    positive: np.ndarray


def grid(runs: pl.DataFrame, x: str, y: str, metric: str) -> Grid:
    """Aggregate ``metric`` over replications (and any parameter not on an axis) per (x, y) cell."""
    g = (
        runs.filter(pl.col(metric).is_not_null())
        .group_by(x, y)
        .agg(
            pl.col(metric).mean().alias("mean"),
            pl.col(metric).std().alias("std"),
            pl.len().alias("n"),
            (pl.col(metric) > 0).mean().alias("positive"),
        )
    )
    xs = sorted(runs[x].unique().to_list(), key=_key)
    ys = sorted(runs[y].unique().to_list(), key=_key)
    shape = (len(ys), len(xs))
    out = Grid(
        xs,
        ys,
        np.full(shape, np.nan),
        np.full(shape, np.nan),
        np.zeros(shape, dtype=int),
        np.full(shape, np.nan),
    )
    for xv, yv, m, s, n, p in g.select(x, y, "mean", "std", "n", "positive").rows():
        i, j = ys.index(yv), xs.index(xv)
        out.mean[i, j], out.n[i, j], out.positive[i, j] = m, n, p
        out.std[i, j] = np.nan if s is None else s
    return out


def _facets(runs: pl.DataFrame, facet: str | None) -> list[tuple[str, pl.DataFrame]]:
    if facet is None:
        return [("", runs)]
    vals = sorted(runs[facet].unique().to_list(), key=_key)
    return [(f"{facet} = {_label(v)}", runs.filter(pl.col(facet) == v)) for v in vals]


def bin_column(runs: pl.DataFrame, col: str, bins: int = MAX_LEVELS) -> tuple[pl.DataFrame, str]:
    """Random draws take a new value in every run: a numeric column with more than ``bins``
    distinct values is replaced by the centre of its bin (equal-width bins, or equal in log scale
    when positive values span more than two decades), so cells hold several runs. Returns the
    frame and a note for the reader ("" when nothing was binned)."""
    values = runs[col].drop_nulls()
    if values.n_unique() <= bins or not all(_is_number(v) for v in values.head(1000).to_list()):
        return runs, ""
    lo, hi = float(values.min()), float(values.max())
    logs = lo > 0 and hi / lo > 100
    a, b = (np.log10(lo), np.log10(hi)) if logs else (lo, hi)
    edges = np.linspace(a, b, bins + 1)
    v = runs[col].cast(pl.Float64).to_numpy()
    w = np.log10(v) if logs else v
    idx = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, bins - 1)
    centres = (edges[:-1] + edges[1:]) / 2
    centres = 10**centres if logs else centres
    mid = np.array([float(f"{c:.3g}") for c in centres])[idx]
    note = (
        f"{html.escape(col)} takes {values.n_unique():,} values: binned into {bins} "
        f"{'logarithmic' if logs else 'equal'} intervals from {number(lo, 3)} to {number(hi, 3)} (cells show each bin's centre)."
    )
    return runs.with_columns(pl.Series(col, mid)), note


def frontier_edges(mean: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Cell edges (x0, y0, x1, y1 in cell-index coordinates) between a cell where the mean is above
    zero and a neighbour where it is not: the ROI = 0 frontier drawn on the heatmap."""
    edges = []
    rows, cols = mean.shape
    pays = mean > 0
    known = np.isfinite(mean)
    for i in range(rows):
        for j in range(cols):
            if j + 1 < cols and known[i, j] and known[i, j + 1] and pays[i, j] != pays[i, j + 1]:
                edges.append((j + 0.5, i - 0.5, j + 0.5, i + 0.5))
            if i + 1 < rows and known[i, j] and known[i + 1, j] and pays[i, j] != pays[i + 1, j]:
                edges.append((j - 0.5, i + 0.5, j + 0.5, i + 0.5))
    return edges


def heatmap_figure(
    runs: pl.DataFrame, x: str, y: str, metric: str, facet: str | None = None
) -> go.Figure:
    """Mean of ``metric`` over replications on the (x, y) grid, one panel per value of ``facet``; each
    cell shows the mean and its standard deviation (hover: count, share of runs above zero). On the
    attacker-ROI map a black line marks the frontier (mean ROI = 0)."""
    m = METRICS.get(metric, Metric(metric, metric, metric, 1, "", "Viridis", None))
    panels = _facets(runs, facet)
    grids = [grid(d, x, y, metric) for _, d in panels]
    finite = np.concatenate([g.mean[np.isfinite(g.mean)] for g in grids]) * m.scale
    zmin, zmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if m.zmid is not None:  # symmetric around the midpoint, so 0 is the scale's neutral colour
        r = max(abs(zmin - m.zmid), abs(zmax - m.zmid)) or 1.0
        zmin, zmax = m.zmid - r, m.zmid + r
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        subplot_titles=[t for t, _ in panels] if facet else None,
        shared_yaxes=True,
        horizontal_spacing=0.04,
    )
    for k, g in enumerate(grids):
        z = g.mean * m.scale
        text = [
            [
                (
                    ""
                    if not np.isfinite(z[i, j])
                    else (m.fmt.format(z[i, j]) if m.fmt else number(z[i, j]))
                    + (
                        ""
                        if not np.isfinite(g.std[i, j])
                        else f"<br>± {number(g.std[i, j] * m.scale, 2)}"
                    )
                )
                for j in range(len(g.xs))
            ]
            for i in range(len(g.ys))
        ]
        custom = np.dstack([g.std * m.scale, g.n, g.positive * 100])
        fig.add_trace(
            go.Heatmap(
                x=[_label(v) for v in g.xs],
                y=[_label(v) for v in g.ys],
                z=z,
                text=text,
                texttemplate="%{text}",
                customdata=custom,
                zmin=zmin,
                zmax=zmax,
                colorscale=m.colorscale,
                showscale=k == 0,
                colorbar=dict(title=m.unit),
                hovertemplate=(
                    f"{html.escape(x)} = %{{x}}<br>{html.escape(y)} = %{{y}}<br>mean %{{z:{d3_number()}}} ± %{{customdata[0]:{d3_number(2)}}}"
                    f" (sd)<br>%{{customdata[1]}} runs, %{{customdata[2]:.0f}}% above zero<extra></extra>"
                ),
            ),
            row=1,
            col=k + 1,
        )
        if metric == "attacker_roi":
            for x0, y0, x1, y1 in frontier_edges(g.mean):
                fig.add_shape(
                    type="line",
                    x0=x0,
                    y0=y0,
                    x1=x1,
                    y1=y1,
                    line=dict(color="black", width=3),
                    row=1,
                    col=k + 1,
                )
        fig.update_xaxes(title_text=x, type="category", row=1, col=k + 1)
    fig.update_yaxes(title_text=y, type="category", row=1, col=1)
    title = f"{m.title} — mean over replications ({m.unit})"
    if metric == "attacker_roi":
        title += "; black line: ROI = 0"
    return layout(fig, title, None, None, height=440)


def _verdict(roi: float) -> str:
    """What a mean attacker ROI says of the attack: it pays, breaks even (exactly 0: e.g. no
    contribution of the attackers got in) or loses."""
    return "pays" if roi > 0 else "loses" if roi < 0 else "breaks even"


def frontier_rows(runs: pl.DataFrame, x: str, y: str, facet: str | None = None) -> list[dict]:
    """Where the attack stops paying along ``x``, for every ``y`` (and facet): the x at which mean
    attacker ROI crosses zero (linear interpolation between grid points when x is numeric)."""
    rows = []
    for title, d in _facets(runs, facet):
        g = grid(d, x, y, "attacker_roi")
        numeric = all(_is_number(v) for v in g.xs)
        for i, yv in enumerate(g.ys):
            row = {**({facet: title.split(" = ", 1)[1]} if facet else {}), y: _label(yv)}
            pts = [(xv, r) for xv, r in zip(g.xs, g.mean[i], strict=False) if np.isfinite(r)]
            pays = [xv for xv, r in pts if r > 0]
            crossings = []
            for (x0, r0), (x1, r1) in zip(pts, pts[1:], strict=False):
                if (r0 > 0) != (r1 > 0):
                    at = x0 + (0 - r0) * (x1 - x0) / (r1 - r0) if numeric and r1 != r0 else None
                    crossings.append(
                        f"{_verdict(r0)} → {_verdict(r1)} between {_label(x0)} and "
                        f"{_label(x1)}" + ("" if at is None else f" (≈ {number(at, 3)})")
                    )
            row["attack pays at"] = ", ".join(_label(v) for v in pays) or "nowhere"
            row["ROI crosses zero"] = "; ".join(crossings) or (
                f"never: {_verdict(max(r for _, r in pts))} everywhere"
                if pays or all(r < 0 for _, r in pts)
                else "never: breaks even at best"
                if pts
                else "no data"
            )
            row["best ROI"] = f"{np.nanmax(g.mean[i]) * 100:+.1f}%" if pts else ""
            rows.append(row)
    return rows


def frontier_figure(runs: pl.DataFrame, x: str, y: str, facet: str | None = None) -> go.Figure:
    """The frontier as a line: for each ``y``, the interpolated ``x`` where mean attacker ROI first
    crosses zero (numeric ``x`` only); rows that never cross are marked at the edge of the range."""
    fig = go.Figure()
    for title, d in _facets(runs, facet):
        g = grid(d, x, y, "attacker_roi")
        if not all(_is_number(v) for v in g.xs):
            continue
        fx, fy, never = [], [], []
        for i, yv in enumerate(g.ys):
            pts = [(xv, r) for xv, r in zip(g.xs, g.mean[i], strict=False) if np.isfinite(r)]
            cross = next(
                (
                    (x0 + (0 - r0) * (x1 - x0) / (r1 - r0))
                    for (x0, r0), (x1, r1) in zip(pts, pts[1:], strict=False)
                    if (r0 > 0) != (r1 > 0)
                ),
                None,
            )
            if cross is not None:
                fx.append(cross)
                fy.append(_label(yv))
            elif pts:
                never.append((yv, all(r > 0 for _, r in pts)))
        name = title or "frontier"
        fig.add_trace(
            go.Scatter(
                x=fx,
                y=fy,
                mode="lines+markers",
                name=name,
                hovertemplate=f"{html.escape(y)} = %{{y}}<br>ROI = 0 at {html.escape(x)} ≈ %{{x:{d3_number(3)}}}"
                "<extra></extra>",
            )
        )
        for yv, pays in never:
            label = "pays over the whole range" if pays else "never pays over the range"
            fig.add_trace(
                go.Scatter(
                    x=[g.xs[-1] if pays else g.xs[0]],
                    y=[_label(yv)],
                    mode="markers",
                    marker=dict(
                        symbol="triangle-right" if pays else "triangle-left",
                        size=12,
                        color="#c62828" if pays else "#1565c0",
                    ),
                    name=label,
                    legendgroup=label,
                    showlegend=label not in {t.name for t in fig.data},
                    hovertemplate=f"{html.escape(y)} = %{{y}}: attack "
                    f"{'pays over the whole range' if pays else 'never pays over the range'}"
                    "<extra></extra>",
                )
            )
    if not fig.data:
        fig.add_annotation(
            text="the frontier line needs a numeric x parameter",
            showarrow=False,
            xref="paper",
            yref="paper",
        )
    fig.update_yaxes(type="category")
    return layout(fig, f"Frontier: {x} at which mean attacker ROI crosses 0", x, y)


def line_figure(runs: pl.DataFrame, x: str, metric: str) -> go.Figure:
    """One swept parameter: mean of ``metric`` over replications with ± one standard deviation."""
    m = METRICS.get(metric, Metric(metric, metric, metric, 1, "", "Viridis", None))
    g = (
        runs.filter(pl.col(metric).is_not_null())
        .group_by(x)
        .agg(
            pl.col(metric).mean().alias("mean"),
            pl.col(metric).std().alias("std"),
            pl.len().alias("n"),
        )
    )
    rows = sorted(g.rows(named=True), key=lambda r: _key(r[x]))
    numeric = all(_is_number(r[x]) for r in rows)
    fig = go.Figure(
        go.Scatter(
            x=[r[x] if numeric else str(r[x]) for r in rows],
            y=[r["mean"] * m.scale for r in rows],
            error_y=dict(array=[(r["std"] or 0) * m.scale for r in rows]),
            mode="lines+markers" if numeric else "markers",  # categories are never joined
            name=m.title,
            customdata=[r["n"] for r in rows],
            hovertemplate=f"%{{x}}: %{{y:{d3_number()}}} ± %{{error_y.array:{d3_number(2)}}} (%{{customdata}} runs)"
            "<extra></extra>",
        )
    )
    if m.zmid is not None:
        fig.add_hline(y=m.zmid, line=dict(color="#bdbdbd"))
    if not numeric:
        fig.update_xaxes(type="category")
    return layout(fig, f"{m.title} — mean ± sd over replications", x, m.unit)


def _numeric(runs: pl.DataFrame, col: str) -> bool:
    return all(_is_number(v) for v in runs[col].drop_nulls().to_list())


def paid_rows(runs: pl.DataFrame, params: list[str], metric: str = "attacker_roi") -> pl.DataFrame:
    """Per parameter point: in how many runs ``metric`` was above zero (the attack paid), of how
    many, the share and its Wilson 95 % interval."""
    d = runs.filter(pl.col(metric).is_not_null())
    keys = params or [pl.lit("all").alias("point")]
    g = d.group_by(keys).agg(
        (pl.col(metric) > 0).sum().alias("paid"),
        pl.len().alias("runs"),
        pl.col(metric).median().alias("median"),
        pl.col(metric).max().alias("best"),
    )
    rows = sorted(g.rows(named=True), key=lambda r: [_key(r[p]) for p in params])
    for r in rows:
        r["share"] = r["paid"] / r["runs"]
        r["wilson_lo"], r["wilson_hi"] = wilson(r["paid"], r["runs"])
    cols = [*params, "paid", "runs", "share", "wilson_lo", "wilson_hi", "median", "best"]
    if not rows:
        return pl.DataFrame()
    return pl.DataFrame([{c: r[c] for c in cols if c in r} for r in rows])


def paid_figure(runs: pl.DataFrame, x: str | None, split: str | None) -> go.Figure:
    """ "The attack paid in k of n runs" per point: the share of runs with attacker ROI > 0 and its
    Wilson 95 % interval, along ``x`` (categories stay categories), one series per ``split`` value.
    Markers only: shares at different parameter values are not joined by lines."""
    params = [p for p in (x, split) if p]
    t = paid_rows(runs, params)
    fig = go.Figure()
    groups = (
        [(f"{split} = {_label(v)}", t.filter(pl.col(split) == v)) for v in _sorted_values(t, split)]
        if split
        else [("", t)]
    )
    for name, d in groups:
        rows = d.rows(named=True)
        xs = [_label(r[x]) if x else "all runs" for r in rows]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=[r["share"] * 100 for r in rows],
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=[(r["wilson_hi"] - r["share"]) * 100 for r in rows],
                    arrayminus=[(r["share"] - r["wilson_lo"]) * 100 for r in rows],
                ),
                mode="markers+text",
                text=[f"{r['paid']}/{r['runs']}" for r in rows],
                textposition="middle right",
                marker=dict(size=10),
                name=name or "share of runs",
                showlegend=bool(split),
                customdata=[
                    [r["paid"], r["runs"], r["wilson_lo"] * 100, r["wilson_hi"] * 100] for r in rows
                ],
                hovertemplate="%{x}: the attack paid in %{customdata[0]} of %{customdata[1]} runs"
                " (%{y:.0f} %; Wilson 95 %: %{customdata[2]:.0f}-%{customdata[3]:.0f} %)"
                "<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[-5, 105])
    return layout(
        fig,
        "The attack paid in k of n runs (attacker ROI > 0), with Wilson 95 % intervals",
        x or "",
        "runs in which the attack paid (%)",
    )


def _sorted_values(runs: pl.DataFrame, col: str) -> list:
    return sorted(runs[col].unique().to_list(), key=_key)


def distribution_figure(runs: pl.DataFrame, param: str, metric: str) -> go.Figure:
    """Every run's ``metric`` by the value of ``param``: one box per value with all its runs as
    points (values are categories, so nothing joins them). A numeric parameter with more than
    ``MAX_LEVELS`` values is drawn as a scatter of every run over its numeric axis instead."""
    m = METRICS.get(metric, Metric(metric, metric, metric, 1, "", "Viridis", None))
    d = runs.filter(pl.col(metric).is_not_null()).sort(param)
    fig = go.Figure()
    y = (d[metric] * m.scale).to_list()
    hover = [
        f"run {r} (replication {k})" for r, k in zip(d["run_id"], d["replication"], strict=True)
    ]
    if _numeric(d, param) and d[param].n_unique() > MAX_LEVELS:
        fig.add_trace(
            go.Scatter(
                x=d[param].to_list(),
                y=y,
                mode="markers",
                marker=dict(size=5, opacity=0.6),
                text=hover,
                name="a run",
                hovertemplate=f"%{{x}}: %{{y:{d3_number()}}}<br>%{{text}}<extra></extra>",
            )
        )
    else:
        order = [_label(v) for v in _sorted_values(d, param)]
        fig.add_trace(
            go.Box(
                x=[_label(v) for v in d[param].to_list()],
                y=y,
                boxpoints="all",
                jitter=0.35,
                pointpos=0,
                marker=dict(size=5, opacity=0.7),
                line=dict(width=1),
                fillcolor="rgba(0,0,0,0)",
                text=hover,
                name=m.title,
                hovertemplate=f"%{{x}}: %{{y:{d3_number()}}}<br>%{{text}}<extra></extra>",
            )
        )
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=order)
    if m.zmid is not None:
        fig.add_hline(y=m.zmid, line=dict(color="#9e9e9e", dash="dot"))
    return layout(fig, f"{m.title} — every run, by {param}", param, m.unit)


def group_roi_figure(agents: pl.DataFrame, split: str | None = None) -> go.Figure:
    """Every agent's ROI (per cent of its start balance) by group, one point per agent and run, a
    box per group; with ``split`` (a parameter with few values) one box per group and value."""
    d = agents.filter(pl.col("roi").is_not_null())
    fig = go.Figure()
    groups = sorted(d["group"].unique().to_list())
    parts = (
        [(f"{split} = {_label(v)}", d.filter(pl.col(split) == v)) for v in _sorted_values(d, split)]
        if split
        else [("", d)]
    )
    for name, part in parts:
        fig.add_trace(
            go.Box(
                x=part["group"].to_list(),
                y=(part["roi"] * 100).to_list(),
                boxpoints="all",
                jitter=0.35,
                pointpos=0,
                marker=dict(size=5, opacity=0.7),
                name=name or "ROI",
                showlegend=bool(split),
                text=[
                    f"run {r}, {a}" for r, a in zip(part["run_id"], part["agent_id"], strict=True)
                ],
                hovertemplate="%{x}: %{y:+.1f} %<br>%{text}<extra>%{fullData.name}</extra>",
            )
        )
    fig.add_hline(y=0, line=dict(color="#9e9e9e", dash="dot"))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=groups)
    if split:
        fig.update_layout(boxmode="group")
    return layout(
        fig, "ROI by group — every agent of every run", "group", "ROI (profit / start balance, %)"
    )


def sweep_figures(
    runs: pl.DataFrame,
    x: str | None = None,
    y: str | None = None,
    failures: pl.DataFrame | None = None,
    manifest: dict | None = None,
    agents: pl.DataFrame | None = None,
) -> list[tuple[str, object]]:
    """The report's sections from the runs table (one row per run: parameters + summary) and, when
    given, the agents table (ROI by group)."""
    params = parameter_columns(runs, manifest)
    dx, dy = default_axes(runs, manifest)
    if x is None:  # (a --y naming the default x moves x to another parameter)
        x = dx if dx != y or dx is None else next((p for p in params if p != y), None)
    y = y or (dy if dy != x else next((p for p in params if p != x), None))
    rest = [p for p in params if p not in (x, y)]
    facet = rest[0] if rest and runs[rest[0]].n_unique() <= MAX_FACETS else None
    averaged = [p for p in rest if p != facet]
    attack = [m for m in ATTACK_METRICS if m in runs.columns and runs[m].drop_nulls().len()]
    metrics = attack or [m for m in ("honest_profit", "accuracy_final") if m in runs.columns]
    table_runs = runs
    notes = []
    for axis in (a for a in (x, y) if a):
        runs, note = bin_column(runs, axis)
        if note:
            notes.append(note)
    if averaged:
        notes.append(
            f"Averaged over {', '.join(map(html.escape, averaged))} as well as replications; choose other "
            "axes with <code>--x</code> and <code>--y</code>."
        )
    sections: list[tuple[str, object]] = []
    if notes:
        sections.append(("Note", "".join(f"<p class='note'>{n}</p>" for n in notes)))
    if x and y:
        for metric in metrics:
            sections.append((METRICS[metric].title, heatmap_figure(runs, x, y, metric, facet)))
        if "attacker_roi" in attack:
            sections.append(
                ("Frontier: where the attack stops paying", frontier_figure(runs, x, y, facet))
            )
            sections.append(
                ("Frontier by row", table_html(pl.DataFrame(frontier_rows(runs, x, y, facet))))
            )
        sections += spread_sections(table_runs, params, metrics, agents, x, y)
    else:
        # One parameter: every run and the k-of-n line first, the means after.
        sections += spread_sections(table_runs, params, metrics, agents, x, y)
        for metric in metrics if x else ():
            sections.append((METRICS[metric].title, line_figure(runs, x, metric)))
    shown = (
        [c for c in ("run_id", "replication", "seed") if c in runs.columns]
        + params
        + [c for c in TABLE_METRICS if c in runs.columns]
    )
    table = table_runs.select(shown).sort(
        [*params, "replication"] if "replication" in runs.columns else params
    )
    sections.append((f"Runs ({runs.height}; click a header to sort)", table_html(table)))
    if failures is not None and failures.height:
        sections.append((f"Failures ({failures.height})", failure_table(failures)))
    return sections


def spread_sections(
    runs: pl.DataFrame,
    params: list[str],
    metrics: list[str],
    agents: pl.DataFrame | None,
    x: str | None,
    y: str | None,
) -> list[tuple[str, object]]:
    """Every run, not only means: "the attack paid in k of n runs" per point (Wilson 95 %), each
    metric's distribution per parameter value, and the ROI of every agent by group."""
    out: list[tuple[str, object]] = []
    split = y if y and runs[y].n_unique() <= MAX_FACETS else None
    if "attacker_roi" in metrics:
        out.append(("The attack paid in k of n runs", paid_figure(runs, x, split)))
        t = paid_rows(runs, params)
        if t.height:
            shown = t.with_columns(
                (pl.col("share") * 100).round(1).alias("paid %"),
                pl.format(
                    "{} – {}",
                    (pl.col("wilson_lo") * 100).round(1),
                    (pl.col("wilson_hi") * 100).round(1),
                ).alias("Wilson 95 % (%)"),
                (pl.col("median") * 100).round(2).alias("median ROI %"),
                (pl.col("best") * 100).round(2).alias("best ROI %"),
            ).drop("share", "wilson_lo", "wilson_hi", "median", "best")
            out.append(("Attack paid, per point", table_html(shown)))
    for p in params[:3]:
        for metric in metrics:
            title = METRICS[metric].title if metric in METRICS else metric
            out.append((f"{title}: every run by {p}", distribution_figure(runs, p, metric)))
    if agents is not None and agents.height and "roi" in agents.columns:
        g_split = next((p for p in params if runs[p].n_unique() <= MAX_FACETS), None)
        out.append(("ROI by group, every agent of every run", group_roi_figure(agents, g_split)))
    return out


def failure_table(failures: pl.DataFrame) -> str:
    """The runs that raised: id, parameters, error type and message (the traceback is in the file)."""
    cols = [
        c
        for c in ("run_id", "replication", "parameters", "error_type", "message")
        if c in failures.columns
    ]
    return table_html(failures.select(cols))


def _describe(manifest: dict) -> tuple[str, str]:
    try:
        spec = tomllib.loads(manifest.get("sweep_file") or "")
    except tomllib.TOMLDecodeError:
        spec = {}
    return str(spec.get("name", "")), str(spec.get("description", ""))


def build_sweep_report(
    sweep_dir: str | Path, x: str | None = None, y: str | None = None, out: str | Path | None = None
) -> Path:
    """Write the report of a sweep folder (default ``sweep_dir/report.html``); ``x``/``y`` pick the
    heatmap axes (dotted parameter paths; default: the numeric parameters with the most values)."""
    from sum_abm.errors import InputError, first_line
    from sum_abm.sweeps import load_failures, load_sweep
    from sum_abm.sweeps.store import readable

    d = Path(sweep_dir)
    failures = load_failures(d)
    try:
        runs = load_sweep(d).collect()
    except InputError:
        if not failures.height:
            raise
        runs = pl.DataFrame()  # every run so far failed: the report shows why
    except pl.exceptions.PolarsError as exc:  # a damaged part: one line, not a traceback
        bad = next((p for p in sorted((d / "runs").glob("*.parquet")) if not readable(p)), None)
        raise InputError(
            f"{bad or d / 'runs'}: a part cannot be read ({first_line(exc)}); "
            f"`sum-abm sweep ... --resume` runs it again"
        ) from None
    if runs.height and not {"run_id", "replication"} <= set(runs.columns):
        raise InputError(f"{d}: runs/: parts without run_id or replication: not a sweep's runs")
    manifest = read_json_object(d / "sweep.json") if (d / "sweep.json").exists() else {}
    agents_note = None
    try:
        agents = load_sweep(d, "agents").select("run_id", "agent_id", "group", "roi").collect()
        agents = agents.join(
            runs.drop("replication", "seed", strict=False), on="run_id", how="inner"
        )
    except InputError:
        agents = None  # no agents parts: the report goes without that panel
    except pl.exceptions.PolarsError as exc:  # a damaged part, or one without the columns
        bad = next((p for p in sorted((d / "agents").glob("*.parquet")) if not readable(p)), None)
        agents = None
        agents_note = (
            f"Left out: {html.escape(str(bad or d / 'agents'))} cannot be read "
            f"({html.escape(first_line(exc))}); the runs' summaries above do not depend on it."
        )
    params = parameter_columns(runs, manifest)
    for axis, name in (("--x", x), ("--y", y)):
        if name is not None and name not in params:
            raise InputError(
                f"{d}: {axis} {name!r}: not a swept parameter with more than one value "
                f"(have: {', '.join(params) or 'none'})"
            )
    if x is not None and x == y:
        raise InputError(f"{d}: --y {y!r}: must differ from --x")
    total = len(manifest.get("runs", [])) or runs.height
    n_failed = failures.height
    name, desc = _describe(manifest)
    reps = runs["replication"].n_unique() if "replication" in runs.columns else 1
    intro = (f"{html.escape(desc)}<br>" if desc else "") + (
        f"{runs.height:,} of {total:,} runs finished"
        + (f", <span class='bad'>{n_failed} failed</span>" if n_failed else "")
        + f"; {reps} replication{'s' * (reps != 1)} per point; swept: "
        + (
            ", ".join(f"{html.escape(p)} ({runs[p].n_unique()} values)" for p in params)
            or "nothing"
        )
    )
    if runs.height < total - n_failed:
        intro += " <span class='bad'>(sweep incomplete: resume it to finish)</span>"
    kpis = []
    if "attacker_roi" in runs.columns and runs["attacker_roi"].drop_nulls().len():
        roi = runs["attacker_roi"].drop_nulls()
        kpis = [
            ("runs where the attack paid", f"{(roi > 0).sum():,} of {roi.len():,}"),
            ("best attacker ROI", f"{roi.max():+.1%}"),
        ]
        if "accuracy_drop_final" in runs.columns and runs["accuracy_drop_final"].drop_nulls().len():
            kpis.append(
                (
                    "worst accuracy destroyed (final)",
                    f"{runs['accuracy_drop_final'].max() * 100:+.1f} points",
                )
            )
    if "money_conserved" in runs.columns and not runs["money_conserved"].all():
        kpis.append(("runs that did NOT conserve money", f"{(~runs['money_conserved']).sum():,}"))
    if runs.height:
        sections = ([("Summary", kpis_html(kpis))] if kpis else []) + sweep_figures(
            runs, x, y, failures, manifest, agents
        )
        if agents_note:
            sections.append(
                ("ROI by group, every agent of every run", f"<p class='bad'>{agents_note}</p>")
            )
    else:
        sections = [(f"Failures ({n_failed})", failure_table(failures))]
    title = f"sum_abm sweep report — {name or d.name}"
    return page(title, intro, sections, Path(out) if out else d / "report.html")


__all__ = [
    "METRICS",
    "build_sweep_report",
    "default_axes",
    "frontier_edges",
    "frontier_rows",
    "grid",
    "distribution_figure",
    "group_roi_figure",
    "paid_figure",
    "paid_rows",
    "spread_sections",
    "wilson",
    "heatmap_figure",
    "parameter_columns",
    "sweep_figures",
]
