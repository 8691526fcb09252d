"""Game solvers on games with known answers, injected as payoff tables."""

from __future__ import annotations

import numpy as np
import pytest

from sum_abm.game.solvers import Game, best_deviation, bisect_zero, mixed_equilibria, mixed_regret, pure_equilibria, \
    regret, replicator


def pd() -> Game:
    # rows: player 1 (C, D); columns: player 2 (C, D)
    a = [[3, 0], [5, 1]]
    return Game.exact(["p1", "p2"], [["C", "D"], ["C", "D"]], [a, np.transpose(a)])


def pennies() -> Game:
    a = np.array([[1, -1], [-1, 1]])
    return Game.exact(["even", "odd"], [["H", "T"], ["H", "T"]], [a, -a])


def three_player() -> Game:
    # each player gets 1 when it matches the majority of the other two, else 0: pure equilibria at
    # all-same profiles (0,0,0) and (1,1,1)
    shape = (2, 2, 2)
    means = []
    for r in range(3):
        u = np.zeros(shape)
        for p in np.ndindex(shape):
            others = [p[i] for i in range(3) if i != r]
            u[p] = 1.0 if others.count(p[r]) >= 1 and (others[0] == others[1] == p[r]) else 0.0
        means.append(u)
    return Game.exact(["a", "b", "c"], [["x", "y"]] * 3, means)


def test_prisoners_dilemma():
    g = pd()
    assert pure_equilibria(g) == [(1, 1)]
    assert regret(g, (1, 1)) == 0
    dev = best_deviation(g, (0, 0))  # from mutual cooperation, defecting gains 5 - 3
    assert dev.gain == pytest.approx(2) and dev.strategy == 1
    eqs, method = mixed_equilibria(g)
    assert any(np.allclose(e[0], [0, 1]) and np.allclose(e[1], [0, 1]) for e in eqs)


def test_matching_pennies_has_only_the_mixed_equilibrium():
    g = pennies()
    assert pure_equilibria(g) == []
    eqs, _ = mixed_equilibria(g)
    assert len(eqs) == 1 and np.allclose(eqs[0][0], [0.5, 0.5]) and np.allclose(eqs[0][1], [0.5, 0.5])
    assert mixed_regret(g, eqs[0]) == pytest.approx(0, abs=1e-12)
    assert regret(g, (0, 0)) == pytest.approx(2)  # the odd player gains 1 - (-1) by switching


def test_three_players_and_replicator():
    g = three_player()
    assert set(pure_equilibria(g)) == {(0, 0, 0), (1, 1, 1)}
    assert regret(g, (0, 1, 0)) == pytest.approx(1)
    traj = replicator(g, start=[np.array([0.7, 0.3])] * 3, steps=3000)
    assert traj[-1][0][0] > 0.99  # the majority strategy takes over


def test_confidence_interval_on_a_deviation_gain():
    g = Game(["r", "c"], [["a", "b"], ["a", "b"]], [np.array([[1.0, 0], [1.5, 0]]), np.zeros((2, 2))],
             [np.array([[0.3, 0], [0.4, 0]]), np.zeros((2, 2))])
    dev = best_deviation(g, (0, 0))
    assert dev.gain == pytest.approx(0.5)
    assert dev.ci_low == pytest.approx(0.5 - 1.959964 * 0.5, rel=1e-5) and dev.ci_low < 0 < dev.ci_high


def test_bisection_finds_the_known_crossing():
    calls = []

    def f(x):
        calls.append(x)
        return 2.0 * (x - 3.7), 0.0

    c = bisect_zero(f, 0.0, 10.0, iterations=20)
    assert abs(c.estimate - 3.7) < 1e-4 and c.low <= 3.7 <= c.high
    rng = np.random.default_rng(0)
    noisy = bisect_zero(lambda x: (x - 3.7 + rng.normal(0, 0.01), 0.01), 0.0, 10.0, iterations=12)
    assert noisy.low - 0.05 <= 3.7 <= noisy.high + 0.05
    with pytest.raises(ValueError):
        bisect_zero(lambda x: (1.0 + x, 0.0), 0.0, 1.0)
