"""The command line as a new user meets it: boolean options read naturally, ``--set`` can switch
a group's policy, and every out-of-range value gets one line naming it and exit status 2."""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sum_abm.design.search import toml_value
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "scenarios" / "quickstart.toml"
GAME = ROOT / "scenarios" / "games" / "quickstart_game.toml"
SWEEP = ROOT / "scenarios" / "sweeps" / "quickstart_sweep.toml"


def test_boolean_options_read_naturally(cli):
    from sum_abm.cli import app

    names = [c.name or c.callback.__name__ for c in app.registered_commands]
    assert "run" in names
    for name in names:
        r = cli(name, "--help")
        assert r.returncode == 0 and "--no-no-" not in r.stdout, name
    r = cli("run", "--help")
    assert "--baseline" in r.stdout and "--no-baseline" in r.stdout and "--no-report" in r.stdout


def test_set_switches_a_groups_policy_keeping_its_shared_fields():
    base = load_scenario(QUICKSTART)
    before = base.agents[1]
    assert before.policy == "label_flip"
    sc = load_scenario(QUICKSTART, {"agents.attacker.policy": "free_rider"})
    g = sc.agents[1]
    assert g.policy == "free_rider" and not hasattr(g, "flip_prob")
    for shared in ("name", "count", "start_balance", "mean_wait_s", "stdev_wait_s", "attacker"):
        assert getattr(g, shared) == getattr(before, shared), shared
    # the new policy's own fields may be set in the same call, in any order
    sc = load_scenario(
        QUICKSTART, {"agents.attacker.mistake_prob": 0.4, "agents.attacker.policy": "careless"}
    )
    assert sc.agents[1].policy == "careless" and sc.agents[1].mistake_prob == 0.4
    # naming the policy a group already has keeps its own fields
    tuned = load_scenario(QUICKSTART, {"agents.attacker.flip_prob": 0.5})
    again = tuned.with_overrides({"agents.attacker.policy": "label_flip"})
    assert again.agents[1].flip_prob == 0.5
    # and the other groups are untouched
    assert sc.agents[0] == base.agents[0]


@pytest.mark.slow
def test_set_switches_the_mechanism_keeping_what_the_new_one_accepts():
    base = load_scenario(QUICKSTART)
    pts = load_scenario(QUICKSTART, {"mechanism.kind": "points"}).mechanism
    assert pts.kind == "points" and pts.refund_time_s == base.mechanism.refund_time_s
    assert not hasattr(pts, "cost_weight")
    # the market has no "solidity" semantics: it takes its own default; its fields can be set too
    pm = load_scenario(
        QUICKSTART, {"mechanism.bounty": 500, "mechanism.kind": "prediction_market"}
    ).mechanism
    assert (pm.kind, pm.semantics, pm.bounty) == ("prediction_market", "corrected", 500)
    assert pm.any_address_claim_wait_time_s == base.mechanism.any_address_claim_wait_time_s


@pytest.mark.parametrize(
    "args",
    [
        ["run", "quickstart", "--no-report"],
        ["game", GAME],
        ["frontier", GAME, "--param", "agents.honest.start_balance", "--range", "1", "5"],
    ],
    ids=["run", "game", "frontier"],
)
def test_an_out_folder_that_is_a_file_is_refused_before_any_run(cli, tmp_path, args):
    f = tmp_path / "a_file"
    f.write_text("")
    r = cli(*args, "--out", f)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == f"sum-abm: --out: {str(f)!r} is a file, expected a folder"


def test_attackers_only_is_refused_with_its_baseline_and_runs_without(cli, tmp_path):
    text = (ROOT / "scenarios" / "quickstart.toml").read_text()
    honest = text.index('[[agents]]\nname = "honest"')
    f = tmp_path / "alone.toml"
    f.write_text(text[:honest] + text[text.index('[[agents]]\nname = "attacker"') :])
    small = ["--set", "data.n_rows=1200", "--set", "run.max_time_s=864000", "--no-report"]
    r = cli("run", f, *small, "--out", tmp_path / "a")
    assert r.returncode == 2 and r.stdout == "" and len(r.stderr.strip().splitlines()) == 1
    assert "non-attacker group" in r.stderr and "--no-baseline" in r.stderr
    r = cli("run", f, *small, "--no-baseline", "--out", tmp_path / "b")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "b" / "agents.parquet").is_file()


