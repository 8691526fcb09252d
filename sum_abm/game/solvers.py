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
import polars as pl

Z95 = 1.959963984540054


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
        return cls(list(roles), [list(s) for s in strategies], means, ses, ns)

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


def deviations(game: Game, profile: tuple[int, ...]) -> list[Deviation]:
    """Every unilateral deviation from ``profile`` that was measured, with its gain and 95 % interval
    (independent estimates: the standard errors add in quadrature)."""
    out = []
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
            half = Z95 * math.hypot(game.stderrs[r][dev_t], se_here)
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


def strategy_payoffs(game: Game, mix: list[np.ndarray], r: int) -> np.ndarray:
    """Role ``r``'s expected payoff of each of its pure strategies when the other roles play ``mix``."""
    a = game.means[r]
    for i in reversed(range(len(game.roles))):  # contract from the last axis so indices stay valid
        if i != r:
            a = np.tensordot(a, mix[i], axes=([i], [0]))
    return np.asarray(a, dtype=float)


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


@dataclass
class Crossing:
    """Where a noisy monotone function crosses zero.

    ``estimate``: the middle of the final bisection bracket (``bracket``), which follows the sign of
    the means. ``low``/``high``: the interval the crossing lies in at 95 % — between the last point
    whose sign is clear (mean beyond 1.96 standard errors of zero) on the ``lo`` side and the first
    clear one on the ``hi`` side (an end of the range when no point there is clear).
    ``evaluations``: every (x, mean, stderr) computed.
    """

    low: float
    high: float
    estimate: float
    evaluations: list[tuple[float, float, float]]
    bracket: tuple[float, float] = (math.nan, math.nan)


def bisect_zero(
    f: Callable[[float], tuple[float, float]],
    lo: float,
    hi: float,
    *,
    iterations: int = 8,
    tol: float = 0.0,
) -> Crossing:
    """Bisection for the zero crossing of a monotone ``f`` on [lo, hi]; ``f(x)`` returns the mean and
    its standard error at ``x`` (e.g. over replications). The bracket moves by the sign of the
    means; the reported interval only trusts points whose sign is clear at 95 % (see
    :class:`Crossing`). Stops after ``iterations`` midpoints or when the bracket is no wider than
    ``tol``. Raises ValueError when the means at the ends have the same sign (no crossing)."""
    f_lo, s_lo = f(lo)
    f_hi, s_hi = f(hi)
    evals = [(lo, f_lo, s_lo), (hi, f_hi, s_hi)]
    if f_lo == 0:
        return Crossing(lo, lo, lo, evals, (lo, lo))
    if f_hi == 0:
        return Crossing(hi, hi, hi, evals, (hi, hi))
    if np.sign(f_lo) == np.sign(f_hi):
        raise ValueError(f"no crossing in [{lo}, {hi}]: f = {f_lo:.4g} and {f_hi:.4g}")
    side = np.sign(f_lo)
    a, b = lo, hi
    for _ in range(iterations):
        if tol and b - a <= tol:
            break
        m = 0.5 * (a + b)
        fm, sm = f(m)
        evals.append((m, fm, sm))
        if fm == 0:
            a = b = m
            break
        if np.sign(fm) == side:
            a = m
        else:
            b = m
    clear = [(x, fx) for x, fx, sx in evals if abs(fx) > Z95 * sx]
    low = max((x for x, fx in clear if np.sign(fx) == side and x <= a), default=lo)
    high = min((x for x, fx in clear if np.sign(fx) == -side and x >= b), default=hi)
    return Crossing(low, high, 0.5 * (a + b), evals, (a, b))
