"""Conformance replay: the shipped traces replay with 0 mismatches; bad files give exit 2, one line."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from sum_abm.replay import replay_file

HERE = Path(__file__).parent / "conformance"
FILES = sorted(HERE.glob("*.json"))


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from sum_abm.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_traces_replay_without_mismatch(path: Path) -> None:
    rep = replay_file(path)
    assert rep.traces > 10 and rep.steps > 400
    assert rep.mismatching_steps == 0, [str(m) for m in rep.mismatches[:5]]


def test_cli_reports_each_file_and_exits_zero() -> None:
    r = cli("replay", *map(str, FILES))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and all(l.endswith(", 0 mismatching steps") for l in lines)


def test_a_changed_expectation_is_reported(tmp_path: Path) -> None:
    traces = json.loads((HERE / "drt_solidity.json").read_text())
    bad = copy.deepcopy(traces[:1])
    ex = bad[0]["expect"][0]
    ex["balances"]["contract"] += 1
    f = tmp_path / "t.json"
    f.write_text(json.dumps(bad))
    r = cli("replay", str(f))
    assert r.returncode == 1
    assert "1 mismatching steps" in r.stdout and "balances.contract" in r.stdout


def _mutations(base: list) -> dict[str, object]:
    t = base[0]
    m = {}
    m["not_json"] = "{nope"
    x = copy.deepcopy(base); x[0]["format"] = "other/1"; m["wrong_format"] = x
    x = copy.deepcopy(base); del x[0]["accounts"]; m["missing_field"] = x
    x = copy.deepcopy(base); x[0]["steps"][0]["time"] = "soon"; m["wrong_type"] = x
    ref = next(i for i, s in enumerate(t["steps"]) if s["call"] in ("refund", "report"))
    x = copy.deepcopy(base); x[0]["steps"][ref]["data_ref"] = 10_000; m["dangling_ref"] = x
    return m


@pytest.mark.parametrize("kind", ["not_json", "wrong_format", "missing_field", "wrong_type", "dangling_ref"])
def test_bad_trace_files_get_one_line_and_exit_2(tmp_path: Path, kind: str) -> None:
    base = json.loads((HERE / "drt_solidity.json").read_text())[:1]
    content = _mutations(base)[kind]
    f = tmp_path / f"{kind}.json"
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    r = cli("replay", str(f))
    assert r.returncode == 2
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0] and "Traceback" not in r.stderr
    if kind != "not_json":
        assert "drt-solidity-000" in err[0]
    if kind in ("wrong_type", "dangling_ref"):
        assert "step" in err[0]
