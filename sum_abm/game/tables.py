"""Empirical game tables: the payoff arrays of an n-role normal-form game (:class:`Game`), their
polars form (``profile, role, strategy, mean, stderr, n``), profile labels, and the expected payoff
of each pure strategy against the other roles' mixes.

``means[r]`` and ``stderrs[r]`` have one axis per role (that role's strategy index) and hold role
``r``'s payoff for every profile. Nothing here knows of markets: tests inject known games
(prisoner's dilemma, matching pennies, three players).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
from scipy import stats

Z95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal


def half_width(ses: Sequence[float], ns: Sequence[int | None], level: float = 0.95) -> float:
    """Half-width (payoff units) of the two-sided ``level`` interval of one mean, or of a
    difference of independent means, with standard errors ``ses`` over ``ns`` replications.

    Student's t with the Welch-Satterthwaite degrees of freedom: with the few replications a game
    runs, the normal quantile (1.96) is far too narrow (one mean of 2 replications: t = 12.7; a
    difference of two such means with equal spreads: 4.30). ``None`` in ``ns``: that standard error is known, not estimated (an exact game, a table
    without counts), and the normal quantile is used. A measured mean from fewer than 2
    replications has no estimate of its spread: the interval is unbounded (``inf``).
    """
    if any(n is None for n in ns):
        return float(stats.norm.ppf(0.5 + level / 2)) * math.hypot(*ses)
    if any(n < 2 for n in ns):
        return math.inf
    var = [se * se for se in ses]
    total = sum(var)
    if total == 0:
        return 0.0  # every replication gave the same payoff
    df = total * total / sum(v * v / (n - 1) for v, n in zip(var, ns, strict=True))
    return float(stats.t.ppf(0.5 + level / 2, df)) * math.sqrt(total)


@dataclass
class Game:
    """Payoffs of an n-role normal-form game, with standard errors (0 for exact games).

    ``means[r]`` has one axis per role (that role's strategy index) and holds role ``r``'s mean
    payoff (token units, ROI or accuracy: whatever the table measured) for every profile; a profile
    that was never run is NaN. ``counts[r]`` holds how many replications each mean comes from.
    """

    roles: list[str]
    strategies: list[list[str]]
    means: list[np.ndarray]
    stderrs: list[np.ndarray]
    counts: list[np.ndarray] | None = None

    @classmethod
    def exact(cls, roles: list[str], strategies: list[list[str]], means: list) -> Game:
        """A game known exactly (standard errors 0), e.g. a textbook game for tests."""
        m = [np.asarray(a, dtype=float) for a in means]
        return cls(roles, strategies, m, [np.zeros_like(a) for a in m])

    @classmethod
    def from_table(
        cls,
        table: pl.DataFrame,
        roles: list[str] | None = None,
        strategies: list[list[str]] | None = None,
    ) -> Game:
        """The payoff arrays of a polars payoff table with columns (profile, role, strategy, mean,
        stderr, n), one row per (profile, role); ``profile`` is the label ``"r1=s | r2=t"`` that
        :meth:`label` writes. Roles and strategy orders default to first appearance in the table;
        profiles absent from the table are NaN (sampled tables). Raises ValueError on a malformed
        table (missing column, unknown role or strategy, a (profile, role) given twice)."""
        missing = {"profile", "role", "strategy", "mean"} - set(table.columns)
        if missing:
            raise ValueError(f"payoff table: missing columns {sorted(missing)}")
        parsed = [parse_label(p) for p in table["profile"].to_list()]
        if roles is None:
            roles = list(dict.fromkeys(r for prof in parsed for r, _ in prof))
        if strategies is None:
            seen: dict[str, dict[str, None]] = {r: {} for r in roles}
            for prof in parsed:
                for r, s in prof:
                    seen.setdefault(r, {})[s] = None
            strategies = [list(seen[r]) for r in roles]
        ridx = {r: i for i, r in enumerate(roles)}
        sidx = [{s: j for j, s in enumerate(ss)} for ss in strategies]
        shape = tuple(len(ss) for ss in strategies)
        means = [np.full(shape, np.nan) for _ in roles]
        ses = [np.zeros(shape) for _ in roles]
        ns = [np.zeros(shape, dtype=np.int64) for _ in roles]
        se_col = table["stderr"].to_list() if "stderr" in table.columns else [0.0] * table.height
        n_col = table["n"].to_list() if "n" in table.columns else [1] * table.height
        for prof, role, strat, mean, se, n in zip(
            parsed,
            table["role"].to_list(),
            table["strategy"].to_list(),
            table["mean"].to_list(),
            se_col,
            n_col,
            strict=False,
        ):
            d = dict(prof)
            if set(d) != set(roles) or role not in ridx:
                raise ValueError(
                    f"payoff table: profile {label_of(prof)!r} / role {role!r} do not match roles {roles}"
                )
            try:
                idx = tuple(sidx[ridx[r]][d[r]] for r in roles)
            except KeyError as exc:
                raise ValueError(
                    f"payoff table: unknown strategy {exc} in profile {label_of(prof)!r}"
                ) from None
            if d[role] != strat:
                raise ValueError(
                    f"payoff table: row strategy {strat!r} is not {role}'s strategy in {label_of(prof)!r}"
                )
            r = ridx[role]
            if ns[r][idx]:
                raise ValueError(f"payoff table: ({label_of(prof)!r}, {role!r}) appears twice")
            means[r][idx] = np.nan if mean is None else float(mean)
            ses[r][idx] = float(se or 0.0)
            ns[r][idx] = max(1, int(n or 0))
        # without an ``n`` column the standard errors are taken as known (see half_width)
        return cls(
            list(roles),
            [list(s) for s in strategies],
            means,
            ses,
            ns if "n" in table.columns else None,
        )

    def to_table(self) -> pl.DataFrame:
        """The payoff table (profile, role, strategy, mean, stderr, n) of every profile that was run."""
        rows = []
        for p in self.profiles():
            for r, role in enumerate(self.roles):
                m = float(self.means[r][p])
                if not math.isfinite(m):
                    continue
                n = int(self.counts[r][p]) if self.counts is not None else 0
                rows.append(
                    {
                        "profile": self.label(p),
                        "role": role,
                        "strategy": self.strategies[r][p[r]],
                        "mean": m,
                        "stderr": float(self.stderrs[r][p]),
                        "n": n,
                    }
                )
        return pl.DataFrame(
            rows,
            schema={
                "profile": pl.String,
                "role": pl.String,
                "strategy": pl.String,
                "mean": pl.Float64,
                "stderr": pl.Float64,
                "n": pl.Int64,
            },
        )

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(s) for s in self.strategies)

    def profiles(self) -> list[tuple[int, ...]]:
        """Every pure profile (strategy indices, one per role), first role slowest."""
        return list(itertools.product(*(range(k) for k in self.shape)))

    def complete(self, profile: tuple[int, ...]) -> bool:
        """Whether every role's payoff at ``profile`` was measured."""
        return all(math.isfinite(self.means[r][profile]) for r in range(len(self.roles)))

    def label(self, profile: tuple[int, ...]) -> str:
        """``"role=strategy | role=strategy"``: the profile column of payoff tables."""
        return label_of(
            [
                (r, self.strategies[i][s])
                for i, (r, s) in enumerate(zip(self.roles, profile, strict=False))
            ]
        )


def label_of(pairs) -> str:
    return " | ".join(f"{r}={s}" for r, s in pairs)


def parse_label(label: str) -> list[tuple[str, str]]:
    """The (role, strategy) pairs of a profile label (inverse of :meth:`Game.label`)."""
    out = []
    for part in label.split(" | "):
        r, sep, s = part.partition("=")
        if not sep:
            raise ValueError(f"payoff table: profile {label!r}: expected 'role=strategy | ...'")
        out.append((r.strip(), s.strip()))
    return out


def strategy_payoffs(game: Game, mix: list[np.ndarray], r: int) -> np.ndarray:
    """Role ``r``'s expected payoff of each of its pure strategies when the other roles play ``mix``."""
    a = game.means[r]
    for i in reversed(range(len(game.roles))):  # contract from the last axis so indices stay valid
        if i != r:
            a = np.tensordot(a, mix[i], axes=([i], [0]))
    return np.asarray(a, dtype=float)
