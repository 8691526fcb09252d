"""The IMDB-shaped synthetic text data (REFERENCE_SCENARIOS.md "Data"), built directly as CSR.

One ``numpy.random.default_rng(seed)`` drawn in exactly the documented order: Zipf–Mandelbrot word
weights, 120 sentiment words (60 positive, 60 negative), latent classes, row lengths, then per chunk
of 5,000 rows Gumbel keys whose top-``L`` columns are the row's words, a noiseless label from the
sentiment words, and 15 % label noise. The keys are continuous, so ``argpartition`` finds the same
top-``L`` set as the stable argsort.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from sum_abm.atomic import write_with

CHUNK = 5_000  # the reference's chunk (documentation)
SUB = 1_000  # rows generated at a time; a divisor of CHUNK keeps the stream identical
GENERATOR_VERSION = 1  # part of the cache key: bump when the generated data would change


def make_imdb_synthetic(
    n_rows: int = 50_000,
    n_features: int = 1_000,
    noise: float = 0.15,
    seed: int = 0,
    return_details: bool = False,
) -> Any:
    """``(X, y)``: ``n_rows`` × ``n_features`` binary CSR and labels in {0, 1}.

    With ``return_details``, ``(X, y, details)`` where ``details`` holds the sentiment words
    (``pos``, ``neg``), the latent class ``z``, the row lengths ``L``, ``y_clean`` and ``flip``.
    """
    if n_rows < 0 or n_features < 120:
        # 120 distinct sentiment words (from ranks 20..800 at the reference size; lower for small V)
        if n_rows < 0:
            raise ValueError(f"expected n_rows >= 0, got {n_rows}")
        raise ValueError(
            f"expected at least 120 features (the generated vocabulary), got {n_features}"
        )
    rng = np.random.default_rng(seed)
    r = np.arange(1, n_features + 1)
    w = 1.0 / (r + 2.7)
    logp = np.log(w / w.sum())
    hi = min(800, n_features)
    sent = rng.choice(np.arange(min(20, hi - 120), hi), size=120, replace=False)
    pos, neg = sent[:60], sent[60:]
    z = rng.integers(0, 2, size=n_rows)
    L = rng.integers(100, 251, size=n_rows)
    L = np.minimum(L, n_features)
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(L)
    indices = np.empty(indptr[-1], dtype=np.int32)
    shift = np.zeros((2, n_features))
    shift[1, pos], shift[1, neg] = 1.0, -1.0
    shift[0, pos], shift[0, neg] = -1.0, 1.0
    for lo in range(0, n_rows, SUB):
        # The documented draw is one (5,000 x V) Gumbel block per chunk; Generator draws are
        # sequential, so 1,000-row blocks give the same numbers with a fifth of the memory.
        hi_r = min(lo + SUB, n_rows)
        keys = logp[None, :] + shift[z[lo:hi_r]]
        keys += rng.gumbel(size=(hi_r - lo, n_features))
        order = np.argsort(-keys, axis=1, kind="stable") if n_features <= 64 else None
        for i in range(hi_r - lo):
            k = int(L[lo + i])
            row = keys[i]
            top = order[i, :k] if order is not None else np.argpartition(-row, k - 1)[:k]
            indices[indptr[lo + i] : indptr[lo + i + 1]] = np.sort(top)
    X = sp.csr_matrix(
        (np.ones(len(indices)), indices, indptr), shape=(n_rows, n_features), copy=False
    )
    # Sentiment score per row without column slicing (which would copy the matrix twice).
    weight = np.zeros(n_features, dtype=np.int8)
    weight[pos], weight[neg] = 1, -1
    score = (
        np.add.reduceat(weight[indices], indptr[:-1], dtype=np.int64)
        if n_rows
        else np.zeros(0, dtype=np.int64)
    )
    y_clean = (score > 0).astype(np.int64)
    flip = rng.random(n_rows) < noise
    y = y_clean ^ flip.astype(np.int64)
    if return_details:
        return X, y, {"pos": pos, "neg": neg, "z": z, "L": L, "y_clean": y_clean, "flip": flip}
    return X, y


def peak_bytes(n_rows: int, n_features: int) -> int:
    """Memory (bytes) that generating and splitting ``n_rows`` x ``n_features`` needs at its
    peak, over-estimated: about 175 ones per row (100..250 words) stored as CSR (4-byte index,
    8-byte value) up to three times (generated, reordered, split), plus the Gumbel key blocks of
    :data:`SUB` rows x ``n_features`` float64 (three live at once)."""
    nnz = n_rows * min(175, n_features)
    return 3 * 12 * nnz + 40 * n_rows + 3 * 8 * min(SUB, n_rows) * n_features


def cache_dir() -> Path | None:
    """Where generated data sets are cached: ``$SUM_ABM_CACHE`` (``0``/``off``: no cache), else
    ``$XDG_CACHE_HOME/sum_abm`` or ``~/.cache/sum_abm``."""
    env = os.environ.get("SUM_ABM_CACHE")
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "no", "false") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sum_abm"


def imdb_synthetic_key(n_rows: int, n_features: int, noise: float, seed: int) -> str:
    """Names the generated rows exactly: the generator is deterministic given these parameters and
    :data:`GENERATOR_VERSION` (the on-disk data cache and fit cache are keyed by it)."""
    return f"imdb_synthetic-v{GENERATOR_VERSION}-{n_rows}-{n_features}-{float(noise)!r}-{seed}"


def imdb_synthetic_cached(
    n_rows: int = 50_000, n_features: int = 1_000, noise: float = 0.15, seed: int = 0
) -> tuple[sp.csr_matrix, np.ndarray]:
    """:func:`make_imdb_synthetic`, read from the on-disk cache when it was generated before.

    The file name is a hash of the parameters and of :data:`GENERATOR_VERSION`; it is written
    atomically (a temporary file renamed into place), so concurrent runs never see half a file.
    A cache that cannot be read or written is skipped silently: the data is regenerated.
    """
    d = cache_dir()
    key = imdb_synthetic_key(n_rows, n_features, noise, seed)
    path = None if d is None else d / f"{hashlib.sha256(key.encode()).hexdigest()[:20]}.npz"
    if path is not None and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                if str(f["key"]) == key:
                    indices = f["indices"]  # each f[...] reads the member again: once only
                    X = sp.csr_matrix(
                        (np.ones(len(indices)), indices, f["indptr"]), shape=(n_rows, n_features)
                    )
                    return X, f["y"].astype(np.int64)
        except (OSError, ValueError, KeyError):
            pass
    X, y = make_imdb_synthetic(n_rows, n_features, noise, seed)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_with(
                path,
                lambda fh: np.savez(
                    fh, key=np.array(key), indices=X.indices, indptr=X.indptr, y=y.astype(np.int8)
                ),
            )
        except OSError:
            pass  # a cache that cannot be written is only slower next time
    return X, y
