"""Gas metering: gas per operation from a documented, replaceable schedule.

``gas(op, learner_kind, n_features)`` = ``base[op] + per_feature[op][learner_kind] * n_features``,
where ``n_features`` is the number of non-zero features the call sends or touches. The fee of a call
is ``gas * gas_price`` (token units), paid by the sender to the fee sink, on rejected calls too.

The coefficients (``gas_schedule.json`` beside this file) are estimates from EVM costs: 21,000 gas
per transaction, 16 gas per non-zero calldata byte (32-byte words: 512 gas per sent feature), 20,000
gas to store a new slot, 5,000 to update one, ~2,100 to read a cold one; and the reference
repository's stated bounds: a Naive Bayes update under 113,704 gas for its demo sizes and 8.9 M gas
per deploy transaction. The EVM calibration issue replaces them with measured figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_DEFAULT = Path(__file__).with_name("gas_schedule.json")


@dataclass
class GasSchedule:
    """Gas per operation: ``base`` (gas) + ``per_feature`` (gas per feature, by learner kind)."""

    base: dict[str, int]
    per_feature: dict[str, dict[str, int]] = field(default_factory=dict)
    source: str = "estimate"

    @classmethod
    def load(cls, path: str | Path | None = None) -> "GasSchedule":
        """The schedule in ``path`` (default: the one shipped with the package)."""
        data: dict[str, Any] = json.loads(Path(path or _DEFAULT).read_text())
        return cls(base=data["base"], per_feature=data.get("per_feature", {}), source=data.get("source", ""))

    def gas(self, op: str, learner_kind: str = "", n_features: int = 0) -> int:
        """Gas units for ``op`` sending/touching ``n_features`` features of a ``learner_kind`` model."""
        per = self.per_feature.get(op, {})
        coef = per.get(learner_kind, per.get("*", 0))
        return int(self.base.get(op, 21_000) + coef * n_features)

    def fee(self, op: str, gas_price: int, learner_kind: str = "", n_features: int = 0) -> int:
        """Fee in token units: gas × gas price (integers)."""
        return self.gas(op, learner_kind, n_features) * int(gas_price)
