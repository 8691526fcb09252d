"""Loading and validating trace files: every problem is one line naming file, trace, step, problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sum_abm.errors import InputError

FORMAT = "sum-abm-trace/1"
KINDS = ("deposit_refund_take", "prediction_market")

_STEP_FIELDS: dict[str, dict[str, tuple[type, ...]]] = {
    # call -> required field -> accepted types
    "add_data": {"from": (str,), "x": (list,), "y": (int,)},
    "refund": {"from": (str,), "data_ref": (int,)},
    "report": {"from": (str,), "data_ref": (int,)},
    "predict": {"from": (str,), "x": (list,)},
    "initialize_market": {"from": (str,), "value": (int, float), "num_test_pieces": (int,),
                          "min_length_s": (int,), "min_num_contributions": (int,), "reveal_index": (int,)},
    "reveal_init_test_set": {"piece": (int,)},
    "end_market": {"from": (str,)},
    "verify_next_test_set": {"piece": (int,)},
    "process_contribution": {},
}


def _type_ok(v: Any, types: tuple[type, ...]) -> bool:
    if isinstance(v, bool) and bool not in types:
        return False
    return isinstance(v, types)


def load_trace_file(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a trace file; raises InputError with one line on the first problem."""
    p = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError):
        raise InputError(f"{p}: not a readable text file") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, list):
        raise InputError(f"{p}: expected a JSON array of traces")
    names = set()
    for i, tr in enumerate(data):
        where = f"{p}: trace {i}"
        if not isinstance(tr, dict):
            raise InputError(f"{where}: expected an object")
        name = tr.get("name")
        if isinstance(name, str):
            where = f"{p}: trace {name!r}"
            if name in names:
                raise InputError(f"{where}: duplicate trace name")
            names.add(name)
        _validate_trace(tr, where)
    return data


def _need(obj: dict, key: str, types: tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise InputError(f"{where}: missing field {key!r}")
    v = obj[key]
    if not _type_ok(v, types):
        raise InputError(f"{where}: field {key!r}: expected {'/'.join(t.__name__ for t in types)}, got {type(v).__name__}")
    return v


def _validate_trace(tr: dict[str, Any], where: str) -> None:
    fmt = tr.get("format")
    if fmt != FORMAT:
        raise InputError(f"{where}: format: expected {FORMAT!r}, got {fmt!r}")
    _need(tr, "name", (str,), where)
    mech = _need(tr, "mechanism", (dict,), where)
    kind = _need(mech, "kind", (str,), f"{where}: mechanism")
    if kind not in KINDS:
        raise InputError(f"{where}: mechanism.kind: expected one of {KINDS}, got {kind!r}")
    _need(mech, "semantics", (str,), f"{where}: mechanism")
    model = _need(tr, "model", (dict,), where)
    _need(model, "kind", (str,), f"{where}: model")
    accounts = _need(tr, "accounts", (dict,), where)
    for a, b in accounts.items():
        if not _type_ok(b, (int, float)):
            raise InputError(f"{where}: accounts.{a}: expected a number, got {type(b).__name__}")
    steps = _need(tr, "steps", (list,), where)
    expect = _need(tr, "expect", (list,), where)
    if len(steps) != len(expect):
        raise InputError(f"{where}: expected one expectation per step ({len(steps)} steps, {len(expect)} expectations)")
    if kind == "deposit_refund_take":
        for k in ("refund_time_s", "any_address_claim_wait_time_s", "cost_weight"):
            _need(mech, k, (int,), f"{where}: mechanism")
    else:
        _need(tr, "test_set_pieces", (list,), where)
        model_need = ("init_x", "init_y")
        for k in model_need:
            _need(model, k, (list,), f"{where}: model")
    for j, (st, ex) in enumerate(zip(steps, expect)):
        sw = f"{where}: step {j}"
        if not isinstance(st, dict):
            raise InputError(f"{sw}: expected an object")
        # The format says times never decrease; shipped traces contain one scripted step that goes
        # back, and the reference replays it as given, so only the type is checked.
        _need(st, "time", (int,), sw)
        call = _need(st, "call", (str,), sw)
        if call not in _STEP_FIELDS:
            raise InputError(f"{sw}: unknown call {call!r}")
        for k, types in _STEP_FIELDS[call].items():
            _need(st, k, types, sw)
        if "value" in st and not _type_ok(st["value"], (int, float)):
            raise InputError(f"{sw}: field 'value': expected a number, got {type(st['value']).__name__}")
        if call in ("refund", "report"):
            ref = st["data_ref"]
            if not (0 <= ref < len(steps)) or steps[ref].get("call") != "add_data":
                raise InputError(f"{sw}: data_ref {ref} points at no add_data step")
        if kind == "deposit_refund_take" and call in ("refund", "report", "predict"):
            _need(st, "prediction", (int,), sw)
        if not isinstance(ex, dict):
            raise InputError(f"{sw}: expectation: expected an object")
        status = _need(ex, "status", (str,), f"{sw}: expectation")
        if status not in ("ok", "rejected"):
            raise InputError(f"{sw}: expectation.status: expected 'ok' or 'rejected', got {status!r}")
        _need(ex, "balances", (dict,), f"{sw}: expectation")
