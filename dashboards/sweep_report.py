"""The sweep report: heatmaps over two parameters (mean over replications, with their spread), the
frontier where attacker ROI crosses zero, a sortable table of runs, and failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import polars as pl

from dashboards.style import layout, page, table_html

METRICS = {
    "attacker_roi": ("Attacker ROI", "ROI (profit / budget)", "RdBu_r"),
    "accuracy_drop_final": ("Accuracy destroyed (final, vs clean baseline)", "accuracy points (fraction)", "Reds"),
    "honest_profit": ("Honest contributors' profit", "profit (tokens)", "Greens"),
}


def parameter_columns(runs: pl.DataFrame, manifest: dict | None = None) -> list[str]:
    """The swept parameters (dotted names) that take more than one value."""
    names = [c for c in runs.columns if "." in c]
    return [c for c in names if runs[c].n_unique() > 1]


def _grid(runs: pl.DataFrame, x: str, y: str, metric: str) -> tuple[list, list, np.ndarray, np.ndarray]:
    g = runs.group_by(x, y).agg(pl.col(metric).mean().alias("mean"), pl.col(metric).std().alias("std"))
    xs = sorted(g[x].unique().to_list(), key=_key)
    ys = sorted(g[y].unique().to_list(), key=_key)
    z = np.full((len(ys), len(xs)), np.nan)
    sd = np.full((len(ys), len(xs)), np.nan)
    for xv, yv, m, s in g.select(x, y, "mean", "std").rows():
        if m is not None:
            z[ys.index(yv), xs.index(xv)] = m
            sd[ys.index(yv), xs.index(xv)] = np.nan if s is None else s
    return xs, ys, z, sd


def _key(v):
    return (0, v) if isinstance(v, (int, float)) else (1, str(v))


def heatmap_figure(runs: pl.DataFrame, x: str, y: str, metric: str) -> go.Figure:
    """Mean of ``metric`` over replications on the (x, y) grid; hover shows the spread (std)."""
    title, unit, scale = METRICS.get(metric, (metric, metric, "Viridis"))
    xs, ys, z, sd = _grid(runs, x, y, metric)
    text = [[f"{metric} mean {z[i][j]:.4g} ± {sd[i][j]:.2g}" for j in range(len(xs))] for i in range(len(ys))]
    fig = go.Figure(go.Heatmap(x=[str(v) for v in xs], y=[str(v) for v in ys], z=z, text=text, hoverinfo="text",
                               colorscale=scale, colorbar=dict(title=unit), zmid=0 if metric == "attacker_roi" else None))
    return layout(fig, f"{title} — mean over replications", x, y)


def frontier_figure(runs: pl.DataFrame, x: str, y: str) -> go.Figure:
    """Where the attack starts to pay: the zero contour of mean attacker ROI over (x, y)."""
    xs, ys, z, _ = _grid(runs, x, y, "attacker_roi")
    numeric = all(isinstance(v, (int, float)) for v in xs + ys)
    fig = go.Figure()
    if numeric and len(xs) > 1 and len(ys) > 1:
        fig.add_trace(go.Contour(x=xs, y=ys, z=z, colorscale="RdBu_r", zmid=0, contours=dict(showlabels=True),
                                 colorbar=dict(title="attacker ROI")))
        fig.add_trace(go.Contour(x=xs, y=ys, z=z, contours=dict(start=0, end=0, size=1, coloring="none"),
                                 line=dict(color="black", width=3), showscale=False, name="ROI = 0 (frontier)"))
        finite = z[np.isfinite(z)]
        if finite.size and (finite.max() < 0 or finite.min() > 0):
            side = "loses" if finite.max() < 0 else "pays"
            fig.add_annotation(text=f"no frontier in this range: the attack {side} everywhere", showarrow=False,
                               xref="paper", yref="paper", x=0.5, y=1.08)
    else:
        fig.add_annotation(text="the frontier needs two numeric swept parameters", showarrow=False)
    return layout(fig, "Attack-profitability frontier (black: attacker ROI = 0)", x, y)


def sweep_figures(runs: pl.DataFrame, x: str | None = None, y: str | None = None,
                  failures: pl.DataFrame | None = None) -> list[tuple[str, object]]:
    """The report's sections from the runs table (one row per run: parameters + summary)."""
    params = parameter_columns(runs)
    x = x or (params[0] if params else None)
    y = y or (params[1] if len(params) > 1 else None)
    sections: list[tuple[str, object]] = []
    if x and y:
        for metric in METRICS:
            if metric in runs.columns and runs[metric].drop_nulls().len():
                sections.append((METRICS[metric][0], heatmap_figure(runs, x, y, metric)))
        if "attacker_roi" in runs.columns and runs["attacker_roi"].drop_nulls().len():
            sections.append(("Frontier", frontier_figure(runs, x, y)))
    elif x:
        for metric in METRICS:
            if metric in runs.columns and runs[metric].drop_nulls().len():
                g = runs.group_by(x).agg(pl.col(metric).mean().alias("mean"), pl.col(metric).std().alias("std")).sort(x)
                fig = go.Figure(go.Scatter(x=g[x], y=g["mean"], error_y=dict(array=g["std"].fill_null(0)), mode="lines+markers"))
                sections.append((METRICS[metric][0], layout(fig, METRICS[metric][0], x, METRICS[metric][1])))
    shown = ["run_id", "replication", *params] + [c for c in ("attacker_roi", "accuracy_drop_final", "honest_profit",
                                                             "accuracy_final", "money_conserved") if c in runs.columns]
    sections.append(("Runs (click a header to sort)", table_html(runs.select(shown))))
    if failures is not None and failures.height:
        sections.append((f"Failures ({failures.height})", table_html(failures.select("run_id", "error_type", "message"))))
    return sections


def build_sweep_report(sweep_dir: str | Path, x: str | None = None, y: str | None = None) -> Path:
    """Write ``sweep_dir/report.html``; ``x``/``y`` pick the heatmap axes (default: the first two
    swept parameters)."""
    from sum_abm.errors import InputError
    from sum_abm.sweeps import load_sweep

    d = Path(sweep_dir)
    runs = load_sweep(d).collect()
    for axis, name in (("--x", x), ("--y", y)):
        if name is not None and name not in runs.columns:
            raise InputError(f"{d}: {axis} {name!r}: not a swept parameter (have {parameter_columns(runs)})")
    fail_f = d / "failures.parquet"
    failures = pl.read_parquet(fail_f) if fail_f.exists() else None
    manifest = json.loads((d / "sweep.json").read_text()) if (d / "sweep.json").exists() else {}
    n_total = len(manifest.get("runs", [])) or runs.height
    intro = (f"{runs.height} of {n_total} runs finished"
             + (f", {failures.height} failed" if failures is not None and failures.height else "")
             + f"; swept: {', '.join(parameter_columns(runs)) or 'nothing'}")
    return page(f"sum_abm sweep report — {d.name}", intro, sweep_figures(runs, x, y, failures), d / "report.html")
