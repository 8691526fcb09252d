"""What a policy may observe and do: the :class:`MarketView` (declared here, implemented by the
market) and the agent it acts for (:class:`ParticipantView`).

Policies import nothing from :mod:`sum_abm.market`: they see the clock, their own balances, the
model's prediction for a pool row, what is still claimable, and they send calls — all through these
protocols. Every call goes through the contract layer; a policy never touches a balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class WalkRules:
    """Which claims a walk makes and where it stops (all ages in seconds).

    ``reference`` reproduces the reference simulator's walk: stop at the first item younger than
    the refund wait (or, once the pool is exhausted, younger than the any-address wait); older than
    the any-address wait: take all; own: refund; others': report. A mechanism without a take
    (Points: nobody may take a contribution, its author included) walks a contribution older than
    the any-address wait as a younger one: own, refund; others', report.
    """

    refund: bool = True
    report: bool = True
    take: bool = True
    reference: bool = False


class ParticipantView(Protocol):
    """The agent a policy acts for: its chain addresses and its market."""

    address: str  # main address
    addresses: list[str]  # a Sybil has several
    model: MarketView

    @property
    def balance(self) -> int:
        """Tokens held over all of the agent's addresses (token units)."""
        ...


class MarketView(Protocol):
    """All a policy may observe and do in the market (times in seconds, money in token units)."""

    rng: Any  # numpy Generator: the run's only source of randomness
    accuracy: float  # the last evaluated hidden-test accuracy (the reference's schedule)
    cursor: int  # next pool row to contribute

    # -- clock and data ------------------------------------------------------------------------
    def data_left(self) -> bool:
        """Whether pool rows remain to be contributed."""
        ...

    def accepting_data(self) -> bool:
        """Whether a contribution could be accepted now (data left, mechanism open)."""
        ...

    def next_row(self) -> int | None:
        """The next pool row in order, or None when the pool is exhausted."""
        ...

    def random_row(self) -> int:
        """A pool row drawn from the run's generator."""
        ...

    def pool_label(self, row: int) -> int:
        """The true label of pool ``row``."""
        ...

    def flip_label(self, y: int) -> int:
        """The wrong label a flipper submits for true label ``y``."""
        ...

    # -- the model ---------------------------------------------------------------------------
    def model_predict(self, row: int) -> int:
        """The on-chain model's class for pool ``row`` now (a free view call)."""
        ...

    def margin(self, row: int) -> float:
        """Distance of pool ``row`` from the decision boundary (smaller = nearer)."""
        ...

    # -- own balances and the mechanism's state ----------------------------------------------
    def required_deposit(self) -> int:
        """The deposit a contribution needs now (token units)."""
        ...

    def num_good(self, address: str) -> int:
        """Verified-good contributions of ``address`` (the mechanism's count)."""
        ...

    def address_balance(self, address: str) -> int:
        """Tokens held by one address."""
        ...

    def spendable(
        self,
        agent: ParticipantView,
        row: int,
        y: int = 0,
        address: str | None = None,
        call: str = "add_data",
    ) -> int:
        """What ``address`` (default: the agent's own) can send with ``call`` (``add_data`` of
        pool ``row`` labelled ``y``, or ``predict`` of ``row``): its balance less the call's fee
        (token units)."""
        ...

    def locked_deposits(self, agent: ParticipantView) -> int:
        """Deposits of ``agent`` still held by the contract."""
        ...

    def can_continue(self, agent: ParticipantView) -> bool:
        """Whether ``agent`` can still add data or has something left to claim."""
        ...

    # -- calls (each one contract call; rejected calls change nothing but their fee) ----------
    def add_data(
        self, agent: ParticipantView, row: int, y: int, value: int, address: str | None = None
    ) -> bool:
        """Contribute pool ``row`` with label ``y`` offering ``value``; True when accepted."""
        ...

    def predict(self, agent: ParticipantView, row: int, value: int) -> int | None:
        """Pay ``value`` for a prediction of pool ``row``; None when rejected."""
        ...

    def unsent_add(
        self,
        agent: ParticipantView,
        reason: str,
        offered: int = 0,
        spendable: int | None = None,
        required: int | None = None,
    ) -> None:
        """Tell the market an add ``agent`` chose not to send and why (``cap``: the required
        deposit is above its ``max_deposit``, ``offered``; ``fee``: the add's fee is more than the
        wallet, ``spendable`` what is left beyond it); nothing changes (for the run's notes)."""
        ...

    def claim_walk(
        self, agent: ParticipantView, rules: WalkRules, address: str | None = None
    ) -> None:
        """Claim (refund, report, take) what is claimable, oldest first, as ``rules`` allow."""
        ...
