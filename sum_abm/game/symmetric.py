"""Symmetric games over strategy counts: ``n`` interchangeable players of one role, analysed over
how many play each strategy (never by enumerating every player's choice): expected payoffs against
a mix, regret, replicator dynamics of the shares and symmetric equilibria."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np


def compositions(n: int, k: int) -> list[tuple[int, ...]]:
    """Every way to split n players over k strategies (count vectors), all-first-strategy first."""
    out = []
    for cut in itertools.combinations(range(n + k - 1), k - 1):
        parts, prev = [], -1
        for c in (*cut, n + k - 1):
            parts.append(c - prev - 1)
            prev = c
        out.append(tuple(parts))
    return sorted(out, reverse=True)


@dataclass
class SymmetricGame:
    """``n`` interchangeable players each choose one of ``strategies``; a player's payoff depends
    only on its own strategy and on how many players play each strategy (the count vector).

    ``payoff[c][s]`` is the mean payoff of a player of strategy ``s`` in the profile with counts
    ``c`` (NaN where nobody plays ``s``). This is how a role with many players is analysed: over
    strategy counts, never by enumerating every player's choice.
    """

    n: int
    strategies: list[str]
    payoff: dict[tuple[int, ...], np.ndarray]

    def __post_init__(self) -> None:
        k = len(self.strategies)
        self._others = compositions(self.n - 1, k)  # what the n - 1 other players can do
        self._coef = np.array(
            [
                math.factorial(self.n - 1) / math.prod(math.factorial(c) for c in cs)
                for cs in self._others
            ]
        )
        self._pay = np.full((len(self._others), k), np.nan)
        for i, cs in enumerate(self._others):
            for s in range(k):
                full = list(cs)
                full[s] += 1
                row = self.payoff.get(tuple(full))
                if row is not None:
                    self._pay[i, s] = row[s]
        self._powers = np.array(self._others, dtype=float)

    @property
    def k(self) -> int:
        return len(self.strategies)

    @property
    def complete(self) -> bool:
        """Whether every payoff the expectations need was measured (a failed profile leaves a hole)."""
        return not bool(np.isnan(self._pay).any())

    def strategy_payoffs(self, x: np.ndarray) -> np.ndarray:
        """Expected payoff of each strategy for one player when the other n - 1 players each play
        the mix ``x`` independently (their counts are multinomial)."""
        x = np.asarray(x, dtype=float)
        w = self._coef * np.prod(np.power(x[None, :], self._powers), axis=1)
        with np.errstate(invalid="ignore"):
            # a profile nobody can reach (weight 0) must not poison the sum with its NaN
            return np.array(
                [float(np.sum(np.where(w > 0, w * self._pay[:, s], 0.0))) for s in range(self.k)]
            )

    def regret(self, x: np.ndarray) -> float:
        """How much one player gains by switching from the mix ``x`` (everyone else on ``x``) to its
        best pure strategy: 0 at a symmetric equilibrium."""
        f = self.strategy_payoffs(x)
        return float(max(0.0, f.max() - np.asarray(x) @ f))

    def replicator(
        self, start: np.ndarray | None = None, steps: int = 2000, dt: float = 0.05
    ) -> np.ndarray:
        """Replicator dynamics of the population's strategy shares: an array (steps + 1, k) of the
        trajectory from ``start`` (default uniform). Payoffs are divided by their range, so that
        ``dt`` is in units of it (the path does not depend on the payoffs' unit)."""
        x = np.full(self.k, 1.0 / self.k) if start is None else np.asarray(start, dtype=float)
        scale = float(np.nanmax(self._pay) - np.nanmin(self._pay)) or 1.0
        out = [x]
        for _ in range(steps):
            f = self.strategy_payoffs(x) / scale
            x = np.clip(x * (1 + dt * (f - x @ f)), 0.0, None)
            x = x / x.sum()
            out.append(x)
        return np.array(out)

    def equilibria(self) -> list[np.ndarray]:
        """Symmetric equilibria (every player on the same mix; pure strategies included). With two
        strategies, exactly: the ends of the simplex whose payoff difference points inward and every
        sign change of the difference inside, located by Brent's method. With more, the rest points
        of the replicator dynamics from the vertices' neighbourhoods and the centre whose regret is
        ~0."""
        scale = float(np.nanmax(np.abs(self._pay))) or 1.0
        tol = 1e-9 * scale
        found: list[np.ndarray] = []
        if self.k == 2:
            from scipy.optimize import brentq

            def d(
                q: float,
            ) -> float:  # payoff of strategy 1 minus strategy 0 when others play 1 w.p. q
                f = self.strategy_payoffs(np.array([1 - q, q]))
                return float(f[1] - f[0])

            if d(0.0) <= tol:
                found.append(np.array([1.0, 0.0]))
            grid = np.linspace(0.0, 1.0, 201)
            vals = [d(q) for q in grid]
            for (a, fa), (b, fb) in zip(
                zip(grid, vals, strict=False), zip(grid[1:], vals[1:], strict=False), strict=False
            ):
                if 0 < b < 1 and abs(fb) <= tol and abs(fa) > tol:  # first point of a zero plateau
                    found.append(np.array([1 - b, b]))
                elif fa * fb < 0:
                    q = brentq(d, a, b, xtol=1e-12)
                    found.append(np.array([1 - q, q]))
            if d(1.0) >= -tol:
                found.append(np.array([0.0, 1.0]))
        else:
            starts = [None] + [0.9 * np.eye(self.k)[s] + 0.1 / self.k for s in range(self.k)]
            for x0 in starts:
                end = self.replicator(x0, steps=5000)[-1]
                if self.regret(end) <= 1e-4 * scale:
                    found.append(end)
            for s in range(self.k):
                pure = np.eye(self.k)[s]
                if self.regret(pure) <= tol:
                    found.append(pure)
        out: list[np.ndarray] = []
        for e in found:
            if not any(np.allclose(e, f, atol=1e-6) for f in out):
                out.append(e)
        return out
