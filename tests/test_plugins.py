"""Out-of-tree mechanisms: an installed distribution's entry point in the group
``sum_abm.mechanisms`` registers its mechanism in every process that reads scenarios (each command,
each Ray worker); a plugin that fails a check is left out with one warning line.

The "installed distribution" is a package and its ``.dist-info`` (METADATA, entry_points.txt) on
``PYTHONPATH``: what ``pip install`` leaves, found by ``importlib.metadata`` the same way."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "import sum_abm.cli as c; c.console()"]

PLUGIN = '''
"""Deposit-Refund-Take with the corrected rules and a flat deposit weight: a third-party mechanism."""
from typing import Any, ClassVar, Literal

from pydantic import Field

from sum_abm.contract.drt import DepositRefundTake
from sum_abm.mechanisms.base import MechanismBase, MechanismConfig, TrainerAdapter


class FlatConfig(MechanismConfig):
    kind: Literal["flat_drt"] = "flat_drt"
    refund_time_s: int = Field(86_400, ge=0)
    any_address_claim_wait_time_s: int = Field(9 * 86_400, ge=0)
    weight: int = Field(2, ge=0)


class FlatAdapter(TrainerAdapter):
    report_needs_good_data = True

    def __init__(self, config: FlatConfig, chain: Any, learner: Any) -> None:
        im = DepositRefundTake(
            config.refund_time_s, config.any_address_claim_wait_time_s, config.weight, "corrected"
        )
        super().__init__(config, chain, learner, im)


class FlatMechanism(MechanismBase):
    kind: ClassVar[str] = "flat_drt"
    title: ClassVar[str] = "Flat-deposit DRT (a plugin)"
    Config = FlatConfig
    Adapter = FlatAdapter


class Clash(FlatMechanism):
    kind: ClassVar[str] = "points"


class NoLiteral(FlatMechanism):
    kind: ClassVar[str] = "loose"
'''


def install(site: Path, entries: dict[str, str]) -> None:
    """``flatmech`` as an installed distribution under ``site`` with these entry points."""
    (site / "flatmech").mkdir(parents=True, exist_ok=True)
    (site / "flatmech" / "__init__.py").write_text(PLUGIN)
    info = site / "flatmech-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: flatmech\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[sum_abm.mechanisms]\n{lines}")


def sum_abm(site: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


def scenario(tmp_path: Path) -> Path:
    text = (ROOT / "scenarios" / "quickstart.toml").read_text()
    head, rest = text.split("[mechanism]", 1)
    rest = rest.split("[chain]", 1)[1]
    f = tmp_path / "flat.toml"
    f.write_text(f'{head}[mechanism]\nkind = "flat_drt"\nweight = 3\n\n[chain]{rest}')
    return f


SMALL = ["--set", "data.n_rows=800", "--set", "run.max_time_s=864000"]


def test_an_installed_mechanism_runs_and_bad_ones_are_left_out_in_one_line(tmp_path):
    site = tmp_path / "site"
    install(
        site,
        {
            "flat_drt": "flatmech:FlatMechanism",
            "points": "flatmech:Clash",  # a bundled kind: refused, the bundled one kept
            "loose": "flatmech:NoLiteral",  # its Config's kind is not Literal["loose"]
            "gone": "flatmech_missing:Mechanism",  # cannot be imported
        },
    )
    f = scenario(tmp_path)
    v = sum_abm(site, "validate", f, "points", cwd=tmp_path)
    assert v.returncode == 0, v.stderr
    assert f"{f}: ok (flat_drt, 2 groups)" in v.stdout
    warned = sorted(line for line in v.stderr.splitlines() if "left out" in line)
    assert len(warned) == 3 and len(v.stderr.splitlines()) == 3, v.stderr
    assert "'gone' (flatmech_missing:Mechanism) left out: cannot be imported" in warned[0]
    assert "'loose' (flatmech:NoLiteral) left out: its Config must declare kind" in warned[1]
    assert "'points' (flatmech:Clash) left out: kind 'points' is registered already" in warned[2]
    r = sum_abm(site, "run", f, *SMALL, "--out", tmp_path / "o", "--no-report", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    s = pl.read_parquet(tmp_path / "o" / "summary.parquet").row(0, named=True)
    assert s["mechanism"] == "flat_drt" and s["money_conserved"]
    tx = pl.read_parquet(tmp_path / "o" / "transactions.parquet")
    # weight 3: the first add costs the Solidity deposit 3 * 3600 // isqrt(seconds since deploy)
    adds = tx.filter(pl.col("call") == "add_data", pl.col("accepted"))
    assert adds.height > 0 and adds["amount"][0] == 3 * 3600 // math.isqrt(adds["time_s"][0])
    # without the distribution the kind is unknown: one line, exit 2
    bare = sum_abm(tmp_path / "nothing", "validate", f, cwd=tmp_path)
    assert bare.returncode == 2 and "mechanism.kind: expected one of" in bare.stderr


RAY_SWEEP = """
import sys
from sum_abm.scenario import load_scenario
from sum_abm.sweeps import run_many
from sum_abm.sweeps.executors import RayExecutor

base = load_scenario(sys.argv[1], {"data.n_rows": 800, "run.max_time_s": 864000})
with RayExecutor(workers=2) as ray:  # every run on the workers, however short
    table = run_many(base, [{"mechanism.weight": w} for w in (1, 2, 3)], sys.argv[2],
                     replications=2, executor=ray, baseline=False)
print(table.height, sorted(set(table["mechanism"])))
"""


@pytest.mark.slow
@pytest.mark.ray
def test_ray_workers_load_the_installed_mechanism(tmp_path):
    """A sweep of the plugin's scenario on local Ray workers: every run finishes there (the
    workers import the registry, and with it the entry points, when they read a run's
    scenario)."""
    site = tmp_path / "site"
    install(site, {"flat_drt": "flatmech:FlatMechanism"})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT), env.get("PYTHONPATH", "")])
    r = subprocess.run(
        [sys.executable, "-c", RAY_SWEEP, str(scenario(tmp_path)), str(tmp_path / "sw")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == "6 ['flat_drt']", r.stdout
    ex = pl.read_ndjson(tmp_path / "sw" / "executions.jsonl")
    assert ex.height == 6 and ex["ok"].all(), ex
    assert set(ex["executor"]) == {"ray"} and ex["node_id"].str.len_chars().min() > 0
