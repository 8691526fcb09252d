"""Loading and validating trace files (format ``sum-abm-trace/1``, see TRACE_FORMAT.md).

Everything the replay reads is checked here first, so a bad file never reaches the contract
layer: each problem is one :class:`~sum_abm.errors.InputError` line naming the file, the trace,
the step and what was expected, e.g. ``t.json: trace 'drt-007': step 12: field 'x': expected a
list of numbers, got str``. Informative fields (``state``, ``result``, prose) are not checked.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sum_abm.errors import InputError

FORMAT = "sum-abm-trace/1"
MAX_CLASSES = 1_000  # the traces' model is a small nearest-centroid classifier

INT, NUM, STR, LIST, DICT, BOOL = "int", "num", "str", "list", "dict", "bool"

_STEP_FIELDS: dict[str, dict[str, str]] = {
    # call -> required field -> kind
    "add_data": {"from": STR, "x": "vector", "y": "label"},
    "refund": {"from": STR, "data_ref": "ref"},
    "report": {"from": STR, "data_ref": "ref"},
    "predict": {"from": STR, "x": "vector"},
    "initialize_market": {
        "from": STR,
        "value": NUM,
        "num_test_pieces": INT,
        "min_length_s": INT,
        "min_num_contributions": INT,
        "reveal_index": "piece",
    },
    "reveal_init_test_set": {"piece": "piece"},
    "end_market": {"from": STR},
    "verify_next_test_set": {"piece": "piece"},
    "process_contribution": {},
}


@dataclass(frozen=True)
class TraceKind:
    """What a trace of one mechanism kind holds (TRACE_FORMAT.md)."""

    semantics: tuple[str, ...]  # the semantics its traces pin
    model: str  # the model the trace describes
    calls: tuple[str, ...]  # the calls its steps may make
    # The model is an oracle: each claim or prediction step gives the model's prediction, and the
    # trace has no test set (else a nearest-centroid model and test-set pieces of fixed width).
    oracle: bool


# The trace format's mechanism kinds: the one place the replay maps a kind to what it holds.
TRACE_KINDS = {
    "deposit_refund_take": TraceKind(
        ("solidity", "reference-python"),
        "oracle",
        ("add_data", "refund", "report", "predict"),
        True,
    ),
    "prediction_market": TraceKind(
        ("reference-python", "corrected"),
        "nearest_centroid",
        (
            "initialize_market",
            "reveal_init_test_set",
            "add_data",
            "end_market",
            "verify_next_test_set",
            "process_contribution",
            "refund",
            "report",
        ),
        False,
    ),
}


def _tname(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _is_num(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and math.isfinite(v))


#: No chain amount, time or feature reaches it (Solidity's widest integer is a uint256).
MAX_NUMBER = 2**256


def _too_big(v: Any, at: str) -> str | None:
    """Where in ``v`` (JSON values) a number at or beyond :data:`MAX_NUMBER` is, or None."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return at if abs(v) >= MAX_NUMBER else None
    items = v.items() if isinstance(v, dict) else enumerate(v) if isinstance(v, list) else ()
    for k, e in items:
        found = _too_big(e, f"{at}[{k!r}]" if isinstance(k, str) else f"{at}[{k}]")
        if found:
            return found
    return None


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check(v: Any, kind: str) -> str | None:
    """None when ``v`` is of ``kind``, else what was expected."""
    ok = {
        INT: lambda: _is_int(v) and v >= 0,
        NUM: lambda: _is_num(v) and v >= 0,
        STR: lambda: isinstance(v, str),
        LIST: lambda: isinstance(v, list),
        DICT: lambda: isinstance(v, dict),
        BOOL: lambda: isinstance(v, bool),
    }[kind]()
    if ok:
        return None
    return {
        INT: "an integer >= 0",
        NUM: "a number >= 0",
        STR: "a string",
        LIST: "a list",
        DICT: "an object",
        BOOL: "true or false",
    }[kind]