def test_set_switches_a_policy_on_the_command_line(cli, tmp_path):
    r = cli(
        "run", "quickstart", "--set", "agents.attacker.policy=free_rider", "--set",
        "data.n_rows=1200", "--set", "run.max_time_s=864000", "--no-baseline", "--no-report",
        "--out", tmp_path,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    import polars as pl

    ag = pl.read_parquet(tmp_path / "agents.parquet")
    assert ag.filter(pl.col("group") == "attacker")["policy"].to_list() == ["free_rider"]


def _game_with(tmp_path: Path, old: str, new: str) -> Path:
    text = GAME.read_text().replace('base = "../quickstart.toml"', f'base = "{QUICKSTART}"')
    assert old in text
    f = tmp_path / "g.toml"
    f.write_text(text.replace(old, new))
    return f


def _sweep_with(tmp_path: Path, old: str, new: str) -> Path:
    text = SWEEP.read_text().replace('base = "../quickstart.toml"', f'base = "{QUICKSTART}"')
    assert old in text
    f = tmp_path / "s.toml"
    f.write_text(text.replace(old, new))
    return f


RUN = ["run", "quickstart", "--no-report", "--no-baseline"]
BAD = [
    (RUN + ["--seed", "-5"], "--seed: seed: expected a value >= 0, got -5"),
    (RUN + ["--seed", str(2**64)], "seed: expected a value <= 9223372036854775807"),
    (RUN + ["--set", "data.n_rows=100000000"], "data.n_rows: 100,000,000 rows x 1,000 features"),
    (RUN + ["--set", "data.n_features=100000000"], "data.n_features: 6,000 rows x 100,000,000"),
    (RUN + ["--set", "data.n_rows=0"], "data.n_rows: expected a value >= 4, got 0"),
    (RUN + ["--set", "data.test_rows=100000"], "data.test_rows: expected at most 3000 rows"),
    (RUN + ["--set", "data.init_train_rows=100000"], "data.init_train_rows: expected at most"),
    (RUN + ["--set", "data.noise=2"], "data.noise: expected a value <= 0.5, got 2"),
    (
        # 4 x 3e18: each balance fits 64 bits, the market's money does not (the results' columns
        # wrote the overflow as nulls: fees 0, profit -1.9e22, "money conserved")
        RUN + ["--set", "agents.honest.start_balance=3000000000000000000"],
        "money: the market starts with 12,000,000,000,000,010,000 token units in all",
    ),
    (RUN + ["--set", "data.kind=csv"], "data: path: expected the csv file's path"),
    (RUN + ["--set", "agents.honest.count=-1"], "agents[0].count: expected a value >= 1, got -1"),
    (
        RUN + ["--set", "agents.honest.mean_wait_s=0"],
        "agents[0].mean_wait_s: expected a value >= 1",
    ),
    (RUN + ["--set", "agents.honest.name="], "agents[0].name: expected at least 1 character"),
    (RUN + ["--set", "agents.attacker.policy=wizard"], "agents[1].policy: expected one of"),
    (RUN + ["--set", "run.sample_interval_s=0"], "run.sample_interval_s: expected a value >= 1"),
    (RUN + ["--set", "mechanism.cost_weight=-1"], "mechanism.cost_weight: expected a value >= 0"),
    (
        RUN + ["--set", "learner.params.alpha=-1"],
        "params.alpha: expected a finite number > 0, got -1",
    ),
    (
        RUN + ["--set", "learner.params.alpha=inf"],
        "params.alpha: expected a finite number > 0, got inf",
    ),
    (RUN + ["--set", "data.noise=nan"], "data.noise: expected a finite number, got nan"),
    (
        RUN + ["--set", "mechanism.kind=prediction_market", "--set", f"mechanism.bounty={2**63}"],
        "mechanism.bounty: expected a value <= 9223372036854775807",
    ),
    (RUN + ["--out", "/proc/no/such/folder"], "--out: cannot create '/proc/no/such/folder'"),
    (RUN + ["--set", "learner.params.random_state=-3"], "params.random_state: expected an integer"),
    (RUN + ["--set", "learner.params.foo=1"], "params: unknown parameter(s) ['foo']"),
    (RUN + ["--set", "nothing.here=1"], "nothing.here: names no scenario field"),
    # true/false is no number (pydantic would read 1 or 0: one agent, a whole split)
    (
        RUN + ["--set", "agents.honest.count=true"],
        "agents[0].count: expected an integer, got 'true'",  # (its bound is >= 1)
    ),
    (
        RUN + ["--set", "data.init_train_portion=true"],
        "init_train_portion: expected a number, got 'true'",
    ),
    (RUN + ["--set", "learner.params.alpha=false"], "params.alpha: expected a number"),
    # every test piece needs a row (3000 in 3000 leaves one empty: the bounds round down)
    (
        RUN
        + ["--set", "mechanism.kind=prediction_market", "--set", "mechanism.num_test_pieces=3000"],
        "mechanism.num_test_pieces: 3000 pieces of the 3000-row test set leave a piece empty",
    ),
    (["data", "quickstart", "--set", "n_rows=100000000"], "data.n_rows: 100,000,000 rows"),
    (["data", "quickstart", "--learner", "bogus"], "--learner: expected one of"),
    (["data", "breast_cancer", "--set", "test_rows=0"], "test_rows: expected a value >= 1"),
    (RUN + ["--out", ""], "'--out': expected a folder, got an empty value"),
    (["sweep", SWEEP, "--out", " "], "'--out': expected a folder, got an empty value"),
    (["viz", "--port", "99999"], "'--port'"),
    (["viz", "--port", "0"], "'--port'"),
    (["sweep", SWEEP, "--workers", "0", "--out", "unused"], "'--workers'"),
    (["replay", ROOT / "tests/conformance/drt_solidity.json", "--max-shown", "-1"], "--max-shown"),
    (["frontier", GAME, "--param", "agents.honest.start_balance", "--range", "5", "1"], "LO < HI"),
    (["frontier", GAME, "--param", "x", "--range", "1", "5", "--iterations", "0"], "--iterations"),
    (["gas", "--gas-price-gwei", "-1"], "values >= 0 expected"),
    (["gas", "--gas-price-gwei", "nan"], "finite values >= 0 expected, got nan"),
    (["gas", "--schedule", ROOT / "pyproject.toml"], "not a readable gas-schedule file"),
    (["gas", "--out", ROOT / "scenarios"], "is a folder (expected a JSON file's path)"),
    (["gas", "--out", ROOT / "README.md" / "g.json"], "README.md is not a folder (expected"),
    (["gas", "--out", ROOT / "no-such" / "g.json"], "no-such (expected a JSON file's path)"),
    (
        [
            "frontier",
            GAME,
            "--param",
            "mechanism.cost_weight",
            "--range",
            "0",
            "1e308",
            "--integer",
        ],
        "with --integer, values within 64 bits expected",
    ),
    (["run", "no_such_scenario"], "no_such_scenario: no such scenario file"),
    (["sweep", "no_such_sweep", "--out", "unused"], "no_such_sweep: no such sweep file"),
]


def _id(args: list) -> str:
    return " ".join(Path(a).name if isinstance(a, Path) else a for a in args)


@pytest.mark.parametrize("args, says", BAD, ids=[_id(a) for a, _ in BAD])
def test_bad_values_get_one_line_and_exit_2(cli, args, says):
    r = cli(*args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0] and lines[0].startswith("sum-abm: "), r.stderr
    assert "Traceback" not in r.stderr + r.stdout


def test_a_mistyped_sweep_file_is_refused_before_the_ray_helper_starts(cli, monkeypatch, tmp_path):
    # The helper process (it imports Ray on another core) starts only for a file that exists.
    import sum_abm.sweeps.executors as executors

    started = []
    monkeypatch.setattr(executors, "prepared_auto", lambda *a: started.append(a))
    r = cli("sweep", tmp_path / "no_such.toml", "--out", tmp_path / "out")
    assert r.returncode == 2 and "no such sweep file" in r.stderr and started == []
    assert not (tmp_path / "out").exists()
    bad = _sweep_with(tmp_path, "replications = 2", "replications = 0")
    r = cli("sweep", bad, "--out", tmp_path / "out")
    assert r.returncode == 2 and "replications: expected a value >= 1" in r.stderr
    assert started == [(None, None, None)]  # an existing file: the helper starts at once


@pytest.mark.parametrize(
    "file, old, new, says",
    [
        ("game", "replications = 2", "replications = 0", "replications: expected a value >= 1"),
        ("game", "seed = 3", "seed = -3", "seed: expected a value >= 0, got -3"),
        ("sweep", "replications = 2", "replications = 0", "replications: expected a value >= 1"),
        ("sweep", "seed = 7", "seed = -1", "seed: expected a value >= 0, got -1"),
        ("sweep", "replications = 2", "replications = 10000000", "expected a value <= 100000"),
        ("sweep", "[1, 3, 9]", "[1, 3, 1]", "cost_weight: expected distinct values"),
        ("sweep", "[1, 3, 9]", f"[1, 3, {2**64}]", "expected an integer that fits in 64 bits"),
        ("sweep", "replications = 2", "replications = true", "expected an integer, got 'true'"),
        ("game", "replications = 2", "replications = true", "expected an integer, got 'true'"),
        (
            "sweep",
            '"data.n_rows" = [1600]\n"run.max_time_s" = [3456000]',
            '"data.n_rows" = [1600, 1600]\n"run.max_time_s" = [3456000, 3456000]',
            "zip: expected distinct rows",
        ),
    ],
)
def test_bad_values_in_game_and_sweep_files(cli, tmp_path, file, old, new, says):
    f = (_game_with if file == "game" else _sweep_with)(tmp_path, old, new)
    r = cli("validate", f)
    assert r.returncode == 2 and says in r.stderr and len(r.stderr.strip().splitlines()) == 1


PM_SMALL = ROOT / "scenarios" / "games" / "pm_small.toml"


@pytest.mark.parametrize(
    "base, point, says",
    [
        (QUICKSTART, '[zip]\n"data.n_features" = [1000, 2]', "data.n_features = 2}: quickstart:"),
        (  # one initial row: one class, which scikit-learn's fit refuses
            QUICKSTART,
            '[grid]\n"data.init_train_rows" = [50, 1]\n"learner.kind" = ["sgd_perceptron"]',
            "the initial model cannot be fitted on 1 rows",
        ),
        (
            PM_SMALL,  # 400 test rows; 400 pieces leave one empty (the bounds round down)
            '[grid]\n"mechanism.num_test_pieces" = [10, 400]',
            "num_test_pieces: 400 pieces of the 400-row test set leave a piece empty",
        ),
    ],
)
def test_a_sweep_point_the_data_refuses_is_refused_before_any_run(cli, tmp_path, base, point, says):
    # What only the data tells (the generator's vocabulary; a row per test piece) used to pass
    # the sweep's check and fail every run of that point (exit 1).
    f = tmp_path / "s.toml"
    f.write_text(f'name = "s"\nbase = "{base}"\nreplications = 1\n{point}\n')
    assert cli("validate", f).returncode == 0  # each value is valid on its own
    r = cli("sweep", f, "--out", tmp_path / "out", "--serial")
    assert r.returncode == 2, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"sum-abm: {f}: the point {{") and says in line, r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "out").exists()
    # `validate --data` says the same, without running anything
    v = cli("validate", "--data", f)
    assert v.returncode == 2 and v.stdout == "" and v.stderr.strip().splitlines() == [line]


