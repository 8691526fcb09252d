"""What every incentive mechanism provides: config, semantics, a market adapter, summary extras
and report panels.

A mechanism is a plugin (like a policy or a learner): one module under :mod:`sum_abm.mechanisms`
owns its config (a pydantic model, one member of the discriminated union on ``kind``), its
semantics (the contract module's ``SEMANTICS``), the contract it deploys (in
:mod:`sum_abm.contract`), its market adapter (which calls an agent may make now and which would be
accepted), its summary extras and its report panels. Nothing outside that module branches on the
mechanism's name: the market and the dashboards ask the mechanism.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from sum_abm.chain import Chain, Rejected
from sum_abm.config import StrictModel
from sum_abm.contract import CollaborativeTrainer


class MechanismConfig(StrictModel):
    """Base of every mechanism's config; ``kind`` (the registry key) is the union's tag."""

    kind: str

    def evm_ready(self) -> bool:
        """Whether the EVM spot-check backend (``chain.backend = "evm"``) can run this config."""
        return False


@dataclass(frozen=True)
class Call:
    """One contract call an agent may send: ``name`` is ``add_data``, ``refund``, ``report`` or
    ``predict``; ``value`` in token units; ``time`` the contribution's time (seconds) and
    ``author`` its sender, for claims."""

    name: str
    sender: str
    x: Any = None
    y: int = 0
    value: Any = 0
    time: int = 0
    author: str = ""


class MarketAdapter:
    """A deployed mechanism as the market sees it: the free view calls that let an agent skip a
    call the state proves would be rejected, the calls themselves, and the run's start and end.

    Money in token units, times in seconds. Subclasses set ``contract`` (the object calls go to).
    """

    #: Accepted contributions go to the market's claim book (refunds, reports, takes).
    uses_claim_book: ClassVar[bool] = True
    #: A reporter needs verified-good data of its own (DRT's rule).
    report_needs_good_data: ClassVar[bool] = False
    #: A report needs the model to disagree with the contribution (until the long wait).
    report_needs_disagreement: ClassVar[bool] = True
    #: Points an accepted refund scores.
    points_per_refund: ClassVar[int] = 0
    #: The calls an agent may send to this mechanism.
    calls: ClassVar[tuple[str, ...]] = ("add_data", "refund", "report", "predict")
    #: Accounts the mechanism itself sends calls from (e.g. a bounty provider); they pay gas.
    accounts: ClassVar[tuple[str, ...]] = ()

    contract: Any
    trainer: Any = None  # the CollaborativeTrainer, for mechanisms built on one
    free_adds: bool = False
    refund_time_s: int = 0
    any_wait_s: int = 0
    #: Anyone, the author too, may take what is left of a contribution older than ``any_wait_s``
    #: (DRT's take). Without a take the market's claim walk treats such a contribution as it does
    #: a younger one (its author refunds, others report): nobody could claim it as a take.
    has_take: bool = False
    min_claim_age: int = 0

    def __init__(self, config: MechanismConfig, chain: Chain, learner: Any) -> None:
        self.config = config
        self.chain = chain
        self.learner = learner

    # -- run start and end ---------------------------------------------------------------------
    def start(self, rng: Any, data: Any) -> None:
        """Before the first agent acts (e.g. fund a bounty); ``rng`` is the run's generator,
        ``data`` the run's data set (``X_test``, ``y_test``, ``y_pool``)."""

    def finish(self, addresses: list[str], sample: Any) -> list[str]:
        """After the last agent acts; returns the addresses that collected something then
        (``sample(row)`` is a pool row's features)."""
        return []

    def accuracy(self, X_test: Any, y_test: Any) -> float:
        """The model's accuracy on the hidden test set."""
        return float(self.learner.test_accuracy())

    # -- free view calls -------------------------------------------------------------------------
    def accepting_data(self) -> bool:
        return True

    def required_deposit(self, now: int) -> int:
        """The deposit an add needs at ``now`` (token units)."""
        return 0

    def num_good(self, address: str) -> int:
        """Verified-good contributions of ``address``."""
        return 0

    def can_add(self, value: Any, balance: Any, now: int) -> bool:
        """Whether an add offering ``value`` out of ``balance`` may be accepted at ``now``: False
        only when the state proves it would be rejected (the market then does not send it)."""
        return value <= balance

    def add_fee(self, address: str, x: Any, y: int) -> int:
        """The fee an add of ``(x, y)`` from ``address`` pays now (token units; 0 when calls are
        free): the contract's own gas of the add (its ``add_gas``), else the schedule's figure."""
        chain = self.chain
        if not chain.gas_price:
            return 0
        add_gas = getattr(self.contract, "add_gas", None)
        if add_gas is not None:
            return chain.fee(add_gas(address, x, y))
        return self._schedule_fee("add_data", x)

    def predict_fee(self, address: str, x: Any) -> int:
        """The fee a paid prediction of ``x`` from ``address`` pays now (token units; 0 when calls
        are free): the contract's own gas of it (its ``predict_gas``), else the schedule's."""
        chain = self.chain
        if not chain.gas_price:
            return 0
        predict_gas = getattr(self.contract, "predict_gas", None)
        if predict_gas is not None:
            return chain.fee(predict_gas(address, x))
        return self._schedule_fee("predict", x)

    def _schedule_fee(self, op: str, x: Any) -> int:
        """The fee of ``op`` sending sample ``x`` by the schedule's per-operation figure (for a
        contract that does not price its own calls)."""
        chain = self.chain
        n = int(getattr(x, "nnz", None) or len(getattr(x, "indices", x)))
        return chain.fee(chain.gas_schedule.gas(op, getattr(self.learner, "kind", ""), n))

    def would_accept(self, call: Call) -> bool:
        """Whether the contract would accept ``call`` now (the wallet rule aside), without sending
        it; the mechanism battery checks this against the contract for random reachable states."""
        raise NotImplementedError

    def locked_for(self, addresses: list[str]) -> Any:
        """Deposits still held for these authors (token units)."""
        return 0

    # -- calls -----------------------------------------------------------------------------------
    def send(self, call: Call) -> Any:
        """Send ``call`` to the contract; returns what the call returns, raises Rejected."""
        c = self.contract
        if call.name == "add_data":
            return c.add_data(call.sender, call.value, call.x, call.y)
        if call.name == "refund":
            return c.refund(call.sender, call.x, call.y, call.time)
        if call.name == "report":
            return c.report(call.sender, call.x, call.y, call.time, call.author)
        if call.name == "predict":
            return c.predict(call.sender, call.x, call.value)
        raise ValueError(f"unknown call {call.name!r}")

    def predict(self, address: str, x: Any, value: Any) -> int | None:
        """A paid prediction; None when rejected."""
        try:
            return self.contract.predict(address, x, value)[0]
        except Rejected:
            return None

    def note_contribution(self, address: str, row: int, y: int, time: int) -> None:
        """An add was accepted (for mechanisms that keep their own record of contributions)."""

    # -- results -------------------------------------------------------------------------------
    #: The run-summary columns :meth:`summary_extra` adds (declared so the schema can check).
    summary_columns: ClassVar[tuple[str, ...]] = ()

    def summary_extra(self) -> dict[str, Any]:
        """Mechanism-specific columns of the run summary."""
        return {}

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> tuple:
        """Full, comparable state (balances, stored data, mechanism counters, learner)."""
        return self.contract.state_snapshot()

    def snapshot(self) -> Any:
        """Everything a call can change (balances, the learner, the contract's and this adapter's
        own fields), to put back with :meth:`restore`."""
        shared = (self.chain, self.learner, self.contract)
        own = {k: v for k, v in vars(self.contract).items() if not any(v is o for o in shared)}
        mine = {k: v for k, v in vars(self).items() if not any(v is o for o in shared)}
        # One deepcopy, so objects the adapter and its contract share (e.g. DRT's rules) stay shared.
        return self.chain.ledger.snapshot(), self.learner.snapshot(), copy.deepcopy((own, mine))

    def restore(self, snap: Any) -> None:
        """Put back a :meth:`snapshot` exactly (the snapshot stays usable)."""
        ledger, learner, fields = snap
        self.chain.ledger.restore(ledger)
        self.learner.restore(learner)
        own, mine = copy.deepcopy(fields)
        shared = (self.chain, self.learner, self.contract)
        for obj, saved in ((self.contract, own), (self, mine)):
            for k, v in list(vars(obj).items()):
                if k not in saved and not any(v is o for o in shared):
                    delattr(obj, k)  # a field the contract created after the snapshot
            for k, v in saved.items():
                setattr(obj, k, v)


