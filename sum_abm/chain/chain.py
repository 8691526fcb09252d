"""The chain: ledger, clock, gas, fee sink, and atomic execution of contract calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sum_abm.chain.clock import Clock
from sum_abm.chain.errors import Rejected
from sum_abm.chain.gas import GasSchedule, exact_gas_price, gas_fee
from sum_abm.chain.ledger import Ledger

# One record per call, in this order (the market's ``transactions`` frame has these columns).
TX_FIELDS = ("time_s", "sender", "call", "accepted", "reason", "value", "gas", "fee", "amount")
TxLog = Callable[[tuple], None]
TxLogMany = Callable[[int, str, Sequence[str], Sequence[Any]], None]


def logged_amount(result: Any) -> Any:
    """What a transaction's record holds as its ``amount``: the call's result when it is a number
    (token units), else None."""
    return result if isinstance(result, (int, float)) and not isinstance(result, bool) else None


class Chain:
    """Everything below the contracts. ``execute`` runs one transaction atomically.

    Contract methods do every check before any effect (the Solidity way), so a call that raises
    :class:`Rejected` has changed nothing; the fee, as on chain, is still charged.
    """

    def __init__(
        self,
        *,
        gas_price: int | float = 0,
        block_time_s: int = 1,
        gas_schedule: GasSchedule | None = None,
        fee_sink: str = "fee_sink",
        log: TxLog | None = None,
        log_repeated: Callable[[tuple, int], None] | None = None,
        log_many: TxLogMany | None = None,
    ) -> None:
        """``log`` receives one tuple per call, fields as :data:`TX_FIELDS`;
        ``log_repeated(record, n)``, if given, records ``n`` identical calls at once;
        ``log_many``, if given, ``(time_s, sender, calls, amounts)`` for a batch of accepted
        calls that sent nothing and paid no gas (:meth:`record_many`)."""
        self.ledger = Ledger()
        self.clock = Clock(0, block_time_s)
        self.gas_schedule = gas_schedule or GasSchedule.load()
        # token units per gas; a fraction below 1 (fees of whole tokens rounded up: fee())
        self.gas_price = exact_gas_price(gas_price)
        self.fee_sink = fee_sink
        self.log = log
        self.log_repeated = log_repeated
        self.log_many = log_many

    def execute(
        self,
        sender: str,
        call: str,
        value: Any,
        fn: Callable[[], Any],
        *,
        gas_op: str | None = None,
        learner_kind: str = "",
        n_features: int = 0,
        n_classes: int = 2,
        gas: int | None = None,
    ) -> Any:
        """Run ``fn`` as a transaction from ``sender`` sending ``value`` tokens.

        The wallet rule first: ``value + fee`` above the sender's balance is refused with
        ``insufficient_funds`` and charges nothing (such a transaction cannot be sent). Then the fee
        goes to the fee sink and ``fn`` runs; :class:`Rejected` propagates after logging. ``gas``:
        the call's gas when the caller knows it better than the schedule's per-operation figure.
        """
        if not self.gas_price:
            gas = 0
        elif gas is None:
            gas = self.gas_schedule.gas(gas_op or call, learner_kind, n_features, n_classes)
        fee = self.charge(sender, call, value, gas)
        if fee is None:
            raise Rejected("insufficient_funds")
        try:
            result = fn()
        except Rejected as rej:
            self.reject(sender, call, rej.reason, value, gas, fee)
            raise
        self._log(sender, call, True, None, value, gas, fee, logged_amount(result))
        return result

    def charge(self, sender: str, call: str, value: Any, gas: int) -> int | None:
        """The start of every transaction: the wallet rule, then the fee (``gas`` × gas price,
        token units) to the fee sink; returns the fee. A transaction the sender cannot pay
        (``value + fee`` above its balance) is logged as ``insufficient_funds``, charges
        nothing, and returns None."""
        fee = self.fee(gas)
        if not self.can_pay(sender, value, fee):
            self._log(sender, call, False, "insufficient_funds", value, 0, 0, None)
            return None
        if fee:
            self.ledger.transfer(sender, self.fee_sink, fee)
        return fee

    def can_pay(self, sender: str, value: Any, fee: int) -> bool:
        """The wallet rule: whether ``sender`` holds ``value + fee`` (token units). A wallet
        does not sign a call that fails it; :meth:`charge` refuses it."""
        # No balance is ever negative, so a call sending nothing and paying no fee always passes.
        return not (value or fee) or value + fee <= self.ledger.balance(sender)

    def fee(self, gas: int) -> int:
        """The fee of ``gas`` gas (token units): gas × gas price, rounded up to a whole token
        (money is integers; rounding down would make every call free at a price below 1/gas)."""
        return gas_fee(gas, self.gas_price)

    def record(self, sender: str, call: str, value: Any, gas: int, fee: int, amount: Any) -> None:
        """Log an accepted transaction whose effects are done (for callers that ran its checks
        and effects themselves after :meth:`charge`, without a closure per call)."""
        self._log(sender, call, True, None, value, gas, fee, amount)

    def reject(self, sender: str, call: str, reason: str, value: Any, gas: int, fee: int) -> None:
        """Log a transaction the contract rejected after :meth:`charge` (its ``fee`` kept, as on
        chain; nothing else changed), for callers that run its checks without a closure."""
        self._log(sender, call, False, reason, value, gas, fee, None)

    def record_repeated(self, n: int, sender: str, call: str) -> None:
        """Log ``n`` accepted transactions sending nothing and paying no fee, their effects done
        (a batch of free calls, as :meth:`record` ``n`` times)."""
        if self.log is None or n <= 0:
            return
        rec = (self.clock.now, sender, call, True, None, 0, 0, 0, None)
        if self.log_repeated is not None:
            self.log_repeated(rec, n)
        else:
            for _ in range(n):
                self.log(rec)

    def record_many(self, sender: str, calls: Sequence[str], amounts: Sequence[Any]) -> None:
        """:meth:`record` for accepted calls from ``sender`` that sent nothing and paid no gas
        (each ``calls[i]`` returned the number ``amounts[i]``), in order, at once."""
        if self.log_many is not None:
            self.log_many(self.clock.now, sender, calls, amounts)
        elif self.log is not None:
            for call, amount in zip(calls, amounts, strict=True):
                self._log(sender, call, True, None, 0, 0, 0, amount)

    def _log(self, sender, call, ok, reason, value, gas, fee, amount) -> None:
        if self.log is not None:
            self.log(
                (
                    self.clock.now,
                    sender,
                    call,
                    ok,
                    reason,
                    value,
                    gas,
                    fee,
                    None if amount is None else float(amount),
                )
            )
