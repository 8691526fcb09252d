"""What every incentive mechanism provides: its config model and its place in the registry.

A mechanism is a plugin (like a policy or a learner): one module under :mod:`sum_abm.mechanisms`
owns its config (a pydantic model, one member of the discriminated union on ``kind``), its
semantics, the contract it deploys (in :mod:`sum_abm.contract`), its market adapter, its summary
extras and its report panels. Nothing outside that module branches on the mechanism's name.
"""

from __future__ import annotations

from typing import ClassVar

from sum_abm.config import StrictModel


class MechanismConfig(StrictModel):
    """Base of every mechanism's config; ``kind`` (the registry key) is the union's tag."""

    kind: str

    def evm_ready(self) -> bool:
        """Whether the EVM spot-check backend (``chain.backend = "evm"``) can run this config."""
        return False


class MechanismBase:
    """Shared defaults of a registered mechanism (see :class:`~sum_abm.mechanisms.Mechanism`)."""

    kind: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type[MechanismConfig]]
    #: The ``semantics`` a config may choose, the default first; empty when there is no choice.
    semantics: ClassVar[tuple[str, ...]] = ()
