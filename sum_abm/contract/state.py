"""Deep, comparable snapshots of contract state (for atomicity checks and tests)."""

from __future__ import annotations

from typing import Any


def freeze(obj: Any) -> Any:
    """A hashable, ``==``-comparable deep copy of ``obj``.

    numpy arrays become ``(dtype, shape, bytes)`` so that two snapshots compare bit for bit (``==``
    on arrays is element-wise and would not give one bool); dicts become sorted item tuples, sets
    frozensets, lists tuples; objects with a ``snapshot()`` method are frozen through it.
    """
    if obj is None or isinstance(obj, (bool, int, float, str, bytes)):
        return obj
    if hasattr(obj, "dtype") and hasattr(obj, "tobytes"):  # numpy array or scalar
        return ("ndarray", str(obj.dtype), getattr(obj, "shape", ()), obj.tobytes())
    if hasattr(obj, "indptr") and hasattr(obj, "tocsr"):  # scipy sparse matrix
        r = obj.tocsr()
        return ("csr", r.shape, freeze(r.indptr), freeze(r.indices), freeze(r.data))
    if isinstance(obj, dict):
        return tuple(sorted(((freeze(k), freeze(v)) for k, v in obj.items()), key=repr))
    if isinstance(obj, (set, frozenset)):
        return frozenset(freeze(v) for v in obj)
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
