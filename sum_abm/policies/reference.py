"""The reference simulator's agent, exactly as REFERENCE_SCENARIOS.md describes it.

On each wake-up with a positive balance and data left: a model caller predicts (paying
``pay_to_call``) with probability = the last evaluated accuracy; otherwise the next pool row is
contributed, its label flipped if the agent is bad and flipped again with probability
``prob_mistake``; a bad agent always contributes, a good one with probability ``accuracy + 0.15``;
the deposit offered is ``int(normal(mean_deposit, stdev_deposit))`` (redrawn until > 0) capped at
the balance. Then, every wake-up, the reference claim walk (see :class:`~sum_abm.policies.view.WalkRules`).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from sum_abm.policies.base import GroupConfig, Policy, draw_positive_int
from sum_abm.policies.view import ParticipantView, WalkRules


class ReferenceConfig(GroupConfig):
    """The reference ``Agent``'s fields (deposits in token units, waits in seconds)."""

    policy: Literal["reference"] = "reference"
    mean_deposit: float = Field(50.0, ge=1)  # drawn as a whole token count >= 1 (see mean_wait_s)
    stdev_deposit: float = Field(10.0, ge=0)
    good: bool = True
    prob_mistake: float = Field(0.0, ge=0, le=1)
    calls_model: bool = False
    pay_to_call: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _attacker_default(self) -> ReferenceConfig:
        if self.attacker is None:
            object.__setattr__(self, "attacker", not self.good)
        return self


class ReferencePolicy(Policy):
    """The reference simulator's ``Agent`` + ``Simulator`` behaviour for one agent."""

    Config: ClassVar[type[GroupConfig]] = ReferenceConfig
    name: ClassVar[str] = "reference"
    walk = WalkRules(reference=True)
    dry_walk = walk  # with the pool dry, act() only reads the balance and walks
    claim_rules = walk

    def act(self, agent: ParticipantView) -> bool:
        m = agent.model
        c: ReferenceConfig = self.config  # type: ignore[assignment]
        balance = agent.balance
        if balance > 0 and m.data_left():
            row = m.cursor
            if c.calls_model:
                if m.rng.random() < m.accuracy:
                    m.predict(agent, row, c.pay_to_call)
            else:
                y = int(m.pool_label(row))
                if not c.good:
                    y = m.flip_label(y)
                if c.prob_mistake > 0 and m.rng.random() < c.prob_mistake:
                    y = m.flip_label(y)
                if not c.good or m.rng.random() < m.accuracy + 0.15:
                    # at most the balance less the add's fee (the reference has no gas)
                    can = m.spendable(agent, row, y)
                    value = min(draw_positive_int(m.rng, c.mean_deposit, c.stdev_deposit), can)
                    if value > 0:
                        m.add_data(agent, row, y, value)
                    else:  # the fee takes the whole balance
                        m.unsent_add(agent, "fee", 0, spendable=can)
            balance = agent.balance
        keep_going = balance > 0
        m.claim_walk(agent, self.walk)
        return keep_going
