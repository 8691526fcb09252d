"""The empirical game end to end on the bundled quick-start game, the frontier command, and bad
game files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sum_abm import schema
from sum_abm.errors import InputError
from sum_abm.game.empirical import load_game

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from sum_abm.cli import main; main()"]


def brute_force(u: dict[tuple[str, ...], list[float]], strategies: list[list[str]]):
    """Regret and best gain of every pure profile of a payoff table ``profile -> payoff per role``,
    by trying every unilateral deviation: ``{profile: (gain, regret)}``."""
    out = {}
    for prof, pay in u.items():
        gains = []
        for r, options in enumerate(strategies):
            for s in options:
                if s != prof[r]:
                    dev = prof[:r] + (s,) + prof[r + 1 :]
                    gains.append(u[dev][r] - pay[r])
        best = max(gains)
        out[prof] = (best, max(0.0, best))
    return out


@pytest.mark.slow
def test_quickstart_game_end_to_end(tmp_path):
    r = subprocess.run(
        CLI + ["game", str(ROOT / "scenarios/games/quickstart_game.toml"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    # The payoff table rebuilt from the runs' agents frames: profit per agent of each role's
    # group, averaged over the replications; a profile is the two groups' policies.
    from sum_abm.sweeps import load_agents

    ag = load_agents(tmp_path / "sweep").collect()
    assert ag["run_id"].n_unique() == 6 * 2
    per_run = ag.group_by("run_id", "group").agg(
        pl.col("policy").first(), pl.col("profit").mean().alias("u")
    )
    runs = per_run.pivot(on="group", index="run_id", values=["policy", "u"])
    table = runs.group_by("policy_honest", "policy_attacker").agg(
        pl.col("u_honest").mean(), pl.col("u_attacker").mean(), pl.len().alias("n")
    )
    assert (table["n"] == 2).all()
    u = {
        (row["policy_honest"], row["policy_attacker"]): [row["u_honest"], row["u_attacker"]]
        for row in table.iter_rows(named=True)
    }
    strategies = [["honest", "careless"], ["honest", "label_flip", "deposit_hunter"]]
    assert set(u) == {(c, d) for c in strategies[0] for d in strategies[1]}
    mine = brute_force(u, strategies)

    def key(label: str) -> tuple[str, str]:  # "contributors=honest | deviant=label_flip"
        parts = dict(p.strip().split("=") for p in label.split("|"))
        return parts["contributors"], parts["deviant"]

    pay = pl.read_parquet(tmp_path / "payoffs.parquet")
    for row in pay.iter_rows(named=True):
        assert row["mean"] == pytest.approx(u[key(row["profile"])][row["role"] == "deviant"])
    reg = pl.read_parquet(tmp_path / "regret.parquet")
    assert reg.height == 6
    for row in reg.iter_rows(named=True):
        gain, regret = mine[key(row["profile"])]
        assert row["gain"] == pytest.approx(gain) and row["regret"] == pytest.approx(regret)
    # the printed verdict on all-honest and the pure equilibria agree with the brute force
    ref_gain = mine[("honest", "honest")][0]
    verdict = "IS" if ref_gain <= 0 else "is NOT"
    assert f"contributors=honest | deviant=honest: {verdict} an equilibrium" in r.stdout
    pure = sorted(p for p, (_, regret) in mine.items() if regret == 0)
    line = next(x for x in r.stdout.splitlines() if x.startswith("pure equilibria:"))
    listed = [] if "none" in line else line.split(":", 1)[1].split(";")
    assert sorted(key(x) for x in listed) == pure
    ans = json.loads((tmp_path / "answer.json").read_text())
    assert ans["reference_is_equilibrium"] == (ref_gain <= 0)
    assert ans["best_deviation"]["gain"] == pytest.approx(ref_gain)
    assert (tmp_path / "game_report.html").stat().st_size > 100_000
    # every equilibrium listed is one of the rebuilt table: no pure strategy beats its mix
    eq = pl.read_parquet(tmp_path / "equilibria.parquet")
    assert eq.height >= 1  # a finite game has an equilibrium, and nashpy enumerates them
    tol = 1e-4 * max(abs(v) for pays in u.values() for v in pays)  # the mix is rounded to 1e-6
    for row in eq.iter_rows(named=True):
        mix = json.loads(row["mix"])
        p = [mix["contributors"], mix["deviant"]]
        for r in (0, 1):
            vs = {
                s: sum(q * u[(s, o) if r == 0 else (o, s)][r] for o, q in p[1 - r].items())
                for s in strategies[r]
            }
            assert max(vs.values()) - sum(p[r][s] * v for s, v in vs.items()) <= tol


@pytest.mark.slow
def test_frontier_command(tmp_path):
    r = subprocess.run(
        CLI
        + [
            "frontier",
            str(ROOT / "scenarios/games/quickstart_game.toml"),
            "--param",
            "agents.honest.start_balance",
            "--range",
            "1000",
            "40000",
            "--integer",
            "--iterations",
            "1",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    df = pl.read_parquet(tmp_path / "frontier.parquet")
    assert df.height == 1 and (tmp_path / "frontier_report.html").exists()
    assert ("crosses zero" in r.stdout) == bool(df["found"][0])


@pytest.mark.parametrize(
    "edit, expected",
    [
        (
            ('group = "attacker"', 'group = "nobody"'),
            "roles.deviant.group: no agent group 'nobody'",
        ),
        (('policy = "label_flip"', 'policy = "wizard"'), "agents[1].policy: expected one of"),
        (('payoff = "profit"', 'payoff = "fun"'), "payoff"),
    ],
)
def test_bad_game_files(tmp_path, edit, expected, cli):
    text = (ROOT / "scenarios/games/quickstart_game.toml").read_text().replace(*edit)
    text = text.replace(
        'base = "../quickstart.toml"', f'base = "{ROOT / "scenarios/quickstart.toml"}"'
    )
    f = tmp_path / "g.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        load_game(f)
    r = cli("game", f, "--out", tmp_path / "o")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_population_regret_by_hand():
    from sum_abm.game import population as pop

    game = load_game(ROOT / "scenarios/games/population_game.toml")
    profs = pop.profiles(game)
    assert len(profs) == 5 * 2 and profs[0] == ((4, 0), 0)
    # inject payoffs: careless earns 10 more than honest whatever the counts; the deviant gets 0
    rows = []
    for i, (counts, dev) in enumerate(profs):
        for s, n in zip(("honest", "careless"), counts, strict=False):
            if n:
                rows.append(
                    {
                        "profile_id": i,
                        "role": "contributors",
                        "strategy": s,
                        "mean": 10.0 * (s == "careless"),
                        "stderr": 0.0,
                    }
                )
        rows.append(
            {
                "profile_id": i,
                "role": "deviant",
                "strategy": ("honest", "label_flip")[dev],
                "mean": 0.0,
                "stderr": 0.0,
            }
        )
    table = schema.frame("game_payoffs", rows)
    regs = {r["profile"]: r for r in pop.regrets(game, profs, table)}
    all_honest = regs[pop.label(game, profs[0])]
    assert (
        all_honest["gain"] == pytest.approx(10.0)
        and all_honest["best_deviation_strategy"] == "honest -> careless"
    )
    all_careless = regs[pop.label(game, ((0, 4), 0))]
    assert all_careless["regret"] == 0.0  # nobody gains by going back to honest
    # the best deviation is the deviant's switch, worth 0; a contributor going back to honest loses 10
    assert all_careless["gain"] == 0.0 and all_careless["best_deviation_role"] == "deviant"
    # the contributors' symmetric game (deviant at its reference): careless dominates, so the only
    # symmetric equilibrium is everyone careless and the replicator dynamics go there
    ((role, sg),) = pop.symmetric_games(game, profs, table)
    assert role == "contributors" and sg.n == 4
    assert np.allclose(sg.strategy_payoffs(np.array([0.5, 0.5])), [0.0, 10.0])
    eqs = sg.equilibria()
    assert len(eqs) == 1 and np.allclose(eqs[0], [0, 1])
    assert sg.replicator(np.array([0.99, 0.01]), steps=2000)[-1][1] > 0.99


def population_profile(label: str) -> tuple[int, str]:
    """``"contributors=3 honest,1 careless | deviant=honest"`` -> ``(3, "honest")``."""
    contributors, deviant = (p.split("=", 1)[1].strip() for p in label.split("|"))
    counts = {w.split()[1]: int(w.split()[0]) for w in contributors.split(",")}
    return counts.get("honest", 0), deviant


@pytest.mark.slow
def test_population_game_end_to_end(tmp_path):
    r = subprocess.run(
        CLI + ["game", str(ROOT / "scenarios/games/population_game.toml"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    pay = pl.read_parquet(tmp_path / "payoffs.parquet")
    # 10 profiles; the contributors' rows: one per strategy played (mixed counts have two)
    assert pay["profile_id"].n_unique() == 10 and (pay["n"] == 2).all()
    mixed = pay.filter(
        (pl.col("role") == "contributors") & (pl.col("profile").str.contains("3 honest,1 careless"))
    )
    assert set(mixed["strategy"]) == {"honest", "careless"} and set(mixed["count"]) == {3, 1}
    eq = pl.read_parquet(tmp_path / "equilibria.parquet")
    assert (
        eq.filter(pl.col("kind").str.starts_with("symmetric")).height >= 1
    )  # some symmetric mix always exists
    # The table rebuilt from the runs' agents: a profile is (honest contributors, the deviant's
    # policy); each strategy's payoff is the mean profit of the agents playing it.
    from sum_abm.sweeps import load_agents

    ag = load_agents(tmp_path / "sweep").collect()
    ag = ag.with_columns(
        pl.when(pl.col("group") == "attacker")
        .then(pl.lit("deviant"))
        .otherwise(pl.lit("contributors"))
        .alias("role")
    )
    keys = ag.group_by("run_id").agg(
        ((pl.col("role") == "contributors") & (pl.col("policy") == "honest")).sum().alias("h"),
        pl.col("policy").filter(pl.col("role") == "deviant").first().alias("dev"),
    )
    cells = (
        ag.join(keys, on="run_id")
        .group_by("run_id", "h", "dev", "role", "policy")
        .agg(pl.col("profit").mean())
        .group_by("h", "dev", "role", "policy")
        .agg(pl.col("profit").mean(), pl.len().alias("n"))
    )
    assert (cells["n"] == 2).all()
    u = {
        (c["h"], c["dev"], c["role"], c["policy"]): c["profit"] for c in cells.iter_rows(named=True)
    }
    assert len({(h, d) for h, d, _, _ in u}) == 10
    for row in pay.iter_rows(named=True):
        h, dev = population_profile(row["profile"])
        assert row["mean"] == pytest.approx(u[(h, dev, row["role"], row["strategy"])])

    # every single-agent deviation, by hand: a contributor switches policy (the counts move by
    # one), or the deviant switches
    def gain_and_regret(h: int, dev: str) -> tuple[float, float]:
        gains = []
        if h > 0:
            gains.append(
                u[(h - 1, dev, "contributors", "careless")] - u[(h, dev, "contributors", "honest")]
            )
        if h < 4:
            gains.append(
                u[(h + 1, dev, "contributors", "honest")] - u[(h, dev, "contributors", "careless")]
            )
        other = "label_flip" if dev == "honest" else "honest"
        gains.append(u[(h, other, "deviant", other)] - u[(h, dev, "deviant", dev)])
        return max(gains), max(0.0, max(gains))

    reg = pl.read_parquet(tmp_path / "regret.parquet")
    assert reg.height == 10
    pure = set()
    for row in reg.iter_rows(named=True):
        gain, regret = gain_and_regret(*population_profile(row["profile"]))
        assert row["gain"] == pytest.approx(gain) and row["regret"] == pytest.approx(regret)
        if regret == 0:
            pure.add(row["profile"])
    assert set(eq.filter(pl.col("kind") == "pure")["profile"]) == pure
    verdict = "IS" if gain_and_regret(4, "honest")[0] <= 0 else "is NOT"
    assert f"contributors=4 honest | deviant=honest: {verdict} an equilibrium" in r.stdout
    html = (tmp_path / "game_report.html").read_text()
    assert "Replicator dynamics: contributors" in html


@pytest.mark.slow
def test_designer_game_end_to_end(tmp_path):
    """A designer paid in final accuracy against a deviant paid in ROI (one replication: 4 runs)."""
    from sum_abm.game.runner import run_game
    from sum_abm.sweeps.engine import load_runs

    text = (
        (ROOT / "scenarios/games/designer_game.toml")
        .read_text()
        .replace("replications = 2", "replications = 1")
    )
    text = text.replace(
        'base = "../quickstart.toml"', f'base = "{ROOT / "scenarios/quickstart.toml"}"'
    )
    f = tmp_path / "designer.toml"
    f.write_text(text)
    ans = run_game(f, tmp_path / "out")
    assert ans["payoffs"] == {"designer": "accuracy_final", "deviant": "roi"}
    pay = pl.read_parquet(tmp_path / "out/payoffs.parquet")
    runs = load_runs(tmp_path / "out/sweep").collect()
    assert (
        runs.height == 4 and (runs["learner"] == "multinomial_nb").all()
    )  # the game's set applies
    # the designer's payoff is the run's final accuracy, read back from the runs table
    for w, name in ((1, "light_deposit"), (10, "heavy_deposit")):
        acc = runs.filter(pl.col("mechanism.cost_weight") == w)["accuracy_final"].to_list()
        got = pay.filter((pl.col("role") == "designer") & (pl.col("strategy") == name))[
            "mean"
        ].to_list()
        assert sorted(got) == pytest.approx(sorted(acc))
    assert pl.read_parquet(tmp_path / "out/regret.parquet").height == 4


@pytest.mark.slow
def test_sampled_game_walks_from_the_reference(tmp_path):
    """A table larger than max_profiles: the reference and its deviations, then a best-deviation walk."""
    from sum_abm.game.runner import run_game

    text = (
        (ROOT / "scenarios/games/quickstart_game.toml")
        .read_text()
        .replace("replications = 2", "replications = 1\nmax_profiles = 5")
    )
    text = text.replace(
        'base = "../quickstart.toml"', f'base = "{ROOT / "scenarios/quickstart.toml"}"'
    )
    f = tmp_path / "sampled.toml"
    f.write_text(text)
    ans = run_game(f, tmp_path / "out")
    se = ans["search"]
    assert ans["sampled_deviations_only"] and se["table_size"] == 6
    assert se["path"][0] == "contributors=honest | deviant=honest" and se["stopped"] in {
        "equilibrium",
        "cycle",
        "max_profiles",
    }
    pay = pl.read_parquet(tmp_path / "out/payoffs.parquet")
    assert 4 <= pay["profile"].n_unique() == ans["profiles_run"] <= 5
    # the reference's three deviations were all run, so its verdict is an answer, not a guess
    reg = pl.read_parquet(tmp_path / "out/regret.parquet")
    ref = reg.filter(pl.col("profile") == se["path"][0]).row(0, named=True)
    assert ref["deviations_measured"] == 3
    assert ans["reference_is_equilibrium"] == (ref["gain"] <= 0)
    if se["stopped"] == "equilibrium":
        assert se["path"][-1] in ans["pure_equilibria"]


def test_frontier_line_by_bisection(tmp_path, monkeypatch):
    """The frontier assembled across a second parameter, on a synthetic best-attack ROI that crosses
    zero at start_balance = 2000 x cost_weight (the market is replaced, the bisection and files are real)."""
    from dashboards import game_report
    from sum_abm.game import runner

    calls = []

    def fake_point(g, param, value, out, *, address=None, resume=True):
        w = g.base.mechanism.cost_weight
        calls.append((param, value, w))
        return (
            1.0 - value / (2000.0 * w),
            0.01,
            "label_flip" if value < 2000 * w else "deposit_hunter",
        )

    monkeypatch.setattr(runner, "frontier_point", fake_point)
    rows = runner.run_frontier(
        ROOT / "scenarios/games/quickstart_game.toml",
        tmp_path,
        "agents.attacker.start_balance",
        100,
        20000,
        iterations=20,
        across=("mechanism.cost_weight", [1, 3, 9, 20]),
        integer=True,
        reports=game_report,
    )
    assert [r["across"] for r in rows] == ["1", "3", "9", "20"]
    for r, w in zip(rows[:3], (1, 3, 9), strict=False):
        assert (
            r["found"] and r["low"] <= 2000 * w <= r["high"] and abs(r["estimate"] - 2000 * w) <= 2
        )
    # 40,000 is outside the range: no crossing, and the two ends measured are kept
    assert not rows[3]["found"]
    ends = json.loads(rows[3]["evaluations"])
    assert [e[0] for e in ends] == [100, 20000] and all(e[1] > 0 for e in ends)
    assert all(
        isinstance(v, int) for _, v, _ in calls
    )  # --integer: every point is a whole token amount
    df = pl.read_parquet(tmp_path / "frontier.parquet")
    assert df.height == 4 and df["found"].to_list() == [True, True, True, False]
    html = (tmp_path / "frontier_report.html").read_text()
    assert "Attack-profitability frontier" in html and "Crossings" in html


@pytest.mark.parametrize(
    "args, says",
    [
        (["--range", "1.5", "5", "--integer"], "with --integer, whole numbers expected"),
        (
            ["--range", "1", "5", "--across", "mechanism.cost_weight=1,2"],
            "mechanism.cost_weight is the parameter bisected",
        ),
        (["--range", "1", "5", "--across", "mechanism.refund_time_s="], "expected path=v1,v2"),
        (["--range", "1", "5", "--across", "=1,2"], "expected path=v1,v2"),
    ],
)
def test_frontier_usage_mistakes_get_one_line_and_exit_2(tmp_path, args, says, cli):
    r = cli(
        "frontier", "quickstart_game", "--param", "mechanism.cost_weight",
        "--out", tmp_path / "f", *args,
    )  # fmt: skip
    assert r.returncode == 2 and r.stdout == "" and says in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path / "f").exists()
