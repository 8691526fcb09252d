"""Market participants: Mesa agents that hold a policy and one or more chain addresses."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sum_abm.market.events import EventQueue
from sum_abm.market.mesa_core import Agent
from sum_abm.policies import GroupConfig, MarketView, Policy


class Host(MarketView, Protocol):
    """What a participant needs of its model beyond the policies' view: the event queue."""

    finished: bool
    events: EventQueue


@dataclass
class Unsent:
    """Adds a participant's market did not send for one reason: how many, and the range of what
    decided it at those times (token units): the deposit an add required, the value offered, and
    the wallet less the add's fee (``spendable``)."""

    count: int = 0
    required_lo: int = 0
    required_hi: int = 0
    offered_lo: int = 0
    offered_hi: int = 0
    spendable_lo: int = 0
    spendable_hi: int = 0

    def note(self, required: int, offered: int, spendable: int) -> None:
        if not self.count:
            self.required_lo = self.required_hi = required
            self.offered_lo = self.offered_hi = offered
            self.spendable_lo = self.spendable_hi = spendable
        else:
            self.required_lo = min(self.required_lo, required)
            self.required_hi = max(self.required_hi, required)
            self.offered_lo = min(self.offered_lo, offered)
            self.offered_hi = max(self.offered_hi, offered)
            self.spendable_lo = min(self.spendable_lo, spendable)
            self.spendable_hi = max(self.spendable_hi, spendable)
        self.count += 1

    def merge(self, other: Unsent) -> None:
        """Fold ``other`` (of the same reason) into this one."""
        if not other.count:
            return
        if not self.count:
            self.__dict__.update(other.__dict__)
            return
        self.note(other.required_lo, other.offered_lo, other.spendable_lo)
        self.note(other.required_hi, other.offered_hi, other.spendable_hi)
        self.count += other.count - 2


class Participant(Agent):
    """One agent of a group. ``address`` is its main chain address; a Sybil has several.

    Counters (``adds_accepted`` …) are filled by the market when the contract accepts a call;
    ``wakes`` counts the wake-ups its policy acted on, ``unsent`` the adds not sent, by reason
    (``MarketModel.unsent_add``: for the notes of a run, not its results).
    """

    model: Host

    def __init__(
        self, model: Host, group: GroupConfig, policy: Policy, addresses: list[str]
    ) -> None:
        super().__init__(model)
        self.group = group
        self.policy = policy
        self.addresses = addresses
        self.address = addresses[0]
        self.start_balance = group.start_balance
        self.active = True
        self.adds_accepted = 0
        self.refunded = 0
        self.taken = 0
        self.reports_won = 0
        self.predictions = 0
        self.points = 0
        self.deposits_paid = 0
        self.fees = 0
        self.wakes = 0
        self.unsent: dict[str, Unsent] = {}

    @property
    def balance(self) -> int:
        """Tokens held over all of the agent's addresses (token units)."""
        if len(self.addresses) == 1:  # the common case, read on every wake-up
            return self.model.address_balance(self.address)
        return sum(self.model.address_balance(a) for a in self.addresses)

    def wake(self) -> None:
        """Event callback: let the policy act, then schedule the next wake-up."""
        if not self.active:
            return
        self.wakes += 1
        keep = self.policy.act(self)
        if keep and not self.model.finished:
            self.model.events.schedule_after(self.wake, self.policy.next_wait(self), self.rank)
        else:
            self.active = False
