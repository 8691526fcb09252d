"""Strategic policies: honest, careless, attackers, free riders, deposit hunters, model users.

Contributors take the next row of the shared pool (as the reference's agents do); attackers craft
their data from random pool rows, so they do not deplete the honest pool. Every policy claims what it
can (own refunds, reports of others' data the model disagrees with, takes of expired deposits)
unless its config turns that off. Deposits are integers in token units; ``deposit = None`` offers
exactly the deposit the contract currently requires (a free view call).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from sum_abm.policies.base import GroupConfig, Policy
from sum_abm.policies.view import ParticipantView, WalkRules


class ContributorConfig(GroupConfig):
    """Shared knobs of contributing policies."""

    policy: str
    deposit: int | None = Field(
        None, ge=0, description="offered per add (token units); None = required"
    )
    max_deposit: int | None = Field(
        100,
        ge=0,
        description="never pays more per add (token units): waits for the DRT deposit to fall; None = any",
    )
    contribute_prob: float = Field(1.0, ge=0, le=1, description="chance to contribute per wake-up")
    refund: bool = True
    report: bool = True
    take: bool = True


class ContributorPolicy(Policy):
    """Base of contributing policies: choose a row and a label, pay the deposit, claim."""

    Config: ClassVar[type[GroupConfig]] = ContributorConfig

    def __init__(self, config: GroupConfig) -> None:
        super().__init__(config)
        c = self.config
        self.walk = WalkRules(refund=c.refund, report=c.report, take=c.take)
        self.claim_rules = self.walk  # every walk of a contributor uses these

    def choose(self, agent: ParticipantView) -> tuple[int, int] | None:
        """(pool row, label) to contribute now, or None."""
        row = agent.model.next_row()
        return None if row is None else (row, int(agent.model.pool_label(row)))

    def deposit(self, agent: ParticipantView) -> int | None:
        """Tokens to offer now, or None to wait (the required deposit is above ``max_deposit``)."""
        c = self.config
        if c.deposit is not None and c.max_deposit is None:
            return c.deposit
        required = agent.model.required_deposit()  # a view, read once (every wake-up asks)
        if c.max_deposit is not None and required > c.max_deposit:
            agent.model.unsent_add(agent, "cap", c.max_deposit, required=required)
            return None
        return required if c.deposit is None else c.deposit

    def contribute(self, agent: ParticipantView, address: int | None = None) -> bool:
        m = agent.model
        if not m.accepting_data():
            return False
        if self.config.contribute_prob < 1 and m.rng.random() >= self.config.contribute_prob:
            return False
        offer = self.deposit(agent)
        if offer is None:
            return False
        pick = self.choose(agent)
        if pick is None:
            return False
        row, y = pick
        # what the wallet holds beyond the add's fee (its balance when calls are free)
        value = min(offer, m.spendable(agent, row, y, address=address))
        if value < 0:  # the fee alone is more than the balance
            m.unsent_add(agent, "fee", offer, spendable=value)
            return False
        return m.add_data(agent, row, y, value, address=address)

    def act(self, agent: ParticipantView) -> bool:
        self.contribute(agent)
        agent.model.claim_walk(agent, self.walk)
        return agent.model.can_continue(agent)


class HonestConfig(ContributorConfig):
    policy: Literal["honest"] = "honest"


class HonestPolicy(ContributorPolicy):
    """Contributes the pool's rows with their true labels."""

    Config = HonestConfig
    name = "honest"


class CarelessConfig(ContributorConfig):
    policy: Literal["careless"] = "careless"
    mistake_prob: float = Field(0.1, ge=0, le=1, description="chance a label is wrong")


class CarelessPolicy(ContributorPolicy):
    """An honest contributor that mislabels with probability ``mistake_prob``."""

    Config = CarelessConfig
    name = "careless"

    def choose(self, agent: ParticipantView) -> tuple[int, int] | None:
        pick = super().choose(agent)
        if pick is not None and agent.model.rng.random() < self.config.mistake_prob:
            return pick[0], agent.model.flip_label(pick[1])
        return pick


class LabelFlipConfig(ContributorConfig):
    policy: Literal["label_flip"] = "label_flip"
    flip_prob: float = Field(1.0, ge=0, le=1)
    default_attacker: ClassVar[bool] = True


class LabelFlipPolicy(ContributorPolicy):
    """Attacker: contributes random pool rows with their labels flipped (prob. ``flip_prob``)."""

    Config = LabelFlipConfig
    name = "label_flip"

    def choose(self, agent: ParticipantView) -> tuple[int, int] | None:
        m = agent.model
        row = m.random_row()
        y = int(m.pool_label(row))
        if m.rng.random() < self.config.flip_prob:
            y = m.flip_label(y)
        return row, y


