"""The results schema: the frames real runs write match it, the README's description is generated
from it, and the rejection codes it refers to are exactly the ones the contracts raise."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import polars as pl
import pytest

from sum_abm import schema
from sum_abm.chain.errors import REASONS

ROOT = Path(__file__).resolve().parents[1]


def test_readme_section_is_the_generated_one():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- schema:begin[^\n]*-->\n(.*)<!-- schema:end -->", text, re.S)
    assert m, "README.md: the schema:begin / schema:end markers are missing"
    assert m.group(1) == schema.markdown(), "README out of date: run python3 -m sum_abm.schema"


def test_columns_the_readme_names_elsewhere_are_declared():
    text = (ROOT / "README.md").read_text()
    gains = re.search(r"`summary` gains (.*?)\.\n", text, re.S).group(1)
    named = re.findall(r"`([a-z_]+)`", gains)
    assert len(named) >= 4 and set(named) <= set(schema.FRAMES["summary"].names)
    pay = re.search(r"`payoffs.parquet` \(([^)]*)\)", text).group(1)
    assert [c.strip() for c in pay.split(",")] == [
        c for c in schema.FRAMES["game_payoffs"].names if c in pay
    ]


def _raised_codes() -> set[str]:
    """Every literal code passed to ``Rejected(...)`` or ``_require(cond, ...)`` in the package
    (a variable there forwards a code raised elsewhere, e.g. the EVM mirror's)."""
    codes = set()
    for path in (ROOT / "sum_abm").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
            pos = {"Rejected": 0, "_require": 1}.get(name)
            if pos is not None and len(node.args) > pos:
                arg = node.args[pos]
                if isinstance(arg, ast.Constant):
                    codes.add(arg.value)
    return codes


def test_declared_reasons_are_exactly_the_raised_ones():
    assert _raised_codes() == set(REASONS)


def test_frame_types_order_and_unknown_columns():
    df = schema.frame("agents", [{"profit": 3, "agent_id": "a"}, {"agent_id": "b", "profit": -1}])
    assert df.columns == ["agent_id", "profit"]  # declared order, whatever the rows' order
    assert df.schema["profit"] == pl.Float64 and df["profit"].to_list() == [3.0, -1.0]
    with pytest.raises(ValueError, match="undeclared columns \\['profit_pct'\\]"):
        schema.frame("agents", [{"agent_id": "a", "profit_pct": 1.0}])
    tx = schema.frame("transactions", [(5, "a", "refund", False, "too_early", 0, 21, 0, None)])
    assert tx.schema == pl.Schema(schema.dtypes("transactions"))
    empty = schema.frame("game_equilibria", [])
    assert empty.height == 0 and empty.columns == schema.FRAMES["game_equilibria"].names
    # an all-missing column keeps its declared type: two runs' summaries concatenate
    s = schema.frame("summary", [{"scenario": "x", "attacker_profit": None}])
    assert s.schema["attacker_profit"] == pl.Float64
    assert schema.problems("summary", s) == []
    other = schema.frame("summary", [{"scenario": "y", "attacker_profit": 2.5}])
    assert pl.concat([s, other])["attacker_profit"].to_list() == [None, 2.5]
    assert schema.problems("summary", s.with_columns(pl.lit(None).alias("attacker_profit"))) == [
        "summary.attacker_profit: Null, declared Float64"
    ]
    assert schema.problems("agents", df.select("profit", "agent_id")) == [
        "agents: columns out of declared order"
    ]


@pytest.mark.parametrize(
    "name, overrides",
    [
        pytest.param(
            "quickstart",
            {"data.n_rows": 600, "run.max_time_s": 10 * 86_400},
            marks=pytest.mark.slow,
        ),
        (
            "reference_pm",
            {"data.n_rows": 600, "data.train_rows": 200, "data.test_rows": 100},
        ),
    ],
)
def test_a_real_run_writes_what_the_schema_declares(tmp_path, name, overrides):
    from sum_abm import run
    from sum_abm.scenario import load_scenario

    sc = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    if "data.train_rows" in overrides:
        overrides["mechanism.bounty"] = 500
    run(sc.with_overrides(overrides), seed=3).write(tmp_path)
    written = sorted(p.name for p in tmp_path.glob("*.parquet"))
    files = {f.file: n for n, f in schema.FRAMES.items()}
    assert set(written) <= set(files) and {f"{n}.parquet" for n in schema.RUN_FRAMES} <= set(
        written
    )
    for file in written:
        df = pl.read_parquet(tmp_path / file)
        assert schema.problems(files[file], df) == []
    tx = pl.read_parquet(tmp_path / "transactions.parquet")
    assert tx.height and set(tx["reason"].drop_nulls()) <= set(REASONS)
    summary = pl.read_parquet(tmp_path / "summary.parquet")
    if name == "reference_pm":
        assert {"pm_state", "bounty_paid_fraction"} <= set(summary.columns)
    else:  # an attacker: the clean baseline ran and the attack columns are there
        assert "baseline_timeseries.parquet" in written and "attacker_roi" in summary.columns


def test_sweep_parts_match_the_schema(tmp_path):
    """The sweep parts: the run's id and parameters in front of its summary or agents columns."""
    from sum_abm.scenario import load_scenario
    from sum_abm.sweeps import run_many

    base = load_scenario(ROOT / "scenarios" / "quickstart.toml")
    point = {"data.n_rows": 600, "run.max_time_s": 5 * 86_400, "mechanism.cost_weight": 2}
    run_many(base, [point], tmp_path, replications=1, root_seed=1, baseline=True)
    for sub, name in (("runs", "sweep_runs"), ("agents", "sweep_agents")):
        (part,) = (tmp_path / sub).glob("*.parquet")
        df = pl.read_parquet(part)
        assert schema.problems(name, df) == []
        meta = [c.name for c in schema.SWEEP_META]
        assert df.columns[: len(meta) + len(point)] == meta + list(point)
        rest = df.columns[len(meta) + len(point) :]
        assert set(rest) <= set(schema.FRAMES[name].names)


def test_every_mechanisms_summary_columns_are_declared():
    from sum_abm.mechanisms import MECHANISMS

    summary = schema.FRAMES["summary"]
    for kind, mech in MECHANISMS.items():
        undeclared = [c for c in mech.Adapter.summary_columns if c not in summary]
        assert not undeclared, f"{kind}: summary columns {undeclared} are not in sum_abm.schema"
    assert "pm_state" in MECHANISMS["prediction_market"].Adapter.summary_columns  # has teeth