def test_a_game_the_data_refuses_prints_one_line_and_no_bar(cli, tmp_path):
    # The data check runs inside the game's runner; the progress bar used to be drawn (0/?) first.
    (tmp_path / "pm_small.toml").write_text(
        PM_SMALL.read_text().replace("num_test_pieces = 10", "num_test_pieces = 400")
    )
    src = ROOT / "scenarios" / "games" / "pm_flippers_corrected_group_true.toml"
    f = tmp_path / "game.toml"
    f.write_text(src.read_text().replace('"pm_small.toml"', f'"{tmp_path / "pm_small.toml"}"'))
    r = cli("game", f, "--out", tmp_path / "out")
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    (line,) = r.stderr.strip().splitlines()
    assert "400 pieces of the 400-row test set leave a piece empty" in line


def test_validate_data_checks_each_file_against_its_data_as_a_run_would(cli, tmp_path):
    # Without --data only the file is read: a label column missing from the CSV, or a test set
    # too small for a designer's pieces, passed `validate` and failed the run.
    (tmp_path / "rows.csv").write_text(
        "a,b,label\n" + "".join(f"{i},{i % 3},{i % 2}\n" for i in range(40))
    )
    scen = tmp_path / "csv.toml"
    scen.write_text(
        f'name = "csvtest"\n[data]\nkind = "csv"\npath = "{tmp_path / "rows.csv"}"\n'
        'label_column = "target"\n'
        '[learner]\nkind = "perceptron"\n[mechanism]\nkind = "deposit_refund_take"\n'
        '[[agents]]\nname = "h"\npolicy = "honest"\ncount = 2\n'
    )
    assert cli("validate", scen).returncode == 0
    r = cli("validate", "--data", scen)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        f"sum-abm: {scen}: csvtest: data.label_column: no column 'target' in rows.csv "
        "(columns: ['a', 'b', 'label'])"
    ]
    scen.write_text(scen.read_text().replace('"target"', '"label"'))
    ok = cli("validate", "--data", scen, QUICKSTART)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines() == [
        f"{scen}: ok (deposit_refund_take, 1 groups); data checked",
        f"{QUICKSTART}: ok (deposit_refund_take, 2 groups); data checked",
    ]
    # a game: a designer strategy that asks pm_small's 400-row test set for 400 pieces
    game = tmp_path / "g.toml"
    game.write_text(
        f'name = "g"\nbase = "{PM_SMALL}"\nreplications = 1\npayoff = "roi"\n'
        '[[roles]]\nname = "designer"\nkind = "designer"\npayoff = "accuracy_final"\n'
        'strategies = [\n  { name = "few", set = { "mechanism.num_test_pieces" = 10 } },\n'
        '  { name = "many", set = { "mechanism.num_test_pieces" = 400 } },\n]\n'
        '[[roles]]\nname = "bad"\ngroup = "Bad1"\n'
        'strategies = [{ name = "flip", policy = "reference" }]\n'
    )
    assert cli("validate", game).returncode == 0
    g = cli("validate", "--data", game)
    assert g.returncode == 2 and g.stdout == "", g.stderr
    (line,) = g.stderr.strip().splitlines()
    assert line.startswith(f"sum-abm: {game}: the point {{")
    assert "num_test_pieces: 400 pieces of the 400-row test set leave a piece empty" in line


