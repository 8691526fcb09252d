"""What every policy shares: its group config and the small strategy interface.

A policy decides what its agent does when woken: whether and what to contribute (a pool row, a
label, a deposit), whether to predict, which claims to make, and how long to wait. It acts only
through the :class:`~sum_abm.policies.view.MarketView` (whose calls go through the contract
layer), never on balances.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from sum_abm.config import StrictModel
from sum_abm.policies.view import ParticipantView, WalkRules


class GroupConfig(StrictModel):
    """An agent group of a scenario: ``count`` agents sharing a policy and its parameters.

    Balances are integers in token units; waits are seconds of simulated time.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    name: str = Field(min_length=1)
    count: int = Field(1, ge=1, le=10_000)
    policy: str
    attacker: bool | None = Field(None, description="default: the policy's own default")
    start_balance: int = Field(10_000, ge=0)
    mean_wait_s: float = Field(600.0, gt=0, description="mean time between wake-ups (s)")
    stdev_wait_s: float = Field(1.0, ge=0)

    default_attacker: ClassVar[bool] = False

    @property
    def is_attacker(self) -> bool:
        return self.default_attacker if self.attacker is None else self.attacker


class Policy:
    """Strategy object held by a market participant (a :class:`ParticipantView`).

    Subclasses implement :meth:`act`; they draw randomness only from ``agent.model.rng``.
    """

    Config: ClassVar[type[GroupConfig]] = GroupConfig
    name: ClassVar[str] = "base"
    #: Set by a policy whose every wake-up, once the pool has no data left, is only its claim walk
    #: with these rules for its main address: no draw from ``rng`` (but the next wait), no other
    #: call, and it keeps being woken while its balance is positive. The market may then process
    #: a wake-up whose walk cannot find anything without calling :meth:`act` (the same draws, in
    #: the same order: MarketModel.run_until). None: nothing is assumed.
    dry_walk: ClassVar[WalkRules | None] = None

    def __init__(self, config: GroupConfig) -> None:
        self.config = config

    # -- timing ------------------------------------------------------------------------------
    def next_wait(self, agent: ParticipantView) -> int:
        """Seconds until the next wake-up: ``int(normal(mean, stdev))`` redrawn until >= 1."""
        c = self.config
        return draw_positive_int(agent.model.rng, c.mean_wait_s, c.stdev_wait_s)

    def first_wait(self, agent: ParticipantView) -> int:
        return self.next_wait(agent)

    # -- behaviour ---------------------------------------------------------------------------
    def act(self, agent: ParticipantView) -> bool:
        """Do this wake-up's actions. Return False to stop being woken."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")


def draw_positive_int(rng: Any, mean: float, stdev: float) -> int:
    """``int(normal(mean, stdev))`` redrawn until > 0 (the reference's deposit rule), token units."""
    while True:
        # rng.normal(mean, stdev) computes exactly this (the same draw, bit for bit), with more
        # call overhead: the wait of every wake-up is drawn here
        v = int(mean + stdev * rng.standard_normal())
        if v > 0:
            return v
