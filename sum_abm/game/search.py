"""Searches that run only the profiles or points they need: a best-deviation walk through a table
too large to fill, and bisection for where a noisy payoff crosses zero (the frontier)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from sum_abm.game.equilibria import best_deviation
from sum_abm.game.tables import Game, half_width


def neighbourhood(
    shape: tuple[int, ...] | list[int], profile: tuple[int, ...]
) -> list[tuple[int, ...]]:
    """A profile and every unilateral deviation from it (what testing it as an equilibrium needs)."""
    out = [tuple(profile)]
    for r, k in enumerate(shape):
        for s in range(k):
            if s != profile[r]:
                p = list(profile)
                p[r] = s
                out.append(tuple(p))
    return out


@dataclass
class Walk:
    """A best-deviation walk through a sampled table: the candidates visited, every profile
    measured, and why it stopped (``equilibrium``, ``cycle`` or ``max_profiles``)."""

    path: list[tuple[int, ...]]
    profiles: list[tuple[int, ...]]
    stopped: str


def deviation_walk(
    game: Game,
    profiles: list[tuple[int, ...]],
    measure: Callable[[list[tuple[int, ...]]], Game],
    max_profiles: int,
) -> tuple[Game, Walk]:
    """Sample deviations around candidate equilibria instead of running a table too large to fill.

    ``game`` holds the measured ``profiles``, which must include the first profile of the walk (the
    reference: all first strategies) and its unilateral deviations. From the candidate, move to its
    best deviation when that gains; ask ``measure`` (given every profile to have, old and new; it
    returns the game re-estimated) for the new candidate's neighbourhood; repeat until a candidate
    has no gaining deviation (an equilibrium of the sampled table), the walk returns to a visited
    candidate, or the next neighbourhood would take the count past ``max_profiles``.
    """
    path = [tuple(0 for _ in game.shape)]
    have = list(profiles)
    while True:
        d = best_deviation(game, path[-1])
        if d.role < 0 or d.gain <= 0:
            return game, Walk(path, have, "equilibrium")
        nxt = tuple(d.strategy if i == d.role else s for i, s in enumerate(path[-1]))
        if nxt in path:
            return game, Walk(path, have, "cycle")
        known = set(have)
        new = [p for p in neighbourhood(game.shape, nxt) if p not in known]
        if len(have) + len(new) > max_profiles:
            return game, Walk(path, have, "max_profiles")
        have = have + new
        path.append(nxt)
        game = measure(have)


@dataclass
class Crossing:
    """Where a noisy monotone function stops (or starts) being positive: for an attack's ROI, where
    it stops paying. A mean of exactly 0 (an attack that cannot act earns nothing) is on the side
    that does not pay.

    ``estimate``: the middle of the final bisection bracket (``bracket``), which follows the means.
    ``low``/``high``: the interval the crossing lies in at 95 % — between the last point on the
    ``lo`` end's side whose side is clear (its mean's 95 % interval all above 0, or all at or
    below it) and the first clear one on the ``hi`` end's side (an end of the range when no point
    there is clear). ``evaluations``: every (x, mean, stderr) computed.
    """

    low: float
    high: float
    estimate: float
    evaluations: list[tuple[float, float, float]]
    bracket: tuple[float, float] = (math.nan, math.nan)


class NoCrossing(ValueError):
    """Both ends of the range on the same side: no crossing to place. ``evaluations``: the
    (x, mean, stderr) measured at the ends."""

    def __init__(self, message: str, evaluations: list[tuple[float, float, float]]) -> None:
        super().__init__(message)
        self.evaluations = evaluations


def bisect_zero(
    f: Callable[[float], tuple[float, float]],
    lo: float,
    hi: float,
    *,
    iterations: int = 8,
    tol: float = 0.0,
    replications: int | None = None,
) -> Crossing:
    """Bisection on [lo, hi] for where a monotone ``f`` stops (or starts) being positive (see
    :class:`Crossing`); ``f(x)`` returns the mean and its standard error at ``x`` (e.g. over
    replications). The bracket moves by the means; the reported interval only trusts points
    whose side is clear at 95 %. Stops after ``iterations`` midpoints or when the bracket is no
    wider than ``tol``. ``replications``: how many values each mean averages (Student's t for the
    interval, see :func:`~sum_abm.game.tables.half_width`); None when the standard errors are
    known. Raises :class:`NoCrossing` (a ValueError) when both ends are on the same side."""
    f_lo, s_lo = f(lo)
    f_hi, s_hi = f(hi)
    evals = [(lo, f_lo, s_lo), (hi, f_hi, s_hi)]
    if f_lo == 0 and f_hi == 0:  # flat (e.g. an attack that never acts): no crossing to place
        raise NoCrossing(f"no crossing in [{lo}, {hi}]: f = 0 at both ends", evals)
    up = f_lo > 0  # the lo end's side: positive, or not
    if (f_hi > 0) == up:
        raise NoCrossing(f"no crossing in [{lo}, {hi}]: f = {f_lo:.4g} and {f_hi:.4g}", evals)
    a, b = lo, hi
    for _ in range(iterations):
        if tol and b - a <= tol:
            break
        m = 0.5 * (a + b)
        fm, sm = f(m)
        evals.append((m, fm, sm))
        if (fm > 0) == up:
            a = m
        else:
            b = m

    def side(fx: float, sx: float) -> bool | None:
        """Whether ``fx`` is positive at 95 % (True), at or below 0 (False), or unclear (None)."""
        h = half_width((sx,), (replications,))
        return True if fx - h > 0 else False if fx + h <= 0 else None

    sides = [(x, side(fx, sx)) for x, fx, sx in evals]
    low = max((x for x, sd in sides if sd is up and x <= a), default=lo)
    high = min((x for x, sd in sides if sd is (not up) and x >= b), default=hi)
    return Crossing(low, high, 0.5 * (a + b), evals, (a, b))
