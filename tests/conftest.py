"""Shared pytest set-up: hypothesis profiles and quiet Solara hooks."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

os.environ.setdefault("SOLARA_CHECK_HOOKS", "off")

# CI runs at least 1,000 examples per property (issue: contract core); "dev" is for quick local loops.
settings.register_profile(
    "ci", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
