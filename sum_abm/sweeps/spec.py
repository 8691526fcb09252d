"""Sweep files: a base scenario expanded over grids, zipped lists and random draws, times replications.

Each run has a stable id derived from its overrides and replication, and its own seed from
``numpy.random.SeedSequence(root_seed, spawn_key=...)`` keyed by that id: adding points to a grid does
not change the ids or seeds of the existing ones.

.. code-block:: toml

    base = "../quickstart.toml"      # relative to this file
    seed = 7                         # root seed
    replications = 4
    [grid]                           # Cartesian product
    "mechanism.cost_weight" = [1, 2, 4]
    [zip]                            # varied together (equal lengths)
    "agents.attacker.count" = [1, 2]
    "agents.attacker.mean_wait_s" = [3600, 1800]
    [random]                         # `count` draws, each combined with every grid x zip point
    count = 5
    [random.params]
    "chain.gas_price" = { dist = "uniform", low = 0, high = 5e-05 }   # token units per gas
    "agents.honest.contribute_prob" = { dist = "loguniform", low = 0.1, high = 1 }
    "learner.kind" = { dist = "choice", values = ["perceptron", "multinomial_nb"] }

Random draws are stable too: each parameter has its own stream from ``SeedSequence(seed, spawn_key=
<hash of its path>)``, so raising ``count`` keeps the earlier draws and adding a parameter leaves the
others' draws unchanged.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from sum_abm.bundled import resolve_base
from sum_abm.config import StrictModel
from sum_abm.errors import InputError
from sum_abm.scenario import Scenario, load_scenario, read_toml, split_path, validate_file_model


class _Strict(StrictModel):
    """Unknown keys are errors; true/false is no number (:class:`sum_abm.config.StrictModel`)."""


class RandomParam(_Strict):
    """One randomly drawn field: ``uniform``/``loguniform`` in [low, high), ``integer`` in [low, high],
    or ``choice`` among ``values``."""

    dist: Literal["uniform", "loguniform", "integer", "choice"]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = None

    @model_validator(mode="after")
    def _bounds(self) -> RandomParam:
        if self.dist == "choice":
            if not self.values:
                raise ValueError("choice needs a non-empty 'values' list")
        else:
            if self.values is not None:
                raise ValueError(f"{self.dist} takes low and high, not values")
            if self.low is None or self.high is None or self.high < self.low:
                raise ValueError(f"{self.dist} needs low <= high")
            if self.dist == "loguniform" and self.low <= 0:
                raise ValueError("loguniform needs low > 0")
            if self.dist == "integer" and not (
                float(self.low).is_integer() and float(self.high).is_integer()
            ):
                raise ValueError(
                    f"integer needs whole-number bounds, got low={self.low}, high={self.high}"
                )
            if self.dist == "integer" and not (-(2**63) <= self.low and self.high < 2**63 - 1):
                raise ValueError(
                    f"integer needs bounds that fit a 64-bit integer (results store Int64), "
                    f"got low={self.low:g}, high={self.high:g}"
                )
        return self

    def draw(self, rng: np.random.Generator) -> Any:
        if self.dist == "choice":
            return self.values[int(rng.integers(len(self.values)))]
        if self.dist == "integer":
            return int(rng.integers(int(self.low), int(self.high) + 1))
        if self.dist == "loguniform":
            return float(np.exp(rng.uniform(np.log(self.low), np.log(self.high))))
        return float(rng.uniform(self.low, self.high))


class RandomSpec(_Strict):
    count: int = Field(ge=1, le=100_000, description="draws (each one point of the sweep)")
    params: dict[str, RandomParam] = Field(min_length=1)


class SweepSpec(_Strict):
    """The validated content of a sweep file."""

    base: str
    name: str = "sweep"
    description: str = ""
    seed: int = Field(0, ge=0)
    replications: int = Field(1, ge=1, le=100_000)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    zip: dict[str, list[Any]] = Field(default_factory=dict)
    random: RandomSpec | None = None

    @model_validator(mode="after")
    def _shapes(self) -> SweepSpec:
        for k, v in self.grid.items():
            if not v:
                raise ValueError(f"grid.{k}: empty list (expected at least one value)")
            if len({_canon(x) for x in v}) != len(v):
                raise ValueError(f"grid.{k}: expected distinct values (each runs once), got {v}")
        lens = {len(v) for v in self.zip.values()}
        if len(lens) > 1:
            raise ValueError(f"zip: lists must have equal lengths, got {sorted(lens)}")
        if lens == {0}:
            raise ValueError("zip: empty lists")
        rows = list(zip(*self.zip.values(), strict=True))
        if len({_canon(r) for r in rows}) != len(rows):
            raise ValueError(
                f"zip: expected distinct rows (each runs once), got a repeated one in {sorted(self.zip)}"
            )
        # One path, one section: a path both in [grid] and [zip] would silently take the last value.
        sections = {
            "grid": self.grid,
            "zip": self.zip,
            "random.params": self.random.params if self.random else {},
        }
        seen: dict[str, str] = {}
        for sec, paths in sections.items():
            for k in paths:
                key = ".".join(split_path(k))
                if key in seen:
                    raise ValueError(
                        f"{sec}.{k}: also varied in [{seen[key]}] (a path belongs to one section)"
                    )
                seen[key] = sec
        return self


@dataclass(frozen=True)
class RunSpec:
    """One run of a sweep: its id, overrides, replication and seed."""

    run_id: str
    overrides: dict[str, Any]
    replication: int
    seed: int


def run_id(overrides: dict[str, Any], replication: int) -> str:
    """Stable id: a hash of the canonical JSON of the overrides and the replication index."""
    canon = json.dumps(
        {"o": overrides, "r": replication}, sort_keys=True, separators=(",", ":"), default=str
    )
    return hashlib.sha256(canon.encode()).hexdigest()[:16]


def run_seed(root_seed: int, rid: str) -> int:
    """The run's seed: ``SeedSequence(root_seed, spawn_key=<words of the id>)`` — independent of the
    other points, so growing a grid never changes an existing run's seed."""
    state = np.random.SeedSequence(root_seed, spawn_key=_words(rid)).generate_state(
        1, dtype=np.uint64
    )[0]
    return int(state >> 1)  # 63 bits: a non-negative int64 wherever the seed is stored


