"""Market participants: Mesa agents that hold a policy and one or more chain addresses."""

from __future__ import annotations

from typing import Protocol

from sum_abm.market.events import EventQueue
from sum_abm.market.mesa_core import Agent
from sum_abm.policies import GroupConfig, MarketView, Policy


class Host(MarketView, Protocol):
    """What a participant needs of its model beyond the policies' view: the event queue."""

    finished: bool
    events: EventQueue


class Participant(Agent):
    """One agent of a group. ``address`` is its main chain address; a Sybil has several.

    Counters (``adds_accepted`` …) are filled by the market when the contract accepts a call.
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
        keep = self.policy.act(self)
        if keep and not self.model.finished:
            self.model.events.schedule_after(self.wake, self.policy.next_wait(self), self.rank)
        else:
            self.active = False
