"""Deep, comparable snapshots of contract state (for atomicity checks and tests)."""

from __future__ import annotations

from typing import Any

_ATOMS = (type(None), bool, int, float, str, bytes)


def _sorted_items(items: list[tuple]) -> tuple:
    try:
        return tuple(sorted(items))
    except TypeError:  # keys of mixed types: any fixed order will do
        return tuple(sorted(items, key=repr))


def freeze(obj: Any) -> Any:
    """A hashable, ``==``-comparable deep copy of ``obj``.

    numpy arrays become ``(dtype, shape, bytes)`` so that two snapshots compare bit for bit (``==``
    on arrays is element-wise and would not give one bool); dicts become sorted item tuples, sets
    frozensets, lists tuples; objects with a ``snapshot()`` method are frozen through it.
    """
    t = type(obj)
    if t in _ATOMS:
        return obj
    if t is tuple or t is list:
        return tuple(v if type(v) in _ATOMS else freeze(v) for v in obj)
    if t is dict:
        return _sorted_items([(freeze(k), freeze(v)) for k, v in obj.items()])
    if t is set or t is frozenset:
        return frozenset(freeze(v) for v in obj)
    if isinstance(obj, _ATOMS):  # subclasses (numpy floats are float subclasses)
        return obj
    if hasattr(obj, "dtype") and hasattr(obj, "tobytes"):  # numpy array or scalar
        return ("ndarray", obj.dtype.str, getattr(obj, "shape", ()), obj.tobytes())
    if hasattr(obj, "indptr") and hasattr(obj, "tocsr"):  # scipy sparse matrix
        r = obj.tocsr()
        return ("csr", r.shape, freeze(r.indptr), freeze(r.indices), freeze(r.data))
    if isinstance(obj, dict):
        return _sorted_items([(freeze(k), freeze(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return tuple(freeze(v) for v in obj)
    snap = getattr(obj, "snapshot", None)
    if callable(snap):
        return freeze(snap())
    if hasattr(obj, "__dict__"):
        return (type(obj).__name__, freeze(vars(obj)))
    return repr(obj)


def learner_state(learner: Any) -> Any:
    """The learner's parameters, frozen (``None`` for a learner without ``snapshot``)."""
    snap = getattr(learner, "snapshot", None)
    return freeze(snap()) if callable(snap) else None
