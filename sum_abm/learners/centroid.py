"""Nearest Centroid with running means, the reference's float rule."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from sum_abm.learners.base import Learner, Sample, as_matrix


class NearestCentroid(Learner):
    """Centroid per class, updated as ``c_y = (c_y*n_y + x)/(n_y+1)`` then ``n_y += 1`` (float64).

    Predicts the class of the nearest centroid (Euclidean); ties go to the lowest class. Agrees with
    ``sklearn.neighbors.NearestCentroid`` refitted on all data seen so far: a class with no data
    yet has no centroid and is never predicted (its score is -inf). An update is O(features)
    (the centroid is dense); prediction uses ``argmax(2 x·c - |c|²)``.
    """

    kind = "nearest_centroid"

    def __init__(self, n_features: int, n_classes: int = 2) -> None:
        super().__init__(n_features, n_classes)
        self.centroids = np.zeros((n_classes, n_features), dtype=np.float64)
        self.n = np.zeros(n_classes, dtype=np.int64)
        self._sq: tuple[int, np.ndarray] | None = None

    def fit(self, X: Any, y: Any) -> NearestCentroid:
        X = as_matrix(X)
        y = np.asarray(y, dtype=np.int64)
        for k in range(self.n_classes):
            rows = X[y == k]
            self.n[k] = rows.shape[0]
            self.centroids[k] = np.asarray(rows.mean(axis=0)).ravel() if rows.shape[0] else 0.0
        self.version += 1
        self.drift_epoch += 1
        return self

    def _update(self, s: Sample, y: int) -> int:
        first = self.n[y] == 0  # the class enters the argmax: its score leaves -inf
        old = self.centroids[y].copy()
        c = old * self.n[y]
        c[s.indices] += s.values
        new = c / (self.n[y] + 1)
        self.centroids[y] = new
        self.n[y] += 1
        # Only class y's score 2x·c - |c|² moves: by at most 2||Δc||_1 max|x| + |Δ|c|²|.
        self._add_drift(
            math.inf if first else abs(float(new @ new - old @ old)),
            2.0 * float(np.abs(new - old).sum()),
            0.0,
        )
        return self.n_features + 1

    def _sqnorm(self) -> np.ndarray:
        if self._sq is None or self._sq[0] != self.version:
            sq = np.einsum("ij,ij->i", self.centroids, self.centroids)
            sq[self.n == 0] = np.inf  # no data, no centroid: 2x·0 - inf = -inf, never the nearest
            self._sq = (self.version, sq)
        return self._sq[1]

    def decision(self, X: Any) -> np.ndarray:
        return 2.0 * np.asarray(X @ self.centroids.T) - self._sqnorm()

    def decision_one(self, s: Sample) -> np.ndarray:
        return 2.0 * (self.centroids[:, s.indices] @ s.values) - self._sqnorm()

    def _segment_params(self) -> tuple[np.ndarray, Any]:
        return 2.0 * self.centroids, -self._sqnorm()[:, None]

    def _state(self) -> Any:
        return self.centroids.copy(), self.n.copy()

    def _set_state(self, state: Any) -> None:
        self.centroids, self.n = state[0].copy(), state[1].copy()
