"""The same scenario and seed give byte-identical Parquet files inside a Ray worker (real Ray,
started by the test on 127.0.0.1 with a short temp dir, and shut down)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import pytest

from sum_abm.market.run import run
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _digests(d: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(d).glob("*.parquet"))
    }


@pytest.mark.slow
@pytest.mark.ray
def test_parquet_identical_alone_and_in_a_ray_worker(tmp_path):
    ray = pytest.importorskip("ray")
    sc = load_scenario(
        ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 1000, "run.max_time_s": 20 * 86_400}
    )
    alone = _digests(run(sc, seed=11).write(tmp_path / "alone"))

    @ray.remote
    def remote_run(scenario, out):
        from sum_abm.market.run import run as run_

        run_(scenario, seed=11).write(out)
        return out

    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket path must stay under 107 bytes
    started = not ray.is_initialized()
    if started:
        ray.init(
            address="local",
            num_cpus=1,
            include_dashboard=False,
            log_to_driver=False,
            _temp_dir=temp,
            _node_ip_address="127.0.0.1",
        )
    try:
        out = ray.get(remote_run.remote(sc, str(tmp_path / "worker")))
    finally:
        if started:
            ray.shutdown()
    assert _digests(Path(out)) == alone