def test_run_refuses_what_the_data_cannot_give_and_a_sweep_folder_before_any_output(
    cli, tmp_path, monkeypatch
):
    """A targeted attacker's class the data lacks never finds a row to poison (it ran as a
    reporter only, as an attacked run); a sweep's folder would mix a run's files with its parts.
    Both refused in one line, with no folder made."""
    monkeypatch.chdir(tmp_path)
    bad = ["--set", "agents.attacker.policy=targeted", "--set", "agents.attacker.target_class=2"]
    r = cli("run", "quickstart", *bad)
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr.strip() == (
        "sum-abm: quickstart: agents[1].target_class: expected a class of the data (0..1), got 2"
    )
    assert not (tmp_path / "runs").exists()
    scen = tmp_path / "t.toml"
    scen.write_text(
        QUICKSTART.read_text().replace(
            'policy = "label_flip"', 'policy = "targeted"\ntarget_class = 2'
        )
    )
    assert cli("validate", scen).returncode == 0  # the file alone is fine
    v = cli("validate", "--data", scen)
    assert v.returncode == 2 and "target_class: expected a class of the data" in v.stderr
    for sub in ("runs", "agents"):
        (tmp_path / "sw" / sub).mkdir(parents=True)
    r = cli("run", "quickstart", "--out", tmp_path / "sw")
    assert r.returncode == 2 and "holds a sweep's results" in r.stderr
    assert sorted(p.name for p in (tmp_path / "sw").iterdir()) == ["agents", "runs"]
    # a folder holding the default runs/ (the repository after the first command) is no sweep
    r = cli("run", "quickstart", "--out", tmp_path, "--no-baseline", "--no-report")
    assert r.returncode == 0 and (tmp_path / "summary.parquet").exists(), r.stderr


