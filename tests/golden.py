"""Golden results: the SHA-256 of every Parquet file the bundled scenarios, the quick-start sweep and
the quick-start game write, at the reduced sizes the tests use.

A refactoring must leave these bytes unchanged (``tests/test_golden.py`` checks them). When a change
of results is meant, refresh the record and say why in the commit:

    python3 tests/golden.py --write        # rewrites tests/golden_hashes.json
    python3 tests/golden.py                # prints the differences, exit 1 if any
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = Path(__file__).with_name("golden_hashes.json")


def reduced_overrides(sc) -> dict:
    """The overrides that shrink a bundled scenario to the size the tests run it at."""
    over: dict = {"run.max_time_s": 20 * 86_400}
    if sc.data.kind == "imdb_synthetic":
        over["data.n_rows"] = 600
        if sc.data.train_rows:
            over.update({"data.train_rows": 200, "data.test_rows": 100, "mechanism.bounty": 500})
    return over


def _hashes(folder: Path, prefix: str) -> dict[str, str]:
    return {
        f"{prefix}/{p.relative_to(folder).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*.parquet"))
    }


def scenario_hashes(names: list[str] | None = None) -> dict[str, str]:
    """Hashes of the Parquet files of each bundled scenario (seed 1, reduced size)."""
    from sum_abm import run
    from sum_abm.bundled import bundled
    from sum_abm.scenario import load_scenario

    out: dict[str, str] = {}
    paths = bundled("scenario")
    for path in paths:
        if names is not None and path.stem not in names:
            continue
        sc = load_scenario(path)
        with tempfile.TemporaryDirectory() as tmp:
            run(sc.with_overrides(reduced_overrides(sc)), seed=1).write(tmp)
            out.update(_hashes(Path(tmp), f"scenarios/{path.stem}"))
    return out


def sweep_hashes() -> dict[str, str]:
    """Hashes of the quick-start sweep's run and agent parts (run in this process)."""
    from sum_abm.bundled import resolve
    from sum_abm.sweeps import SerialExecutor
    from sum_abm.sweeps.engine import execute
    from sum_abm.sweeps.spec import load_sweep_file

    sw = load_sweep_file(resolve("quickstart_sweep", "sweep"))
    with tempfile.TemporaryDirectory() as tmp:
        execute(sw.base, sw.runs, Path(tmp), source="golden", executor=SerialExecutor())
        return _hashes(Path(tmp), "sweeps/quickstart_sweep")


def game_hashes() -> dict[str, str]:
    """Hashes of the quick-start game's tables (run in this process)."""
    from sum_abm.bundled import resolve
    from sum_abm.game.runner import run_game
    from sum_abm.sweeps import SerialExecutor, use_executor

    # In this process: the results are the same as on Ray.
    with tempfile.TemporaryDirectory() as tmp, use_executor(SerialExecutor()):
        run_game(resolve("quickstart_game", "game"), tmp)
        return _hashes(Path(tmp), "games/quickstart_game")


def all_hashes() -> dict[str, str]:
    """Every recorded hash, computed now."""
    return {**scenario_hashes(), **sweep_hashes(), **game_hashes()}


def diff(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """One line per file whose hash differs, is missing or is new."""
    lines = []
    for key in sorted(set(expected) | set(actual)):
        if expected.get(key) != actual.get(key):
            lines.append(
                f"{key}: recorded {expected.get(key, 'absent')[:12]}, now {actual.get(key, 'absent')[:12]}"
            )
    return lines


if __name__ == "__main__":
    now = all_hashes()
    if "--write" in sys.argv[1:]:
        RECORD.write_text(json.dumps(now, indent=1, sort_keys=True) + "\n")
        print(f"{RECORD}: {len(now)} hashes written")
    else:
        bad = diff(json.loads(RECORD.read_text()), now)
        print("\n".join(bad) or f"all {len(now)} hashes match")
        raise SystemExit(1 if bad else 0)