def _need(obj: dict, key: str, kind: str, where: str, optional: bool = False) -> Any:
    if key not in obj:
        if optional:
            return None
        raise InputError(f"{where}: missing field {key!r}")
    v = obj[key]
    problem = _check(v, kind)
    if problem:
        raise InputError(f"{where}: field {key!r}: expected {problem}, got {_tname(v)} {_short(v)}")
    return v


def _short(v: Any) -> str:
    r = json.dumps(v) if not isinstance(v, str) else repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _vector(v: Any, where: str, field: str, dim: int | None) -> None:
    if not isinstance(v, list) or not v or not all(_is_num(e) for e in v):
        raise InputError(
            f"{where}: field {field!r}: expected a non-empty list of numbers, got {_tname(v)} {_short(v)}"
        )
    if dim is not None and len(v) != dim:
        raise InputError(
            f"{where}: field {field!r}: expected {dim} numbers (the model's dimension), got {len(v)}"
        )


def _label(v: Any, where: str, field: str, n_classes: int) -> None:
    if not _is_int(v) or not 0 <= v < n_classes:
        raise InputError(
            f"{where}: field {field!r}: expected a class 0..{n_classes - 1}, got {_short(v)}"
        )


def load_trace_file(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a trace file; raises InputError with one line on the first problem."""
    p = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError, PermissionError):
        raise InputError(f"{p}: not a readable text file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise InputError(f"{p}: not valid JSON (nested too deeply)") from None
    except ValueError as exc:  # Python's limit on the digits of an integer (4,300)
        raise InputError(f"{p}: a number too long to read ({exc})") from None
    big = _too_big(data, "")
    if big:
        raise InputError(
            f"{p}: {big}: expected a number below 2**256 (a uint256), got a larger one"
        )
    if not isinstance(data, list):
        raise InputError(f"{p}: expected a JSON array of traces, got {_tname(data)}")
    if not data:
        raise InputError(f"{p}: expected at least one trace, got an empty array")
    names: set[str] = set()
    for i, tr in enumerate(data):
        where = f"{p}: trace {i}"
        if not isinstance(tr, dict):
            raise InputError(f"{where}: expected an object, got {_tname(tr)}")
        name = tr.get("name")
        if isinstance(name, str):
            where = f"{p}: trace {name!r}"
            if name in names:
                raise InputError(f"{where}: duplicate trace name")
            names.add(name)
        _validate_trace(tr, where)
    return data


def _validate_trace(tr: dict[str, Any], where: str) -> None:
    fmt = tr.get("format")
    if fmt != FORMAT:
        raise InputError(f"{where}: field 'format': expected {FORMAT!r}, got {_short(fmt)}")
    _need(tr, "name", STR, where)
    mech = _need(tr, "mechanism", DICT, where)
    mw = f"{where}: mechanism"
    kind = _need(mech, "kind", STR, mw)
    if kind not in TRACE_KINDS:
        raise InputError(f"{mw}: field 'kind': expected one of {list(TRACE_KINDS)}, got {kind!r}")
    spec = TRACE_KINDS[kind]
    sem = _need(mech, "semantics", STR, mw)
    if sem not in spec.semantics:
        raise InputError(
            f"{mw}: field 'semantics': expected one of {list(spec.semantics)}, got {sem!r}"
        )
    model = _need(tr, "model", DICT, where)
    mdw = f"{where}: model"
    mkind = _need(model, "kind", STR, mdw)
    if mkind != spec.model:
        raise InputError(
            f"{mdw}: field 'kind': expected {spec.model!r} for a {kind} trace, got {mkind!r}"
        )
    accounts = _need(tr, "accounts", DICT, where)
    if "contract" in accounts:
        raise InputError(
            f"{where}: accounts: field 'contract': the contract's own balance starts at 0"
            " (TRACE_FORMAT.md §1); accounts lists the senders"
        )
    for a, b in accounts.items():
        if not _is_num(b) or b < 0:
            raise InputError(
                f"{where}: accounts: field {a!r}: expected a number >= 0, got {_short(b)}"
            )
    steps = _need(tr, "steps", LIST, where)
    expect = _need(tr, "expect", LIST, where)
    if not steps:
        raise InputError(f"{where}: field 'steps': expected at least one step, got none")
    if len(steps) != len(expect):
        raise InputError(
            f"{where}: expected one expectation per step, got {len(steps)} steps and {len(expect)} expectations"
        )

    dim, n_classes, n_pieces = None, 2, 0
    if spec.oracle:
        for k in ("refund_time_s", "any_address_claim_wait_time_s", "cost_weight"):
            _need(mech, k, INT, mw)
        _need(mech, "deploy_time_s", INT, mw, optional=True)
    else:
        for k in (
            "allow_greater_deposit",
            "group_contributions",
            "reset_model_during_reward_phase",
        ):
            _need(mech, k, BOOL, mw, optional=True)
        for k in ("min_stake", "any_address_claim_wait_time_s"):
            _need(mech, k, INT, mw, optional=True)
        n_classes = _need(model, "num_classes", INT, mdw, optional=True) or 2
        if not 2 <= n_classes <= MAX_CLASSES:
            raise InputError(
                f"{mdw}: field 'num_classes': expected an integer 2..{MAX_CLASSES}, got {n_classes}"
            )
        init_x = _need(model, "init_x", LIST, mdw)
        init_y = _need(model, "init_y", LIST, mdw)
        if not init_x or len(init_x) != len(init_y):
            raise InputError(
                f"{mdw}: expected as many init_y labels as init_x points (at least one), "
                f"got {len(init_x)} and {len(init_y)}"
            )
        for i, (x, y) in enumerate(zip(init_x, init_y, strict=False)):
            _vector(x, mdw, f"init_x[{i}]", dim)
            dim = len(x)
            _label(y, mdw, f"init_y[{i}]", n_classes)
        missing = sorted(set(range(n_classes)) - set(init_y))
        if missing:
            raise InputError(
                f"{mdw}: field 'init_y': expected every class 0..{n_classes - 1} at least once "
                f"(a class without initial points has no centroid), missing {missing}"
            )
        pieces = _need(tr, "test_set_pieces", LIST, where)
        if len(pieces) < 2:
            raise InputError(
                f"{where}: field 'test_set_pieces': expected at least 2 pieces, got {len(pieces)}"
            )
        for i, piece in enumerate(pieces):
            pw = f"{where}: test_set_pieces[{i}]"
            if not isinstance(piece, list) or not piece:
                raise InputError(
                    f'{pw}: expected a non-empty list of {{"x", "y"}} points, got {_tname(piece)}'
                )
            for j, pt in enumerate(piece):
                if not isinstance(pt, dict):
                    raise InputError(
                        f"{pw}[{j}]: expected an object with 'x' and 'y', got {_tname(pt)}"
                    )
                _vector(pt.get("x"), f"{pw}[{j}]", "x", dim)
                _label(pt.get("y"), f"{pw}[{j}]", "y", n_classes)
        n_pieces = len(pieces)

    for j, (st, ex) in enumerate(zip(steps, expect, strict=False)):
        sw = f"{where}: step {j}"
        if not isinstance(st, dict):
            raise InputError(f"{sw}: expected an object, got {_tname(st)}")
        # The format says times never decrease; a shipped scripted trace has one step that goes
        # back, which the reference replays as given, so only the type is checked.
        _need(st, "time", INT, sw)
        call = _need(st, "call", STR, sw)
        if call not in spec.calls:
            raise InputError(
                f"{sw}: field 'call': expected one of {list(spec.calls)}, got {call!r}"
            )
        for k, fk in _STEP_FIELDS[call].items():
            if fk == "vector":
                _vector(st.get(k), sw, k, None if spec.oracle else dim)
            elif fk == "label":
                _label(st.get(k), sw, k, n_classes)
            elif fk == "ref":
                ref = _need(st, k, INT, sw)
                if (
                    ref >= len(steps)
                    or not isinstance(steps[ref], dict)
                    or steps[ref].get("call") != "add_data"
                ):
                    raise InputError(f"{sw}: field 'data_ref': {ref} points at no add_data step")
                if ref >= j:
                    raise InputError(f"{sw}: field 'data_ref': {ref} points at a later step")
            elif k == "num_test_pieces":
                v = _need(st, k, INT, sw)
                if v != n_pieces:
                    raise InputError(
                        f"{sw}: field {k!r}: expected {n_pieces} (the trace's test_set_pieces), got {v}"
                    )
            elif fk == "piece":
                v = _need(st, k, INT, sw)
                if v >= n_pieces:
                    raise InputError(
                        f"{sw}: field {k!r}: expected a test piece index 0..{n_pieces - 1}, got {v}"
                    )
            else:
                _need(st, k, fk, sw)
        _need(st, "value", NUM, sw, optional=True)
        _need(st, "from", STR, sw, optional=True)  # steps run by the provider may omit it
        if spec.oracle and call in ("refund", "report", "predict"):
            _label(st.get("prediction"), sw, "prediction", 2)
        _validate_expectation(ex, f"{sw}: expectation")
    if kind == "deposit_refund_take" and sem == "solidity":
        _solidity_integers(tr, where)


def _solidity_integers(tr: dict[str, Any], where: str) -> None:
    """Solidity-semantics traces hold only integers (TRACE_FORMAT.md §1: the contract's integer
    arithmetic); a float there is a damaged file, not a value the rules define. Called after the
    types were checked, so every field read here is a number, a list of numbers or absent."""

    def whole(v: Any, at: str) -> None:
        if not _is_int(v):
            raise InputError(
                f"{at}: expected an integer (a solidity trace holds only integers), got {_short(v)}"
            )

    for a, b in tr["accounts"].items():
        whole(b, f"{where}: accounts: field {a!r}")
    for j, (st, ex) in enumerate(zip(tr["steps"], tr["expect"], strict=True)):
        sw = f"{where}: step {j}"
        if "value" in st:
            whole(st["value"], f"{sw}: field 'value'")
        for i, e in enumerate(st.get("x") or ()):
            whole(e, f"{sw}: field 'x[{i}]'")
        for k, v in ex["balances"].items():
            whole(v, f"{sw}: expectation: balances: field {k!r}")
        for k, v in (ex.get("result") or {}).items():
            for kk, vv in v.items() if isinstance(v, dict) else [(None, v)]:
                whole(vv, f"{sw}: expectation: result: field {k if kk is None else f'{k}.{kk}'!r}")


def _validate_expectation(ex: Any, ew: str) -> None:
    if not isinstance(ex, dict):
        raise InputError(f"{ew}: expected an object, got {_tname(ex)}")
    status = _need(ex, "status", STR, ew)
    if status not in ("ok", "rejected"):
        raise InputError(f"{ew}: field 'status': expected 'ok' or 'rejected', got {status!r}")
    _numbers(_need(ex, "balances", DICT, ew), f"{ew}: balances")
    res = _need(ex, "result", DICT, ew, optional=True)  # compared by the replay
    for k, v in (res or {}).items():
        if isinstance(v, dict):
            _numbers(v, f"{ew}: result: {k}")
        elif not _is_num(v):
            raise InputError(
                f"{ew}: result: field {k!r}: expected a number or an object of numbers, "
                f"got {_short(v)}"
            )
    pm = _need(ex, "pm", DICT, ew, optional=True)
    if pm is not None:
        mb = _need(pm, "market_balances", DICT, f"{ew}: pm", optional=True)
        if mb is not None:
            _numbers(mb, f"{ew}: pm: market_balances", negative=True)
        if pm.get("prev_acc") is not None and not _is_num(pm["prev_acc"]):  # null: not set yet
            raise InputError(
                f"{ew}: pm: field 'prev_acc': expected a number, got {_short(pm['prev_acc'])}"
            )


def _numbers(d: dict, where: str, negative: bool = False) -> None:
    for k, v in d.items():
        if not _is_num(v) or (v < 0 and not negative):
            raise InputError(
                f"{where}: field {k!r}: expected a number{'' if negative else ' >= 0'}, got {_short(v)}"
            )