def test_validate_reads_design_files_and_bundled_names(cli, tmp_path):
    """Every bundled file validates, design files included (they were read as sweeps: "budget:
    unknown key"), by path or by the name the other commands take; a broken design answers with
    the design's own error."""
    files = sorted((ROOT / "scenarios").glob("*.toml")) + sorted(
        (ROOT / "scenarios").glob("*/*.toml")
    )
    r = cli("validate", *files)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == len(files)
    design = ROOT / "scenarios" / "designs" / "quickstart_design.toml"
    assert f"{design}: ok (design of ../quickstart.toml" in r.stdout
    by_name = cli(
        "validate", "quickstart", "quickstart_sweep", "quickstart_game", "quickstart_design"
    )
    assert by_name.returncode == 0, by_name.stderr
    assert [line.split(": ok")[0].rsplit("/", 1)[1] for line in by_name.stdout.splitlines()] == [
        "quickstart.toml",
        "quickstart_sweep.toml",
        "quickstart_game.toml",
        "quickstart_design.toml",
    ]
    bad = tmp_path / "d.toml"
    bad.write_text(
        design.read_text()
        .replace(
            'base = "../quickstart.toml"', f'base = "{ROOT / "scenarios" / "quickstart.toml"}"'
        )
        .replace("replications = 3", "replications = 1")
    )
    r = cli("validate", bad)
    assert r.returncode == 2 and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert f"{bad}" in line and "replications" in line
    r = cli("validate", "no_such_thing")
    assert r.returncode == 2 and "no bundled scenario, sweep, game or design" in r.stderr


