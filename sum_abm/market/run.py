"""``run(scenario, seed)``: one market run (and its clean baseline when there are attackers)."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sum_abm.data import load_dataset
from sum_abm.market.mesa_core import Agent
from sum_abm.market.model import MarketModel
from sum_abm.market.results import RunResult, collect, summarize
from sum_abm.scenario import Scenario, load_scenario, parse_scenario


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused (reference counting still frees everything else).

    A market run allocates hundreds of thousands of long-lived objects (stored contributions,
    samples, log columns) and makes almost no cyclic garbage, so the automatic collections it
    triggers find nothing, yet each full one walks the whole heap: in S1 about 5 % of the run
    (0.1-0.2 s). Whatever cyclic garbage the run leaves (its model) is collected after.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _simulate(
    scenario: Scenario, seed: int, dataset: Any, baseline: RunResult | None, progress: Any = None
) -> RunResult:
    t0 = time.perf_counter()
    with _collector_paused():
        model = MarketModel(scenario=scenario, seed=seed, dataset=dataset)
        try:
            model.run(progress)
            frames = collect(model)
            summary = summarize(model, frames, baseline)
        finally:
            # Mesa 3.3.1 keeps every model that created an agent alive in a class-level dict
            # (fixed upstream in 3.4.2); without this a Ray worker grows by megabytes per run.
            Agent._ids.pop(model, None)
    return RunResult(
        scenario=scenario,
        seed=seed,
        summary=summary,
        wall_time_s=time.perf_counter() - t0,
        baseline=baseline,
        **frames,
    )


COLLECT_ABOVE_TEST_CELLS = 2_000_000  # S1: 25,000 x 1,000; a sweep's quick start: 100s x 1,000


def run(
    scenario: Scenario | dict[str, Any] | str | Path,
    seed: int | None = None,
    *,
    baseline: bool = True,
    dataset: Any = None,
    progress: Any = None,
) -> RunResult:
    """Run one scenario (a :class:`Scenario`, its fields as a dict, or a TOML path) with ``seed``
    (default: the scenario's). A dict becomes a validated :class:`Scenario` here, at the edge.

    When a group is an attacker and ``baseline`` is true, the same scenario and seed without the
    attacking groups is run first, and the summary gains the attack-success columns.
    ``progress(label, fraction)`` is called as each run advances (for progress bars).
    """
    if isinstance(scenario, dict):
        scenario = parse_scenario(scenario, "<scenario dict>")
    elif not isinstance(scenario, Scenario):
        scenario = load_scenario(scenario)
    seed = scenario.seed if seed is None else int(seed)
    if dataset is None:
        dataset = load_dataset(scenario.data, scenario.learner.kind, scenario.name)
    base = None
    if baseline and scenario.attacker_groups:
        cb = (lambda f: progress("baseline", f)) if progress else None
        base = _simulate(scenario.without_attackers(), seed, dataset, None, cb)
        # The finished model's agents point back at it: collected now, its learner, test-set
        # evaluator and contract storage are freed before the attacked run builds its own
        # (S1's peak RSS: 278 MB without this, 257 MB with it), instead of whenever the cyclic
        # collector next runs. A full collection costs ~30 ms in a process holding a sweep's heap
        # (400 short runs: +13 s), so only when the model is big: its evaluator grows with test
        # rows x features. Its objects were all made while the collector was paused, so they
        # are in the young generations: collecting those frees the same 69,000 objects in S1
        # without walking the whole heap (36 ms instead of 125 ms on 2 busy cores).
        if dataset.X_test.shape[0] * dataset.n_features >= COLLECT_ABOVE_TEST_CELLS:
            gc.collect(1)
    return _simulate(
        scenario, seed, dataset, base, (lambda f: progress("run", f)) if progress else None
    )
