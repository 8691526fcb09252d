"""Balances of every account, in the smallest token unit.

Money is integers on chain; the ``reference-python`` semantics (which pays fractional report
rewards, as the reference Python does) is the one place where a balance may hold a float. The total
over all accounts never changes after the initial endowments: :meth:`Ledger.check_conserved`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Real
from types import MappingProxyType


class InsufficientFunds(Exception):
    """A transfer larger than the sender's balance (refused, never capped)."""

    def __init__(self, address: str, balance: Real, amount: Real) -> None:
        super().__init__(f"{address} holds {balance}, cannot pay {amount}")
        self.address, self.balance, self.amount = address, balance, amount


class MoneyNotConserved(AssertionError):
    """The total over all accounts changed: a bug, never a warning."""


class Ledger:
    """Account balances (token units). ``mint`` only for initial endowments."""

    def __init__(self) -> None:
        self._bal: dict[str, Real] = {}
        self._minted: Real = 0

    def mint(self, address: str, amount: Real) -> None:
        """Endow ``address`` with ``amount`` tokens (creation of money; only at set-up)."""
        if amount < 0:
            raise ValueError("cannot mint a negative amount")
        self._bal[address] = self._bal.get(address, 0) + amount
        self._minted += amount

    def balance(self, address: str) -> Real:
        """Tokens held by ``address`` (0 for an unknown account)."""
        return self._bal.get(address, 0)

    def balances(self) -> Mapping[str, Real]:
        """Every balance as a read-only view, current until the next :meth:`restore` (an account
        missing from it holds 0): for compiled readers, which take a dict."""
        return MappingProxyType(self._bal)

    def transfer(self, src: str, dst: str, amount: Real) -> None:
        """Move ``amount`` tokens from ``src`` to ``dst``; an overdraft raises InsufficientFunds."""
        if amount < 0:
            raise ValueError(f"negative transfer {amount}")
        if amount == 0:
            return
        have = self._bal.get(src, 0)
        if have < amount:
            raise InsufficientFunds(src, have, amount)
        self._bal[src] = have - amount
        self._bal[dst] = self._bal.get(dst, 0) + amount

    def transfer_many(self, src: str, dst: str, amounts: Sequence[Real], cap: bool = False) -> None:
        """:meth:`transfer` of each of ``amounts`` from ``src`` to ``dst``, in order, with one
        read and one write of each balance. ``cap``: send at most what ``src`` holds at each step
        (the reference Python's ``Balances.send``) instead of refusing an overdraft."""
        if len(amounts) == 1:  # (the market's claim batches hold one claim, mostly)
            a = amounts[0]
            self.transfer(src, dst, min(a, self._bal.get(src, 0)) if cap else a)
            return
        if src == dst:
            for a in amounts:
                self.transfer(src, dst, min(a, self.balance(src)) if cap else a)
            return
        bal = self._bal
        have, got, moved = bal.get(src, 0), bal.get(dst, 0), False
        try:
            for a in amounts:
                if cap:
                    a = min(a, have)
                if a < 0:
                    raise ValueError(f"negative transfer {a}")
                if a == 0:
                    continue
                if have < a:
                    raise InsufficientFunds(src, have, a)
                # the same operations in the same order as one transfer at a time (float
                # balances round identically)
                have = have - a
                got = got + a
                moved = True
        finally:
            if moved:
                bal[src] = have
                bal[dst] = got

    def total(self) -> Real:
        """Sum over all accounts (token units)."""
        return sum(self._bal.values())

    def check_conserved(self, tol: float = 1e-6) -> None:
        """Raise MoneyNotConserved unless the total equals what was minted."""
        total = self.total()
        if isinstance(total, int) and isinstance(self._minted, int):
            ok = total == self._minted
        else:
            ok = abs(total - self._minted) <= tol * max(1.0, abs(self._minted))
        if not ok:
            raise MoneyNotConserved(f"total {total} != minted {self._minted}")

    def snapshot(self) -> dict[str, Real]:
        """A copy of every balance, for comparisons and rollbacks."""
        return dict(self._bal)

    def restore(self, snap: dict[str, Real]) -> None:
        self._bal = dict(snap)

    def accounts(self) -> list[str]:
        return list(self._bal)
