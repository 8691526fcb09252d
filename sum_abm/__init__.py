"""sum_abm: agent-based market simulator for Sharing Updatable Models on a blockchain.

``sum_abm.run(scenario, seed=...)`` runs one scenario and returns a ``RunResult`` of polars frames.
"""

from __future__ import annotations

import os
from typing import Any

# polars' allocator (jemalloc; polars sets 0.5 s / 1 s page decay) kept the freed chunks of a big
# frame (the transactions of a long run) while the joined frame was built: S1 with 1,000 agents
# as `sum-abm run` peaked at 880 MB instead of 650 MB. Pages are returned at once instead (no
# measurable time cost). Read when polars is imported, so set before it is. A user's setting
# wins; polars' own default, which a process inherits from a parent that imported polars, does
# not (jemalloc reads the options in order: the last one wins).
_POLARS_JEMALLOC = "dirty_decay_ms:500,muzzy_decay_ms:1000"
_conf = os.environ.get("_RJEM_MALLOC_CONF", "")
if not _conf or (
    _conf.startswith(_POLARS_JEMALLOC) and "decay" not in _conf[len(_POLARS_JEMALLOC) :]
):
    os.environ["_RJEM_MALLOC_CONF"] = (_conf + "," if _conf else "") + (
        "dirty_decay_ms:0,muzzy_decay_ms:0"
    )

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
