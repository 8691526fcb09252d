"""``sum-abm design``: best response and constraints against a payoff function with a known answer,
the search (grid and Optuna), resume after SIGKILL, verification on fresh seeds, bad design files."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sum_abm import schema
from sum_abm.bundled import bundled
from sum_abm.design.evaluate import (
    evaluate_candidate,
    mean_interval,
    one_sided_bound,
    pareto_mask,
)
from sum_abm.design.search import VERIFY_REPLICATION, crn_seeds, run_design, set_args
from sum_abm.design.spec import METRICS, load_design
from sum_abm.errors import InputError
from sum_abm.scenario import load_scenario, parse_set_options

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"

SYNTHETIC = f"""
name = "synthetic"
base = "{QUICKSTART}"
seed = 3
replications = 4
budget = 64
[parameters]
"mechanism.cost_weight" = {{ values = [0, 1, 2, 3, 4, 5, 6, 7, 8] }}
"mechanism.semantics" = {{ values = ["solidity", "corrected"] }}
[attacker]
group = "attacker"
strategies = [
  {{ name = "flip", policy = "label_flip" }},
  {{ name = "sybil", policy = "sybil", params = {{ addresses = 4 }} }},
  {{ name = "free_rider", policy = "free_rider" }},
]
constrained = ["flip", "sybil"]
[[objectives]]
metric = "honest_roi"
direction = "maximize"
[[constraints]]
metric = "attacker_roi"
max = 0.0
confidence = 0.95
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from sum_abm.cli import main; main()", "design", *args]


def noise(seed: int) -> float:
    """Seed noise in [-0.01, 0.01), the same for every setting and strategy (common random numbers)."""
    return (seed % 1000) / 50_000 - 0.01


def payoff(setting: dict, strategy: str, seed: int) -> dict[str, float]:
    """A known game. Label flipping pays 0.25 - 0.05 w (w: deposit weight), the Sybil 0.42 - 0.1 w
    (0.1 less under corrected rules), free riding always +0.3 (beside the constraint). Honest
    contributors lose 0.02 per unit of w, 0.01 more against the Sybil, 0.005 more under solidity.
    So the Sybil is the best response for small w, flipping beyond (w >= 2 corrected, w >= 4
    solidity); both lose with 95 % confidence from w = 6; the cheapest such setting for honest
    contributors is w = 6 with corrected rules."""
    w = setting["mechanism.cost_weight"]
    solidity = setting["mechanism.semantics"] == "solidity"
    roi = {
        "flip": 0.25 - 0.05 * w,
        "sybil": 0.42 - 0.1 * w - (0.0 if solidity else 0.1),
        "free_rider": 0.3,
    }[strategy] + noise(seed)
    honest = -0.02 * w - (0.01 if strategy == "sybil" else 0.0) - (0.005 if solidity else 0.0)
    return {
        **dict.fromkeys(METRICS, 0.0),
        "attacker_roi": roi,
        "honest_roi": honest,
        "accuracy_final": 0.8 - 0.001 * w,
    }


class Synthetic:
    """A Measure that evaluates :func:`payoff` instead of running markets; counts requests."""

    def __init__(self) -> None:
        self.requests: list = []

    def __call__(self, design, requests):
        self.requests.extend(requests)
        return [payoff(dict(r.setting), r.strategy, r.seed) for r in requests]