@dataclass
class Sweep:
    """A loaded sweep: its file, spec, validated base scenario and expanded runs."""

    path: Path
    spec: SweepSpec
    base: Scenario
    runs: list[RunSpec]

    def points(self) -> list[dict[str, Any]]:
        """The distinct override sets (one per parameter point)."""
        seen, out = set(), []
        for r in self.runs:
            key = json.dumps(r.overrides, sort_keys=True, default=str)
            if key not in seen:
                seen.add(key)
                out.append(r.overrides)
        return out


def expand(spec: SweepSpec) -> list[dict[str, Any]]:
    """The override sets of a spec: grid product × zip rows × random draws (each may be absent)."""
    grid = [
        dict(zip(spec.grid, combo, strict=False))
        for combo in itertools.product(*spec.grid.values())
    ] or [{}]
    n = len(next(iter(spec.zip.values()))) if spec.zip else 0
    zipped = [{k: v[i] for k, v in spec.zip.items()} for i in range(n)] or [{}]
    rand: list[dict[str, Any]] = [{}]
    if spec.random is not None:
        n = spec.random.count
        cols = {
            k: [p.draw(rng) for _ in range(n)]
            for k, p in spec.random.params.items()
            for rng in [
                np.random.default_rng(
                    np.random.SeedSequence(spec.seed, spawn_key=_words(_digest(k)))
                )
            ]
        }
        rand = [{k: cols[k][i] for k in cols} for i in range(n)]
    points = _one_number_type([{**g, **z, **r} for g in grid for z in zipped for r in rand])
    # A point drawn twice (random draws repeat) is the same run (its id is its overrides): once.
    return list({_canon(p): p for p in points}.values())


def _one_number_type(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A parameter given both as ints and as floats (``[0, 1e-05]``) as floats in every point, so
    that its column has one type in every run's part (a part is written per run)."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    keys = {k for p in points for k in p}
    mixed = {
        k
        for k in keys
        if all(number(p[k]) for p in points if k in p)
        and {type(p[k]) for p in points if k in p} == {int, float}
    }
    if not mixed:
        return points
    return [{k: float(v) if k in mixed else v for k, v in p.items()} for p in points]


def _canon(value: Any) -> str:
    """A value's canonical JSON, what run ids are made of: equal values, equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _words(hex_id: str) -> tuple[int, ...]:
    """A hex id as 32-bit words, the form ``SeedSequence``'s ``spawn_key`` takes."""
    return tuple(int(hex_id[i : i + 8], 16) for i in range(0, len(hex_id), 8))


def runs_for(points: list[dict[str, Any]], replications: int, root_seed: int) -> list[RunSpec]:
    """Every (point, replication) as a :class:`RunSpec`."""
    out = []
    for ov in points:
        for rep in range(replications):
            rid = run_id(ov, rep)
            out.append(RunSpec(rid, ov, rep, run_seed(root_seed, rid)))
    return out


def parse_sweep(data: dict[str, Any], path: Path) -> Sweep:
    """Validate sweep data read from ``path``; every override is checked against the base scenario
    before anything runs (one-line InputError naming the file, the path and the problem)."""
    src = str(path)
    spec = validate_file_model(SweepSpec, data, src)
    base_path = resolve_base(spec.base, path, "sweep")
    base = load_scenario(base_path)
    points = expand(spec)
    check_points(base, points, src)
    return Sweep(path, spec, base, runs_for(points, spec.replications, spec.seed))


def check_points(base: Scenario, points: list[dict[str, Any]], source: str) -> None:
    """Validate every override set against ``base`` before anything runs; the first problem raises a
    one-line InputError naming ``source`` and the path. When a combination fails, the value that
    fails on its own is named rather than the combination; values that are only valid together
    (``data.kind = "csv"`` with its ``data.path``) pass."""
    checked: set[str] = set()
    for ov in points:
        for key in ov:
            if split_path(key) in (["seed"], ["run_id"], ["replication"]):
                raise InputError(
                    f"{source}: {key}: the sweep sets each run's {key} itself (vary replications "
                    f"and the sweep's root seed instead)"
                )
        tag = json.dumps(ov, sort_keys=True, default=str)
        if tag in checked:  # each distinct point once: replications repeat them
            continue
        for key, value in ov.items():  # a parameter column of the runs table is 64-bit
            if isinstance(value, int) and not -(2**63) <= value < 2**63:
                raise InputError(
                    f"{source}: {key}: expected an integer that fits in 64 bits, got {value:.3g}"
                )
        try:
            base.with_overrides(ov, source=source)
        except InputError:
            for key, value in ov.items():
                base.with_overrides({key: value}, source=source)  # names the value at fault
            raise
        checked.add(tag)


def load_sweep_file(path: str | Path) -> Sweep:
    """Read, validate and expand a sweep TOML file."""
    p = Path(path)
    return parse_sweep(read_toml(p), p)
