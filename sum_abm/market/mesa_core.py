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


def _frames(frame: types.FrameType | None) -> list:
    """``inspect.getouterframes(frame)`` without source lookups: the frames and function names."""
    import inspect

    out = []
    while frame is not None:
        code = frame.f_code
        out.append(
            inspect.FrameInfo(frame, code.co_filename, frame.f_lineno, code.co_name, None, None)
        )
        frame = frame.f_back
    return out


def _import_model() -> tuple[type, type, type]:
    """Import ``mesa.agent`` and ``mesa.model`` with a source-free stack inspection.

    At import Mesa's logging finds the importing module's and class's names with
    ``inspect.stack()`` and ``inspect.getouterframes(...)``, which look up every frame's source
    file (for the import machinery's frozen frames a scan of all loaded modules, each): 0.1-0.3 s at
    a CLI command's depth. Only the frames and function names are used, so for the length of the
    import the two functions return just those.
    """
    import inspect

    stack, outer = inspect.stack, inspect.getouterframes
    # as inspect.stack: the frames from its caller's (sys._getframe(1)) outwards
    inspect.stack = lambda context=1: _frames(sys._getframe(1))  # type: ignore[assignment]
    inspect.getouterframes = lambda frame, context=1: _frames(frame)  # type: ignore[assignment]
    try:
        from mesa.agent import Agent, AgentSet
        from mesa.model import Model
    finally:
        inspect.stack, inspect.getouterframes = stack, outer
    return Agent, AgentSet, Model


_register_lazily()
Agent, AgentSet, Model = _import_model()

__all__ = ["Agent", "AgentSet", "Model"]