@pytest.mark.parametrize(
    "bundled, drop, says",
    [
        ("sweeps/quickstart_sweep.toml", "base", "base: required field is missing"),
        ("games/quickstart_game.toml", "roles", "roles: required field is missing"),
        ("designs/quickstart_design.toml", "objectives", "objectives: required field is missing"),
    ],
)
def test_validate_tells_a_file_what_it_lacks(cli, tmp_path, bundled, drop, says):
    """A sweep file without its base was checked as a scenario ("agents: required field is
    missing"), a game without roles as a sweep: each kind is told by the keys only it has."""
    import tomllib

    src = ROOT / "scenarios" / bundled
    data = tomllib.loads(src.read_text())
    data["base"] = str(src.parent / data["base"])
    del data[drop]
    f = tmp_path / "f.toml"
    f.write_text(_toml(data))
    r = cli("validate", f)
    assert r.returncode == 2, r.stdout
    (line,) = r.stderr.strip().splitlines()
    assert says in line, line


def test_viz_checks_the_scenario_against_its_data_before_the_server_starts(cli, tmp_path):
    # 400 pieces of pm_small's 400-row test set: the market would have failed at its end, in
    # the browser, instead of one line here.
    f = tmp_path / "pm.toml"
    f.write_text(PM_SMALL.read_text().replace("num_test_pieces = 10", "num_test_pieces = 400"))
    import socket

    with socket.socket() as busy:  # a port in use: were the data not checked first, that says so
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = cli("viz", "--scenario", f, "--port", busy.getsockname()[1])
    assert r.returncode == 2 and r.stdout == "", r.stdout
    assert r.stderr.strip().splitlines() == [
        "sum-abm: pm_small: mechanism.num_test_pieces: 400 pieces of the 400-row test set leave "
        "a piece empty, which can never be revealed; expected at most 399"
    ]


def test_a_sweep_expands_a_point_drawn_twice_once(tmp_path):
    from sum_abm.sweeps import load_sweep_file

    f = _sweep_with(
        tmp_path,
        "[zip]",
        '[random]\ncount = 3\n[random.params]\n"agents.honest.count" = { dist = "choice", values = [2] }\n[zip]',
    )
    sw = load_sweep_file(f)
    assert len(sw.points()) == 12 and len(sw.runs) == 24  # 3 draws of one value: one point
    assert len({r.run_id for r in sw.runs}) == 24