def write(tmp_path: Path, text: str, name: str = "d.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_intervals_are_student_t():
    m, lo, hi = mean_interval([1.0, 2.0, 3.0, 4.0])
    # mean 2.5, sd 1.29099, se 0.645497, t(0.975, 3) = 3.182446
    assert m == 2.5 and lo == pytest.approx(2.5 - 2.054255, abs=1e-5)
    assert hi == pytest.approx(2.5 + 2.054255, abs=1e-5)
    # one-sided 95 %: t(0.95, 3) = 2.353363
    assert one_sided_bound([1.0, 2.0, 3.0, 4.0], 0.95, upper=True) == pytest.approx(
        2.5 + 1.519090, abs=1e-5
    )
    assert one_sided_bound([1.0], 0.95, upper=True) == math.inf


def test_attacker_roi_intervals_stop_at_minus_100_percent(tmp_path):
    """ROIs of -1.0, -0.9 and +0.5: the t interval's low end (mean -0.467, half-width 2.08) would
    be -2.55, an ROI no attacker can have; it is cut at -1 (the high end is not)."""
    d = load_design(write(tmp_path, SYNTHETIC))
    rois = [-1.0, -0.9, 0.5]
    rows = [
        {metric: 0.0 for metric in METRICS}
        | {"strategy": s, "replication": r, "seed": r, "attacker_roi": v}
        for s in d.strategies
        for r, v in enumerate(rois)
    ]
    ev = evaluate_candidate(pl.DataFrame(rows), d.spec)
    m, lo, hi = mean_interval(rois)
    assert lo < -2.5 and ev["flip.attacker_roi_lo"] == -1.0 == ev["best_response_roi_lo"]
    assert ev["flip.attacker_roi"] == pytest.approx(m) and ev["flip.attacker_roi_hi"] == hi


def test_best_response_and_constraint_on_a_known_candidate(tmp_path):
    d = load_design(write(tmp_path, SYNTHETIC))
    seeds = crn_seeds(3, 4)
    for w, br, feasible in [(1, "sybil", False), (3, "flip", False), (6, "flip", True)]:
        setting = {"mechanism.cost_weight": w, "mechanism.semantics": "corrected"}
        rows = [
            {"strategy": s, "replication": r, "seed": seed, **payoff(setting, s, seed)}
            for s in d.strategies
            for r, seed in enumerate(seeds)
        ]
        ev = evaluate_candidate(pl.DataFrame(rows), d.spec)
        assert ev["best_response"] == br
        assert ev["feasible"] is feasible
        # free riding pays more (+0.3) but is beside the constraint: never the best response
        assert ev["free_rider.attacker_roi"] > ev[f"{br}.attacker_roi"]
        assert ev["honest_roi"] == pytest.approx(-0.02 * w - (0.01 if br == "sybil" else 0.0))
        # the constraint's value is the highest one-sided bound over the constrained strategies
        bound = max(
            one_sided_bound([payoff(setting, s, x)["attacker_roi"] for x in seeds], 0.95, True)
            for s in ("flip", "sybil")
        )
        assert ev["constraint_0"] == pytest.approx(bound)


def test_pareto_mask():
    v = np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [np.nan, 0.0], [1.0, 2.0]])
    assert pareto_mask(v).tolist() == [True, True, False, False, True]


def test_grid_search_finds_the_known_answer(tmp_path):
    measure = Synthetic()
    ans = run_design(write(tmp_path, SYNTHETIC), tmp_path / "out", measure=measure, verify=3)
    d = pl.read_parquet(tmp_path / "out" / "designs.parquet")
    assert d.height == 18 and ans["search"] == "grid"
    feas = d.filter(pl.col("feasible"))
    got = {
        (r["mechanism.cost_weight"], r["mechanism.semantics"]) for r in feas.iter_rows(named=True)
    }
    assert got == {(w, s) for w in (6, 7, 8) for s in ("solidity", "corrected")}
    assert ans["recommended"] == {"mechanism.cost_weight": 6, "mechanism.semantics": "corrected"}
    assert ans["best_response"]["strategy"] == "flip"
    assert ans["best_response"]["attacker_roi"] == pytest.approx(0.25 - 0.3, abs=0.011)
    lo, hi = ans["best_response"]["attacker_roi_low"], ans["best_response"]["attacker_roi_high"]
    assert lo < ans["best_response"]["attacker_roi"] < hi < 0
    assert set(ans["strategies"]) == {"flip", "sybil"} and set(ans["beside"]) == {"free_rider"}
    assert ans["beside"]["free_rider"]["attacker_roi"] == pytest.approx(0.3, abs=0.011)
    # common random numbers: every (setting, strategy) saw the same four seeds
    seeds_by: dict = {}
    for r in measure.requests:
        if r.replication < VERIFY_REPLICATION:
            seeds_by.setdefault((r.setting, r.strategy), set()).add(r.seed)
    assert {frozenset(s) for s in seeds_by.values()} == {frozenset(ans["seeds"])}
    # verification ran on fresh seeds only, and the constraint holds there too
    v = ans["verify"]
    assert len(v["seeds"]) == 3 and not set(v["seeds"]) & set(ans["seeds"])
    assert v["feasible"] and all(c["holds"] for c in v["constraints"])
    # the Pareto front of one objective among the feasible: the recommended setting alone
    pareto = pl.read_parquet(tmp_path / "out" / "pareto.parquet")
    assert pareto.height == 1 and pareto["recommended"].to_list() == [True]
    saved = json.loads((tmp_path / "out" / "answer.json").read_text())
    assert saved["recommended"] == ans["recommended"]
    from dashboards.design_report import build_design_report

    page = build_design_report(tmp_path / "out").read_text()
    for heading in ("Pareto front", "Best response over the settings", "recommended", "sybil"):
        assert heading in page


