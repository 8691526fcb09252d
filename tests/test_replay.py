"""Conformance replay: the shipped traces replay with 0 mismatches; bad files give exit 2, one line."""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from sum_abm.errors import InputError
from sum_abm.replay import replay_file

HERE = Path(__file__).parent / "conformance"
FILES = sorted(HERE.glob("*.json"))


def process(*args: str) -> subprocess.CompletedProcess:
    """``sum-abm ARGS`` as a real process (the other tests use the in-process ``cli`` fixture)."""
    return subprocess.run(
        [sys.executable, "-c", "from sum_abm.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_traces_replay_without_mismatch(path: Path) -> None:
    rep = replay_file(path)
    assert rep.traces > 10 and rep.steps > 400
    assert rep.mismatching_steps == 0, [str(m) for m in rep.mismatches[:5]]


def test_cli_reports_each_file_and_exits_zero() -> None:
    r = process("replay", *map(str, FILES))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.endswith(", 0 mismatching steps") for line in lines)


def test_a_changed_expectation_is_reported(tmp_path: Path, cli) -> None:
    traces = json.loads((HERE / "drt_solidity.json").read_text())
    bad = copy.deepcopy(traces[:1])
    ex = bad[0]["expect"][0]
    ex["balances"]["contract"] += 1
    f = tmp_path / "t.json"
    f.write_text(json.dumps(bad))
    r = cli("replay", str(f))
    assert r.returncode == 1
    assert "1 mismatching steps" in r.stdout and "balances.contract" in r.stdout


@pytest.mark.parametrize(
    "file, call, field",
    [
        ("drt_solidity.json", "add_data", "cost"),
        ("drt_reference_python.json", "refund", "amount"),
        ("drt_solidity.json", "report", "amount"),
        ("drt_solidity.json", "predict", "returned_prediction"),
        ("drt_reference_python.json", "predict", "payments"),
        ("pm_reference_python.json", "initialize_market", "test_reveal_index"),
    ],
)
def test_a_changed_result_is_reported(tmp_path: Path, file, call, field) -> None:
    """An accepted call's return value is compared too: a trace whose expected cost, amount,
    prediction, payments or reveal index differs from the contract's is a mismatch."""
    for tr in json.loads((HERE / file).read_text()):
        hits = [
            j
            for j, (st, ex) in enumerate(zip(tr["steps"], tr["expect"], strict=True))
            if st["call"] == call and field in ex.get("result", {})
            and (field != "payments" or ex["result"]["payments"])
        ]  # fmt: skip
        if hits:
            break
    j = hits[0]
    res = tr["expect"][j]["result"]
    if field == "payments":
        who = next(iter(res["payments"]))
        res["payments"][who] += 1
        where = f"result.payments.{who}"
    else:
        res[field] += 1
        where = f"result.{field}"
    f = tmp_path / "t.json"
    f.write_text(json.dumps([tr]))
    rep = replay_file(f)
    assert rep.mismatching_steps == 1 and [(m.step, m.field) for m in rep.mismatches] == [
        (j, where)
    ]


def _mutations(base: list) -> dict[str, object]:
    t = base[0]
    m = {}
    m["not_json"] = "{nope"
    x = copy.deepcopy(base)
    x[0]["format"] = "other/1"
    m["wrong_format"] = x
    x = copy.deepcopy(base)
    del x[0]["accounts"]
    m["missing_field"] = x
    x = copy.deepcopy(base)
    x[0]["steps"][0]["time"] = "soon"
    m["wrong_type"] = x
    ref = next(i for i, s in enumerate(t["steps"]) if s["call"] in ("refund", "report"))
    x = copy.deepcopy(base)
    x[0]["steps"][ref]["data_ref"] = 10_000
    m["dangling_ref"] = x
    x = copy.deepcopy(base)
    x[0]["steps"], x[0]["expect"] = [], []
    m["no_steps"] = x
    x = copy.deepcopy(base)
    x[0]["steps"][0]["value"] += 0.5
    m["float_value"] = x
    x = copy.deepcopy(base)
    x[0]["expect"][0]["balances"]["contract"] += 0.25
    m["float_balance"] = x
    x = copy.deepcopy(base)
    x[0]["steps"][0]["value"] = 10**400  # beyond a float: math.isfinite raised OverflowError
    m["huge_value"] = x
    x = copy.deepcopy(base)
    x[0]["accounts"]["contract"] = 0
    m["contract_account"] = x
    m["too_many_digits"] = json.dumps(base).replace('"value": ', '"value": ' + "9" * 5000, 1)
    return m


@pytest.mark.parametrize(
    "kind, says",
    [
        ("not_json", "not valid JSON"),
        ("wrong_format", "field 'format': expected 'sum-abm-trace/1', got 'other/1'"),
        ("missing_field", "missing field 'accounts'"),
        ("wrong_type", "step 0: field 'time': expected an integer >= 0, got str"),
        ("dangling_ref", "field 'data_ref': 10000 points at no add_data step"),
        ("no_steps", "field 'steps': expected at least one step, got none"),
        ("float_value", "step 0: field 'value': expected an integer (a solidity trace"),
        ("float_balance", "step 0: expectation: balances: field 'contract': expected an integer"),
        ("huge_value", "[0]['steps'][0]['value']: expected a number below 2**256 (a uint256)"),
        ("contract_account", "accounts: field 'contract': the contract's own balance starts at"),
        ("too_many_digits", "a number too long to read"),
    ],
)
def test_bad_trace_files_get_one_line_and_exit_2(tmp_path: Path, kind: str, says: str, cli) -> None:
    base = json.loads((HERE / "drt_solidity.json").read_text())[:1]
    content = _mutations(base)[kind]
    f = tmp_path / f"{kind}.json"
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    r = cli("replay", str(f))
    assert r.returncode == 2 and r.stdout == ""
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0] and "Traceback" not in r.stderr
    assert says in err[0]
    if kind not in ("not_json", "huge_value", "too_many_digits"):  # (found before any trace)
        assert "drt-solidity-000" in err[0]