def test_a_real_process_exits_2_with_one_line_and_no_traceback():
    """The console script itself (what only a real process shows: its exit status and stderr)."""
    r = subprocess.run(
        [sys.executable, "-c", "from sum_abm.cli import main; main()", "run", "quickstart"]
        + ["--seed", "-5", "--no-report"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == "sum-abm: --seed: seed: expected a value >= 0, got -5"


def _console(prelude: str, *args: str) -> subprocess.CompletedProcess:
    """``sum-abm ARGS`` as the console script runs it, after ``prelude`` (Python) in its process."""
    code = f"{prelude}\nfrom sum_abm.cli import console\nconsole()"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # pipes buffer output
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, env=env
    )


def test_the_console_script_leaves_after_its_exit_handlers_with_the_commands_status():
    """``sum-abm`` skips the interpreter's teardown, not what the process owes: piped output is
    complete, exit handlers run after the command, the exit status and the one-line error are
    the command's, and a thread still running is waited for as usual."""
    bye = "import atexit\natexit.register(lambda: print('exit handler ran'))"
    ok = _console(bye, "scenarios")
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[-1] == "exit handler ran" and any(ln.startswith("quickstart ") for ln in lines)
    bad = _console(bye, "run", str(ROOT / "no_such.toml"))
    assert bad.returncode == 2 and bad.stdout.strip() == "exit handler ran"
    assert bad.stderr.count("\n") == 1 and "no such scenario file" in bad.stderr
    # a thread that is still running when the command has finished (it starts its last 0.3 s
    # once exit_now is entered): the process must wait for it
    thread = (
        "import threading, time\nimport sum_abm.cli as c\n"
        "entered, exit_now = threading.Event(), c.exit_now\n"
        "c.exit_now = lambda code: (entered.set(), exit_now(code))\n"
        "threading.Thread(\n"
        "    target=lambda: (entered.wait(), time.sleep(0.3), print('thread done'))\n"
        ").start()"
    )
    waited = _console(thread, "scenarios")
    assert waited.returncode == 0 and waited.stdout.splitlines()[-1] == "thread done"


def _toml(d: dict, prefix: str = "") -> str:
    """``d`` as TOML (tables and arrays of tables after the plain keys; enough for these files)."""
    plain, tables, arrays = [], [], []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            plain.append(f"{json.dumps(k)} = {toml_value(v)}")  # (the project's own writer)
    for k, v in tables:
        plain += [f"\n[{prefix}{json.dumps(k)}]", _toml(v, f"{prefix}{json.dumps(k)}.")]
    for k, v in arrays:
        for x in v:
            plain += [f"\n[[{prefix}{json.dumps(k)}]]", _toml(x, f"{prefix}{json.dumps(k)}.")]
    return "\n".join(plain)


def _leaves(d: object, at: tuple = ()) -> list[tuple]:
    out = []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
    for k, v in items:
        out.append((*at, k))
        out += _leaves(v, (*at, k))
    return out


BUNDLED_FILES = sorted((ROOT / "scenarios").rglob("*.toml"))
ODD_VALUES = [-1, 0, 2**63, 1.5, -0.5, 1e308, math.nan, math.inf, "", "x", True, [], {}, [1, "a"]]


# (the cli fixture holds no state: one for every example is fine)
@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    st.sampled_from(BUNDLED_FILES),
    st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from(ODD_VALUES), st.booleans()),
        min_size=1,
        max_size=3,
    ),
)
def test_a_mutated_bundled_file_is_valid_or_gets_one_line_and_exit_2(cli, path, edits):
    # What a user's edit of a bundled file can look like: a value of the wrong kind or range, or
    # a key deleted, anywhere. `validate` must accept the file or say what is wrong in one line.
    data = tomllib.loads(path.read_text())
    for k in ("base", "scenario"):  # sweep and game files name their base relative to themselves
        if isinstance(data.get(k), str) and (path.parent / data[k]).exists():
            data[k] = str((path.parent / data[k]).resolve())
    for pick, value, delete in edits:
        spots = _leaves(data)
        where = spots[pick % len(spots)]
        parent = data
        for k in where[:-1]:
            parent = parent[k]
        if delete:
            del parent[where[-1]]
        else:
            parent[where[-1]] = copy.deepcopy(value)  # (the pool's lists are shared)
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / path.name
        f.write_text(_toml(data))
        r = cli("validate", f)
    assert r.returncode in (0, 2), (r.stdout, r.stderr)
    if r.returncode == 2:
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("sum-abm: "), r.stderr