@pytest.mark.parametrize("valid", [True, False])
def test_written_design_frames_match_their_schema(tmp_path, valid):
    # not valid: each wait is valid alone, but the refund wait beyond the any-address wait makes
    # no valid scenario, so nothing runs and every measured value is missing; the files still
    # carry the declared types (an all-missing column is not Null-typed).
    text = SYNTHETIC
    if not valid:
        text = text.replace(
            "[parameters]\n",
            '[parameters]\n"mechanism.refund_time_s" = { values = [700000] }\n'
            '"mechanism.any_address_claim_wait_time_s" = { values = [600000] }\n',
        )
    run_design(write(tmp_path, text), tmp_path / "out", measure=Synthetic())
    spec = load_design(write(tmp_path, text)).spec
    per_input = set(spec.parameters) | {"constraint_0", "violation_0"}
    per_input |= {
        f"{s.name}.{k}"
        for s in spec.attacker.strategies
        for k in ("attacker_roi", "attacker_roi_lo", "attacker_roi_hi", "honest_roi", "runs")
    }
    for name in ("designs", "pareto"):
        df = pl.read_parquet(tmp_path / "out" / f"{name}.parquet")
        assert schema.problems(name, df) == []
        declared = schema.FRAMES[name].names
        # every declared column is written, and every other one is what the schema's words name
        assert [c for c in df.columns if c in declared] == declared
        assert set(df.columns) - set(declared) == per_input
    designs = pl.read_parquet(tmp_path / "out" / "designs.parquet")
    assert designs["valid"].to_list() == [valid] * 18


def test_no_feasible_candidate_names_the_closest(tmp_path):
    text = SYNTHETIC.replace("values = [0, 1, 2, 3, 4, 5, 6, 7, 8]", "values = [0, 1, 2]")
    ans = run_design(write(tmp_path, text), tmp_path / "out", measure=Synthetic())
    assert not ans["feasible_found"] and ans["recommended"] is None
    # the least violation: the heaviest deposit under corrected rules
    assert ans["closest"] == {"mechanism.cost_weight": 2, "mechanism.semantics": "corrected"}
    assert not any(c["holds"] for c in ans["constraints"])


def test_optuna_search_with_a_real_range_meets_the_constraint(tmp_path):
    text = SYNTHETIC.replace(
        '"mechanism.cost_weight" = { values = [0, 1, 2, 3, 4, 5, 6, 7, 8] }',
        '"mechanism.cost_weight" = { low = 0, high = 40 }',
    ).replace("budget = 64", "budget = 24")
    # cost_weight is an int range of 41 values x 2 semantics = 82 > budget: Optuna (TPE) searches
    ans = run_design(write(tmp_path, text), tmp_path / "out", measure=Synthetic())
    assert ans["search"] == "tpe" and ans["feasible_found"]
    rec = ans["recommended"]
    # the feasible optimum is w = 6 (corrected); a 24-trial TPE search lands at or near it
    assert 6 <= rec["mechanism.cost_weight"] <= 12
    assert ans["best_response"]["attacker_roi"] < 0


