"""What every policy shares: its group config and the small strategy interface.

A policy decides what its agent does when woken: whether and what to contribute (a pool row, a
label, a deposit), whether to predict, which claims to make, and how long to wait. It acts only
through the :class:`~sum_abm.policies.view.MarketView` (whose calls go through the contract
layer), never on balances.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
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
    # at least 1: a wait is drawn as int(normal(mean, stdev)) until it is >= 1 second, which a
    # mean below 1 with no spread never gives (the draw looped for ever)
    mean_wait_s: float = Field(600.0, ge=1, description="mean time between wake-ups (s)")
    stdev_wait_s: float = Field(1.0, ge=0)

    default_attacker: ClassVar[bool] = False

    @property
    def is_attacker(self) -> bool:
        return self.default_attacker if self.attacker is None else self.attacker

    def check_data(self, n_classes: int) -> str | None:
        """What the group's settings ask of a data set of ``n_classes`` classes that it lacks
        (``field: reason``), or None; checked before a market is built."""
        return None


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
    #: The widest rules any claim walk of this policy may use, for good (which of refunds,
    #: reports and takes it may ever send); None: it never claims. The market ends a run once the
    #: pool is dry and no active participant may ever claim what is left in the book
    #: (MarketModel._book_dead). The default promises nothing (it may send every kind).
    claim_rules: WalkRules | None = WalkRules()

    def __init__(self, config: GroupConfig) -> None:
        self.config = config

    # -- timing ------------------------------------------------------------------------------
    def next_wait(self, agent: ParticipantView) -> int:
        """Seconds until the next wake-up: ``int(normal(mean, stdev))`` redrawn until >= 1."""
        return self.draw_wait(agent.model.rng)

    def draw_wait(self, rng: Any) -> int:
        """Seconds until the next wake-up, :meth:`next_wait`'s rule, drawn from ``rng``
        (anything with numpy's ``standard_normal()``). For a policy that overrides neither, the
        market draws the dry wake-ups' waits with it from a :class:`BlockNormals`."""
        c = self.config
        return draw_positive_int(rng, c.mean_wait_s, c.stdev_wait_s)

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


_NO_BLOCK = np.zeros(0)


class BlockNormals:
    """A numpy ``Generator``'s standard normal draws, taken ahead in blocks.

    :meth:`standard_normal` returns one by one the values that successive
    ``rng.standard_normal()`` calls would (numpy draws a block with the same algorithm from the
    same bits), for a list read each instead of a numpy call (~0.5 µs); :meth:`close` then leaves
    ``rng`` exactly where those single calls would have, the block's unused draws undone. Nothing
    else may draw from ``rng`` until :meth:`close`. For long runs of draws of nothing else: the
    dry wake-ups' waits (``MarketModel._skip_idle``, a million at 1,000 agents). A compiled
    consumer reads the block itself: :meth:`block`, then :meth:`advance` past what it used.
    """

    __slots__ = ("_rng", "_start", "_block", "_vals", "_pos", "_next_size", "_max_size")

    def __init__(self, rng: Any, first_block: int = 8, max_block: int = 1024) -> None:
        if not 1 <= first_block <= max_block:
            raise ValueError("need 1 <= first_block <= max_block")
        self._rng = rng
        self._start: Any = None  # the generator's state before the current block
        self._block: np.ndarray = _NO_BLOCK  # the current block's values
        self._vals: list[float] | None = []  # the same as a list, made when first read
        self._pos = 0  # the next unused value of the block
        # Doubling blocks: a short run of draws pays for a short block only (the undo re-draws
        # what was used), a long one for few numpy calls.
        self._next_size = first_block
        self._max_size = max_block

    def _draw(self) -> None:
        rng = self._rng
        self._start = rng.bit_generator.state
        n = self._next_size
        self._next_size = min(2 * n, self._max_size)
        self._block, self._vals, self._pos = rng.standard_normal(n), None, 0

    def standard_normal(self) -> float:
        """The next value ``rng.standard_normal()`` would give."""
        pos, vals = self._pos, self._vals
        if pos >= len(self._block):
            self._draw()
            pos, vals = 0, None
        if vals is None:
            vals = self._vals = self._block.tolist()
        self._pos = pos + 1
        return vals[pos]

    def block(self) -> tuple[np.ndarray, int]:
        """The current block (float64) and the index of its next unused value, a new block drawn
        when it is used up: for a consumer that reads the values in order itself, then says how
        far with :meth:`advance`."""
        if self._pos >= len(self._block):
            self._draw()
        return self._block, self._pos

    def advance(self, pos: int) -> None:
        """The current block's values before index ``pos`` are used."""
        if not self._pos <= pos <= len(self._block):
            raise ValueError(
                f"cannot advance from {self._pos} to {pos} in a block of {len(self._block)}"
            )
        self._pos = pos

    def close(self) -> None:
        """Leave ``rng`` as after the values given alone (the rest of the block undrawn)."""
        used = self._pos
        if used < len(self._block):
            self._rng.bit_generator.state = self._start
            if used:
                self._rng.standard_normal(used)
        self._block, self._vals, self._pos = _NO_BLOCK, [], 0
