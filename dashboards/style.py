"""One colour per kind of participant across every chart, and the page assembly."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio

from sum_abm.atomic import write_text_atomic

HONEST, ATTACKER, USER, OTHER = "#2e7d32", "#c62828", "#1565c0", "#6d4c41"
ACCURACY, BASELINE, ALL_DATA = "#212121", "#757575", "#9e9e9e"
ACCEPTED = "#90a4ae"  # calls the contract accepted; each rejection reason gets its own colour below
_REASONS = [
    "#ef6c00",
    "#8e24aa",
    "#00838f",
    "#f9a825",
    "#5d4037",
    "#d81b60",
    "#3949ab",
    "#7cb342",
    "#546e7a",
    "#c0ca33",
    "#6a1b9a",
    "#00acc1",
]
DAY_S = 86_400  # simulated seconds per day (charts plot time in days)
_SHADES = {
    HONEST: ["#2e7d32", "#43a047", "#66bb6a", "#1b5e20", "#81c784", "#388e3c"],
    ATTACKER: ["#c62828", "#e53935", "#ef5350", "#b71c1c", "#e57373", "#d32f2f"],
    USER: ["#1565c0", "#1e88e5", "#42a5f5", "#0d47a1", "#64b5f6", "#1976d2"],
    OTHER: ["#6d4c41", "#8d6e63", "#a1887f", "#4e342e"],
}


def kind_of(policy: str, attacker: bool) -> str:
    """The colour family of a group: attacker red, model user blue, other contributors green."""
    if attacker:
        return ATTACKER
    if policy == "model_user":
        return USER
    return HONEST


def group_colors(groups: list[tuple[str, str, bool]]) -> dict[str, str]:
    """``{group: colour}`` for (group, policy, attacker) triples: shades within each family."""
    used: dict[str, int] = {}
    out = {}
    for g, policy, attacker in groups:
        fam = kind_of(policy, attacker)
        i = used.get(fam, 0)
        used[fam] = i + 1
        out[g] = _SHADES[fam][i % len(_SHADES[fam])]
    return out


def outcome_colors(outcomes: list[str], known: Sequence[str] = ()) -> dict[str, str]:
    """``{outcome: colour}``: "accepted" grey-blue; a rejection reason by its place in ``known``
    (every reason code, in a fixed order), so a reason keeps its colour from report to report
    whatever other reasons a run has; a colour another reason of the same chart already holds
    moves to the next free one, and reasons not in ``known`` take the free ones by name."""
    reasons = sorted(o for o in set(outcomes) if o != "accepted")
    order = {r: i for i, r in enumerate(known)}
    n = len(_REASONS)
    taken: set[int] = set()
    out = {}
    # (known reasons in their fixed order first: the same reason wins a shared colour each time)
    for r in sorted(reasons, key=lambda r: (r not in order, order.get(r, 0), r)):
        i = order.get(r, 0) % n
        while i in taken and len(taken) < n:
            i = (i + 1) % n
        taken.add(i)
        out[r] = _REASONS[i]
    out["accepted"] = ACCEPTED
    return out


def kpis_html(items: list[tuple[str, str]]) -> str:
    """Key figures as labelled cards (label, formatted value)."""
    return (
        "<div class='kpis'>"
        + "".join(
            f"<div class='kpi'>{html.escape(k)}<b>{html.escape(v)}</b></div>" for k, v in items
        )
        + "</div>"
    )


def layout(
    fig: go.Figure, title: str, x: str | None, y: str | None, height: int = 420
) -> go.Figure:
    """Title and axis titles (with units) on every chart; ``None`` leaves an axis title as the
    figure's subplots set it."""
    fig.update_layout(
        title=title,
        height=height,
        template="plotly_white",
        legend=dict(orientation="h", y=-0.2),
        margin=dict(l=60, r=20, t=60, b=60),
    )
    if x is not None:
        fig.update_layout(xaxis_title=x)
    if y is not None:
        fig.update_layout(yaxis_title=y)
    return fig


