"""Gas metering: gas per operation from a documented, replaceable schedule.

``gas(op, learner_kind, n_features)`` = ``base[op] + per_feature[op][learner_kind] * n_features``,
where ``n_features`` is the number of non-zero features the call sends or touches; an add is priced by
what its update writes (:meth:`GasSchedule.add_data_gas`), a refund by the counters it writes first
(:meth:`GasSchedule.refund_gas`). The fee of a call is ``gas * gas_price`` (token units, rounded
up to a whole token: :func:`gas_fee`), paid by the sender to the fee sink, on rejected calls too.

The coefficients (``gas_schedule.json`` beside this file) are estimates from EVM costs: 21,000 gas
per transaction, 16 gas per non-zero calldata byte (32-byte words: 512 gas per sent feature), 20,000
gas to store a new slot, 5,000 to update one, ~2,100 to read a cold one; and the reference
repository's stated bounds: a Naive Bayes update under 113,704 gas for its demo sizes and 8.9 M gas
per deploy transaction. ``sum-abm gas`` (:mod:`sum_abm.evm.gas`) replaces the figures of deploy,
add_data, refund, report and predict with gas measured on py-evm and fitted per learner kind, and
``sum-abm gas --verify`` checks them; the prediction-market steps remain estimates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from sum_abm.errors import first_line

_DEFAULT = Path(__file__).with_name("gas_schedule.json")
#: Gas refunded for each storage slot a transaction sets from non-zero to zero (EIP-3529); the
#: refunds of a transaction are capped at a fifth of its gas.
SSTORE_CLEARS_REFUND = 4_800


def terms(cf: dict[str, int], n: int, c: int) -> int:
    """``base + per_feature*n + per_class*c + per_class_feature*c*n`` (absent terms are 0)."""
    return int(
        cf["base"]
        + cf.get("per_feature", 0) * n
        + (cf.get("per_class", 0) + cf.get("per_class_feature", 0) * n) * c
    )


def exact_gas_price(price: Any) -> int | Fraction:
    """A gas price (token units per gas) as an exact number: an int as it is, a float as the
    decimal it is written as (``1e-05`` is 1/100000, not the binary float nearest it)."""
    if isinstance(price, bool) or not isinstance(price, (int, float, Fraction)):
        raise TypeError(f"gas price: a number expected, got {price!r}")
    exact = price if isinstance(price, (int, Fraction)) else Fraction(repr(float(price)))
    if exact < 0:
        raise ValueError(f"gas price: >= 0 expected, got {price!r}")
    return int(exact) if exact.denominator == 1 else exact


def gas_fee(gas: int, price: int | Fraction) -> int:
    """The fee of ``gas`` gas at ``price`` (an :func:`exact_gas_price`), token units: rounded up
    to a whole token (money is integers; rounded down, every call would be free at a price below
    1 token per gas)."""
    return gas * price if isinstance(price, int) else -(-gas * price.numerator // price.denominator)


@dataclass
class GasSchedule:
    """Gas per operation: ``base`` (gas) + ``per_feature`` (gas per feature, by learner kind).

    Optional terms measured on an EVM (``sum-abm gas``): ``base_by_kind`` replaces ``base`` for a
    learner kind; ``per_class`` and ``per_class_feature`` add gas per class and per class × feature;
    ``extra`` prices the cases of an add (:meth:`add_data_gas`).
    """

    base: dict[str, int]
    per_feature: dict[str, dict[str, int]] = field(default_factory=dict)
    source: str = "estimate"
    base_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    per_class: dict[str, dict[str, int]] = field(default_factory=dict)
    per_class_feature: dict[str, dict[str, int]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path | None = None) -> GasSchedule:
        """The schedule in ``path`` (default: the one shipped with the package); ValueError, in
        one line, for a file that is no gas schedule."""
        p = Path(path or _DEFAULT)
        try:
            data = json.loads(p.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{p}: not a readable gas-schedule file ({first_line(exc)})") from None
        if not isinstance(data, dict) or not isinstance(data.get("base"), dict):
            raise ValueError(
                f"{p}: not a gas schedule (expected a JSON object with a 'base' table)"
            )
        return cls(
            base=data["base"],
            per_feature=data.get("per_feature", {}),
            source=data.get("source", ""),
            base_by_kind=data.get("base_by_kind", {}),
            per_class=data.get("per_class", {}),
            per_class_feature=data.get("per_class_feature", {}),
            extra=data.get("extra", {}),
        )

    def gas(self, op: str, learner_kind: str = "", n_features: int = 0, n_classes: int = 2) -> int:
        """Gas units for ``op`` sending/touching ``n_features`` features of a ``learner_kind`` model
        with ``n_classes`` classes."""
        per = self.per_feature.get(op, {})
        coef = per.get(learner_kind, per.get("*", 0))
        base = self.base_by_kind.get(op, {}).get(learner_kind, self.base.get(op, 21_000))
        pc = self.per_class.get(op, {}).get(learner_kind, 0)
        pcf = self.per_class_feature.get(op, {}).get(learner_kind, 0)
        return int(base + coef * n_features + (pc + pcf * n_features) * n_classes)

    def add_data_gas(
        self,
        learner_kind: str,
        n_features: int,
        n_classes: int = 2,
        changes: bool = True,
        new_slots: int = 0,
        cleared_slots: int = 0,
    ) -> int:
        """Gas of an add by what it writes. ``gas("add_data")`` is an add whose update rewrites
        slots that are already non-zero (the steady state); an add the model does not learn from
        costs ``extra.add_data_no_update`` (perceptrons: no mistake, no weight written); each slot
        written for the first time (``new_slots``) adds ``extra.add_data_new_slot_per_feature``;
        each slot written back to zero (``cleared_slots``) earns the EVM's storage refund
        (:data:`SSTORE_CLEARS_REFUND`, in all at most a fifth of the gas)."""
        if not changes:
            no = self.extra.get("add_data_no_update", {}).get(learner_kind)
            if no is not None:
                return terms(no, n_features, n_classes)
        per_new = self.extra.get("add_data_new_slot_per_feature", {}).get(learner_kind, 0)
        gas = self.gas("add_data", learner_kind, n_features, n_classes) + int(per_new) * int(
            new_slots
        )
        return gas - min(SSTORE_CLEARS_REFUND * int(cleared_slots), gas // 5)

    def refund_gas(
        self,
        learner_kind: str,
        n_features: int,
        n_classes: int = 2,
        sender_counted: bool = False,
        total_counted: bool = False,
    ) -> int:
        """Gas of a refund by what it writes. ``gas("refund")`` is the market's first verified
        contribution: the sender's good-data count and the total are both written for the first
        time. ``sender_counted`` (the sender has verified data already, so the total too):
        ``extra.refund_counters_set``; ``total_counted`` alone: one first write, halfway between."""
        first = self.gas("refund", learner_kind, n_features, n_classes)
        cf = self.extra.get("refund_counters_set", {}).get(learner_kind)
        if cf is None or not (sender_counted or total_counted):
            return first
        steady = terms(cf, n_features, n_classes)
        return steady if sender_counted else (first + steady) // 2

    def fee(
        self,
        op: str,
        gas_price: int | float,
        learner_kind: str = "",
        n_features: int = 0,
        n_classes: int = 2,
    ) -> int:
        """Fee in token units: gas × gas price (token units per gas), rounded up to a whole
        token, as :meth:`Chain.fee` charges it."""
        gas = self.gas(op, learner_kind, n_features, n_classes)
        return gas_fee(gas, exact_gas_price(gas_price))
