"""Equilibria of an empirical game: unilateral deviations with 95 % intervals, regret, pure
equilibria (enumeration over the table), the profiles the noise cannot rule out, and mixed
equilibria (nashpy for two roles, pygambit or support enumeration for more)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from sum_abm.game.dynamics import replicator
from sum_abm.game.tables import Game, half_width, strategy_payoffs


@dataclass
class Deviation:
    """The best unilateral deviation from a profile: who (role index), to what (strategy index),
    the gain (payoff units; negative when every deviation loses) and its 95 % interval. ``role`` is
    -1 when no deviation could be evaluated (a role with one strategy, or unrun profiles)."""

    profile: tuple[int, ...]
    role: int
    strategy: int
    gain: float
    ci_low: float
    ci_high: float

    @property
    def regret(self) -> float:
        """max(0, gain): 0 at an equilibrium of the point estimates."""
        return max(0.0, self.gain)

    @property
    def significant(self) -> bool:
        """The gain is positive at 95 % (the interval excludes 0)."""
        return self.ci_low > 0


def interval_text(low: float | None, high: float | None, sep: str = " .. ") -> str:
    """A gain's 95 % interval as text (``+a .. +b``), or why it has no bounds (None or infinite
    ends: a payoff measured by one replication, whose spread is unknown)."""
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return "unbounded (a payoff from one replication has no spread to estimate)"
    return f"{low:+.4g}{sep}{high:+.4g}"


def deviations(game: Game, profile: tuple[int, ...]) -> list[Deviation]:
    """Every unilateral deviation from ``profile`` that was measured, with its gain and 95 % interval
    (independent estimates: Welch's interval from their standard errors and replications, see
    :func:`~sum_abm.game.tables.half_width`; unbounded when either comes from one replication)."""
    out = []
    counts = game.counts
    for r in range(len(game.roles)):
        here = game.means[r][profile]
        se_here = game.stderrs[r][profile]
        n_here = None if counts is None else int(counts[r][profile])
        for s in range(game.shape[r]):
            if s == profile[r]:
                continue
            dev = list(profile)
            dev[r] = s
            dev_t = tuple(dev)
            gain = float(game.means[r][dev_t] - here)
            if not math.isfinite(gain):
                continue  # a profile that was not run (sampled tables)
            n_dev = None if counts is None else int(counts[r][dev_t])
            half = half_width((game.stderrs[r][dev_t], se_here), (n_dev, n_here))
            out.append(Deviation(profile, r, s, gain, gain - half, gain + half))
    return out


def best_deviation(game: Game, profile: tuple[int, ...]) -> Deviation:
    """The largest gain any role gets by switching alone; ties go to the first role and strategy.
    Its ``regret`` is the profile's regret."""
    best = Deviation(profile, -1, -1, -math.inf, -math.inf, -math.inf)
    for d in deviations(game, profile):
        if d.gain > best.gain:
            best = d
    if best.role < 0:
        return Deviation(profile, -1, -1, 0.0, 0.0, 0.0)
    return best


def regret(game: Game, profile: tuple[int, ...]) -> float:
    """Regret of a pure profile: the largest unilateral gain, floored at 0 (0 at a pure equilibrium)."""
    return best_deviation(game, profile).regret


def checked(game: Game, profile: tuple[int, ...]) -> bool:
    """Whether the profile and every unilateral deviation from it were measured: only then can it
    be called an equilibrium (in a sampled table, most profiles cannot)."""
    if not game.complete(profile):
        return False
    return len(deviations(game, profile)) == sum(k - 1 for k in game.shape)


def pure_equilibria(game: Game, tol: float = 1e-12) -> list[tuple[int, ...]]:
    """Every checked pure profile (see :func:`checked`) no role can improve on alone by more than
    ``tol`` payoff units (enumeration over the table)."""
    return [p for p in game.profiles() if checked(game, p) and regret(game, p) <= tol]


def plausible_equilibria(game: Game) -> list[tuple[int, ...]]:
    """Checked pure profiles whose every deviation gain is not positive at 95 %: the profiles the
    noise cannot rule out as equilibria (a superset of the pure equilibria of the means)."""
    return [
        p
        for p in game.profiles()
        if checked(game, p) and not any(d.significant for d in deviations(game, p))
    ]


def mixed_regret(game: Game, mix: list[np.ndarray]) -> float:
    """The largest gain any role gets by a pure deviation from a mixed profile (0 at an equilibrium)."""
    worst = 0.0
    for r in range(len(game.roles)):
        f = strategy_payoffs(game, mix, r)
        worst = max(worst, float(f.max() - mix[r] @ f))
    return worst


def mixed_equilibria(
    game: Game, *, max_supports: int = 20_000
) -> tuple[list[list[np.ndarray]], str]:
    """Nash equilibria in mixed strategies (pure ones included, as degenerate mixes) and the
    method used.

    Two roles: nashpy support enumeration (every equilibrium of a non-degenerate game), and
    Lemke-Howson from every starting label when ties in an empirical table defeat it. More roles:
    pygambit when installed (``pip install sum_abm[game]``: ``enumpoly_solve``, else
    ``logit_solve``); otherwise support enumeration here, solving each support profile's
    indifference equations numerically (what gambit's enumpoly does symbolically). Every returned
    equilibrium has been checked: its :func:`mixed_regret` is ~0 relative to the payoff scale.
    """
    if len(game.roles) == 1:
        best = int(np.nanargmax(game.means[0]))
        return [[np.eye(game.shape[0])[best]]], "single role: best strategy"
    if len(game.roles) == 2:
        return _two_role(game)
    try:
        import pygambit as gbt
    except ImportError:
        return _support_enumeration_n(
            game, max_supports
        ), "support enumeration (indifference equations, scipy)"
    g = gbt.Game.from_arrays(*game.means)
    solver = getattr(gbt.nash, "enumpoly_solve", None)
    method = "pygambit enumpoly_solve"
    if solver is None:
        solver, method = gbt.nash.logit_solve, "pygambit logit_solve"
    res = solver(g)
    eqs = [
        [np.array([float(eq[p][s]) for s in p.strategies]) for p in g.players]
        for eq in res.equilibria
    ]
    return _dedupe([e for e in eqs if mixed_regret(game, e) <= _tol(game)]), method


