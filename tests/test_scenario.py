"""Scenario files: validation errors are one line naming file, field and expectation; overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from sum_abm.errors import InputError
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
QUICK = (ROOT / "scenarios" / "quickstart.toml").read_text()


@pytest.mark.parametrize(
    "change, expected",
    [
        (
            (
                "start_balance = 10000\nmean_wait_s = 3600",
                'start_balance = "abc"\nmean_wait_s = 3600',
            ),
            'agents[1].start_balance: expected an integer >= 0, got "abc" (in quotes: text)',
        ),
        (
            ("mean_wait_s = 3600", 'mean_wait_s = 3600\ndeposit = "abc"'),
            'agents[1].deposit: expected an integer >= 0, got "abc" (in quotes: text)',
        ),
        (("[chain]", "[chain]\nspeed = 1"), "chain.speed: unknown key"),
        (('policy = "label_flip"', 'policy = "wizard"'), "agents[1].policy: expected one of"),
        (
            ('semantics = "solidity"', 'semantics = "lenient"'),
            "mechanism.semantics: expected one of",
        ),
        (("count = 4", "count = 0"), "agents[0].count: expected a value >= 1, got 0"),
        # a wait below 1 s with no spread was redrawn for ever (int() of it is 0)
        (
            ("mean_wait_s = 3600", "mean_wait_s = 0.5"),
            "mean_wait_s: expected a value >= 1, got 0.5",
        ),
        # a quoted number is text: pydantic would read "4" as 4
        (("count = 4", 'count = "4"'), 'agents[0].count: expected an integer, got "4" (in q'),
        (
            ("cost_weight = 1", 'cost_weight = "1"'),
            'mechanism.cost_weight: expected an integer, got "1" (in quotes: text)',
        ),
        (("gas_price = 0", 'gas_price = "0"'), 'chain.gas_price: expected a number, got "0"'),
        # only true/false is a boolean: pydantic would read "off", "no" or 0 as false
        (
            ("count = 4", 'count = 4\nreport = "off"'),
            "agents[0].report: expected true or false, got 'off'",
        ),
        (
            ("count = 4", "count = 4\nattacker = 0"),
            "agents[0].attacker: expected true or false, got 0",
        ),
        (
            ("[run]", '[run]\nnaive_claims = "yes"'),
            "run.naive_claims: expected true or false, got 'yes'",
        ),
        # a targeted attacker examining 100 M rows per wake-up hung the run
        (
            ('policy = "label_flip"', 'policy = "targeted"\ncandidates = 100000000'),
            "agents[1].candidates: expected a value <= 10000, got 100000000",
        ),
    ],
)
def test_bad_fields_name_file_field_and_expectation(tmp_path, change, expected):
    f = tmp_path / "x.toml"
    f.write_text(QUICK.replace(*change))
    with pytest.raises(InputError) as err:
        load_scenario(f)
    assert str(err.value).startswith(f"{f}: ") and expected in str(err.value)


def test_overrides_by_dotted_path_index_and_group_name():
    s = load_scenario(
        ROOT / "scenarios" / "quickstart.toml",
        {"mechanism.cost_weight": 3, "agents.attacker.count": 2, "agents[0].start_balance": 7},
    )
    assert (
        s.mechanism.cost_weight == 3 and s.agents[1].count == 2 and s.agents[0].start_balance == 7
    )
    with pytest.raises(InputError, match="mechanism.speed: names no scenario field"):
        load_scenario(ROOT / "scenarios" / "quickstart.toml", {"mechanism.speed": 1})
    with pytest.raises(InputError, match=r"agents\[1\].flip_prob: expected a value <= 1"):
        load_scenario(ROOT / "scenarios" / "quickstart.toml", {"agents.1.flip_prob": 2.0})


def test_cli_bad_scenario_is_one_line_exit_2(tmp_path, cli):
    f = tmp_path / "x.toml"
    f.write_text(QUICK.replace("count = 4", "count = -3"))
    for args in (["validate", str(f)], ["run", str(f)], ["run", "no_such_scenario"]):
        r = cli(*args)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "count: expected a value >= 1, got -3" in r.stderr or "no_such" in args[1]


def test_a_name_with_a_path_in_it_is_refused(tmp_path, cli, monkeypatch):
    """The default output folder is runs/<name>-seed<N>: a shared scenario file must not be able
    to put a run's files elsewhere."""
    for bad in ("../../evil", "/tmp/absolute", "a\\b", "..", ""):
        with pytest.raises(InputError, match="name: expected a plain name"):
            load_scenario(ROOT / "scenarios" / "quickstart.toml", {"name": bad})
    assert (
        load_scenario(ROOT / "scenarios" / "quickstart.toml", {"name": "a b (2)"}).name == "a b (2)"
    )
    f = tmp_path / "deep" / "x.toml"
    f.parent.mkdir()
    f.write_text(QUICK.replace('name = "quickstart"', 'name = "../escaped"'))
    monkeypatch.chdir(f.parent)
    r = cli("run", f, "--no-baseline", "--no-report")
    assert r.returncode == 2 and "name: expected a plain name" in r.stderr
    assert not (tmp_path / "escaped-seed1").exists() and not (f.parent / "runs").exists()


def test_every_bundled_scenario_validates():
    files = sorted((ROOT / "scenarios").glob("*.toml"))
    assert len(files) >= 14
    for f in files:
        load_scenario(f)


def test_learner_params_are_checked():
    q = ROOT / "scenarios" / "quickstart.toml"
    with pytest.raises(InputError, match=r"learner: params: unknown parameter\(s\) \['foo'\]"):
        load_scenario(q, {"learner.params.foo": 1})
    with pytest.raises(InputError, match="params.alpha: expected a number, got 'x'"):
        load_scenario(q, {"learner.params.alpha": "x"})
    assert load_scenario(q, {"learner.params.alpha": 0.01}).learner.params == {"alpha": 0.01}


def test_learner_params_follow_the_learners_params_model():
    q = ROOT / "scenarios" / "quickstart.toml"
    over = {"learner.kind": "perceptron", "learner.params.integer_weights": 1}
    with pytest.raises(InputError, match="params.integer_weights: expected true or false, got 1"):
        load_scenario(q, over)
    with pytest.raises(
        InputError, match=r"expected some of \['learning_rate', 'integer_weights'\]"
    ):
        load_scenario(q, {"learner.kind": "perceptron", "learner.params.alpha": 1.0})


def test_a_dict_becomes_a_scenario_at_the_edge():
    import sum_abm

    with pytest.raises(InputError, match=r"^<scenario dict>: agents: expected at least 1 item"):
        sum_abm.run({"agents": []})