def test_progress_lines_count_the_candidates_the_summary_counts(tmp_path):
    # Optuna may propose a setting again; the progress line says so, and what it counts as
    # distinct is what designs.parquet holds (it printed 6 candidates where the summary had 5)
    text = SYNTHETIC.replace(
        '"mechanism.cost_weight" = { values = [0, 1, 2, 3, 4, 5, 6, 7, 8] }',
        '"mechanism.cost_weight" = { low = 0, high = 40 }',
    ).replace("budget = 64", "budget = 30")
    lines: list[str] = []
    run_design(write(tmp_path, text), tmp_path / "out", measure=Synthetic(), notify=lines.append)
    m = re.fullmatch(
        r"synthetic: (\d+) of 30 candidates evaluated(?: \((\d+) repeated an earlier one\))?",
        lines[-1],
    )
    assert m, lines[-1]
    told, again = int(m[1]), int(m[2] or 0)
    assert told == 30
    assert told - again == pl.read_parquet(tmp_path / "out" / "designs.parquet").height


def test_answer_strategies_are_accepted_by_run_set():
    d = load_design_text(SYNTHETIC)
    for name in d.strategies:
        ov = d.strategy_overrides(name)
        sc = load_scenario(QUICKSTART, parse_set_options(set_args(ov), "--set"))
        group = next(g for g in sc.agents if g.name == "attacker")
        assert group.policy == {"flip": "label_flip"}.get(name, name)
        assert group.count == 1 and group.start_balance == 10_000


def load_design_text(text: str):
    import tempfile

    with tempfile.TemporaryDirectory() as t:
        return load_design(write(Path(t), text))


@pytest.mark.parametrize(
    "edit,message",
    [
        (("budget = 64", "budget = 64\nbudgett = 3"), "budgett: unknown key"),
        (("replications = 4", "replications = 1"), "replications"),
        (('group = "attacker"', 'group = "nobody"'), "attacker.group: no agent group 'nobody'"),
        (('constrained = ["flip", "sybil"]', 'constrained = ["flop"]'), "constrained"),
        (("max = 0.0", "max = 0.0\nmin = 1.0"), "exactly one of 'max' or 'min'"),
        (('metric = "honest_roi"', 'metric = "happiness"'), "objectives[0].metric"),
        (
            '"mechanism.semantics" = { values = ["solidity", "corrected"] }',
            "parameters.mechanism.semantics",
        ),
        (
            ('"mechanism.cost_weight" = { values', '"mechanism.cost_wait" = { values'),
            "parameters.mechanism.cost_wait",
        ),
        (("values = [0, 1, 2, 3, 4, 5, 6, 7, 8]", "low = 5, high = 1"), "low <= high"),
    ],
)
def test_bad_design_files_are_one_line_and_exit_2(tmp_path, edit, message, monkeypatch, capsys):
    if isinstance(edit, str):  # an invalid value of a parameter
        text = SYNTHETIC.replace(edit, '"mechanism.semantics" = { values = ["solidity", "fixed"] }')
    else:
        text = SYNTHETIC.replace(*edit)
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=None) as err:
        load_design(path)
    assert message in str(err.value) and "\n" not in str(err.value)
    from sum_abm.cli import main  # the console script's entry point, in this process

    monkeypatch.setattr(sys, "argv", ["sum-abm", "design", str(path), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit) as code:
        main()
    err = capsys.readouterr().err
    assert code.value.code == 2, err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "o").exists()


def test_verify_with_one_seed_is_refused_when_a_constraint_has_a_confidence(
    tmp_path, monkeypatch, capsys
):
    # One fresh seed gives no interval: every such constraint read "does not hold" (exit 1).
    path = write(tmp_path, SYNTHETIC)
    from sum_abm.cli import main

    argv = ["sum-abm", "design", str(path), "--out", str(tmp_path / "o"), "--verify", "1"]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as code:
        main()
    err = capsys.readouterr().err
    assert code.value.code == 2 and err.count("\n") == 1, err
    assert "--verify: a constraint with a confidence level needs at least 2 fresh seeds" in err
    assert not (tmp_path / "o").exists()


