"""Deploys the scenario's contract and gives the market one uniform view of it.

The market decides which calls to send; this wrapper sends them through the mechanism's market
adapter (:mod:`sum_abm.mechanisms`), which answers the free view calls (required deposit,
verified-data counts, whether a call would be rejected) that let agents skip calls the state proves
would fail. With ``chain.backend = "evm"`` every call is also sent to the Vyper contracts.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from sum_abm.chain import Chain, Rejected
from sum_abm.data import Dataset
from sum_abm.data.fits import fit_cached
from sum_abm.errors import InputError
from sum_abm.evm.mirror import EVMMirror
from sum_abm.learners import LEARNERS, make_learner
from sum_abm.mechanisms import MECHANISMS
from sum_abm.scenario import Scenario


def _params_and_key(scenario: Scenario, data: Dataset, all_data: bool) -> tuple[dict, tuple]:
    """The scenario's learner parameters (defaults the data decides filled in), and the key of
    its fit in ``data.cache``."""
    kind = scenario.learner.kind
    params = dict(scenario.learner.params)
    if "sparse" in LEARNERS[kind].Params.model_fields:  # a learner that damps sparse input
        params.setdefault("sparse", data.sparse)
    return params, ("fit", all_data, kind, tuple(sorted((k, repr(v)) for k, v in params.items())))


def _new_learner(scenario: Scenario, data: Dataset, params: dict) -> Any:
    """An unfitted learner of the scenario (bad parameters: a one-line :class:`InputError`)."""
    try:
        return make_learner(scenario.learner.kind, data.n_features, data.n_classes, **params)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{scenario.name}: learner.params: {exc}") from None


def _fit(scenario: Scenario, data: Dataset, all_data: bool, learner: Any, key: tuple) -> None:
    """Fit ``learner`` (disk cache first) and keep its state in ``data.cache[key]``."""
    X, y = data.all_train() if all_data else (data.X_init, data.y_init)
    origin = data.cache.get("rows_origin")  # rows 0..len(y) of a named source: no row hash
    rows_key = None if origin is None else f"{origin}-rows0-{len(y)}"
    try:
        fit_cached(learner, X, y, f"{key[2]}-{key[3]!r}", rows_key)
    except ValueError as exc:  # e.g. scikit-learn's one-class refusal on a tiny initial set
        if all_data:
            raise InputError(
                f"{scenario.name}: data: the all-data model cannot be fitted on {len(y)} rows ({exc})"
            ) from None
        raise InputError(
            f"{scenario.name}: data: the initial model cannot be fitted on {len(y)} rows "
            f"({exc}); raise data.init_train_portion or data.init_train_rows"
        ) from None
    data.cache[key] = learner.snapshot()


class _Background:
    """A function running in a thread; :meth:`wait` joins it and raises what it raised."""

    def __init__(self, fn: Any) -> None:
        self._fn, self._error = fn, None
        self._thread = threading.Thread(target=self._run, name="sum_abm-fit", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # re-raised in the caller's thread by wait()
            self._error = exc

    def wait(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


def fit_all_data_in_background(scenario: Scenario, data: Dataset) -> None:
    """Start the all-data fit (for ``accuracy_all_data``, read when the run ends) in a thread.

    The first run of a data set on a machine fits it (scikit-learn's SGD on S1's 25,000 rows:
    ~2 s, without the GIL) while the market runs, on a core that is otherwise idle in a single
    run; later runs restore it from the caches at once. :func:`fitted_learner` waits for it.
    """
    params, key = _params_and_key(scenario, data, True)
    if key in data.cache or ("pending", key) in data.cache:
        return  # fitted already (every run of a sweep's worker but its first)
    learner = _new_learner(scenario, data, params)
    data.cache[("pending", key)] = _Background(lambda: _fit(scenario, data, True, learner, key))


def fitted_learner(scenario: Scenario, data: Dataset, all_data: bool = False) -> Any:
    """The scenario's learner fitted on the initial data (or on initial data + pool).

    Fits are deterministic, so the fitted state is cached on the dataset and shared by the runs that
    use it (a run and its baseline; the runs of a sweep in one worker), and on disk beside the
    generated data (:func:`~sum_abm.data.fits.fit_cached`) for the next process.
    """
    params, key = _params_and_key(scenario, data, all_data)
    learner = _new_learner(scenario, data, params)
    pending = data.cache.pop(("pending", key), None)
    if pending is not None:
        pending.wait()  # (in a process forked meanwhile the thread is gone: fitted below)
    cached = data.cache.get(key)
    if cached is None:
        _fit(scenario, data, all_data, learner, key)
    else:
        learner.restore(cached)
    return learner


def check_setup(scenario: Scenario, data: Dataset) -> None:
    """What only the data can refuse, checked before a market is built (raises a one-line
    :class:`InputError`): the mechanism's settings against the data set, and the initial fit when
    the initial rows hold a single class (a learner may refuse it; the fit is tiny and kept with
    the data). Loading the data (:func:`sum_abm.data.load_dataset`) checked the rest."""
    check_needs(scenario, data)
    if len(set(data.y_init.tolist())) < 2:
        fitted_learner(scenario, data)


def check_needs(scenario: Scenario, data: Dataset) -> None:
    """What the mechanism's settings and the agent groups' ask of the data set (one-line
    :class:`InputError`), e.g. a test row for every prediction-market piece, a targeted
    attacker's class."""
    MECHANISMS[scenario.mechanism.kind].check_data(scenario.mechanism, data, scenario.name)
    for i, group in enumerate(scenario.agents):
        problem = group.check_data(data.n_classes)
        if problem:
            raise InputError(f"{scenario.name}: agents[{i}].{problem}")