def _tol(game: Game) -> float:
    return 1e-7 * (1.0 + _scale(game))


def _dedupe(eqs: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    out: list[list[np.ndarray]] = []
    for e in eqs:
        if not any(
            all(np.allclose(a, b, atol=1e-6) for a, b in zip(e, f, strict=False)) for f in out
        ):
            out.append(e)
    return out


def _two_role(game: Game) -> tuple[list[list[np.ndarray]], str]:
    import warnings

    import nashpy

    g = nashpy.Game(game.means[0], game.means[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # degenerate games: handled below
        eqs = [[np.asarray(a, float), np.asarray(b, float)] for a, b in g.support_enumeration()]
        eqs = [e for e in eqs if np.all(np.isfinite(e[0])) and mixed_regret(game, e) <= _tol(game)]
        if eqs:
            return _dedupe(eqs), "nashpy support enumeration"
        # Degenerate empirical tables (ties) defeat support enumeration; Lemke-Howson from each
        # starting label still finds equilibria, kept when their regret is ~0.
        found: list[list[np.ndarray]] = []
        for lab in range(sum(game.shape)):
            try:
                a, b = g.lemke_howson(initial_dropped_label=lab)
            except Exception:  # noqa: BLE001 - a failed path just yields nothing
                continue
            cand = [np.asarray(a, float), np.asarray(b, float)]
            if (
                np.all(np.isfinite(cand[0]))
                and np.all(np.isfinite(cand[1]))
                and mixed_regret(game, cand) <= _tol(game)
            ):
                found.append(cand)
    return _dedupe(found), "nashpy Lemke-Howson (degenerate table)"


def _support_enumeration_n(game: Game, max_supports: int) -> list[list[np.ndarray]]:
    """Equilibria of an n-role game by enumerating a support for every role and solving the
    indifference equations (each supported strategy earns the same against the others' mixes, each
    mix sums to 1) with a root finder from a few starts. Supports are tried smallest first; beyond
    ``max_supports`` combinations only the pure profiles and replicator rest points are tried."""
    from scipy.optimize import root

    shape = game.shape
    subsets = [
        [c for size in range(1, k + 1) for c in itertools.combinations(range(k), size)]
        for k in shape
    ]
    n_combos = math.prod(len(s) for s in subsets)
    tol = _tol(game)
    found: list[list[np.ndarray]] = []
    for p in pure_equilibria(game, tol):
        found.append([np.eye(k)[s] for k, s in zip(shape, p, strict=False)])
    if n_combos > max_supports:
        for seed in range(4):
            start = (
                None
                if seed == 0
                else [np.random.default_rng(seed).dirichlet(np.ones(k)) for k in shape]
            )
            end = replicator(game, start=start, steps=4000)[-1]
            if mixed_regret(game, end) <= 1e-3 * (1 + _scale(game)):
                found.append(end)
        return _dedupe(found)
    rng = np.random.default_rng(0)
    scale = _scale(game) or 1.0
    for supports in itertools.product(*subsets):
        if all(len(s) == 1 for s in supports):
            continue  # pure profiles: done above
        sizes = [len(s) for s in supports]
        cuts = np.cumsum([0] + sizes)

        # defaults bind this iteration's supports (the functions are used within it)
        def unpack(z: np.ndarray, supports=supports, cuts=cuts) -> list[np.ndarray]:
            mix = []
            for r, sup in enumerate(supports):
                m = np.zeros(shape[r])
                m[list(sup)] = z[cuts[r] : cuts[r + 1]]
                mix.append(m)
            return mix

        def equations(z: np.ndarray, supports=supports, cuts=cuts, unpack=unpack) -> np.ndarray:
            mix = unpack(z)
            out = []
            for r, sup in enumerate(supports):
                pay = strategy_payoffs(game, mix, r)[list(sup)] / scale
                out += [pay[i] - pay[0] for i in range(1, len(sup))]
                out.append(float(z[cuts[r] : cuts[r + 1]].sum()) - 1.0)
            return np.asarray(out)

        starts = [np.concatenate([np.full(k, 1.0 / k) for k in sizes])]
        starts += [np.concatenate([rng.dirichlet(np.ones(k)) for k in sizes]) for _ in range(3)]
        for z0 in starts:
            sol = root(equations, z0, method="hybr")
            z = sol.x
            if not sol.success or np.any(z < -1e-9) or np.max(np.abs(equations(z))) > 1e-9:
                continue
            mix = [np.clip(m, 0.0, None) / np.clip(m, 0.0, None).sum() for m in unpack(z)]
            if mixed_regret(game, mix) <= tol:
                found.append(mix)
    return _dedupe(found)


def _scale(game: Game) -> float:
    """The largest |payoff| (0 for an all-zero or unmeasured game): tolerances are relative to it."""
    vals = [float(np.nanmax(np.abs(a))) for a in game.means if np.isfinite(a).any()]
    return max(vals, default=0.0)
