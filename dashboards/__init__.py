"""Plotly dashboards built from result frames or result folders (never from a live model).

``build_run_report(run_dir)`` and ``build_sweep_report(sweep_dir)`` write self-contained HTML
(plotly.js inlined once; opens from a file with no network); :mod:`dashboards.game_report` writes
the game and frontier reports, handed to the game runner as its ``reports``. The figure builders are plain
functions from polars frames to Plotly figures, so notebooks can use them one by one.
"""

from dashboards.run_report import build_run_report, run_figures
from dashboards.sweep_report import build_sweep_report, sweep_figures

__all__ = ["build_run_report", "build_sweep_report", "run_figures", "sweep_figures"]
