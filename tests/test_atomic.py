"""The package's one atomic writer: the old file survives a failed write, no temporary is left."""

from __future__ import annotations

import polars as pl
import pytest

from sum_abm.atomic import write_parquet_atomic, write_text_atomic, write_with


def test_text_and_parquet_replace_the_file(tmp_path):
    write_text_atomic(tmp_path / "a.txt", "first")
    write_text_atomic(tmp_path / "a.txt", "second — ü")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "second — ü"
    df = pl.DataFrame({"x": [1, 2, 3]})
    write_parquet_atomic(df, tmp_path / "f.parquet")
    assert pl.read_parquet(tmp_path / "f.parquet").equals(df)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "f.parquet"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "cache.bin"
    target.write_bytes(b"old")

    def half_then_fail(fh):
        fh.write(b"new but incomplete")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_with(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["cache.bin"]


def test_files_get_the_mode_open_would_give_them(tmp_path):
    """Under umask 022 a result file is readable by the group and the others (0644), not 0600 as
    the temporary file it was written to."""
    import subprocess
    import sys

    code = (
        "import os, sys; os.umask(int(sys.argv[2], 8)); import polars as pl; "
        "from sum_abm.atomic import write_parquet_atomic, write_text_atomic; "
        "write_text_atomic(sys.argv[1] + '/a.json', '{}'); "
        "write_parquet_atomic(pl.DataFrame({'x': [1]}), sys.argv[1] + '/b.parquet')"
    )
    for umask, mode in (("022", 0o644), ("077", 0o600), ("002", 0o664)):
        d = tmp_path / umask
        d.mkdir()
        subprocess.run([sys.executable, "-c", code, str(d), umask], check=True)
        assert {f.name: f.stat().st_mode & 0o777 for f in d.iterdir()} == {
            "a.json": mode,
            "b.parquet": mode,
        }