class TrainerAdapter(MarketAdapter):
    """A mechanism deployed behind a :class:`~sum_abm.contract.CollaborativeTrainer` (DRT, Points):
    its claim checks are the trainer's own (one rule, used by the contract and by the market)."""

    def __init__(self, config: MechanismConfig, chain: Chain, learner: Any, im: Any) -> None:
        super().__init__(config, chain, learner)
        self.im = im
        self.trainer = self.contract = CollaborativeTrainer(chain, learner, im)
        self.refund_time_s = getattr(config, "refund_time_s", 0)
        self.any_wait_s = config.any_address_claim_wait_time_s
        # A take is a rule of the contract: stated by the mechanism defining one (open_to_anyone).
        self.has_take = callable(getattr(im, "open_to_anyone", None))
        self.min_claim_age = im.min_claim_age

    def required_deposit(self, now: int) -> int:
        req = self.im.required_deposit(now)
        return 0 if req is None else req

    def num_good(self, address: str) -> int:
        return self.im.good_count(address)

    def can_add(self, value: Any, balance: Any, now: int) -> bool:
        if value > balance:
            return False
        req = self.im.required_deposit(now)
        return req is not None and req <= value

    def would_accept(self, call: Call) -> bool:
        tr = self.trainer
        if call.name == "add_data":
            return tr.check_add(call.sender, call.value, call.x, call.y) is None
        if call.name == "refund":
            return tr.check_refund(call.sender, call.x, call.y, call.time) is None
        if call.name == "report":
            return tr.check_report(call.sender, call.x, call.y, call.time, call.author) is None
        return True  # a prediction is always answered

    def locked_for(self, addresses: list[str]) -> Any:
        mine = set(addresses)
        return sum(s.claimable for (_, _, _, a), s in self.trainer.data._data.items() if a in mine)