def test_a_folder_named_like_a_bundled_file_does_not_hide_it(cli, tmp_path, monkeypatch):
    """`sum-abm run quickstart --out quickstart` leaves a folder named quickstart in the working
    folder; the bundled names still mean the bundled files (they read "is a directory")."""
    monkeypatch.chdir(tmp_path)
    for name in ("quickstart", "quickstart_sweep"):
        (tmp_path / name).mkdir()
    r = cli("validate", "quickstart", "quickstart_sweep")
    assert r.returncode == 0 and r.stdout.count(": ok") == 2, r.stderr
    from sum_abm.bundled import resolve, resolve_any

    assert resolve("quickstart").is_file() and resolve_any("quickstart_sweep").is_file()
    (tmp_path / "mine").mkdir()  # a folder with no bundled namesake is what it is
    assert resolve("mine") == Path("mine")
    assert "is a directory" in cli("validate", "mine").stderr


def test_scenarios_lists_every_bundled_name_a_command_takes(cli):
    """`sum-abm scenarios`: the scenarios, then the sweep, game and design files by the names their
    commands take (a wheel user has no folder to look in); a base scenario kept beside the games
    (games/pm_small.toml) is not offered as a game."""
    r = cli("scenarios")
    assert r.returncode == 0
    sections = r.stdout.split("\n\n")
    names = [
        [ln.split()[0] for ln in s.splitlines() if not ln.endswith("NAME):")] for s in sections
    ]
    assert names[0] == [p.stem for p in sorted((ROOT / "scenarios").glob("*.toml"))]
    for kind, got in zip(("sweep", "game", "design"), names[1:], strict=True):
        assert f"{kind} files (sum-abm {kind} NAME):" in r.stdout
        shipped = sorted(p.stem for p in (ROOT / "scenarios" / f"{kind}s").glob("*.toml"))
        assert got == [n for n in shipped if n != "pm_small"], kind
    assert "quickstart_game                    in the quick-start DRT market, is honest" in r.stdout


def test_the_chain_shorthand_combines_with_chain_fields():
    sc = load_scenario(ROOT / "scenarios" / "quickstart.toml")
    for over in (
        {"chain": "evm", "chain.gas_price": 1e-05},
        {"chain.gas_price": 1e-05, "chain": "evm"},
    ):
        c = sc.with_overrides(over).chain
        assert (c.backend, c.gas_price) == ("evm", 1e-05)


def test_a_points_market_is_summed_up_by_its_points(cli, tmp_path):
    # Points pays points, not money: the table showed four columns of zeros and no points
    r = cli("run", "points", "--no-report", "--no-baseline", "--out", tmp_path / "p")
    assert r.returncode == 0, r.stderr
    agents = pl.read_parquet(tmp_path / "p" / "agents.parquet")
    header = next(line for line in r.stdout.splitlines() if "group" in line)
    assert "points" in header and "profit" not in header
    for g, pts in agents.group_by("group").agg(pl.col("points").sum()).iter_rows():
        row = next(line for line in r.stdout.splitlines() if line.startswith(f"│ {g} "))
        assert row.rstrip(" │").endswith(f"{pts:,}"), row
    assert agents["points"].sum() > 0


def test_a_prediction_market_that_did_not_finish_is_said_so(cli, tmp_path):
    # The reward phase cut at 100 calls: the run ends with every stake locked, which read as
    # the contributors' losses with no word of why.
    args = ["run", "quickstart", "--set", "mechanism.kind=prediction_market"]
    args += ["--set", "data.n_rows=1500", "--no-baseline", "--no-report"]
    cut = cli(*args, "--set", "mechanism.max_process_calls=100", "--out", tmp_path / "cut")
    assert cut.returncode == 0, cut.stderr
    assert (
        "note: the prediction market did not finish (state REWARD): the reward phase stopped at "
        "mechanism.max_process_calls = 100" in cut.stdout
    )
    whole = cli(*args, "--out", tmp_path / "whole")
    assert whole.returncode == 0 and "did not finish" not in whole.stdout
    # no stake at all (the minimum stake above every balance): nothing locked, nothing to process
    none = cli(*args, "--set", "mechanism.min_stake=100000", "--out", tmp_path / "none")
    assert none.returncode == 0, none.stderr
    assert "no contribution was made, so its reward phase had nothing to process" in none.stdout
    assert "stakes stayed locked" not in none.stdout
