"""Dashboard builders: figures from small frames (no browser), the HTML files, and the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import pytest

from dashboards import build_run_report, build_sweep_report, run_figures, sweep_figures
from dashboards.style import ATTACKER, HONEST, group_colors
from sum_abm.market.run import run
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    sc = load_scenario(ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 1_728_000})
    return run(sc, seed=2).write(tmp_path_factory.mktemp("run"))


def test_run_figures_have_titles_units_and_group_colours(run_dir):
    frames = {n: pl.read_parquet(run_dir / f"{n}.parquet") for n in ("transactions", "timeseries", "agents", "summary")}
    sections = dict(run_figures(frames, pl.read_parquet(run_dir / "baseline_timeseries.parquet")))
    figs = {k: v for k, v in sections.items() if isinstance(v, go.Figure)}
    assert {"Balances", "Model quality", "Profit and ROI", "Calls"} <= set(figs)
    for fig in figs.values():
        assert fig.layout.title.text and fig.layout.xaxis.title.text and fig.layout.yaxis.title.text
    bal = figs["Balances"]
    colours = {t.name: t.line.color for t in bal.data}
    assert colours["attacker"] in group_colors([("attacker", "label_flip", True)]).values()
    assert all(c != colours["attacker"] for n, c in colours.items() if n != "attacker")
    acc_names = [t.name for t in figs["Model quality"].data]
    assert "clean baseline (no attackers)" in acc_names
    assert "accuracy drop (final)" in sections["Attack success"]


def test_group_colours_are_consistent_families():
    c = group_colors([("a", "honest", False), ("b", "label_flip", True), ("c", "careless", False)])
    assert c["a"] == HONEST and c["b"] == ATTACKER and c["c"] != c["a"]


def test_run_report_html_is_self_contained(run_dir):
    out = build_run_report(run_dir)
    text = out.read_text()
    from html.parser import HTMLParser

    class Refs(HTMLParser):  # script contents are not parsed as markup, so only real tags count
        external: list[str] = []

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            for key in ("src", "href"):
                if a.get(key, "").startswith(("http:", "https:", "//")) and tag in ("script", "link", "img"):
                    self.external.append(a[key])

    refs = Refs()
    refs.feed(text)
    assert refs.external == []
    assert text.count("Plotly.newPlot") >= 4


def test_sweep_figures_heatmaps_frontier_and_table():
    rows = []
    for cw in (1, 2, 4):
        for budget in (10, 100):
            for rep in (0, 1):
                rows.append({"run_id": f"{cw}-{budget}-{rep}", "replication": rep, "mechanism.cost_weight": cw,
                             "agents.x.start_balance": budget, "attacker_roi": 0.5 - 0.3 * cw + rep * 0.01,
                             "accuracy_drop_final": 0.01 * budget / cw, "honest_profit": 100.0 * cw,
                             "accuracy_final": 0.8, "money_conserved": True})
    runs = pl.DataFrame(rows)
    sections = dict(sweep_figures(runs))
    heat = sections["Attacker ROI"]
    assert isinstance(heat, go.Figure) and heat.data[0].type == "heatmap"
    z = heat.data[0].z
    assert z[0][0] == pytest.approx(0.5 - 0.3 + 0.005)  # mean over the two replications
    assert sections["Frontier"].data[1].contours.start == 0
    assert "sortable" in sections["Runs (click a header to sort)"]


def test_report_cli_for_run_and_sweep_and_bad_folder(run_dir, tmp_path):
    cli = [sys.executable, "-c", "from sum_abm.cli import main; main()"]
    r = subprocess.run(cli + ["report", str(run_dir)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and (run_dir / "report.html").exists()
    r = subprocess.run(cli + ["report", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    from sum_abm.sweeps import run_many

    base = load_scenario(ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 864_000})
    pts = [{"mechanism.cost_weight": c, "agents.attacker.count": n} for c in (1, 3) for n in (1, 2)]
    run_many(base, pts, tmp_path / "sw", serial=True)
    out = build_sweep_report(tmp_path / "sw")
    assert "Attacker ROI" in out.read_text()
    r = subprocess.run(cli + ["report", str(tmp_path / "sw"), "--x", "nope"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not a swept parameter" in r.stderr