PM_BAD = {  # PM-specific mistakes: (path to the field, bad value, what the line says)
    "semantics": (
        ("mechanism", "semantics"),
        "solidity",
        "expected one of ['reference-python', 'corrected']",
    ),
    "piece_out_of_range": (
        ("steps", 1, "piece"),
        9,
        "step 1: field 'piece': expected a test piece index 0..3",
    ),
    "point_not_numbers": (
        ("test_set_pieces", 0, 0, "x"),
        ["a", 1],
        "test_set_pieces[0][0]: field 'x'",
    ),
    "wrong_dimension": (("steps", 2, "x"), [1.0, 2.0, 3.0], "expected 2 numbers"),
    "label_out_of_range": (("model", "init_y", 0), 5, "field 'init_y[0]': expected a class 0..1"),
    "null_value": (
        ("steps", 0, "value"),
        None,
        "step 0: field 'value': expected a number >= 0, got null",
    ),
    "flag_not_bool": (
        ("mechanism", "group_contributions"),
        "yes",
        "field 'group_contributions': expected true or false",
    ),
    "init_one_class": (
        ("model", "init_y"),
        [0, 0, 0, 0],
        "field 'init_y': expected every class 0..1 at least once",
    ),
    "pieces_count": (
        ("steps", 0, "num_test_pieces"),
        999,
        "step 0: field 'num_test_pieces': expected 4 (the trace's test_set_pieces), got 999",
    ),
    "balance_not_number": (
        ("expect", 3, "balances", "P"),
        "100",
        "step 3: expectation: balances: field 'P'",
    ),
}


@pytest.mark.parametrize("kind", sorted(PM_BAD))
def test_bad_prediction_market_traces_name_the_problem(tmp_path: Path, kind: str) -> None:
    base = json.loads((HERE / "pm_reference_python.json").read_text())[:1]
    path, value, says = PM_BAD[kind]
    assert (
        base[0]["steps"][1]["call"] == "reveal_init_test_set"
        and base[0]["steps"][2]["call"] == "add_data"
    )
    obj = base[0]
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value
    f = tmp_path / "pm.json"
    f.write_text(json.dumps(base))
    with pytest.raises(InputError) as err:
        replay_file(f)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{f}: trace 'pm-000': ") and says in msg, msg


def _paths(o, pre=()):
    if isinstance(o, dict):
        for k, v in o.items():
            yield pre + (k,)
            yield from _paths(v, pre + (k,))
    elif isinstance(o, list):
        for i, v in enumerate(o[:3]):
            yield pre + (i,)
            yield from _paths(v, pre + (i,))


