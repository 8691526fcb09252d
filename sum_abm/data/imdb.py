"""The IMDB-shaped synthetic text data (REFERENCE_SCENARIOS.md "Data"), built directly as CSR.

One ``numpy.random.default_rng(seed)`` drawn in exactly the documented order: Zipf–Mandelbrot word
weights, 120 sentiment words (60 positive, 60 negative), latent classes, row lengths, then per chunk
of 5,000 rows Gumbel keys whose top-``L`` columns are the row's words, a noiseless label from the
sentiment words, and 15 % label noise. The keys are continuous, so ``argpartition`` finds the same
top-``L`` set as the stable argsort.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

CHUNK = 5_000  # the reference's chunk (documentation)
SUB = 1_000  # rows generated at a time; a divisor of CHUNK keeps the stream identical


def make_imdb_synthetic(n_rows: int = 50_000, n_features: int = 1_000, noise: float = 0.15, seed: int = 0
                        ) -> tuple[sp.csr_matrix, np.ndarray]:
    """``(X, y)``: ``n_rows`` × ``n_features`` binary CSR and labels in {0, 1}."""
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
    X = sp.csr_matrix((np.ones(len(indices)), indices, indptr), shape=(n_rows, n_features), copy=False)
    # Sentiment score per row without column slicing (which would copy the matrix twice).
    weight = np.zeros(n_features, dtype=np.int8)
    weight[pos], weight[neg] = 1, -1
    score = np.add.reduceat(weight[indices], indptr[:-1], dtype=np.int64) if n_rows else np.zeros(0, dtype=np.int64)
    y_clean = (score > 0).astype(np.int64)
    flip = rng.random(n_rows) < noise
    return X, y_clean ^ flip.astype(np.int64)
