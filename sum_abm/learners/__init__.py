"""On-chain learners: fast incremental models that agree with scikit-learn."""

from __future__ import annotations

from typing import Any

from sum_abm.learners.base import Learner, Sample, as_matrix, as_sample
from sum_abm.learners.centroid import NearestCentroid
from sum_abm.learners.linear import Perceptron, SGDPerceptron
from sum_abm.learners.nb import MultinomialNB

LEARNERS: dict[str, type[Learner]] = {
    c.kind: c for c in (Perceptron, SGDPerceptron, MultinomialNB, NearestCentroid)
}


def make_learner(kind: str, n_features: int, n_classes: int = 2, **params: Any) -> Learner:
    """A learner by kind (``perceptron``, ``sgd_perceptron``, ``multinomial_nb``, ``nearest_centroid``)."""
    try:
        cls = LEARNERS[kind]
    except KeyError:
        raise ValueError(f"unknown learner {kind!r}; expected one of {sorted(LEARNERS)}") from None
    return cls(n_features, n_classes, **params)


__all__ = [
    "LEARNERS",
    "Learner",
    "MultinomialNB",
    "NearestCentroid",
    "Perceptron",
    "SGDPerceptron",
    "Sample",
    "as_matrix",
    "as_sample",
    "make_learner",
]
