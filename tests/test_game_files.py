"""Game files: the schema (roles over one or several agent groups, designer roles paid in
accuracy, strategy sets, replications, payoffs), one-line errors naming file and field, and the
payoff table built from injected run rows."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from sum_abm import schema
from sum_abm.errors import InputError
from sum_abm.game.empirical import load_game, payoff_table, profiles_to_run, to_game
from sum_abm.game.equilibria import best_deviation

ROOT = Path(__file__).resolve().parents[1]

BASE = (
    (ROOT / "scenarios/quickstart.toml").read_text()
    + """
[[agents]]
name = "late"
policy = "honest"
count = 2
start_balance = 5000
mean_wait_s = 7200
"""
)

GAME = """
name = "g"
base = "base.toml"
replications = 2
payoff = "profit"

[[roles]]
name = "contributors"
groups = ["honest", "late"]
strategies = [
  { name = "honest", policy = "honest" },
  { name = "careless", policy = "careless", params = { mistake_prob = 0.3 } },
]

[[roles]]
name = "deviant"
group = "attacker"
payoff = "roi"
strategies = [
  { name = "honest", policy = "honest" },
  { name = "label_flip", policy = "label_flip" },
]

[[roles]]
name = "designer"
kind = "designer"
strategies = [
  { name = "w1", set = { "mechanism.cost_weight" = 1 } },
  { name = "w20", set = { "mechanism.cost_weight" = 20, "mechanism.refund_time_s" = 43200 } },
]
"""


def write(tmp_path: Path, game: str = GAME, base: str = BASE) -> Path:
    (tmp_path / "base.toml").write_text(base)
    f = tmp_path / "g.toml"
    f.write_text(game)
    return f


def test_roles_groups_designer_and_overrides(tmp_path):
    g = load_game(write(tmp_path))
    assert g.roles == ["contributors", "deviant", "designer"]
    assert g.population(g.spec.roles[0]) == 4 + 2 and g.population(g.spec.roles[2]) == 0
    assert [g.spec.role_payoff(r) for r in g.spec.roles] == ["profit", "roi", "accuracy_final"]
    assert g.spec.attacker_role.name == "deviant"
    ov = g.profile_overrides((1, 0, 1))
    # both groups of the role play careless; their sizes, balances and timing are kept
    assert ov["agents.honest"]["policy"] == ov["agents.late"]["policy"] == "careless"
    assert ov["agents.late"]["count"] == 2 and ov["agents.late"]["start_balance"] == 5000
    assert ov["agents.late"]["mean_wait_s"] == 7200 and ov["agents.late"]["mistake_prob"] == 0.3
    assert ov["agents.attacker"]["policy"] == "honest"
    assert ov["mechanism.cost_weight"] == 20 and ov["mechanism.refund_time_s"] == 43200
    sc = g.base.with_overrides(ov)
    assert sc.mechanism.cost_weight == 20 and [a.policy for a in sc.agents] == [
        "careless",
        "honest",
        "careless",
    ]
    profiles, sampled = profiles_to_run(g)
    assert len(profiles) == 8 and not sampled and profiles[0] == (0, 0, 0)


def test_large_tables_sample_deviations_from_the_reference(tmp_path):
    g = load_game(
        write(tmp_path, GAME.replace('payoff = "profit"', 'payoff = "profit"\nmax_profiles = 7'))
    )
    profiles, sampled = profiles_to_run(g)
    assert sampled and profiles == [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)]


def test_payoff_table_from_injected_runs(tmp_path):
    g = load_game(write(tmp_path))
    profiles = [(0, 0, 0), (0, 1, 0)]
    run_profile = {"a": (0, 0, 0), "b": (0, 0, 0), "c": (0, 1, 0)}
    rows = []
    # run a: the contributors' 6 agents earn 10, 10, 10, 10 (honest) and 40, 40 (late): 20 per agent
    for rid, honest, late, dev_roi in (
        ("a", 10, 40, -0.5),
        ("b", 16, 16, -0.1),
        ("c", 0, 30, 0.25),
    ):
        rows += [{"run_id": rid, "group": "honest", "profit": honest, "roi": 0.0}] * 4
        rows += [{"run_id": rid, "group": "late", "profit": late, "roi": 0.0}] * 2
        rows += [{"run_id": rid, "group": "attacker", "profit": 0, "roi": dev_roi}]
    agents = schema.frame("sweep_agents", rows)
    runs = schema.frame(
        "sweep_runs", {"run_id": ["a", "b", "c"], "accuracy_final": [0.8, 0.9, 0.6]}
    )
    t = payoff_table(g, profiles, agents, run_profile, runs)
    assert set(t.columns) >= {"profile", "role", "strategy", "mean", "stderr", "n"}

    def cell(prof, role):
        return t.filter((pl.col("profile") == prof) & (pl.col("role") == role)).row(0, named=True)

    ref = "contributors=honest | deviant=honest | designer=w1"
    c = cell(ref, "contributors")
    assert c["mean"] == pytest.approx(18.0) and c["n"] == 2  # runs: 20 and 16 per agent
    assert c["stderr"] == pytest.approx(2.0)  # sd of (20, 16) = 2.828 / sqrt 2
    assert (
        cell(ref, "deviant")["mean"] == pytest.approx(-0.3)
        and cell(ref, "deviant")["payoff"] == "roi"
    )
    d = cell(ref, "designer")
    assert d["mean"] == pytest.approx(0.85) and d["payoff"] == "accuracy_final"
    flip = "contributors=honest | deviant=label_flip | designer=w1"
    assert (
        cell(flip, "contributors")["mean"] == pytest.approx(10.0)
        and cell(flip, "deviant")["n"] == 1
    )
    game = to_game(g, t)
    dev = best_deviation(
        game, (0, 0, 0)
    )  # the only measured deviation: the deviant flips, ROI -0.3 -> 0.25
    assert (game.roles[dev.role], dev.gain) == ("deviant", pytest.approx(0.55))


@pytest.mark.parametrize(
    "edit, expected",
    [
        (('name = "g"', 'name = "g"\ncolour = "red"'), "g.toml: colour: unknown key"),
        (('payoff = "roi"', 'payoff = "roi"\nweight = 2'), "g.toml: roles[1].weight: unknown key"),
        (
            ("replications = 2", "replications = 0"),
            "g.toml: replications: expected a value >= 1, got 0",
        ),
        (
            ('group = "attacker"', 'group = "attacker"\ngroups = ["late"]'),
            "g.toml: roles[1]: group: expected the agent group",
        ),
        (
            ('group = "attacker"', 'group = "nobody"'),
            "g.toml: roles.deviant.group: no agent group 'nobody'",
        ),
        (
            ('group = "attacker"', 'group = "late"'),
            "g.toml: roles: each agent group belongs to one role, got ['late']",
        ),
        (
            ('payoff = "roi"', 'payoff = "accuracy_final"'),
            "g.toml: roles[1]: payoff: expected one of ('profit', 'roi') for an agents role",
        ),
        (
            ('{ name = "w1", set', '{ name = "w1", policy = "honest", set'),
            "g.toml: roles[2]: strategies.w1: a designer strategy gives 'set'",
        ),
        (
            ('"mechanism.cost_weight" = 1 }', '"mechanism.cost_wait" = 1 }'),
            "g.toml: roles.designer.strategies.w1: mechanism.cost_wait: names no scenario field",
        ),
        (
            ('{ name = "label_flip"', '{ name = "label|flip"'),
            "g.toml: roles[1].strategies[1].name: expected a non-empty name without",
        ),
        (
            (
                '{ name = "label_flip", policy = "label_flip" }',
                '{ name = "honest", policy = "label_flip" }',
            ),
            "roles[1]: strategies: expected unique names",
        ),
        (('policy = "label_flip"', 'policy = "wizard"'), "policy: expected one of"),
        (
            ('base = "base.toml"', 'base = "nowhere.toml"'),
            "g.toml: base: no scenario file 'nowhere.toml' (relative to the game file)",
        ),
        (
            ('kind = "designer"', 'kind = "designer"\nsymmetric = true'),
            "roles[2]: symmetric: a designer role is one player",
        ),
    ],
)
def test_bad_game_files_one_line(tmp_path, edit, expected):
    assert edit[0] in GAME
    f = write(tmp_path, GAME.replace(*edit, 1))
    with pytest.raises(InputError) as exc:
        load_game(f)
    msg = str(exc.value)
    assert expected in msg and "\n" not in msg and str(f) in msg


def test_cli_bad_game_file_exit_2(tmp_path, cli):
    f = write(tmp_path, GAME.replace('payoff = "profit"', 'payoff = "fun"'))
    r = cli("game", f, "--out", tmp_path / "o")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "g.toml: payoff: expected one of" in r.stderr and not (tmp_path / "o").exists()


def test_bundled_games_load():
    for f in sorted((ROOT / "scenarios/games").glob("*.toml")):
        text = f.read_text()
        if "[[roles]]" not in text:
            continue  # a base scenario of the games, not a game
        g = load_game(f)
        assert g.spec.roles and all(r.strategies for r in g.spec.roles), f


def test_game_level_set_changes_the_base(tmp_path):
    g = load_game(
        write(
            tmp_path,
            GAME.replace(
                'payoff = "profit"',
                'payoff = "profit"\nset = { "learner.kind" = "multinomial_nb", "chain.gas_price" = 2 }',
            ),
        )
    )
    assert g.base.learner.kind == "multinomial_nb" and g.base.chain.gas_price == 2
    with pytest.raises(
        InputError, match=r"^.*g\.toml: set: learner\.kind: expected one of .*, got 'nb'$"
    ):
        load_game(
            write(
                tmp_path,
                GAME.replace(
                    'payoff = "profit"', 'payoff = "profit"\nset = { "learner.kind" = "nb" }'
                ),
            )
        )


def test_max_profiles_below_the_sampled_start_is_refused(tmp_path, cli):
    """max_profiles caps the runs: a sampled table needs at least the reference profile and its
    unilateral deviations (4 here), so 3 is refused before any run."""
    f = write(tmp_path, GAME.replace('payoff = "profit"', 'payoff = "profit"\nmax_profiles = 3'))
    with pytest.raises(InputError, match=r"expected max_profiles >= 4, got 3"):
        profiles_to_run(load_game(f))
    r = cli("game", f, "--out", tmp_path / "o")
    assert r.returncode == 2 and "max_profiles >= 4" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
