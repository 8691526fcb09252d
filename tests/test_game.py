"""The empirical game end to end on the bundled quick-start game, the frontier command, and bad
game files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from sum_abm.errors import InputError
from sum_abm.game.empirical import load_game

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from sum_abm.cli import main; main()"]


def test_quickstart_game_end_to_end(tmp_path):
    r = subprocess.run(CLI + ["game", str(ROOT / "scenarios/games/quickstart_game.toml"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "contributors=honest | deviant=honest" in r.stdout and "an equilibrium" in r.stdout
    pay = pl.read_parquet(tmp_path / "payoffs.parquet")
    assert pay.height == 6 * 2 and set(pay.columns) >= {"profile", "role", "strategy", "mean", "stderr", "n"}
    assert (pay["n"] == 2).all()
    reg = pl.read_parquet(tmp_path / "regret.parquet")
    assert reg.height == 6 and (reg["regret"] >= 0).all()
    ans = json.loads((tmp_path / "answer.json").read_text())
    ref = reg.filter(pl.col("profile") == ans["reference_profile"])
    assert ref["regret"][0] == pytest.approx(max(0.0, ans["best_deviation"]["gain"]))
    assert (tmp_path / "game_report.html").stat().st_size > 100_000
    eq = pl.read_parquet(tmp_path / "equilibria.parquet")
    assert eq.height >= 1  # nashpy always finds at least one equilibrium of a 2-role game
    # payoffs are profit per agent of each role's group: rebuild one from the agents parts
    from sum_abm.sweeps import load_agents

    ag = load_agents(tmp_path / "sweep").collect()
    assert ag["run_id"].n_unique() == 12


def test_frontier_command(tmp_path):
    r = subprocess.run(CLI + ["frontier", str(ROOT / "scenarios/games/quickstart_game.toml"), "--param",
                              "agents.honest.start_balance", "--range", "1000", "40000", "--integer", "--iterations", "1",
                              "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    df = pl.read_parquet(tmp_path / "frontier.parquet")
    assert df.height == 1 and (tmp_path / "frontier_report.html").exists()
    assert ("crosses zero" in r.stdout) == bool(df["found"][0])


@pytest.mark.parametrize("edit, expected", [
    (("group = \"attacker\"", "group = \"nobody\""), "roles.deviant.group: no agent group 'nobody'"),
    (("policy = \"label_flip\"", "policy = \"wizard\""), "agents[1].policy: expected one of"),
    (("payoff = \"profit\"", "payoff = \"fun\""), "payoff"),
])
def test_bad_game_files(tmp_path, edit, expected):
    text = (ROOT / "scenarios/games/quickstart_game.toml").read_text().replace(*edit)
    text = text.replace('base = "../quickstart.toml"', f'base = "{ROOT / "scenarios/quickstart.toml"}"')
    f = tmp_path / "g.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_game(f)
    r = subprocess.run(CLI + ["game", str(f), "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_compositions_and_population_regret_by_hand():
    from sum_abm.game import population as pop

    assert pop.compositions(2, 2) == [(2, 0), (1, 1), (0, 2)]
    assert len(pop.compositions(4, 3)) == 15 and all(sum(c) == 4 for c in pop.compositions(4, 3))
    game = load_game(ROOT / "scenarios/games/population_game.toml")
    profs = pop.profiles(game)
    assert len(profs) == 5 * 2 and profs[0] == ((4, 0), 0)
    # inject payoffs: careless earns 10 more than honest whatever the counts; the deviant gets 0
    rows = []
    for i, (counts, dev) in enumerate(profs):
        for s, n in zip(("honest", "careless"), counts):
            if n:
                rows.append({"profile_id": i, "role": "contributors", "strategy": s, "mean": 10.0 * (s == "careless"),
                             "stderr": 0.0})
        rows.append({"profile_id": i, "role": "deviant", "strategy": ("honest", "label_flip")[dev], "mean": 0.0,
                     "stderr": 0.0})
    table = pl.DataFrame(rows)
    regs = {r["profile"]: r for r in pop.regrets(game, profs, table)}
    all_honest = regs[pop.label(game, profs[0])]
    assert all_honest["gain"] == pytest.approx(10.0) and all_honest["best_deviation_strategy"] == "honest -> careless"
    all_careless = regs[pop.label(game, ((0, 4), 0))]
    assert all_careless["regret"] == 0.0  # nobody gains by going back to honest


def test_population_game_end_to_end(tmp_path):
    r = subprocess.run(CLI + ["game", str(ROOT / "scenarios/games/population_game.toml"), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "contributors=4 honest | deviant=honest" in r.stdout
    pay = pl.read_parquet(tmp_path / "payoffs.parquet")
    # 10 profiles; the contributors' rows: one per strategy played (mixed counts have two)
    assert pay["profile_id"].n_unique() == 10 and (pay["n"] == 2).all()
    mixed = pay.filter((pl.col("role") == "contributors") & (pl.col("profile").str.contains("3 honest,1 careless")))
    assert set(mixed["strategy"]) == {"honest", "careless"} and set(mixed["count"]) == {3, 1}