class TargetedConfig(ContributorConfig):
    policy: Literal["targeted"] = "targeted"
    mode: Literal["class", "boundary"] = "class"
    target_class: int = Field(1, ge=0, description="class mode: rows of this class are mislabelled")
    candidates: int = Field(
        16, ge=1, le=10_000, description="boundary mode: rows examined per contribution"
    )
    default_attacker: ClassVar[bool] = True

    def check_data(self, n_classes: int) -> str | None:
        if self.mode == "class" and self.target_class >= n_classes:
            # (it would never find a row to poison, and run as a reporter only)
            return (
                f"target_class: expected a class of the data (0..{n_classes - 1}), "
                f"got {self.target_class}"
            )
        return None


class TargetedPolicy(ContributorPolicy):
    """Attacker: poisons one class (``class``) or the rows nearest the decision boundary."""

    Config = TargetedConfig
    name = "targeted"

    def choose(self, agent: ParticipantView) -> tuple[int, int] | None:
        m = agent.model
        c: TargetedConfig = self.config  # type: ignore[assignment]
        if c.mode == "class":
            for _ in range(c.candidates):
                row = m.random_row()
                if int(m.pool_label(row)) == c.target_class:
                    return row, m.flip_label(c.target_class)
            return None
        rows = [m.random_row() for _ in range(c.candidates)]
        row = rows[int(min(range(len(rows)), key=lambda i: m.margin(rows[i])))]
        return row, m.flip_label(int(m.pool_label(row)))


class SybilConfig(LabelFlipConfig):
    policy: Literal["sybil"] = "sybil"  # type: ignore[assignment]
    addresses: int = Field(8, ge=2, le=1000, description="addresses sharing the start balance")


class SybilPolicy(LabelFlipPolicy):
    """Attacker with many addresses and one budget: rotates addresses for adds and claims.

    The start balance is split evenly across the addresses (the remainder stays on the first).
    """

    Config = SybilConfig
    name = "sybil"

    def __init__(self, config: GroupConfig) -> None:
        super().__init__(config)
        self.turn = 0

    def act(self, agent: ParticipantView) -> bool:
        addr = agent.addresses[self.turn % len(agent.addresses)]
        self.turn += 1
        self.contribute(agent, address=addr)
        for a in agent.addresses:
            agent.model.claim_walk(agent, self.walk, address=a)
        return agent.model.can_continue(agent)


class FreeRiderConfig(ContributorConfig):
    policy: Literal["free_rider"] = "free_rider"
    candidates: int = Field(16, ge=1, le=10_000, description="rows examined per wake-up")


class FreeRiderPolicy(ContributorPolicy):
    """Adds only rows the model already predicts right (cheap refunds), found among random rows."""

    Config = FreeRiderConfig
    name = "free_rider"

    def choose(self, agent: ParticipantView) -> tuple[int, int] | None:
        m = agent.model
        for _ in range(self.config.candidates):
            row = m.random_row()
            y = int(m.pool_label(row))
            if m.model_predict(row) == y:
                return row, y
        return None


class DepositHunterConfig(ContributorConfig):
    policy: Literal["deposit_hunter"] = "deposit_hunter"
    min_good: int = Field(1, ge=1, description="verified contributions to earn before hunting only")


class DepositHunterPolicy(ContributorPolicy):
    """Earns the right to report (verified good data), then only reports others' bad data."""

    Config = DepositHunterConfig
    name = "deposit_hunter"

    def act(self, agent: ParticipantView) -> bool:
        m = agent.model
        if m.num_good(agent.address) < self.config.min_good:
            self.contribute(agent)
        m.claim_walk(agent, self.walk)
        return m.can_continue(agent)


class ModelUserConfig(GroupConfig):
    policy: Literal["model_user"] = "model_user"
    pay_to_call: int = Field(1, ge=0, description="token units paid per prediction")
    call_prob: float = Field(1.0, ge=0, le=1)


class ModelUserPolicy(Policy):
    """Pays to use the model's predictions (the payment goes to verified contributors)."""

    Config = ModelUserConfig
    name = "model_user"
    claim_rules = None  # it only predicts

    def act(self, agent: ParticipantView) -> bool:
        m = agent.model
        if not m.accepting_data():
            return False
        if m.rng.random() < self.config.call_prob:
            row = m.random_row()
            # at most what the wallet holds beyond the call's fee (its balance when calls are free)
            can = m.spendable(agent, row, call="predict")
            if can >= 0:
                m.predict(agent, row, min(self.config.pay_to_call, can))
            return m.spendable(agent, row, call="predict") > 0  # another call is affordable
        return agent.balance > 0
