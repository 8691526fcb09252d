"""Game tables, equilibria, dynamics and searches on games with known answers, injected as polars
payoff tables (profile, role, strategy, mean, stderr, n), exactly what the market runner writes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl
import pytest

from sum_abm import schema
from sum_abm.game.dynamics import replicator
from sum_abm.game.equilibria import (
    best_deviation,
    deviations,
    interval_text,
    mixed_equilibria,
    mixed_regret,
    plausible_equilibria,
    pure_equilibria,
    regret,
)
from sum_abm.game.search import bisect_zero, deviation_walk, neighbourhood
from sum_abm.game.symmetric import SymmetricGame, compositions
from sum_abm.game.tables import Game


def table(roles: list[str], strategies: list[list[str]], payoff, stderr=None) -> pl.DataFrame:
    """A payoff table from a function profile -> payoff of every role (as the runner would write it)."""
    rows = []
    for prof in itertools.product(*strategies):
        pays = payoff(prof)
        ses = stderr(prof) if stderr else [0.0] * len(roles)
        label = " | ".join(f"{r}={s}" for r, s in zip(roles, prof, strict=False))
        for r, s, m, se in zip(roles, prof, pays, ses, strict=False):
            rows.append(
                {
                    "profile": label,
                    "role": r,
                    "strategy": s,
                    "mean": float(m),
                    "stderr": float(se),
                    "n": 5,
                }
            )
    return schema.frame("game_payoffs", rows)


PD = {("C", "C"): (3, 3), ("C", "D"): (0, 5), ("D", "C"): (5, 0), ("D", "D"): (1, 1)}


def pd() -> Game:
    return Game.from_table(table(["p1", "p2"], [["C", "D"], ["C", "D"]], lambda p: PD[p]))


def pennies() -> Game:
    return Game.from_table(
        table(
            ["even", "odd"],
            [["H", "T"], ["H", "T"]],
            lambda p: (1, -1) if p[0] == p[1] else (-1, 1),
        )
    )


def jordan() -> Game:
    # a wants to match b, b wants to match c, c wants to differ from a: no pure equilibrium, the
    # unique equilibrium is everyone mixing 1/2-1/2
    return Game.from_table(
        table(
            ["a", "b", "c"],
            [["x", "y"]] * 3,
            lambda p: (float(p[0] == p[1]), float(p[1] == p[2]), float(p[2] != p[0])),
        )
    )


def majority() -> Game:
    # each player earns 1 when both others play its strategy: the all-same profiles are equilibria
    return Game.from_table(
        table(
            ["a", "b", "c"],
            [["x", "y"]] * 3,
            lambda p: [float(all(p[j] == p[i] for j in range(3))) for i in range(3)],
        )
    )


def test_table_round_trip_and_arrays():
    g = pd()
    assert g.roles == ["p1", "p2"] and g.strategies == [["C", "D"], ["C", "D"]]
    assert g.means[0].tolist() == [[3, 0], [5, 1]] and g.means[1].tolist() == [[3, 5], [0, 1]]
    assert (g.counts[0] == 5).all()
    back = g.to_table()
    assert back.height == 8 and back.columns == [
        "profile",
        "role",
        "strategy",
        "mean",
        "stderr",
        "n",
    ]
    assert Game.from_table(back).means[1].tolist() == g.means[1].tolist()


def test_table_errors():
    t = table(["p1", "p2"], [["C", "D"], ["C", "D"]], lambda p: PD[p])
    with pytest.raises(ValueError, match="appears twice"):
        Game.from_table(pl.concat([t, t.head(1)]))
    with pytest.raises(ValueError, match="missing columns"):
        Game.from_table(t.drop("mean"))
    with pytest.raises(
        ValueError, match=r"row strategy 'C' is not p2's strategy in 'p1=C \| p2=D'"
    ):
        Game.from_table(t.with_columns(pl.lit("C").alias("strategy")))


def test_prisoners_dilemma():
    g = pd()
    assert pure_equilibria(g) == [(1, 1)]
    assert regret(g, (1, 1)) == 0
    dev = best_deviation(g, (0, 0))  # from mutual cooperation, defecting gains 5 - 3
    assert (dev.role, dev.strategy, dev.gain) == (0, 1, pytest.approx(2))
    # at the equilibrium the best deviation loses 1 - 0 = 1 (either player back to C)
    at_eq = best_deviation(g, (1, 1))
    assert at_eq.gain == pytest.approx(-1) and at_eq.regret == 0
    assert regret(g, (0, 1)) == pytest.approx(1)  # p1 cooperating against D: switching gains 1 - 0
    eqs, method = mixed_equilibria(g)
    assert "nashpy" in method and len(eqs) == 1
    assert np.allclose(eqs[0][0], [0, 1]) and np.allclose(eqs[0][1], [0, 1])


def test_matching_pennies_has_only_the_mixed_equilibrium():
    g = pennies()
    assert pure_equilibria(g) == []
    eqs, _ = mixed_equilibria(g)
    assert (
        len(eqs) == 1 and np.allclose(eqs[0][0], [0.5, 0.5]) and np.allclose(eqs[0][1], [0.5, 0.5])
    )
    assert mixed_regret(g, eqs[0]) == pytest.approx(0, abs=1e-12)
    assert regret(g, (0, 0)) == pytest.approx(2)  # the odd player gains 1 - (-1) by switching
    assert best_deviation(g, (0, 0)).role == 1
    assert mixed_regret(g, [np.array([1.0, 0.0]), np.array([0.5, 0.5])]) == pytest.approx(
        1
    )  # odd: T pays 1 vs 0


def test_three_player_pure_equilibria_and_regret():
    g = majority()
    assert set(pure_equilibria(g)) == {(0, 0, 0), (1, 1, 1)}
    assert regret(g, (0, 0, 0)) == 0 and regret(g, (1, 1, 1)) == 0
    # (x, y, x): b switching to x makes everyone agree, b gains 1 - 0
    d = best_deviation(g, (0, 1, 0))
    assert (d.role, d.strategy, d.gain) == (1, 0, pytest.approx(1))
    traj = replicator(g, start=[np.array([0.7, 0.3])] * 3, steps=3000)
    assert traj[-1][0][0] > 0.99  # the majority strategy takes over
    eqs, method = mixed_equilibria(g)
    pure = [e for e in eqs if all(m.max() == 1 for m in e)]
    assert len(pure) == 2 and all(mixed_regret(g, e) < 1e-9 for e in eqs)


def test_three_player_unique_mixed_equilibrium():
    g = jordan()
    assert pure_equilibria(g) == []
    assert all(regret(g, p) == pytest.approx(1) for p in g.profiles())  # someone always gains 1
    eqs, method = mixed_equilibria(g)
    assert len(eqs) == 1, (method, eqs)
    assert all(np.allclose(m, [0.5, 0.5]) for m in eqs[0])
    assert mixed_regret(g, eqs[0]) == pytest.approx(0, abs=1e-9)


def test_confidence_interval_on_a_deviation_gain():
    t = table(
        ["r", "c"],
        [["a", "b"], ["a", "b"]],
        lambda p: ({"a": 1.0, "b": 1.5}[p[0]] if p[1] == "a" else 0.0, 0.0),
        stderr=lambda p: ({"a": 0.3, "b": 0.4}[p[0]] if p[1] == "a" else 0.0, 0.0),
    )
    g = Game.from_table(t)
    dev = best_deviation(g, (0, 0))
    assert dev.gain == pytest.approx(0.5)
    # Welch: 5 replications a mean, df = (0.3² + 0.4²)² / ((0.3⁴ + 0.4⁴) / 4) = 7.418; t = 2.3379
    half = 2.3379 * 0.5  # hypot(0.3, 0.4) = 0.5
    assert dev.ci_low == pytest.approx(0.5 - half, rel=1e-4) and dev.ci_high == pytest.approx(
        0.5 + half, rel=1e-4
    )
    assert not dev.significant
    # (a, a) is not an equilibrium of the means, but the noise cannot rule it out
    assert (0, 0) not in pure_equilibria(g) and (0, 0) in plausible_equilibria(g)
    assert len(deviations(g, (0, 0))) == 2
    # Without counts the standard errors are known: the normal quantile.
    known = best_deviation(Game.from_table(t.drop("n")), (0, 0))
    assert known.ci_low == pytest.approx(0.5 - 1.959964 * 0.5, rel=1e-5)


def test_a_gain_measured_by_few_replications_is_not_called_significant():
    """1.96 standard errors is a 95 % interval only for many replications: with 2 a mean, Welch's
    degrees of freedom are 2 (equal spreads) and the quantile 4.30; one replication has no spread
    to estimate, so no bounds."""
    gain_of = {"a": 1.0, "b": 2.0}  # the row role gains 1.0 by deviating to b

    def game(n):
        t = table(["r", "c"], [["a", "b"], ["a", "b"]], lambda p: (gain_of[p[0]], 0.0))
        t = t.with_columns(stderr=pl.when(pl.col("role") == "r").then(0.3).otherwise(0.0), n=n)
        return Game.from_table(t)

    two = best_deviation(game(2), (0, 0))
    assert two.gain == pytest.approx(1.0)
    assert two.ci_low == pytest.approx(1.0 - 4.3027 * 0.3 * 2**0.5, rel=1e-4)
    # (1.96 standard errors would call it significant: 1.0 - 1.96 * 0.42 > 0)
    assert not two.significant and (0, 0) in plausible_equilibria(game(2))
    many = best_deviation(game(50), (0, 0))  # df = 98: t = 1.9845
    assert many.significant
    assert many.ci_low == pytest.approx(1.0 - 1.9845 * 0.3 * 2**0.5, rel=1e-4)
    one = best_deviation(game(1), (0, 0))
    assert one.ci_low == -math.inf and one.ci_high == math.inf and not one.significant
    assert interval_text(one.ci_low, one.ci_high).startswith("unbounded")
    assert interval_text(0.25, 1.5) == "+0.25 .. +1.5"


def test_sampled_table_leaves_unrun_profiles_out():
    t = table(["p1", "p2"], [["C", "D"], ["C", "D"]], lambda p: PD[p]).filter(
        pl.col("profile") != "p1=D | p2=D"
    )
    g = Game.from_table(t, strategies=[["C", "D"], ["C", "D"]])
    assert np.isnan(g.means[0][1, 1]) and not g.complete((1, 1))
    # (C, D): p2's deviation loses 5 - 3, but p1's deviation (to the unrun (D, D)) is unknown, so
    # neither it nor (D, C) may be called an equilibrium
    assert best_deviation(g, (0, 1)).gain == pytest.approx(-2) and len(deviations(g, (0, 1))) == 1
    assert pure_equilibria(g) == [] and plausible_equilibria(g) == []
    assert best_deviation(g, (0, 0)).gain == pytest.approx(2)
    assert g.to_table().height == 6


def hawk_dove() -> SymmetricGame:
    # two players, V = 2, C = 4: HH -1 each, HD 2 vs 0, DD 1 each; the symmetric equilibrium plays H w.p. V/C
    return SymmetricGame(
        2,
        ["H", "D"],
        {
            (2, 0): np.array([-1.0, np.nan]),
            (1, 1): np.array([2.0, 0.0]),
            (0, 2): np.array([np.nan, 1.0]),
        },
    )


def threshold(n: int = 5) -> SymmetricGame:
    # honest earns 2 x (number of honest players, itself included); careless earns 6 whatever happens
    pay = {
        c: np.array([2.0 * c[0] if c[0] else np.nan, 6.0 if c[1] else np.nan])
        for c in compositions(n, 2)
    }
    return SymmetricGame(n, ["honest", "careless"], pay)


def test_compositions():
    assert compositions(2, 2) == [(2, 0), (1, 1), (0, 2)]
    assert len(compositions(4, 3)) == 15 and all(sum(c) == 4 for c in compositions(4, 3))


def test_symmetric_games_known_equilibria():
    eqs = hawk_dove().equilibria()
    assert len(eqs) == 1 and np.allclose(eqs[0], [0.5, 0.5])
    g = threshold()
    # others honest with probability 3/4: E[honest] = 2 (1 + 4 x 3/4) = 8; careless 6
    assert np.allclose(g.strategy_payoffs(np.array([0.75, 0.25])), [8.0, 6.0])
    eqs = g.equilibria()  # all honest, all careless, and the unstable mix at 1/2
    assert (
        len(eqs) == 3
        and np.allclose(eqs[0], [1, 0])
        and np.allclose(eqs[1], [0.5, 0.5])
        and np.allclose(eqs[2], [0, 1])
    )
    assert all(g.regret(e) < 1e-9 for e in eqs)
    assert g.regret(np.array([0.75, 0.25])) == pytest.approx(8 - (0.75 * 8 + 0.25 * 6))
    # the mix is unstable: the replicator leaves it towards the nearer pure equilibrium
    assert g.replicator(np.array([0.6, 0.4]), steps=3000)[-1][0] > 0.99
    assert g.replicator(np.array([0.4, 0.6]), steps=3000)[-1][1] > 0.99
    hd = hawk_dove().replicator(np.array([0.9, 0.1]), steps=4000)
    assert np.allclose(hd[-1], [0.5, 0.5], atol=1e-3)  # the hawk-dove mix is stable


def test_bisection_finds_the_known_crossing():
    c = bisect_zero(lambda x: (2.0 * (x - 3.7), 0.0), 0.0, 10.0, iterations=20)
    assert abs(c.estimate - 3.7) < 1e-4 and c.low <= 3.7 <= c.high and c.high - c.low <= 10 / 2**20
    with pytest.raises(ValueError, match="no crossing"):
        bisect_zero(lambda x: (1.0 + x, 0.0), 0.0, 1.0)
    with pytest.raises(ValueError, match="0 at both ends"):  # flat: not a crossing at the low end
        bisect_zero(lambda x: (0.0, 0.0), 0.0, 1.0)
    # zero at an end only: it does not pay there, and pays everywhere after
    c = bisect_zero(lambda x: (x - 1.0, 0.0), 1.0, 4.0)
    assert c.bracket[0] == c.low == 1.0 and c.estimate == pytest.approx(1.0, abs=3 / 2**8)


def test_bisection_counts_a_mean_of_exactly_zero_as_not_paying():
    """An attack that cannot act earns exactly 0: from 60 on here. Its frontier is where it stops
    paying, not the end of the range where 0 was first seen."""

    def roi(x):  # decreasing, positive below 60, exactly 0 from 60 on
        return max(0.0, 0.02 * (60.0 - x)), 0.0

    c = bisect_zero(roi, 1.0, 100.0, iterations=12)
    assert (
        c.low <= 60.0 <= c.high
        and c.high - c.low < 0.05
        and c.estimate == pytest.approx(60.0, abs=0.05)
    )
    up = bisect_zero(
        lambda x: (max(0.0, x - 30.0), 0.0), 0.0, 100.0, iterations=12
    )  # starts paying
    assert up.estimate == pytest.approx(30.0, abs=0.05) and up.low <= 30.0 <= up.high
    with pytest.raises(ValueError, match="no crossing"):  # never pays: no frontier to place
        bisect_zero(lambda x: (min(0.0, 50.0 - x), 0.0), 0.0, 100.0)


def test_bisection_with_replications_on_a_noisy_payoff():
    rng = np.random.default_rng(7)

    def roi(x, reps=40):  # a decreasing payoff with noise sd 0.5, averaged over replications
        draws = 1.5 - 0.4 * x + rng.normal(0, 0.5, reps)
        return float(draws.mean()), float(draws.std(ddof=1) / np.sqrt(reps))

    c = bisect_zero(roi, 0.0, 10.0, iterations=12)  # crosses at 3.75
    assert c.low <= 3.75 <= c.high
    assert abs(c.estimate - 3.75) < 0.5 and c.high - c.low < 2.6
    assert all(np.sign(m) == np.sign(1.5 - 0.4 * x) or abs(m) < 2 * s for x, m, s in c.evaluations)
    # With 2 replications a point's sign is clear only beyond t(1) = 12.7 standard errors.
    few = bisect_zero(lambda x: (1.5 - 0.4 * x, 0.1), 0.0, 10.0, iterations=6, replications=2)
    z = bisect_zero(lambda x: (1.5 - 0.4 * x, 0.1), 0.0, 10.0, iterations=6)
    assert z.low <= 3.75 <= z.high and few.low <= z.low and few.high >= z.high
    assert (few.high - few.low) > (z.high - z.low)


def _restricted(full: Game, profiles) -> Game:
    """The full game as a sampled table would see it: only ``profiles`` measured."""
    keep = np.zeros(full.shape, dtype=bool)
    for p in profiles:
        keep[p] = True
    return Game(
        full.roles,
        full.strategies,
        [np.where(keep, m, np.nan) for m in full.means],
        [np.zeros(full.shape) for _ in full.roles],
    )


def test_deviation_walk_samples_around_candidates():
    # identical interests: everyone is paid -(a-2)^2 - (b-3)^2 - (c-1)^2; the equilibrium is (2, 3, 1)
    shape = (4, 4, 4)
    phi = np.fromfunction(lambda a, b, c: -((a - 2) ** 2) - (b - 3) ** 2 - (c - 1) ** 2, shape)
    full = Game.exact(["a", "b", "c"], [[str(i) for i in range(4)]] * 3, [phi, phi, phi])
    start = neighbourhood(shape, (0, 0, 0))
    asked = []

    def measure(profs):
        asked.append(len(profs))
        return _restricted(full, profs)

    g, walk = deviation_walk(_restricted(full, start), start, measure, max_profiles=64)
    # best deviations by hand: b 0->3 gains 9, then a 0->2 gains 4, then c 0->1 gains 1
    assert (
        walk.path == [(0, 0, 0), (0, 3, 0), (2, 3, 0), (2, 3, 1)] and walk.stopped == "equilibrium"
    )
    expected = set().union(*(neighbourhood(shape, p) for p in walk.path))
    assert set(walk.profiles) == expected and len(walk.profiles) == len(expected) < 64
    assert asked == [
        len(set().union(*(neighbourhood(shape, p) for p in walk.path[: i + 1])))
        for i in range(1, 4)
    ]
    assert pure_equilibria(g) == [(2, 3, 1)]  # the only candidate whose every deviation was run
    # a budget too small for the next neighbourhood stops the walk and says so
    _, short = deviation_walk(_restricted(full, start), start, measure, max_profiles=len(start) + 5)
    assert short.stopped == "max_profiles" and short.path == [(0, 0, 0)]


def test_deviation_walk_reports_a_cycle():
    g = pennies()
    start = neighbourhood(g.shape, (0, 0))
    _, walk = deviation_walk(
        _restricted(g, start), start, lambda p: _restricted(g, p), max_profiles=100
    )
    assert walk.stopped == "cycle" and walk.path == [(0, 0), (0, 1), (1, 1), (1, 0)]


def test_a_solvers_rounding_noise_is_written_as_zero_not_minus_zero(monkeypatch):
    # A support-enumeration mix can hold -1e-17 for a strategy out of the support (which side
    # of zero depends on the numpy build): the equilibria table writes 0.0 either way, so its
    # bytes do not change with the installed libraries.
    import json

    import sum_abm.game.runner as runner

    g = Game.exact(["row", "col"], [["a", "b"], ["c", "d"]], [[[1, 0], [0, 1]], [[0, 1], [1, 0]]])
    mix = [np.array([1.0 - 1e-12, -1e-17]), np.array([0.5, 0.5])]
    monkeypatch.setattr(runner, "mixed_equilibria", lambda game: ([mix], "test"))
    monkeypatch.setattr(runner, "mixed_regret", lambda game, m: 0.0)
    (row,) = [r for r in runner._equilibria_rows(g, sampled=False) if r["kind"] == "mixed"]
    assert '"b": 0.0' in row["mix"] and "-0.0" not in row["mix"]
    assert json.loads(row["mix"]) == {"row": {"a": 1.0, "b": 0.0}, "col": {"c": 0.5, "d": 0.5}}
