"""Deploys the scenario's contract and gives the market one uniform view of it.

The market decides which calls to send; this adapter sends them through the contract layer and
answers the free view calls (required deposit, verified-data counts, whether a call would be
rejected) that let agents skip calls the state proves would fail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sum_abm.chain import Chain, Rejected
from sum_abm.contract import (
    CollaborativeTrainer,
    DepositRefundTake,
    Points,
    PredictionMarket,
    hash_piece,
)
from sum_abm.data import Dataset
from sum_abm.data.fits import fit_cached
from sum_abm.errors import InputError
from sum_abm.learners import make_learner
from sum_abm.scenario import Scenario

if TYPE_CHECKING:  # pragma: no cover
    from sum_abm.market.model import MarketModel

PROVIDER = "bounty_provider"


def _learner(scenario: Scenario, data: Dataset, all_data: bool = False) -> Any:
    """The scenario's learner fitted on the initial data (or on initial data + pool).

    Fits are deterministic, so the fitted state is cached on the dataset and shared by the runs that
    use it (a run and its baseline; the runs of a sweep in one worker), and on disk beside the
    generated data (:func:`~sum_abm.data.fits.fit_cached`) for the next process.
    """
    kind = scenario.learner.kind
    params = dict(scenario.learner.params)
    if kind == "sgd_perceptron":
        params.setdefault("sparse", data.sparse)
    try:
        learner = make_learner(kind, data.n_features, data.n_classes, **params)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{scenario.name}: learner.params: {exc}") from None
    key = ("fit", all_data, kind, tuple(sorted((k, repr(v)) for k, v in params.items())))
    cached = data.cache.get(key)
    if cached is None:
        X, y = data.all_train() if all_data else (data.X_init, data.y_init)
        try:
            fit_cached(learner, X, y, f"{kind}-{key[3]!r}")
        except ValueError as exc:  # e.g. scikit-learn's one-class refusal on a tiny initial set
            raise InputError(
                f"{scenario.name}: data: the initial model cannot be fitted on {len(y)} rows "
                f"({exc}); raise data.init_train_portion or data.init_train_rows"
            ) from None
        data.cache[key] = learner.snapshot()
    else:
        learner.restore(cached)
    return learner


class MarketContract:
    """One deployed contract (DRT, Points or prediction market) with its chain and learner."""

    def __init__(self, scenario: Scenario, data: Dataset, log: Any) -> None:
        self.scenario = scenario
        self.data = data
        m = scenario.mechanism
        self.kind = m.kind
        self.chain = Chain(
            gas_price=scenario.chain.gas_price, block_time_s=scenario.chain.block_time_s, log=log
        )
        self.ledger = self.chain.ledger
        self.learner = _learner(scenario, data)
        self.learner.set_test_set(data.X_test, data.y_test)
        self.refund_time_s = getattr(m, "refund_time_s", 0)
        self.any_wait_s = m.any_address_claim_wait_time_s
        self.report_needs_disagreement = True
        self.report_needs_good_data = self.kind == "deposit_refund_take"
        self.points_per_refund = 1 if self.kind == "points" else 0
        self.contributions: dict[str, list[tuple[int, int, int]]] = {}
        if self.kind == "deposit_refund_take":
            self.im = DepositRefundTake(
                m.refund_time_s, m.any_address_claim_wait_time_s, m.cost_weight, m.semantics
            )
            self.trainer = CollaborativeTrainer(self.chain, self.learner, self.im)
            self.free_adds = m.cost_weight == 0
        elif self.kind == "points":
            self.im = Points(m.refund_time_s, m.any_address_claim_wait_time_s)
            self.trainer = CollaborativeTrainer(self.chain, self.learner, self.im)
            self.free_adds = True
        else:
            self.pm = PredictionMarket(
                self.chain,
                self.learner,
                semantics=m.semantics,
                min_stake=m.min_stake,
                allow_greater_deposit=m.allow_greater_deposit,
                group_contributions=m.group_contributions,
                reset_model_during_reward_phase=m.reset_model_during_reward_phase,
                any_address_claim_wait_time_s=m.any_address_claim_wait_time_s,
            )
            self.free_adds = False
        self.min_claim_age = getattr(getattr(self, "im", None), "min_claim_age", 0)
        self.process_calls = 0
        self.evm = None
        if scenario.chain.backend == "evm":
            from sum_abm.evm.mirror import EVMMirror

            self.evm = EVMMirror(self.trainer, [data.X_init, data.X_pool])

    # -- set-up and tear-down ------------------------------------------------------------------
    def fund(self, address: str, amount: int) -> None:
        self.ledger.mint(address, amount)
        if self.evm is not None:
            self.evm.fund(address, amount)

    def _pieces(self) -> list[list[tuple[Any, int]]]:
        X, y = self.data.X_test, self.data.y_test
        n = self.scenario.mechanism.num_test_pieces
        out = []
        for i in range(n):
            lo, hi = int(i / n * len(y)), int((i + 1) / n * len(y))
            out.append([(X[j], int(y[j])) for j in range(lo, hi)])
        return out

    def start(self, rng: np.random.Generator | None = None) -> None:
        """Prediction market: fund the bounty, commit the test pieces, reveal one (drawn by ``rng``)."""
        if self.kind != "prediction_market":
            return
        m = self.scenario.mechanism
        self.ledger.mint(PROVIDER, m.bounty)
        self.pieces = self._pieces()
        hashes = [hash_piece(p) for p in self.pieces]
        reveal = int(rng.integers(len(hashes))) if rng is not None else 0
        n_min = m.min_num_contributions or len(self.data.y_pool)
        self.pm.initialize_market(PROVIDER, m.bounty, hashes, m.min_length_s, n_min, reveal)
        self.pm.reveal_init_test_set(PROVIDER, self.pieces[reveal])

    def finish(self, model: MarketModel) -> None:
        """End of the run: the EVM mirror's state check; prediction market: end it, reveal, run the
        reward phase, let every contributor collect."""
        if self.evm is not None:
            self.evm.check_state()
        if self.kind != "prediction_market":
            return
        pm, m = self.pm, self.scenario.mechanism
        try:
            pm.end_market(PROVIDER)
        except Rejected:
            return  # the market could not end (too few contributions before the time limit)
        while pm.state == "REVEAL_TEST_SET":
            pm.verify_next_test_set(PROVIDER, self.pieces[pm.next_verify])
        while (
            pm.remaining_bounty_rounds > 0
            and pm.market
            and self.process_calls < m.max_process_calls
        ):
            pm.process_contribution(PROVIDER)
            self.process_calls += 1
        for agent in model.participants:
            for addr in agent.addresses:
                mine = self.contributions.get(addr)
                if mine:
                    row, y, t = mine[0]
                    try:
                        got = pm.refund(addr, model.sample(row), y, t)
                        agent.refunded += 1 if got > 0 else 0
                    except Rejected:
                        pass
        if pm.fixed and pm.state == "REWARD_COLLECT":
            pm.withdraw_unused_bounty(PROVIDER)

    def note_contribution(self, address: str, row: int, y: int, time: int) -> None:
        self.contributions.setdefault(address, []).append((row, y, time))

    # -- views ----------------------------------------------------------------------------------
    def accuracy(self) -> float:
        """Accuracy on the hidden test set (the prediction market's own model included)."""
        return float(
            self.learner.test_accuracy()
            if self.kind != "prediction_market"
            else self.learner.score(self.data.X_test, self.data.y_test)
        )

    def accuracy_all_data(self) -> float:
        """Accuracy of the same learner trained on the initial data and the whole pool."""
        learner = _learner(self.scenario, self.data, all_data=True)
        return float(learner.score(self.data.X_test, self.data.y_test))

    def accepting_data(self) -> bool:
        return self.kind != "prediction_market" or self.pm.state == "PARTICIPATION"

    def required_deposit(self, now: int) -> int:
        if self.kind == "prediction_market":
            return self.pm.min_stake
        req = self.im.required_deposit(now)
        return 0 if req is None else req

    def num_good(self, address: str) -> int:
        return self.im.good_count(address) if self.kind != "prediction_market" else 0

    def add_would_succeed(self, address: str, value: Any, now: int) -> bool:
        if value > self.ledger.balance(address):
            return False
        if self.kind == "prediction_market":
            return self.pm.state == "PARTICIPATION" and value >= self.pm.min_stake
        req = self.im.required_deposit(now)
        return req is not None and req <= value

    def locked_for(self, addresses: list[str]) -> Any:
        """Deposits still held for these authors (token units)."""
        if self.kind == "prediction_market":
            return sum(self.pm.market_balances.get(a, 0) for a in addresses)
        mine = set(addresses)
        return sum(s.claimable for (_, _, _, a), s in self.trainer.data._data.items() if a in mine)

    def summary_extra(self) -> dict[str, Any]:
        if self.evm is not None:
            return self.evm.summary()
        if self.kind != "prediction_market":
            return {}
        pm = self.pm
        return {
            "pm_state": pm.state or "",
            "pm_process_calls": self.process_calls,
            "bounty": self.scenario.mechanism.bounty,
            # paid beyond the stakes returned, as a share of the bounty
            "bounty_paid_fraction": float(
                (pm.paid_out - pm.withdrawn - pm.staked) / self.scenario.mechanism.bounty
            ),
            "bounty_withdrawn": float(pm.withdrawn),
        }

    # -- calls ----------------------------------------------------------------------------------
    def add_data(self, address: str, value: Any, x: Any, y: int) -> tuple[bool, Any]:
        target = self.pm if self.kind == "prediction_market" else self.trainer
        try:
            if self.evm is not None:
                return True, self.evm.call(
                    "add_data",
                    address,
                    x,
                    lambda: target.add_data(address, value, x, y),
                    (y, value),
                )
            return True, target.add_data(address, value, x, y)
        except Rejected:
            return False, 0

    def predict(self, address: str, x: Any, value: Any) -> int | None:
        if self.kind == "prediction_market":
            return int(self.learner.predict_one(x))
        try:
            return self.trainer.predict(address, x, value)[0]
        except Rejected:
            return None

    def refund(
        self, address: str, x: Any, y: int, t: int, check: bool, prediction: int | None = None
    ) -> tuple[bool, Any, Any]:
        """Send a refund unless ``check`` proves it would be rejected; (accepted, amount, left)."""
        tr = self.trainer
        if check and self.evm is None:
            return tr.claim_if_accepted(address, "refund", x, y, t, address, prediction)
        if check and tr.check_refund(address, x, y, t, prediction) is not None:
            return False, 0, tr.remaining(x, y, t, address)
        try:
            if self.evm is not None:
                amount = self.evm.call(
                    "refund", address, x, lambda: tr.refund(address, x, y, t, prediction), (y, t)
                )
            else:
                amount = tr.refund(address, x, y, t, prediction)
            ok = True
        except Rejected:
            amount, ok = 0, False
        return ok, amount, tr.remaining(x, y, t, address)

    def report(
        self,
        address: str,
        x: Any,
        y: int,
        t: int,
        author: str,
        check: bool,
        prediction: int | None = None,
    ) -> tuple[bool, Any, Any]:
        """Send a report unless ``check`` proves it would be rejected; (accepted, amount, left)."""
        tr = self.trainer
        if check and self.evm is None:
            return tr.claim_if_accepted(address, "report", x, y, t, author, prediction)
        if check and tr.check_report(address, x, y, t, author, prediction) is not None:
            return False, 0, tr.remaining(x, y, t, author)
        try:
            if self.evm is not None:
                amount = self.evm.call(
                    "report",
                    address,
                    x,
                    lambda: tr.report(address, x, y, t, author, prediction),
                    (y, t, author),
                )
            else:
                amount = tr.report(address, x, y, t, author, prediction)
            ok = True
        except Rejected:
            amount, ok = 0, False
        return ok, amount, tr.remaining(x, y, t, author)


def build_contract(scenario: Scenario, data: Dataset, log: Any) -> MarketContract:
    """Deploy the scenario's contract on a fresh chain whose transactions go to ``log``."""
    return MarketContract(scenario, data, log)
