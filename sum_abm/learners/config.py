"""The learner config: which on-chain learner, and its parameters (checked against the learner's
own ``Params`` model)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from sum_abm.config import StrictModel
from sum_abm.learners import LEARNERS

# The registry is the one list of learner kinds; the config's choices follow it.
LearnerKind = Literal[tuple(LEARNERS)]  # type: ignore[valid-type]


class LearnerConfig(StrictModel):
    """The on-chain model. ``params`` go to the learner's constructor (e.g. ``alpha``)."""

    kind: LearnerKind = "perceptron"  # type: ignore[valid-type]
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_params(self) -> LearnerConfig:
        fields = LEARNERS[self.kind].Params.model_fields
        allowed = list(fields)
        unknown = sorted(set(self.params) - set(allowed))
        if unknown:
            raise ValueError(
                f"params: unknown parameter(s) {unknown} for {self.kind}; expected some of {allowed}"
            )
        # Values are passed to the constructor as given (not coerced), so the check is by the
        # declared default's type: true/false for flags, numbers (not flags) for numbers.
        for name, value in self.params.items():
            default = fields[name].default
            if isinstance(default, bool) and not isinstance(value, bool):
                raise ValueError(f"params.{name}: expected true or false, got {value!r}")
            if (
                isinstance(default, (int, float))
                and not isinstance(default, bool)
                and (isinstance(value, bool) or not isinstance(value, (int, float)))
            ):
                raise ValueError(f"params.{name}: expected a number, got {value!r}")
            # rates and smoothing are positive; seeds are what numpy and scikit-learn accept
            if isinstance(default, float) and not 0 < value < math.inf:
                raise ValueError(f"params.{name}: expected a finite number > 0, got {value!r}")
            if isinstance(default, int) and not isinstance(default, bool):
                if not isinstance(value, int) or not 0 <= value < 2**32:
                    raise ValueError(
                        f"params.{name}: expected an integer 0 .. 2**32 - 1, got {value!r}"
                    )
        return self