class MarketContract:
    """One deployed contract (the scenario's mechanism) with its chain, learner and adapter."""

    def __init__(
        self,
        scenario: Scenario,
        data: Dataset,
        log: Any,
        log_repeated: Any = None,
        log_many: Any = None,
    ) -> None:
        self.scenario = scenario
        self.data = data
        check_needs(scenario, data)
        self.chain = Chain(
            gas_price=scenario.chain.gas_price,
            block_time_s=scenario.chain.block_time_s,
            log=log,
            log_repeated=log_repeated,
            log_many=log_many,
        )
        self.ledger = self.chain.ledger
        fit_all_data_in_background(scenario, data)  # while the initial fit and the market run
        self.learner = fitted_learner(scenario, data)
        self.learner.set_test_set(data.X_test, data.y_test)
        mech = self.mech = MECHANISMS[scenario.mechanism.kind].deploy(
            scenario.mechanism, self.chain, self.learner
        )
        # What the market's claim walk reads (seconds; see sum_abm.mechanisms.base.MarketAdapter).
        self.uses_claim_book = mech.uses_claim_book
        self.refund_time_s = mech.refund_time_s
        self.any_wait_s = mech.any_wait_s
        self.has_take = mech.has_take
        self.min_claim_age = mech.min_claim_age
        self.report_needs_disagreement = mech.report_needs_disagreement
        self.report_needs_good_data = mech.report_needs_good_data
        self.points_per_refund = mech.points_per_refund
        self.free_adds = mech.free_adds
        self.trainer = mech.trainer
        self.im = getattr(mech, "im", None)
        self.evm = None
        if scenario.chain.backend == "evm":
            self.evm = EVMMirror(self.trainer, [data.X_init, data.X_pool])

    # -- set-up and tear-down ------------------------------------------------------------------
    def fund(self, address: str, amount: int) -> None:
        self.ledger.mint(address, amount)
        if self.evm is not None:
            self.evm.fund(address, amount)

    def start(self, rng: np.random.Generator | None = None) -> None:
        """Before the first agent acts, e.g. the prediction market's bounty and test-set
        commitments (a piece revealed by ``rng``)."""
        self.mech.start(rng, self.data)

    def finish(self, addresses: list[str], sample: Any) -> list[str]:
        """End of the run: the EVM mirror's state check, then the mechanism's own end (e.g. the
        prediction market's reward phase and collections); returns the addresses that collected."""
        if self.evm is not None:
            self.evm.check_state()
        return self.mech.finish(addresses, sample)

    def note_contribution(self, address: str, row: int, y: int, time: int) -> None:
        self.mech.note_contribution(address, row, y, time)

    # -- views ----------------------------------------------------------------------------------
    def accuracy(self) -> float:
        """Accuracy on the hidden test set."""
        return self.mech.accuracy(self.data.X_test, self.data.y_test)

    def accuracy_all_data(self) -> float:
        """Accuracy of the same learner trained on the initial data and the whole pool."""
        learner = fitted_learner(self.scenario, self.data, all_data=True)
        return float(learner.score(self.data.X_test, self.data.y_test))

    def accepting_data(self) -> bool:
        return self.mech.accepting_data()

    def required_deposit(self, now: int) -> int:
        return self.mech.required_deposit(now)

    def num_good(self, address: str) -> int:
        return self.mech.num_good(address)

    def add_would_succeed(self, address: str, value: Any, now: int, fee: int = 0) -> bool:
        """Whether an add offering ``value`` and paying ``fee`` (token units) may be accepted at
        ``now``: False when the state proves it would be refused (the wallet pays both)."""
        return self.mech.can_add(value, self.ledger.balance(address) - fee, now)

    def add_fee(self, address: str, x: Any, y: int) -> int:
        """The fee of an add of ``(x, y)`` from ``address`` (token units; 0 when calls are free)."""
        return self.mech.add_fee(address, x, y)

    def predict_fee(self, address: str, x: Any) -> int:
        """The fee of a paid prediction of ``x`` from ``address`` (token units)."""
        return self.mech.predict_fee(address, x)

    def locked_for(self, addresses: list[str]) -> Any:
        """Deposits still held for these authors (token units)."""
        return self.mech.locked_for(addresses)

    def summary_extra(self) -> dict[str, Any]:
        if self.evm is not None:
            return self.evm.summary()
        return self.mech.summary_extra()

    # -- calls ----------------------------------------------------------------------------------
    def add_data(self, address: str, value: Any, x: Any, y: int) -> tuple[bool, Any]:
        target = self.mech.contract
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
        return self.mech.predict(address, x, value)

    def claimable_left(self, author: str, x: Any, y: int, t: int) -> Any:
        """What is still claimable on the contribution ``(x, y)`` that ``author`` added at ``t``
        (a free view call; token units, or 1/0 under Points)."""
        return self.trainer.remaining(x, y, t, author)

    def refund(
        self, address: str, x: Any, y: int, t: int, check: bool, prediction: int | None = None
    ) -> tuple[bool, Any, Any]:
        """Send a refund unless ``check`` proves it would be rejected; (accepted, amount, left)."""
        tr = self.trainer
        if check and self.evm is None:
            return tr.claim_if_accepted(address, "refund", x, y, t, address, prediction)
        if check and (
            tr.check_refund(address, x, y, t, prediction) is not None
            or self._unaffordable(address, "refund", x)
        ):
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

    def _unaffordable(self, address: str, call: str, x: Any) -> bool:
        """Whether the fee of a claim is more than ``address`` holds (its wallet does not send it;
        the EVM mirror's path, as :meth:`CollaborativeTrainer.claims_if_accepted` does)."""
        chain = self.chain
        if not chain.gas_price:
            return False
        fee = chain.fee(self.trainer.call_gas(call, x, None, address))
        return not chain.can_pay(address, 0, fee)

    def claims(self, address: str, claims: list[tuple]) -> list[tuple[bool, Any, Any]]:
        """Send each ``(call, x, y, t, author, prediction)`` claim (``refund`` or ``report``)
        from ``address`` only if it would be accepted, in order; (accepted, amount, left) each."""
        if self.evm is None:
            return self.trainer.claims_if_accepted(address, claims)
        return [
            self.refund(address, x, y, t, True, p)
            if call == "refund"
            else self.report(address, x, y, t, author, True, p)
            for call, x, y, t, author, p in claims
        ]

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
        if check and (
            tr.check_report(address, x, y, t, author, prediction) is not None
            or self._unaffordable(address, "report", x)
        ):
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


def build_contract(
    scenario: Scenario,
    data: Dataset,
    log: Any,
    log_repeated: Any = None,
    log_many: Any = None,
) -> MarketContract:
    """Deploy the scenario's contract on a fresh chain whose transactions go to ``log``
    (``log_repeated(record, n)``: ``n`` identical ones at once; ``log_many``: a batch of accepted
    free calls at once; see :class:`Chain`)."""
    return MarketContract(scenario, data, log, log_repeated, log_many)
