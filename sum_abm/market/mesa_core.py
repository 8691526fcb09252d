"""Mesa's ``Model``, ``Agent`` and ``AgentSet`` without the rest of Mesa's package import.

``import mesa`` runs Mesa 3.3's ``__init__``, which also imports its spaces, batch runner and data
collector, and with them networkx, pandas and scipy.spatial: about 0.5 s and 60 MB that a market run
never uses. Here the ``mesa`` package is registered without running its ``__init__`` and only
``mesa.model`` and ``mesa.agent`` (which need numpy alone) are imported. The first access to any
other attribute of ``mesa`` (``mesa.DataCollector``, ``from mesa import space``, the interactive
server's ``mesa.visualization``) runs Mesa's own ``__init__`` then, so every other user sees the
whole package as usual.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def _register_lazily() -> None:
    if "mesa" in sys.modules:
        return
    spec = importlib.util.find_spec("mesa")
    if spec is None or spec.loader is None:  # pragma: no cover - mesa is a dependency
        return
    pkg = importlib.util.module_from_spec(spec)

    class _Mesa(types.ModuleType):
        def __getattr__(self, name: str):  # only for attributes not set yet
            self.__class__ = types.ModuleType  # run Mesa's __init__ once, not re-entrantly
            spec.loader.exec_module(self)
            return getattr(self, name)

    pkg.__class__ = _Mesa
    sys.modules["mesa"] = pkg


_register_lazily()

from mesa.agent import Agent, AgentSet  # noqa: E402
from mesa.model import Model  # noqa: E402

__all__ = ["Agent", "AgentSet", "Model"]