def page(title: str, intro: str, sections: list[tuple[str, object]], out: Path) -> Path:
    """Write a self-contained HTML page: plotly.js inlined once, then each figure or HTML block."""
    parts = []
    first = True
    for heading, item in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        if isinstance(item, go.Figure):
            parts.append(
                pio.to_html(
                    item,
                    include_plotlyjs="inline" if first else False,
                    full_html=False,
                    config={"displaylogo": False},
                )
            )
            first = False
        else:
            parts.append(str(item))
    if first:  # no figure at all: still ship plotly.js so the page is uniform
        parts.insert(0, pio.to_html(go.Figure(), include_plotlyjs="inline", full_html=False))
    doc = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
h1 {{ font-size: 1.6rem; }} h2 {{ font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }}
table {{ border-collapse: collapse; font-size: 0.85rem; }} th, td {{ padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; }}
th {{ cursor: pointer; background: #f5f5f5; position: sticky; top: 0; }} .kpi {{ display: inline-block; margin: 0 2rem 1rem 0; }}
.kpi b {{ display: block; font-size: 1.4rem; }} .note {{ color: #666; }} .kpis {{ margin-bottom: 1rem; }}
.bad {{ color: #c62828; font-weight: bold; }}
</style></head><body>
<h1>{html.escape(title)}</h1><p>{intro}</p>
{"".join(parts)}
<script>
// click a column header to sort the table (numbers numerically)
// (each header sorts its own table by its own column; text that is not wholly a finite number,
// e.g. a hex run id, sorts as text)
document.querySelectorAll("table.sortable th").forEach(th => th.addEventListener("click", () => {{
  const i = th.cellIndex, tb = th.closest("table").tBodies[0]; const rows = Array.from(tb.rows);
  const dir = th.dataset.dir === "asc" ? -1 : 1; th.dataset.dir = dir === 1 ? "asc" : "desc";
  const num = t => {{ const v = Number(t.replace(/[,% ]/g, "")); return t.trim() && isFinite(v) ? v : NaN; }};
  rows.sort((a, b) => {{ const x = a.cells[i].innerText, y = b.cells[i].innerText;
    const nx = num(x), ny = num(y);
    return dir * (isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny); }});
  rows.forEach(r => tb.appendChild(r)); }}));
</script>
</body></html>"""
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, doc)
    return out


def d3_number(sig: int = 4) -> str:
    """Plotly's hover format (d3-format) of a number as :func:`number` writes it: ``sig``
    significant digits in plain decimals with thousands separators, trailing zeros trimmed."""
    return f",.{sig}~r"


def number(v: float, sig: int = 4) -> str:
    """``v`` to ``sig`` significant digits as people read amounts: plain decimals with thousands
    separators (``10,720``, ``0.6583``, ``-2,298``), never ``1.072e+04`` beside ``10,000``;
    exponent notation only below 10^-4, where plain decimals would be mostly zeros."""
    if v != v or v in (float("inf"), float("-inf")):
        return str(v)
    g = float(f"{v:.{sig}g}")  # rounded to sig digits (9,999.95 -> 10,000: one more digit)
    a = abs(g)
    if a == 0:
        return "0"
    if a < 1e-4:
        return f"{v:.{sig}g}"
    if a >= 10 ** (sig - 1):  # every significant digit is a whole one
        return f"{g:,.0f}"
    return f"{g:,.{sig}g}"


def _cell(v):
    """A number as people read it: whole numbers with thousands separators, others to 4
    significant digits (:func:`number`)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}" if abs(v) < 10**15 else str(v)  # seeds are ids, not amounts
    if v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    return number(v)


def table_html(df, max_rows: int = 2000) -> str:
    """A sortable HTML table of a polars frame (numbers rounded for reading)."""
    cols = df.columns
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = []
    for r in df.head(max_rows).iter_rows():
        cells = []
        for v in r:
            v = _cell(v)
            cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = (
        f"<p class='note'>first {max_rows} of {df.height} rows</p>" if df.height > max_rows else ""
    )
    return f"<div style='max-height:480px;overflow:auto'><table class='sortable'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>{more}"
