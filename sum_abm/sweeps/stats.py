"""Statistics of sweep outcomes that reports share."""

from __future__ import annotations

import math

WILSON_Z = 1.959964  # two-sided 95 %


def wilson(k: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k`` of ``n`` (95 % by default): sound at k = 0 or
    k = n and for small n, where the normal approximation is not. (nan, nan) when n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))