@pytest.mark.slow
def test_any_damaged_field_is_either_replayed_or_refused_in_one_line(tmp_path: Path) -> None:
    """Random damage to random fields never ends in a traceback: the replay either runs (the field
    is informative, or the damage is a legal value) or refuses the file with an InputError."""
    rng = random.Random(7)
    bases = [json.loads(f.read_text())[:3] for f in FILES]
    bad_values = ["x", -1, 10**6, 1.5, None, [], {}, True, [1, "a"], [[1]], -5, 0]
    f = tmp_path / "t.json"
    outcomes = {"refused": 0, "replayed": 0}
    for _ in range(200):
        traces = copy.deepcopy(rng.choice(bases))
        tr = rng.choice(traces)
        path = rng.choice(list(_paths(tr)))
        obj = tr
        for k in path[:-1]:
            obj = obj[k]
        if isinstance(obj, dict) and rng.random() < 0.2:
            del obj[path[-1]]
        else:
            obj[path[-1]] = rng.choice(bad_values)
        f.write_text(json.dumps(traces))
        try:
            replay_file(f)
            outcomes["replayed"] += 1
        except InputError as err:
            assert "\n" not in str(err) and str(f) in str(err)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 60 and outcomes["replayed"] > 15


@pytest.mark.parametrize(
    "args, says",
    [
        ((), "Missing argument"),
        (("tests",), "not a readable text file"),
        (("no/such.json",), "no such file"),
    ],
)
def test_replay_usage_mistakes_get_one_line_and_exit_2(args, says, cli) -> None:
    r = cli("replay", *args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and says in r.stderr


def test_a_bad_file_among_good_ones_stops_before_any_output(tmp_path: Path, cli) -> None:
    f = tmp_path / "bad.json"
    f.write_text("[1]")
    r = cli("replay", str(FILES[0]), str(f))
    assert r.returncode == 2 and r.stdout == "" and "trace 0: expected an object" in r.stderr


def _stranger_trace() -> dict:
    """B adds; Z, an address missing from ``accounts`` (it starts at 0), takes the deposit
    after the any-address wait."""
    return {
        "format": "sum-abm-trace/1",
        "name": "stranger-take",
        "seed": None,
        "mechanism": {
            "kind": "deposit_refund_take",
            "semantics": "solidity",
            "refund_time_s": 10,
            "any_address_claim_wait_time_s": 100,
            "cost_weight": 1,
        },
        "model": {"kind": "oracle"},
        "accounts": {"B": 10000},
        "steps": [
            {"time": 1, "call": "add_data", "from": "B", "value": 3600, "x": [1], "y": 1},
            {"time": 101, "call": "report", "from": "Z", "data_ref": 0, "prediction": 0},
        ],
        "expect": [
            {"status": "ok", "result": {"cost": 3600}, "balances": {"B": 6400, "contract": 3600}},
            {
                "status": "ok",
                "result": {"amount": 3600},
                "balances": {"B": 6400, "Z": 3600, "contract": 0},
            },
        ],
    }


def test_balances_of_senders_missing_from_accounts_are_compared(tmp_path: Path) -> None:
    f = tmp_path / "t.json"
    f.write_text(json.dumps([_stranger_trace()]))
    assert replay_file(f).mismatches == []
    wrong = _stranger_trace()
    del wrong["expect"][1]["balances"]["Z"]  # the 3,600 taken would vanish from every account
    f.write_text(json.dumps([wrong]))
    assert [(m.step, m.field, m.expected, m.got) for m in replay_file(f).mismatches] == [
        (1, "balances.Z", 0, 3600)
    ]


def test_integer_balances_compare_exactly_past_float_precision(tmp_path: Path) -> None:
    """10**20 more in every account: a balance expected 1 unit off is a mismatch (as floats the
    two are equal)."""
    tr = next(
        t
        for t in json.loads((HERE / "drt_solidity.json").read_text())
        if all(ex.get("reason") != "insufficient_funds" for ex in t["expect"])
    )  # (richer accounts would pass the wallet rule where the trace expects a refusal)
    big = 10**20
    tr["accounts"] = {a: b + big for a, b in tr["accounts"].items()}
    for ex in tr["expect"]:
        ex["balances"] = {a: b + (big if a != "contract" else 0) for a, b in ex["balances"].items()}
    f = tmp_path / "t.json"
    f.write_text(json.dumps([tr]))
    assert replay_file(f).mismatches == []
    who = next(a for a in tr["expect"][0]["balances"] if a != "contract")
    tr["expect"][0]["balances"][who] += 1
    assert float(tr["expect"][0]["balances"][who]) == float(tr["expect"][0]["balances"][who] - 1)
    f.write_text(json.dumps([tr]))
    assert [(m.step, m.field) for m in replay_file(f).mismatches] == [(0, f"balances.{who}")]