def test_an_output_folder_is_not_overwritten_without_resume(tmp_path):
    path = write(tmp_path, SYNTHETIC)
    run_design(path, tmp_path / "out", measure=Synthetic())
    with pytest.raises(InputError, match="already holds a design search"):
        run_design(path, tmp_path / "out", measure=Synthetic())
    other = write(tmp_path, SYNTHETIC.replace("seed = 3", "seed = 4"), "e.toml")
    with pytest.raises(InputError, match="another design file"):
        run_design(other, tmp_path / "out", measure=Synthetic(), resume=True)


@pytest.mark.parametrize("path", bundled("design"), ids=lambda p: p.stem)
def test_bundled_designs_load_and_say_their_answer(path):
    d = load_design(path)
    header = path.read_text().split("\nname")[0]
    assert "Question:" in header and "Answer (measured)" in header and "Out of sample" in header
    for name in d.strategies:  # each strategy makes a valid scenario with every listed value
        ov = d.strategy_overrides(name)
        assert all(k.startswith("agents.") for k in ov)


# -- real markets ----------------------------------------------------------------------------------

TINY = f"""
name = "tiny"
base = "{QUICKSTART}"
seed = 5
replications = 2
budget = 6
batch = 2
set = {{ "data.n_rows" = 600, "run.max_time_s" = 864000, "learner.kind" = "multinomial_nb" }}
[parameters]
"mechanism.cost_weight" = {{ low = 1, high = 50, type = "int", log = true }}
"mechanism.semantics" = {{ values = ["solidity", "corrected"] }}
[attacker]
group = "attacker"
strategies = [ {{ name = "flip", policy = "label_flip" }}, {{ name = "hunter", policy = "deposit_hunter" }} ]
[[objectives]]
metric = "honest_roi"
direction = "maximize"
[[objectives]]
metric = "accuracy_final"
direction = "maximize"
[[constraints]]
metric = "attacker_roi"
max = 0.0
"""


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_search(tmp_path):
    # A real (tiny) market, an NSGA-II search in batches of 2, in this process's child (workers 1).
    path = write(tmp_path, TINY)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    whole = subprocess.run(
        _cli(str(path), "--out", str(tmp_path / "whole"), "--workers", "1"),
        capture_output=True,
        text=True,
        env=env,
    )
    assert whole.returncode == 0, whole.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(str(path), "--out", str(out), "--workers", "1"),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # kill once some runs of the second batch exist (mid-search, mid-batch)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "sweep" / "runs").glob("*.parquet"))) >= 10:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "answer.json").exists()
    resumed = subprocess.run(
        _cli(str(path), "--out", str(out), "--workers", "1", "--resume"),
        capture_output=True,
        text=True,
        env=env,
    )
    assert resumed.returncode == 0, resumed.stderr
    a = pl.read_parquet(tmp_path / "whole" / "designs.parquet")
    b = pl.read_parquet(out / "designs.parquet")
    assert a.equals(b)
    assert a.height >= 4  # the search proposed several distinct settings
    ja = json.loads((tmp_path / "whole" / "answer.json").read_text())
    jb = json.loads((out / "answer.json").read_text())
    assert ja == jb


def test_the_answer_says_when_the_recommended_market_was_not_used():
    # A gas price no balance pays: nothing is sent, no attack pays, and the grid recommends it.
    from sum_abm.design.search import plain_answer

    answer = {
        "feasible_found": True,
        "recommended": {"chain.gas_price": 2.5},
        "candidates": 3,
        "search": "grid",
        "replications": 2,
        "pool_used": 0.0,
    }
    assert "contributed nothing (pool_used 0)" in plain_answer(answer)
    assert "contributed nothing" not in plain_answer({**answer, "pool_used": 0.4})
