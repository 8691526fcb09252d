"""Evolutionary dynamics of an empirical game: multi-population replicator dynamics, one
population per role. (A role with many interchangeable players has its own dynamics over strategy
shares: :meth:`sum_abm.game.symmetric.SymmetricGame.replicator`.)"""

from __future__ import annotations

import numpy as np

from sum_abm.game.tables import Game, strategy_payoffs


def replicator(
    game: Game, start: list[np.ndarray] | None = None, steps: int = 2000, dt: float = 0.05
) -> list[list[np.ndarray]]:
    """Multi-population replicator dynamics (discrete steps of ``dt``, each role's payoffs divided by
    their range): the trajectory of every role's strategy mix from ``start`` (default uniform), one
    population per role. A role with many interchangeable players is :class:`SymmetricGame`'s."""
    mix = (
        [np.asarray(m, dtype=float) for m in start]
        if start is not None
        else [np.full(k, 1.0 / k) for k in game.shape]
    )
    # Each role's payoffs are scaled by their own range: the dynamics' paths do not change, and roles
    # paid in different units (tokens, ROI, accuracy) move at comparable speeds.
    scales = [float(np.nanmax(m) - np.nanmin(m)) or 1.0 for m in game.means]
    traj = [[m.copy() for m in mix]]
    for _ in range(steps):
        new = []
        for r in range(len(game.roles)):
            fit = strategy_payoffs(game, mix, r) / scales[r]
            avg = float(mix[r] @ fit)
            m = mix[r] * (1 + dt * (fit - avg))
            m = np.clip(m, 0, None)
            new.append(m / m.sum())
        mix = new
        traj.append([m.copy() for m in mix])
    return traj
