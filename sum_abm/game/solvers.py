"""Solving empirical games: pure and mixed equilibria, regret with confidence intervals, replicator
dynamics, and bisection for the point where a payoff crosses zero.

A game is given by payoff arrays: ``means[r]`` and ``stderrs[r]`` have one axis per role (that
role's strategy index) and hold role ``r``'s payoff for every profile. The solvers know nothing of
markets: tests inject known games (prisoner's dilemma, matching pennies, three players).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass
class Game:
    """Payoffs of an n-role normal-form game, with standard errors (0 for exact games)."""

    roles: list[str]
    strategies: list[list[str]]
    means: list[np.ndarray]
    stderrs: list[np.ndarray]

    @classmethod
    def exact(cls, roles: list[str], strategies: list[list[str]], means: list) -> "Game":
        m = [np.asarray(a, dtype=float) for a in means]
        return cls(roles, strategies, m, [np.zeros_like(a) for a in m])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.strategies)

    def profiles(self) -> list[tuple[int, ...]]:
        return list(itertools.product(*(range(k) for k in self.shape)))

    def label(self, profile: tuple[int, ...]) -> str:
        return " | ".join(f"{r}={self.strategies[i][s]}" for i, (r, s) in enumerate(zip(self.roles, profile)))


@dataclass
class Deviation:
    """The best unilateral deviation from a profile: who, to what, the gain and its 95 % interval."""

    profile: tuple[int, ...]
    role: int
    strategy: int
    gain: float
    ci_low: float
    ci_high: float


def best_deviation(game: Game, profile: tuple[int, ...]) -> Deviation:
    """The largest gain any role can get by switching alone (regret of the profile, >= 0)."""
    best = Deviation(profile, -1, -1, 0.0, 0.0, 0.0)
    for r in range(len(game.roles)):
        here = game.means[r][profile]
        se_here = game.stderrs[r][profile]
        for s in range(game.shape[r]):
            if s == profile[r]:
                continue
            dev = list(profile)
            dev[r] = s
            dev_t = tuple(dev)
            gain = float(game.means[r][dev_t] - here)
            if not math.isfinite(gain):
                continue  # a profile that was not run (sampled tables)
            if gain > best.gain or best.role < 0 and gain >= best.gain:
                half = Z95 * math.hypot(game.stderrs[r][dev_t], se_here)
                best = Deviation(profile, r, s, gain, gain - half, gain + half)
    if best.gain < 0:  # no profitable deviation: regret 0
        best = Deviation(profile, best.role, best.strategy, 0.0, best.ci_low, best.ci_high)
    return best


def regret(game: Game, profile: tuple[int, ...]) -> float:
    """Regret of a pure profile: the largest unilateral gain (0 at a pure equilibrium)."""
    return max(0.0, best_deviation(game, profile).gain)


def pure_equilibria(game: Game, tol: float = 1e-12) -> list[tuple[int, ...]]:
    """Every pure profile no role can improve on alone (by enumeration over the table)."""
    return [p for p in game.profiles() if regret(game, p) <= tol]


def expected_payoffs(game: Game, mix: list[np.ndarray]) -> list[float]:
    """Each role's expected payoff when every role plays its mixed strategy."""
    out = []
    for r in range(len(game.roles)):
        a = game.means[r]
        for i in reversed(range(len(game.roles))):
            a = np.tensordot(a, mix[i], axes=([i], [0]))
        out.append(float(a))
    return out


def mixed_regret(game: Game, mix: list[np.ndarray]) -> float:
    """The largest gain any role gets by a pure deviation from a mixed profile."""
    base = expected_payoffs(game, mix)
    worst = 0.0
    for r in range(len(game.roles)):
        for s in range(game.shape[r]):
            pure = np.zeros(game.shape[r])
            pure[s] = 1.0
            trial = list(mix)
            trial[r] = pure
            worst = max(worst, expected_payoffs(game, trial)[r] - base[r])
    return worst


