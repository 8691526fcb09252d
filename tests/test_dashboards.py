"""Dashboard builders: figures from small hand-made frames (no browser) with exact numbers, the sweep
report's grid, axes, panels and frontier, the self-contained HTML files, and the CLI."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from pathlib import Path

import plotly.graph_objects as go
import polars as pl
import pytest

from dashboards import build_run_report, build_sweep_report, run_figures, sweep_figures
from dashboards import run_report as rr
from dashboards import sweep_report as sr
from dashboards.style import (
    ACCEPTED,
    ATTACKER,
    HONEST,
    USER,
    group_colors,
    number,
    outcome_colors,
    table_html,
)
from sum_abm import schema
from sum_abm.chain.errors import REASONS
from sum_abm.market.run import run
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400


# -- a tiny run, by hand ---------------------------------------------------------------------------
def reason(code: str) -> str:
    """A rejection code the contracts really give (the transactions frame holds nothing else)."""
    assert code in REASONS, code
    return code


LOW, EARLY = reason("insufficient_value"), reason("too_early")


def _frames(mechanism: str = "deposit_refund_take") -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    agents = schema.frame(
        "agents",
        {
            "agent_id": ["honest-0", "honest-1", "att"],
            "group": ["honest", "honest", "att"],
            "policy": ["honest", "honest", "sybil"],
            "attacker": [False, False, True],
            "addresses": [1, 1, 2],
            "start_balance": [1000.0, 1000.0, 500.0],
            "end_balance": [1100.0, 950.0, 450.0],
            "profit": [100.0, -50.0, -50.0],
            "roi": [0.1, -0.05, -0.1],
            "fees": [3, 0, 7],
            "deposits_paid": [10, 5, 50],
            "adds_accepted": [2, 1, 1],
            "refunded": [1, 0, 0],
            "taken": [0, 0, 0],
            "reports_won": [0, 0, 0],
            "predictions": [0, 0, 0],
            "points": [4, 1, 0],
        },
    )
    times = [0, DAY // 2, DAY]
    bal = {"honest-0": [1000, 1050, 1100], "honest-1": [1000, 990, 950], "att": [500, 480, 450]}
    acc = [0.80, 0.70, 0.75]
    ts = schema.frame(
        "timeseries",
        [
            {
                "time_s": t,
                "accuracy": acc[i],
                "agent_id": a,
                "group": "att" if a == "att" else "honest",
                "balance": float(bal[a][i]),
            }
            for i, t in enumerate(times)
            for a in bal
        ],
    )
    base = schema.frame(
        "baseline_timeseries",
        [
            {"time_s": t, "accuracy": a, "agent_id": "honest-0", "group": "honest", "balance": 0.0}
            for t, a in zip([0, DAY // 2 - 100, DAY], [0.80, 0.78, 0.76], strict=False)
        ],
    )
    tx = schema.frame(
        "transactions",
        {
            "time_s": [10, 20, 30, 40, 50, 60],
            "sender": ["honest-0", "att", "att.1", "honest-1", "att.1", "provider"],
            "call": ["add_data", "add_data", "add_data", "refund", "report", "add_data"],
            "accepted": [True, True, False, False, True, True],
            "reason": [None, None, LOW, EARLY, None, None],
            "value": [10, 50, 1, 0, 0, 0],
            "gas": [100, 200, 50, 30, 40, 60],
            "fee": [3, 4, 1, 0, 2, 5],
            "amount": [10.0, 50.0, 1.0, 0.0, 0.0, 0.0],
        },
    )
    summary = schema.frame(
        "summary",
        [
            {
                "scenario": "tiny",
                "seed": 1,
                "mechanism": mechanism,
                "semantics": "solidity",
                "learner": "perceptron",
                "n_agents": 3,
                "end_time_s": DAY,
                "days": 1.0,
                "calls": 6,
                "calls_rejected": 2,
                "adds_accepted": 4,
                "pool_used": 0.5,
                "accuracy_initial": 0.8,
                "accuracy_final": 0.75,
                "accuracy_min": 0.7,
                "accuracy_time_weighted": 0.75,
                "accuracy_all_data": 0.9,
                "money_conserved": True,
                "fees_total": 15,
                "honest_profit": 50.0,
                "attacker_profit": -50.0,
                "baseline_accuracy_final": 0.76,
                "accuracy_drop_final": 0.01,
                "accuracy_drop_max": 0.08,
                "attacker_roi": -0.1,
                "attacker_spend_per_point": 57.0,
                "baseline_honest_profit": 80.0,
            }
        ],
    )
    return {"transactions": tx, "timeseries": ts, "agents": agents, "summary": summary}, base


def _titled(fig: go.Figure) -> None:
    """A title, and a title on every x and y axis that carries data."""
    assert fig.layout.title.text
    for name in fig.layout:
        if name.startswith(("xaxis", "yaxis")) and fig.layout[name].domain is not None:
            axis = fig.layout[name]
            if axis.title.text is None:  # shared axes of a subplot row carry one title between them
                assert name.startswith(("xaxis", "yaxis")) and (axis.matches or axis.anchor), name
            else:
                assert axis.title.text.strip(), name


def test_balances_per_agent_and_per_group():
    f, _ = _frames()
    fig = rr.balances_figure(f["timeseries"], f["agents"])
    assert [t.name for t in fig.data] == ["honest-0", "honest-1", "att"]
    assert list(fig.data[0].x) == [0, 0.5, 1] and list(fig.data[1].y) == [1000, 990, 950]
    colours = {t.name: t.line.color for t in fig.data}
    assert colours["honest-0"] == colours["honest-1"] == HONEST and colours["att"] == ATTACKER
    grouped = rr.balances_figure(f["timeseries"], f["agents"], max_lines=2)
    by = {t.name: list(t.y) for t in grouped.data}
    assert by == {"honest (2 agents)": [2000, 2040, 2050], "att (1 agents)": [500, 480, 450]}
    assert (
        "token units" in grouped.layout.yaxis.title.text
        and "days" in grouped.layout.xaxis.title.text
    )


def test_accuracy_with_baseline_and_all_data_line():
    f, base = _frames()
    fig = rr.accuracy_figure(f["timeseries"], f["summary"], base)
    names = [t.name for t in fig.data]
    assert names[:2] == ["accuracy", "clean baseline (no attackers)"] and "all data" in names[2]
    assert list(fig.data[0].y) == [0.8, 0.7, 0.75]  # one point per sample, not one per agent
    assert list(fig.data[2].y) == [0.9, 0.9] and list(fig.data[2].x) == [0, 1]
    _titled(fig)


def test_attack_over_time_measures_against_the_baseline():
    f, base = _frames()
    fig = rr.attack_figure(f["timeseries"], f["agents"], base)
    drop = fig.data[0]
    # as-of join: at 12 h the baseline's latest sample is 0.78 (taken 100 s earlier)
    assert list(drop.y) == pytest.approx([0.0, 8.0, 1.0])
    side = {t.name: list(t.y) for t in fig.data[1:]}
    assert side == {"attackers": [0, -20, -50], "everyone else": [0, 40, 50]}
    assert (
        fig.layout.yaxis.title.text == "accuracy points"
        and "token units" in fig.layout.yaxis2.title.text
    )
    assert fig.layout.xaxis2.title.text == "simulated time (days)"


def test_profit_and_roi_per_group():
    f, _ = _frames()
    fig = rr.profit_figure(f["agents"])
    bars = fig.data[0]
    assert list(bars.x) == ["honest", "att"] and list(bars.y) == [50, -50]
    assert bars.text == ("group ROI +2.5%", "group ROI -10.0%")  # 50 / 2000 and -50 / 500
    assert list(bars.marker.color) == [HONEST, ATTACKER]
    boxes = {t.name: list(t.y) for t in fig.data[1:]}
    assert boxes == {"honest": [0.1, -0.05], "att": [-0.1]}
    _titled(fig)


def test_calls_by_kind_and_outcome_with_stable_colours():
    f, _ = _frames()
    fig = rr.calls_figure(f["transactions"])
    got = {(t.name, c): n for t in fig.data for c, n in zip(t.x, t.y, strict=False)}
    assert got == {
        ("accepted", "add_data"): 3,
        ("accepted", "report"): 1,
        (LOW, "add_data"): 1,
        (EARLY, "refund"): 1,
    }
    colours = {t.name: t.marker.color for t in fig.data}
    assert colours["accepted"] == ACCEPTED
    assert outcome_colors([EARLY, LOW, "accepted"]) == outcome_colors(
        ["accepted", LOW, EARLY, EARLY]
    )
    assert colours[EARLY] != colours[LOW]
    # a reason keeps its colour whatever other reasons a run has (REASONS fixes the order)
    known = list(REASONS)
    alone = outcome_colors([EARLY], known)[EARLY]
    assert alone == colours[EARLY]
    assert outcome_colors([EARLY, "model_agrees", "own_deposit"], known)[EARLY] == alone
    assert outcome_colors(["already_claimed_by_reporter", EARLY], known)[EARLY] == alone
    # every reason of one chart gets its own colour while the palette lasts
    many = outcome_colors(known[:12], known)
    assert len(set(many.values())) == 13
    empty = rr.calls_figure(f["transactions"].head(0))
    assert not empty.data and empty.layout.annotations


def test_gas_and_fees_count_a_sybils_addresses_for_its_group():
    f, _ = _frames()
    groups = rr.sender_groups(f["transactions"], f["agents"]).to_list()
    assert groups == ["honest", "att", "att", "honest", "att", "other"]
    fig = rr.gas_figure(f["transactions"], f["agents"])
    gas = {(t.name, c): g for t in fig.data[:-1] for c, g in zip(t.x, t.y, strict=False)}
    assert (
        gas[("att", "add_data")] == 250
        and gas[("att", "report")] == 40
        and gas[("other", "add_data")] == 60
    )
    fees = dict(zip(fig.data[-1].x, fig.data[-1].y, strict=False))
    assert fees == {"honest": 3, "att": 7, "other": 5}
    _titled(fig)


def test_run_sections_adapt_to_the_run():
    f, base = _frames()
    sections = dict(run_figures(f, base))
    assert list(sections)[:2] == ["Attack success", "Attack success over time"]
    assert "-10.0%" in sections["Attack success"] and "57 token units" in sections["Attack success"]
    assert "+8.0 points" in sections["Attack success"]
    assert "+15.0 points" in sections["Model quality"]  # gap to the all-data model: 0.90 - 0.75
    assert isinstance(sections["Gas and fees"], go.Figure)
    for fig in (v for v in sections.values() if isinstance(v, go.Figure)):
        _titled(fig)
    # no attackers, free calls, the Points mechanism
    pts, _ = _frames("points")
    pts["agents"] = pts["agents"].with_columns(pl.lit(False).alias("attacker"))
    pts["transactions"] = pts["transactions"].with_columns(
        pl.lit(0).alias("gas"), pl.lit(0).alias("fee")
    )
    s2 = dict(run_figures(pts, None))
    assert "Attack success" not in s2 and "Profit and ROI" not in s2
    assert list(s2["Points"].data[0].y) == [5, 0] and "Gas price 0" in s2["Gas and fees"]
    # a gas price no sender could pay: no call sent, and the report says so (not "free")
    none = {**pts, "transactions": pts["transactions"].head(0)}
    s3 = dict(run_figures(none, None, gas_price=2.5))
    assert "Gas price 2.5 token units per gas, and no call was sent" in s3["Gas and fees"]


def test_group_colours_are_consistent_families():
    c = group_colors(
        [
            ("a", "honest", False),
            ("b", "label_flip", True),
            ("c", "careless", False),
            ("u", "model_user", False),
        ]
    )
    assert (
        c["a"] == HONEST
        and c["b"] == ATTACKER
        and c["u"] == USER
        and c["c"] not in (c["a"], c["b"], c["u"])
    )
    assert c["c"].startswith("#") and c == group_colors(
        [
            ("a", "honest", False),
            ("b", "label_flip", True),
            ("c", "careless", False),
            ("u", "model_user", False),
        ]
    )


def test_tables_format_numbers_for_reading():
    t = table_html(
        pl.DataFrame({"a": [10000.0, 0.123456], "seed": [12, 2**62], "ok": [True, False]})
    )
    assert (
        "<td>10,000</td>" in t
        and "<td>0.1235</td>" in t
        and f"<td>{2**62}</td>" in t
        and "<td>True</td>" in t
    )
    # amounts beside amounts read alike: no exponent notation for a mean of 10,720.5
    t = table_html(pl.DataFrame({"profit": [10720.5, 10000.0, -2298.4, 0.000012345]}))
    assert "<td>10,720</td>" in t and "<td>-2,298</td>" in t and "<td>1.234e-05</td>" in t
    assert [number(v) for v in (9999.95, 0.65834, 1072.5, 0.0)] == [
        "10,000",
        "0.6583",
        "1,072",
        "0",
    ]
    assert number(3216.0, 2) == "3,200" and number(-0.004567, 2) == "-0.0046"


# -- sweeps ----------------------------------------------------------------------------------------
def _runs(third: bool = False) -> pl.DataFrame:
    rows = []
    for cw in (1, 2, 4):
        for budget in (10, 100):
            for refund in (1, 2) if third else (1,):
                for rep in (0, 1):
                    rows.append(
                        {
                            "run_id": f"{cw}-{budget}-{refund}-{rep}",
                            "replication": rep,
                            "seed": rep,
                            "mechanism.cost_weight": cw,
                            "agents.x.start_balance": budget,
                            "mechanism.refund_time_s": refund,
                            "data.n_rows": 800,
                            "attacker_roi": 0.5 - 0.3 * cw + rep * 0.02 - 0.1 * (refund - 1),
                            "accuracy_drop_final": 0.01 * budget / cw,
                            "honest_profit": 100.0 * cw,
                            "accuracy_final": 0.8,
                            "money_conserved": True,
                        }
                    )
    return pl.DataFrame(rows)


def test_grid_means_and_spread_over_replications():
    g = sr.grid(_runs(), "mechanism.cost_weight", "agents.x.start_balance", "attacker_roi")
    assert g.xs == [1, 2, 4] and g.ys == [10, 100]
    assert g.mean[0, 0] == pytest.approx(0.21) and g.std[0, 0] == pytest.approx(0.02 / 2**0.5)
    assert g.n[1, 2] == 2 and g.positive[0, 0] == 1.0 and g.positive[0, 1] == 0.0


def test_default_axes_prefer_a_numeric_mechanism_knob_on_x():
    runs = _runs(third=True)
    assert sr.parameter_columns(runs) == [
        "mechanism.cost_weight",
        "agents.x.start_balance",
        "mechanism.refund_time_s",
    ]
    assert sr.default_axes(runs) == ("mechanism.cost_weight", "agents.x.start_balance")
    cat = runs.with_columns(pl.col("mechanism.cost_weight").cast(pl.String))
    assert sr.default_axes(cat) == (
        "mechanism.refund_time_s",
        "agents.x.start_balance",
    )  # numbers first
    manifest = {
        "runs": [{"overrides": {"mechanism.refund_time_s": 1, "agents.x.start_balance": 10}}]
    }
    assert sr.parameter_columns(runs, manifest) == [
        "mechanism.refund_time_s",
        "agents.x.start_balance",
    ]


def test_frontier_edges_and_interpolated_crossings():
    import numpy as np

    m = np.array([[0.3, -0.1, -0.2], [0.5, 0.2, -0.4]])
    assert sorted(sr.frontier_edges(m)) == [
        (0.5, -0.5, 0.5, 0.5),
        (0.5, 0.5, 1.5, 0.5),
        (1.5, 0.5, 1.5, 1.5),
    ]
    rows = sr.frontier_rows(_runs(), "mechanism.cost_weight", "agents.x.start_balance")
    # mean ROI along cost weight 1, 2, 4: 0.21, -0.09, -0.69 -> zero at 1 + 0.21 / 0.30 = 1.7
    assert rows[0]["attack pays at"] == "1" and "(≈ 1.7)" in rows[0]["ROI crosses zero"]
    assert rows[0]["best ROI"] == "+21.0%"


def test_an_roi_of_exactly_zero_breaks_even_it_does_not_lose():
    # an attacker none of whose adds got in ends with ROI 0: not a loss
    runs = _runs().with_columns(
        attacker_roi=pl.when(pl.col("mechanism.cost_weight") == 1)
        .then(pl.col("attacker_roi"))
        .when(pl.col("mechanism.cost_weight") == 2)
        .then(0.0)
        .otherwise(-0.5)
    )
    rows = sr.frontier_rows(runs, "mechanism.cost_weight", "agents.x.start_balance")
    assert rows[0]["ROI crosses zero"].startswith("pays → breaks even between 1 and 2")
    flat = runs.with_columns(attacker_roi=pl.lit(0.0))
    rows = sr.frontier_rows(flat, "mechanism.cost_weight", "agents.x.start_balance")
    assert rows[0]["ROI crosses zero"] == "never: breaks even at best"
    rows = sr.frontier_rows(
        runs.with_columns(attacker_roi=pl.lit(-0.1)),
        "mechanism.cost_weight",
        "agents.x.start_balance",
    )
    assert rows[0]["ROI crosses zero"] == "never: loses everywhere"


def test_a_y_axis_naming_the_default_x_moves_x_to_another_parameter():
    # --y mechanism.cost_weight (the default x) grouped by the same column twice: a traceback
    heat = dict(sweep_figures(_runs(), y="mechanism.cost_weight"))["Attacker ROI"].data[0]
    assert list(heat.y) == ["1", "2", "4"] and list(heat.x) == ["10", "100"]


def test_sweep_sections_heatmaps_panels_frontier_and_table():
    sections = dict(sweep_figures(_runs()))
    heat = sections["Attacker ROI"]
    assert heat.data[0].type == "heatmap" and heat.data[0].z[0][0] == pytest.approx(21.0)  # percent
    assert "± 1.4" in heat.data[0].text[0][0]  # the spread over the two replications, in every cell
    assert (
        heat.data[0].zmid is None and heat.data[0].zmin == -heat.data[0].zmax
    )  # 0 is the neutral colour
    assert [
        s for s in heat.layout.shapes if s.type == "line"
    ]  # the ROI = 0 frontier drawn on the map
    assert sections["Frontier: where the attack stops paying"].data[0].x[0] == pytest.approx(
        1 + 0.21 / 0.3
    )
    assert "1.7" in sections["Frontier by row"]
    assert "sortable" in sections["Runs (12; click a header to sort)"]
    for fig in (v for v in sections.values() if isinstance(v, go.Figure)):
        _titled(fig)
    three = dict(sweep_figures(_runs(third=True)))
    panels = [t for t in three["Attacker ROI"].data if t.type == "heatmap"]
    assert len(panels) == 2  # one panel per refund time
    assert [a.text for a in three["Attacker ROI"].layout.annotations] == [
        "mechanism.refund_time_s = 1",
        "mechanism.refund_time_s = 2",
    ]
    one = dict(sweep_figures(_runs().filter(pl.col("agents.x.start_balance") == 10)))
    assert one["Attacker ROI"].data[0].type == "scatter" and list(
        one["Attacker ROI"].data[0].x
    ) == [1, 2, 4]
    clean = dict(sweep_figures(_runs().drop("attacker_roi", "accuracy_drop_final")))
    assert "Frontier by row" not in clean and "Non-attackers' profit" in clean


# -- files and the CLI -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    sc = load_scenario(
        ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 1_728_000}
    )
    return run(sc, seed=2).write(tmp_path_factory.mktemp("run"))


class _Refs(HTMLParser):  # script contents are not parsed as markup, so only real tags count
    def __init__(self):
        super().__init__()
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, val in attrs:
            if key in ("src", "href") and (val or "").startswith(("http:", "https:", "//")):
                self.external.append(val)


def test_run_report_html_is_self_contained(run_dir):
    text = build_run_report(run_dir).read_text()
    refs = _Refs()
    refs.feed(text)
    assert refs.external == []
    assert (
        text.count("Plotly.newPlot") >= 5 and text.count("plotly.js v") == 1
    )  # plotly.js inlined once


def test_report_cli_for_run_and_sweep_and_bad_folders(run_dir, tmp_path, cli):
    r = cli("report", run_dir)
    assert r.returncode == 0 and (run_dir / "report.html").exists()
    r = cli("report", run_dir, "--y", "mechanism.cost_weight")  # axes are a sweep report's
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"sum-abm: --y: {run_dir} is a run folder; --x and --y choose the axes of a sweep "
        "folder's report"
    ]
    r = cli("report", tmp_path)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "summary.parquet").write_bytes((run_dir / "summary.parquet").read_bytes())
    r = cli("report", tmp_path / "half")
    assert r.returncode == 2 and "missing" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    from sum_abm.sweeps import run_many

    base = load_scenario(
        ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 864_000}
    )
    pts = [{"mechanism.cost_weight": c, "agents.attacker.count": n} for c in (1, 3) for n in (1, 2)]
    run_many(base, pts, tmp_path / "sw", serial=True)
    out = build_sweep_report(tmp_path / "sw")
    text = out.read_text()
    assert "Attacker ROI" in text and "4 of 4 runs finished" in text
    r = cli("report", tmp_path / "sw", "--x", "nope")
    assert (
        r.returncode == 2
        and "not a swept parameter" in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )
    r = cli(
        "report", tmp_path / "sw", "--x", "agents.attacker.count", "--y", "mechanism.cost_weight"
    )
    assert r.returncode == 0, r.stderr


def _damage_garbage(d, f):
    (d / f).write_bytes(b"\xff\x00 not parquet")


def _damage_column(d, f):
    pl.read_parquet(d / f).drop(pl.read_parquet(d / f).columns[0]).write_parquet(d / f)


def _damage_type(d, f):
    df = pl.read_parquet(d / f)
    df.with_columns(pl.col(df.columns[0]).cast(pl.Utf8)).write_parquet(d / f)


def _damage_rows(d, f):
    pl.read_parquet(d / f).head(0).write_parquet(d / f)


def _damage_json(d, f):
    (d / f).write_text("[]")


@pytest.mark.parametrize(
    "file, damage, says",
    [
        ("summary.parquet", _damage_garbage, "not a readable summary file (parquet"),
        ("agents.parquet", _damage_column, "not a valid agents file: no column agent_id"),
        ("timeseries.parquet", _damage_type, "timeseries.time_s: String, declared Int64"),
        ("summary.parquet", _damage_rows, "expected one row, got 0"),
        ("transactions.parquet", _damage_garbage, "not a readable transactions file"),
        ("run.json", _damage_json, "run.json: expected a JSON object, got list"),
    ],
)
def test_report_on_a_damaged_run_folder_is_one_line(run_dir, tmp_path, cli, file, damage, says):
    # Each of these printed a traceback (polars, json, KeyError) and exited 1.
    d = tmp_path / "run"
    shutil.copytree(run_dir, d)
    damage(d, file)
    r = cli("report", d)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("sum-abm: "), r.stderr
    assert f"{d / file}: " in lines[0] and says in lines[0]


def test_report_on_a_damaged_sweep_folder_is_one_line(tmp_path, cli):
    runs = _runs()
    sw = tmp_path / "sw"
    (sw / "runs").mkdir(parents=True)
    for part in runs.partition_by("run_id"):
        part.write_parquet(sw / "runs" / f"{part['run_id'][0]}.parquet")
    assert cli("report", sw).returncode == 0
    part = min((sw / "runs").iterdir())
    for damage, says in [
        (lambda: (sw / "sweep.json").write_text("{not json"), "sweep.json: not a readable JSON"),
        (lambda: part.write_bytes(b"junk"), f"{part}: a part cannot be read"),
        (lambda: (sw / "failures.parquet").write_bytes(b"junk"), "not a readable failures file"),
    ]:
        damage()
        r = cli("report", sw)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and says in lines[0], r.stderr


def test_a_damaged_agents_part_is_said_on_the_sweep_report_not_dropped_silently(tmp_path):
    runs = _runs()
    sw = tmp_path / "sw"
    (sw / "runs").mkdir(parents=True)
    (sw / "agents").mkdir()
    for part in runs.partition_by("run_id"):
        rid = part["run_id"][0]
        part.write_parquet(sw / "runs" / f"{rid}.parquet")
        pl.DataFrame(
            {"run_id": [rid, rid], "agent_id": [1, 2], "group": ["x", "y"], "roi": [0.1, -0.2]}
        ).write_parquet(sw / "agents" / f"{rid}.parquet")
    page = build_sweep_report(sw).read_text()
    assert "ROI by group, every agent of every run" in page and "Left out" not in page
    bad = min((sw / "agents").iterdir())
    bad.write_bytes(b"junk")
    page = build_sweep_report(sw).read_text()
    assert f"Left out: {bad} cannot be read" in page


def test_sweep_report_from_parts_with_failures_and_an_all_failed_sweep(tmp_path):
    runs = _runs()
    (tmp_path / "sw" / "runs").mkdir(parents=True)
    for part in runs.partition_by("run_id"):
        part.write_parquet(tmp_path / "sw" / "runs" / f"{part['run_id'][0]}.parquet")
    fail = schema.frame(
        "sweep_failures",
        {
            "run_id": ["9-9-9-0"],
            "replication": [0],
            "seed": [5],
            "parameters": ['{"mechanism.cost_weight": 9}'],
            "error_type": ["InputError"],
            "message": ["boom: the learner diverged"],
            "traceback": ["..."],
        },
    )
    fail.write_parquet(tmp_path / "sw" / "failures.parquet")
    text = build_sweep_report(tmp_path / "sw").read_text()
    assert (
        "12 of 12 runs finished" in text
        and "1 failed" in text
        and "boom: the learner diverged" in text
    )
    assert "9 of 12" not in text and "runs where the attack paid" in text
    # the attack pays in the 4 runs at cost weight 1 (ROI 0.2 and 0.22 for both budgets)
    assert "<b>4 of 12</b>" in text
    (tmp_path / "dead" / "runs").mkdir(parents=True)
    fail.write_parquet(tmp_path / "dead" / "failures.parquet")
    text = build_sweep_report(tmp_path / "dead").read_text()
    assert "Failures (1)" in text and "boom" in text
    from sum_abm.errors import InputError

    (tmp_path / "empty" / "runs").mkdir(parents=True)
    with pytest.raises(InputError, match="no run has finished"):
        build_sweep_report(tmp_path / "empty")


def test_random_draws_are_binned_on_the_heatmap_axes():
    import numpy as np

    rng = np.random.default_rng(0)
    n = 200
    cw = rng.uniform(0.5, 8.5, n)
    budget = 10 ** rng.uniform(2, 5, n)  # log-uniform over three decades
    runs = pl.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(n)],
            "replication": [0] * n,
            "mechanism.cost_weight": cw,
            "agents.x.start_balance": budget,
            "attacker_roi": 1.0 - cw / 4,
            "accuracy_drop_final": [0.0] * n,
            "honest_profit": [1.0] * n,
        }
    )
    binned, note = sr.bin_column(runs, "mechanism.cost_weight")
    assert binned["mechanism.cost_weight"].n_unique() == 12 and "equal intervals" in note
    # twelve equal-width bins from the smallest draw to the largest: the smallest falls in the
    # first bin, the largest in the last, each shown at its bin's centre (3 significant digits)
    lo, hi = cw.min(), cw.max()
    first = binned.filter(pl.col("run_id") == f"r{cw.argmin()}")["mechanism.cost_weight"][0]
    last = binned.filter(pl.col("run_id") == f"r{cw.argmax()}")["mechanism.cost_weight"][0]
    assert first == pytest.approx(float(f"{lo + (hi - lo) / 24:.3g}"))
    assert last == pytest.approx(float(f"{hi - (hi - lo) / 24:.3g}"))
    logged, note = sr.bin_column(runs, "agents.x.start_balance")
    assert "logarithmic" in note and logged["agents.x.start_balance"].min() > 100
    assert sr.bin_column(runs.head(5), "mechanism.cost_weight")[1] == ""  # few values: left alone
    sections = dict(sweep_figures(runs))
    heat = sections["Attacker ROI"].data[0]
    assert len(heat.x) == 12 and len(heat.y) == 12 and "binned" in sections["Note"]
    assert "r0" in next(
        v for k, v in sections.items() if k.startswith("Runs")
    )  # the table keeps raw values
    # the frontier along the binned cost weight: ROI = 1 - cw/4 crosses zero near 4
    assert sections["Frontier: where the attack stops paying"].data[0].x[0] == pytest.approx(
        4, abs=0.5
    )
