"""sum_abm: agent-based market simulator for Sharing Updatable Models on a blockchain.

``sum_abm.run(scenario, seed=...)`` runs one scenario and returns a ``RunResult`` of polars frames.
"""

from __future__ import annotations

import os
from typing import Any

# polars' allocator (jemalloc; polars sets 0.5 s / 1 s page decay) kept the freed chunks of a big
# frame (the transactions of a long run) while the joined frame was built: 1,000 agents peaked at
# 880 MB instead of 630 MB. Pages are returned at once instead (no measurable time cost); a
# user's setting wins. Read when polars is imported, so set before it is.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")

__all__ = ["load_scenario", "load_sweep", "run", "sweep"]


def __getattr__(name: str) -> Any:  # lazy: importing sum_abm stays cheap
    if name == "run":
        from sum_abm.market.run import run

        return run
    if name == "load_scenario":
        from sum_abm.scenario import load_scenario

        return load_scenario
    if name in ("sweep", "load_sweep"):
        from sum_abm import sweeps  # the package is "sweeps": "sum_abm.sweep" is the function

        return getattr(sweeps, name)
    raise AttributeError(name)
