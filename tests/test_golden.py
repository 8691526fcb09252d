"""The bundled scenarios, the quick-start sweep and game write byte-identical Parquet files to the
recorded ones (``tests/golden_hashes.json``; refresh with ``python3 tests/golden.py --write`` when a
change of results is meant, and say why in the commit)."""

from __future__ import annotations

import json

import golden
import pytest


@pytest.mark.slow
def test_parquet_files_match_the_recorded_hashes():
    expected = json.loads(golden.RECORD.read_text())
    assert golden.diff(expected, golden.all_hashes()) == []
