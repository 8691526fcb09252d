"""Atomic file writes for the whole package: a temporary file in the target's folder, then
``os.replace``. A reader (or a resumed sweep) sees either the old file or the new one, never half
of one; an interrupted write leaves no temporary file behind.

This module sits at the bottom of the layers: it imports only the standard library and polars.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import polars as pl


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (``/proc``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restored at once
    os.umask(mask)
    return mask


#: The mode of every file written here: what ``open()`` would give (``mkstemp`` gives 0600, so a
#: result file was unreadable by the group and the others whatever the umask).
FILE_MODE = 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without an exception the
    temporary file replaces ``path`` (``os.replace``), otherwise it is removed. For writers that
    want a file name (polars, numpy)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_with(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` atomically through ``write(fh)``, given a binary file handle (e.g.
    ``lambda fh: np.savez(fh, ...)``)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    write_with(path, lambda fh: fh.write(data))


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_parquet_atomic(df: pl.DataFrame, path: str | Path) -> None:
    """Write ``df`` to ``path`` as Parquet atomically, without column statistics (as every result
    file has always been written: ``tests/golden.py`` pins the bytes)."""
    with atomic_path(path) as tmp:
        df.write_parquet(tmp, statistics=False)
