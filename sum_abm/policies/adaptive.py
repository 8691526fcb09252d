"""An adaptive agent that learns its mix of actions from realised profit (multiplicative weights).

Actions: contribute honestly, contribute a flipped label, hunt (only claim/report), or idle. At each
wake-up the change in the agent's wealth since the previous wake-up (balance plus the deposits it
still has locked in the contract, token units) is credited to the action taken then, and that
action's weight is multiplied by ``exp(eta * gain / scale)``. Weights are kept within a floor so no
action is ever abandoned for good (exploration).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from sum_abm.policies.strategic import ContributorConfig, ContributorPolicy
from sum_abm.policies.view import ParticipantView

ACTIONS = ("honest", "flip", "hunt", "idle")


class AdaptiveConfig(ContributorConfig):
    policy: Literal["adaptive"] = "adaptive"
    eta: float = Field(0.5, gt=0, le=10, description="learning rate of the multiplicative weights")
    scale: float = Field(100.0, gt=0, description="token units that count as a gain of 1")
    floor: float = Field(0.02, ge=0, lt=0.25, description="minimum probability of each action")


class AdaptivePolicy(ContributorPolicy):
    """Multiplicative-weights learner over :data:`ACTIONS`; its weights are public for analysis."""

    Config = AdaptiveConfig
    name = "adaptive"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.log_w = np.zeros(len(ACTIONS))
        self.last: int | None = None
        self.last_wealth: int | None = None
        self.mode = "honest"

    def probabilities(self) -> np.ndarray:
        w = np.exp(self.log_w - self.log_w.max())
        p = w / w.sum()
        f = self.config.floor
        return (1 - f * len(p)) * p + f

    def choose(self, agent: ParticipantView):
        pick = super().choose(agent) if self.mode == "honest" else None
        if self.mode == "flip":
            m = agent.model
            row = m.random_row()
            pick = (row, m.flip_label(int(m.pool_label(row))))
        return pick

    def act(self, agent: ParticipantView) -> bool:
        m = agent.model
        wealth = agent.balance + m.locked_deposits(agent)
        if self.last is not None and self.last_wealth is not None:
            gain = (wealth - self.last_wealth) / self.config.scale
            self.log_w[self.last] += self.config.eta * math.tanh(gain)
        a = int(m.rng.choice(len(ACTIONS), p=self.probabilities()))
        self.mode = ACTIONS[a]
        if self.mode in ("honest", "flip"):
            self.contribute(agent)
        if self.mode != "idle":
            m.claim_walk(agent, self.walk)
        self.last, self.last_wealth = a, agent.balance + m.locked_deposits(agent)
        return m.can_continue(agent)