class Mechanism(Protocol):
    """A registered mechanism (see :data:`sum_abm.mechanisms.MECHANISMS`)."""

    kind: str  # the registry key and the config's ``kind``
    title: str  # for people
    Config: type[MechanismConfig]
    semantics: tuple[str, ...]  # the choices of ``semantics``, the default first; () if none

    def deploy(self, config: MechanismConfig, chain: Chain, learner: Any) -> MarketAdapter:
        """The contract on ``chain`` with ``learner``, behind its market adapter."""
        ...

    #: The run report's mechanism panels, by name (built in ``dashboards/run_report.py``).
    report_panels: tuple[str, ...]
    #: Settings the interactive server starts this mechanism with when switched to it.
    interactive_defaults: dict[str, Any]


class MechanismBase:
    """Shared defaults of a registered mechanism (a :class:`Mechanism`)."""

    kind: ClassVar[str]
    title: ClassVar[str]
    Config: ClassVar[type[MechanismConfig]]
    Adapter: ClassVar[type[MarketAdapter]]
    semantics: ClassVar[tuple[str, ...]] = ()
    report_panels: ClassVar[tuple[str, ...]] = ("profit_roi",)
    #: Settings the interactive server starts this mechanism with when switched to it.
    interactive_defaults: ClassVar[dict[str, Any]] = {}

    @classmethod
    def deploy(cls, config: MechanismConfig, chain: Chain, learner: Any) -> MarketAdapter:
        return cls.Adapter(config, chain, learner)

    @classmethod
    def run_notes(cls, config: MechanismConfig, summary: dict[str, Any]) -> list[str]:
        """What a reader of a finished run's ``summary`` row must be told about how the mechanism
        ended (e.g. a market that never finished), one line each; nothing by default."""
        return []

    @classmethod
    def deposit_rule(cls, config: MechanismConfig) -> str:
        """How the deposit an add needs (``MarketAdapter.required_deposit``) is set, with the
        settings that set it, for a note on adds refused for too small a deposit; "" when none."""
        return ""

    @classmethod
    def check_data(cls, config: MechanismConfig, data: Any, source: str = "scenario") -> None:
        """Refuse settings the data set cannot serve (raises :class:`~sum_abm.errors.InputError`
        naming ``source`` and the setting) before anything is deployed: a run checks at its start,
        a sweep checks each of its points before the first run. Nothing to check by default."""
