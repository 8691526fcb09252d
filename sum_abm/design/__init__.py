"""Mechanism design as a Stackelberg search: the designer commits to settings, the attacker
best-responds, and the search finds the settings where no known attack pays at the least cost to
honest contributors.

``sum_abm.design.run_design("scenarios/designs/quickstart_design.toml", "runs/qd")`` runs a design
file (see :mod:`sum_abm.design.spec` for its format) and returns the answer; ``sum-abm design`` is
the command. This layer sits beside sweeps and game: it imports the scenario, the market's results
helpers, the sweep engine and the game's strategy shapes, and nothing below imports it.
"""

from __future__ import annotations

from sum_abm.design.search import plain_answer, run_design
from sum_abm.design.spec import Design, DesignSpec, load_design

__all__ = ["Design", "DesignSpec", "load_design", "plain_answer", "run_design"]
