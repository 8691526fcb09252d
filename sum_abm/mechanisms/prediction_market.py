"""The prediction market: config, semantics, market adapter and report.

The contract rules are :class:`sum_abm.contract.prediction_market.PredictionMarket`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from sum_abm.chain import Chain, Rejected
from sum_abm.contract.prediction_market import SEMANTICS, Piece, PredictionMarket, hash_piece
from sum_abm.errors import InputError
from sum_abm.mechanisms.base import Call, MarketAdapter, MechanismBase, MechanismConfig

PROVIDER = "bounty_provider"


class PMConfig(MechanismConfig):
    """Prediction market: a bounty (token units) rewards contributions by the accuracy they add."""

    kind: Literal["prediction_market"]
    semantics: Literal[SEMANTICS] = SEMANTICS[0]  # type: ignore[valid-type]
    bounty: int = Field(100_000, ge=1, le=2**63 - 1)  # the results' 64-bit integer columns
    num_test_pieces: int = Field(10, ge=2)
    min_length_s: int = Field(1_000, ge=0)
    min_num_contributions: int | None = Field(
        None, ge=1, description="default: every row of the pool must be contributed"
    )
    min_stake: int = Field(1, ge=1)
    allow_greater_deposit: bool = False
    group_contributions: bool = False
    reset_model_during_reward_phase: bool = False
    any_address_claim_wait_time_s: int = Field(9 * 86_400, ge=0)
    max_process_calls: int = Field(2_000_000, ge=1, description="safety cap on reward-phase calls")
    provider_gas_allowance: int | None = Field(
        None,
        ge=0,
        description="tokens the bounty provider is endowed with, beside the bounty, to pay the gas "
        "of its own calls (token units); default: enough for every provider call up to "
        "max_process_calls at the chain's gas price (0 when calls are free)",
    )


class PMAdapter(MarketAdapter):
    """The market's view of a prediction market: stakes during the participation phase; at the end
    of the run the market ends, the test set is revealed, the reward phase runs and every
    contributor collects. Contributions are not claimed during the run (no claim book)."""

    uses_claim_book = False
    calls = ("add_data", "refund", "report")  # predictions are free reads of the model
    accounts = (PROVIDER,)

    def __init__(self, config: PMConfig, chain: Chain, learner: Any) -> None:
        super().__init__(config, chain, learner)
        self.pm = self.contract = PredictionMarket(
            chain,
            learner,
            semantics=config.semantics,
            min_stake=config.min_stake,
            allow_greater_deposit=config.allow_greater_deposit,
            group_contributions=config.group_contributions,
            reset_model_during_reward_phase=config.reset_model_during_reward_phase,
            any_address_claim_wait_time_s=config.any_address_claim_wait_time_s,
        )
        self.any_wait_s = config.any_address_claim_wait_time_s
        self.contributions: dict[str, list[tuple[int, int, int]]] = {}
        self.process_calls = 0
        self.pieces: list[Piece] = []

    # -- run start and end ---------------------------------------------------------------------
    def start(self, rng: Any, data: Any) -> None:
        """Fund the bounty, commit the test pieces, reveal one (drawn by ``rng``)."""
        m: PMConfig = self.config  # type: ignore[assignment]
        self.chain.ledger.mint(PROVIDER, m.bounty + self.provider_gas_allowance())
        X, y, n = data.X_test, data.y_test, m.num_test_pieces
        self.pieces = [Piece(X[lo:hi], y[lo:hi]) for lo, hi in piece_bounds(n, len(y))]
        hashes = [hash_piece(p) for p in self.pieces]
        reveal = int(rng.integers(len(hashes))) if rng is not None else 0
        n_min = m.min_num_contributions or len(data.y_pool)
        try:
            self.pm.initialize_market(PROVIDER, m.bounty, hashes, m.min_length_s, n_min, reveal)
            self.pm.reveal_init_test_set(PROVIDER, self.pieces[reveal])
        except Rejected as rej:
            if rej.reason != "insufficient_funds":
                raise
            price = self.chain.gas_price  # (an exact fraction: written as a decimal)
            price = price if isinstance(price, int) else float(price)
            raise InputError(
                f"mechanism.provider_gas_allowance: {self.provider_gas_allowance()} tokens do not "
                f"pay the gas of the market's set-up at gas price {price}"
            ) from None

    def provider_gas_allowance(self) -> int:
        """Tokens (token units) the provider gets beside the bounty to pay its own calls' gas: the
        configured allowance, or the fees of its worst case (set-up, ``num_test_pieces``
        verifications, ``max_process_calls`` reward calls, the withdrawal)."""
        m: PMConfig = self.config  # type: ignore[assignment]
        if m.provider_gas_allowance is not None:
            return m.provider_gas_allowance
        chain = self.chain
        if not chain.gas_price:
            return 0
        kind = getattr(self.learner, "kind", "")

        def fee(op: str) -> int:  # each call's fee is rounded up on its own
            return chain.fee(chain.gas_schedule.gas(op, kind))

        once = ("pm_initialize_market", "pm_reveal_init_test_set", "pm_end_market", "pm_withdraw")
        total = sum(fee(op) for op in once)
        total += m.num_test_pieces * fee("pm_verify_next_test_set")
        return total + m.max_process_calls * fee("pm_process_contribution")

    def finish(self, addresses: list[str], sample: Any) -> list[str]:
        """End the market, reveal the test set, run the reward phase (at most
        ``max_process_calls`` calls), let every contributor collect in ``addresses`` order and the
        provider withdraw what is unused (corrected)."""
        pm, m = self.pm, self.config
        try:
            pm.end_market(PROVIDER)
        except Rejected:
            return []  # the market could not end (too few contributions before the time limit)
        try:
            while pm.state == "REVEAL_TEST_SET":
                if not pm.affords(PROVIDER, "verify_next_test_set"):
                    return []  # its wallet sends no call it cannot pay: the market stops here
                pm.verify_next_test_set(PROVIDER, self.pieces[pm.next_verify])
            self.process_calls += pm.process_contributions(
                PROVIDER, m.max_process_calls - self.process_calls
            )
        except Rejected as rej:  # the provider's gas allowance ran out: the market stops there
            if rej.reason != "insufficient_funds":
                raise
        collected = []
        for addr in addresses:
            mine = self.contributions.get(addr)
            if mine:
                row, y, t = mine[0]
                x = sample(row)
                # a free view call first: a refund the contract or the wallet would refuse is not
                # sent (e.g. when the provider's gas allowance stopped the reward phase)
                if not self.would_accept(Call("refund", addr, x, y, time=t)):
                    continue
                if not pm.affords(addr, "refund"):
                    continue
                try:
                    if pm.refund(addr, x, y, t) > 0:
                        collected.append(addr)
                except Rejected:
                    pass
        if pm.fixed and pm.state == "REWARD_COLLECT" and pm.affords(PROVIDER, "withdraw"):
            pm.withdraw_unused_bounty(PROVIDER)
        return collected

    def accuracy(self, X_test: Any, y_test: Any) -> float:
        # The market replaces the learner's test set during the reward phase: score directly.
        return float(self.learner.score(X_test, y_test))

    # -- free view calls -------------------------------------------------------------------------
    def accepting_data(self) -> bool:
        return self.pm.state == "PARTICIPATION"

    def required_deposit(self, now: int) -> int:
        return self.pm.min_stake

    def can_add(self, value: Any, balance: Any, now: int) -> bool:
        return value <= balance and self.pm.state == "PARTICIPATION" and value >= self.pm.min_stake

    def would_accept(self, call: Call) -> bool:
        pm = self.pm
        if call.name == "add_data":
            key = pm.data.key(call.x, call.y, pm.now, call.sender)
            return self.can_add(call.value, call.value, pm.now) and pm.data._data.get(key) is None
        who = call.sender if call.name == "refund" else call.author
        if pm.data.get(call.x, call.y, call.time, who) is None:
            return False
        if not (pm.state == "REWARD_COLLECT" and pm.remaining_bounty_rounds == 0):
            return False
        if call.name == "refund" or pm.fixed:
            return True
        # reference-python's report deletes the reporter's balance: it must have one when paying
        too_early = pm.now - pm.reward_phase_end_time_s < pm.any_address_claim_wait_time_s
        owed = pm.market_balances.get(call.author, 0.0) > 0
        return too_early or not owed or call.sender in pm.market_balances

    def locked_for(self, addresses: list[str]) -> Any:
        return sum(self.pm.market_balances.get(a, 0) for a in addresses)

    # -- calls -----------------------------------------------------------------------------------
    def predict(self, address: str, x: Any, value: Any) -> int | None:
        return int(self.learner.predict_one(x))  # a free view call: no payment, no transaction

    def predict_fee(self, address: str, x: Any) -> int:
        return 0  # (predictions are free view calls here)

    def note_contribution(self, address: str, row: int, y: int, time: int) -> None:
        self.contributions.setdefault(address, []).append((row, y, time))

    # -- results -------------------------------------------------------------------------------
    summary_columns = (
        "pm_state",
        "pm_process_calls",
        "bounty",
        "bounty_paid_fraction",
        "bounty_withdrawn",
    )

    def summary_extra(self) -> dict[str, Any]:
        pm, bounty = self.pm, self.config.bounty
        return {
            "pm_state": pm.state or "",
            "pm_process_calls": self.process_calls,
            "bounty": bounty,
            # paid beyond the stakes returned, as a share of the bounty
            "bounty_paid_fraction": float((pm.paid_out - pm.withdrawn - pm.staked) / bounty),
            "bounty_withdrawn": float(pm.withdrawn),
        }


def piece_bounds(n: int, rows: int) -> list[tuple[int, int]]:
    """Row ranges ``[lo, hi)`` of the ``n`` committed test pieces of a ``rows``-row test set."""
    return [(int(i / n * rows), int((i + 1) / n * rows)) for i in range(n)]


def _no_empty(n: int, rows: int) -> bool:
    return all(lo < hi for lo, hi in piece_bounds(n, rows))


class PMMechanism(MechanismBase):
    """The prediction market."""

    kind: ClassVar[str] = "prediction_market"
    title: ClassVar[str] = "Prediction market"
    Config = PMConfig
    Adapter = PMAdapter
    semantics = SEMANTICS

    @classmethod
    def deposit_rule(cls, config: MechanismConfig) -> str:
        m: PMConfig = config  # type: ignore[assignment]
        return f"a stake is at least mechanism.min_stake = {m.min_stake:,}"

    interactive_defaults: ClassVar[dict[str, Any]] = {"bounty": 20_000, "num_test_pieces": 5}

    @classmethod
    def run_notes(cls, config: MechanismConfig, summary: dict[str, Any]) -> list[str]:
        state = summary.get("pm_state")
        if state in (None, "", "REWARD_COLLECT"):
            return []
        m: PMConfig = config  # type: ignore[assignment]
        if state == "PARTICIPATION":
            why = (
                "it could not end (mechanism.min_length_s or min_num_contributions not reached "
                "before the run stopped)"
            )
        elif not summary.get("adds_accepted", 1):
            # no stake to lock: the reward phase had nothing to process
            return [
                f"the prediction market did not finish (state {state}): no contribution was "
                "made, so its reward phase had nothing to process; the bounty stayed in the "
                "contract"
            ]
        elif summary.get("pm_process_calls", 0) >= m.max_process_calls:
            why = (
                f"the reward phase stopped at mechanism.max_process_calls = {m.max_process_calls:,}"
            )
        else:
            why = "the bounty provider's gas allowance ran out"
        return [
            f"the prediction market did not finish (state {state}): {why}; the stakes stayed "
            "locked in the contract, so the contributors' losses are not the market's outcome"
        ]

    @classmethod
    def check_data(cls, config: MechanismConfig, data: Any, source: str = "scenario") -> None:
        """Every test piece needs a row: an empty one can never be revealed (the contract
        refuses it), so the market could never end."""
        n, rows = config.num_test_pieces, len(data.y_test)  # type: ignore[attr-defined]
        # (the bounds round down, so some counts up to ``rows`` leave a piece empty as well)
        empty = n > rows or any(lo == hi for lo, hi in piece_bounds(n, rows))
        if empty:
            fits = next(k for k in range(min(n, rows), 0, -1) if _no_empty(k, rows))
            raise InputError(
                f"{source}: mechanism.num_test_pieces: {n} pieces of the {rows}-row test set "
                f"leave a piece empty, which can never be revealed; expected at most {fits}"
            )