def mixed_equilibria(game: Game) -> tuple[list[list[np.ndarray]], str]:
    """Mixed equilibria and the method used: nashpy support enumeration for two roles; pygambit
    (logit tracing) for more when installed (``pip install sum_abm[game]``); otherwise replicator
    dynamics from the uniform profile, whose end point is checked by its regret."""
    if len(game.roles) == 2:
        import nashpy

        import warnings

        g = nashpy.Game(game.means[0], game.means[1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # degenerate games: handled below
            eqs = [[np.asarray(a, float), np.asarray(b, float)] for a, b in g.support_enumeration()]
            if eqs:
                return eqs, "nashpy support enumeration"
            # Degenerate empirical tables (ties) defeat support enumeration; Lemke-Howson from each
            # starting label still finds equilibria, kept when their regret is ~0.
            found: list[list[np.ndarray]] = []
            for label in range(sum(game.shape)):
                try:
                    a, b = g.lemke_howson(initial_dropped_label=label)
                except Exception:  # noqa: BLE001 - a failed path just yields nothing
                    continue
                cand = [np.asarray(a, float), np.asarray(b, float)]
                if np.all(np.isfinite(cand[0])) and mixed_regret(game, cand) <= 1e-9 * (1 + _scale(game)) and not any(
                        np.allclose(cand[0], e[0]) and np.allclose(cand[1], e[1]) for e in found):
                    found.append(cand)
        return found, "nashpy Lemke-Howson (degenerate table)"
    try:
        import pygambit as gbt
    except ImportError:
        traj = replicator(game, steps=4000)
        end = traj[-1]
        return ([end] if mixed_regret(game, end) < 1e-3 * (1 + _scale(game)) else []), "replicator dynamics (pygambit not installed)"
    from fractions import Fraction  # noqa: F401 - pygambit accepts floats

    g = gbt.Game.from_arrays(*game.means)
    res = gbt.nash.logit_solve(g)
    eqs = []
    for eq in res.equilibria:
        eqs.append([np.array([float(eq[p][s]) for s in p.strategies]) for p in g.players])
    return eqs, "pygambit logit_solve"


def _scale(game: Game) -> float:
    return float(max(np.abs(a).max() for a in game.means))


def replicator(game: Game, start: list[np.ndarray] | None = None, steps: int = 2000, dt: float = 0.05) -> list[list[np.ndarray]]:
    """Multi-population replicator dynamics (discrete, payoffs normalised): the trajectory of every
    role's strategy mix from ``start`` (default uniform). For a symmetric population the single role
    is its own opponent pool."""
    mix = start or [np.full(k, 1.0 / k) for k in game.shape]
    scale = _scale(game) or 1.0
    traj = [[m.copy() for m in mix]]
    for _ in range(steps):
        new = []
        for r in range(len(game.roles)):
            fit = np.array([_pure_vs(game, mix, r, s) for s in range(game.shape[r])]) / scale
            avg = float(mix[r] @ fit)
            m = mix[r] * (1 + dt * (fit - avg))
            m = np.clip(m, 0, None)
            new.append(m / m.sum())
        mix = new
        traj.append([m.copy() for m in mix])
    return traj


def _pure_vs(game: Game, mix: list[np.ndarray], r: int, s: int) -> float:
    pure = np.zeros(game.shape[r])
    pure[s] = 1.0
    trial = list(mix)
    trial[r] = pure
    return expected_payoffs(game, trial)[r]


@dataclass
class Crossing:
    """Where a noisy monotone function crosses zero: the bracket and the evaluations made."""

    low: float
    high: float
    estimate: float
    evaluations: list[tuple[float, float, float]]  # (x, mean, stderr)


def bisect_zero(f: Callable[[float], tuple[float, float]], lo: float, hi: float, *, iterations: int = 8,
                tol: float = 0.0) -> Crossing:
    """Bisection for the zero crossing of ``f`` (returning mean and standard error at x) on
    [lo, hi]. The bracket narrows only where the sign is clear at 95 %; where the mean is within its
    interval of zero the point itself is the estimate and bisection stops (more replications would
    be needed). Raises ValueError when the ends do not bracket a crossing."""
    evals = []
    f_lo, s_lo = f(lo)
    f_hi, s_hi = f(hi)
    evals += [(lo, f_lo, s_lo), (hi, f_hi, s_hi)]
    if np.sign(f_lo) == np.sign(f_hi) and f_lo != 0:
        raise ValueError(f"no crossing in [{lo}, {hi}]: f = {f_lo:.4g} and {f_hi:.4g}")
    a, b, fa = lo, hi, f_lo
    for _ in range(iterations):
        if tol and b - a <= tol:
            break
        m = 0.5 * (a + b)
        fm, sm = f(m)
        evals.append((m, fm, sm))
        if abs(fm) <= Z95 * sm:
            return Crossing(a, b, m, evals)
        if np.sign(fm) == np.sign(fa):
            a, fa = m, fm
        else:
            b = m
    return Crossing(a, b, 0.5 * (a + b), evals)
