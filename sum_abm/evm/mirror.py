"""A market's Deposit-Refund-Take calls sent again to the Vyper contracts on py-evm, for spot checks.

With ``chain.backend = "evm"`` (or ``chain = "evm"``) a run keeps the Python contract layer as the
market's contract and sends each of its transactions (add_data, refund, report) to a deployed
:class:`~sum_abm.evm.system.System` as well, from the same address, with the same value, at the same
time. After every call both must agree: accepted or rejected with the same reason, the same amount,
the same change of the sender's and the contract's balances (fees aside: py-evm here charges none);
at the end of the run, the mechanism's counters and every stored contribution (and the perceptron's
weights) must be equal. The first disagreement stops the run with :class:`~sum_abm.errors.CheckFailed`.

The classifier on the EVM is the integer sparse perceptron when the run's learner is a perceptron
with learning rate 1 on binary features (its weights are then integers on both sides, so
predictions agree exactly); otherwise it is the test oracle told the Python learner's prediction
before each refund and report (the mechanism, the data handler and the money are still checked, and
the gas measured is that of the oracle, not of the learner).

Each mirrored call's gas is metered as a node would (:func:`~sum_abm.evm.system.begin_tx`) and set
beside the gas the shipped schedule charges for it. Slow (py-evm runs every opcode in Python): for
small scenarios.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sum_abm import schema
from sum_abm.chain import Rejected
from sum_abm.errors import CheckFailed, InputError
from sum_abm.evm.system import MAX_FEATURES, SCALE, deploy_system, revert_reason


def _binary(X: Any) -> bool:
    data = X.data if hasattr(X, "indptr") else np.asarray(X)
    return bool(np.isin(data, (0.0, 1.0)).all())


def evm_classifier_kind(learner: Any, datasets: list[Any]) -> str:
    """``"perceptron"`` when the run's learner runs as the Vyper integer sparse perceptron exactly
    (a perceptron with learning rate 1 on binary features), else ``"oracle"``."""
    # The Vyper perceptron steps by 1 on binary features: the Python one's weights are then the
    # same integers (any other learning rate or feature value would round on chain).
    if (
        getattr(learner, "kind", "") == "perceptron"
        and getattr(learner, "lr", None) == 1.0
        and all(_binary(X) for X in datasets)
    ):
        return "perceptron"
    return "oracle"


class EVMMirror:
    """The Vyper twin of one market's Deposit-Refund-Take contract (see the module doc).

    ``trainer`` is the Python :class:`~sum_abm.contract.CollaborativeTrainer` (DRT, ``solidity``
    semantics), ``datasets`` the feature matrices the run may send (to choose the classifier).
    """

    def __init__(self, trainer: Any, datasets: list[Any]) -> None:
        try:
            import boa
        except ImportError:
            raise InputError(
                "chain.backend: 'evm' needs the evm extra (python3 -m pip install 'sum_abm[evm]',"
                " or -e '.[evm]' in a checkout)"
            ) from None
        im = trainer.im
        if not getattr(im, "has_vyper_contract", False) or im.python:
            raise InputError(
                "chain.backend: 'evm' runs Deposit-Refund-Take with semantics 'solidity' only"
            )
        self.boa = boa
        self.py = trainer
        self.chain = trainer.chain
        self.kind = evm_classifier_kind(trainer.learner, datasets)
        self.env = boa.Env()
        initial = None
        if self.kind == "perceptron":
            w, b = trainer.learner.w, trainer.learner.b
            initial = (int(b), {int(i): int(w[i]) for i in np.flatnonzero(w)})
        with boa.swap_env(self.env):
            # EVM time = t0 + Python time: the EVM's cost clock starts at its deploy block, the
            # Python one's at last_update_time_s.
            self.t0 = int(self.env.evm.patch.timestamp) - im.last_update_time_s
            self.system = deploy_system(
                self.kind,
                refund_time_s=im.refund_time_s,
                any_address_claim_wait_time_s=im.any_address_claim_wait_time_s,
                cost_weight=int(im.cost_weight),
                initial_model=initial,
                exact_gas=True,
            )
        self.addresses: dict[str, Any] = {}
        self.rows: list[tuple] = []
        self.adds: list[
            tuple[Any, int, int, str, list[int]]
        ] = []  # accepted adds: x, y, t, author, words

    # -- addresses, time, features -------------------------------------------------------------
    def address(self, name: str) -> Any:
        a = self.addresses.get(name)
        if a is None:
            a = self.addresses[name] = self.env.generate_address(name)
        return a

    def fund(self, name: str, amount: int) -> None:
        """Give ``name`` ``amount`` more wei (token units), as the Python ledger mints."""
        a = self.address(name)
        self.env.set_balance(a, self.env.get_balance(a) + int(amount))

    def words(self, x: Any) -> list[int]:
        """``x`` as the contracts' int256 words: present feature indices (binary rows), else the
        indices followed by the values in fixed point (9 decimals)."""
        idx = np.asarray(x.indices)
        vals = np.asarray(x.values)
        order = np.argsort(idx, kind="stable")
        idx, vals = idx[order], vals[order]
        if self.kind == "perceptron" or bool((vals == 1.0).all()):
            out = [int(i) for i in idx]
        else:
            out = [int(i) for i in idx] + [int(round(float(v) * SCALE)) for v in vals]
        if len(out) > MAX_FEATURES:
            raise InputError(
                f"chain.backend: 'evm': a sample needs {len(out)} words, the contracts take at most {MAX_FEATURES}"
            )
        return out

    # -- calls ---------------------------------------------------------------------------------
    def call(self, op: str, sender: str, x: Any, py_fn: Callable[[], Any], evm_args: tuple) -> Any:
        """Run ``py_fn`` (the Python call) and the same call on the EVM; compare; return the Python
        result or raise its :class:`Rejected`. A call the sender cannot pay for is not sent."""
        ledger, contract = self.chain.ledger, self.py.address
        before = (
            ledger.balance(sender),
            ledger.balance(contract),
            ledger.balance(self.chain.fee_sink),
        )
        now = self.chain.clock.now
        schedule = self.py.call_gas(
            op, x, evm_args[0] if op == "add_data" else None, sender
        )  # before the call
        try:
            result, reason = py_fn(), None
        except Rejected as rej:
            result, reason = None, rej.reason
        if reason == "insufficient_funds":  # such a transaction cannot be sent
            raise Rejected(reason)
        words = self.words(x)
        sys, env = self.system, self.env
        who = self.address(sender)
        with self.boa.swap_env(env):
            env.evm.patch.timestamp = self.t0 + now
            if self.kind == "oracle" and op != "add_data":
                sys.classifier.set_prediction(int(self.py.learner.predict_one(x)))
            evm_before = (env.get_balance(who), env.get_balance(sys.trainer.address))
            try:
                if op == "add_data":
                    sys.add_data(who, words, evm_args[0], evm_args[1])
                elif op == "refund":
                    sys.refund(who, words, evm_args[0], self.t0 + evm_args[1])
                else:
                    sys.report(
                        who, words, evm_args[0], self.t0 + evm_args[1], self.address(evm_args[2])
                    )
                evm_reason = None
                gas = sys.last_gas
            except Exception as err:  # a revert
                evm_reason, gas = revert_reason(err), None
            evm_after = (env.get_balance(who), env.get_balance(sys.trainer.address))
        fee = ledger.balance(self.chain.fee_sink) - before[2]
        py_delta = (ledger.balance(sender) - before[0] + fee, ledger.balance(contract) - before[1])
        evm_delta = (evm_after[0] - evm_before[0], evm_after[1] - evm_before[1])
        where = f"t={now} s: {op} by {sender}"
        if reason != evm_reason:
            raise CheckFailed(
                f"EVM disagrees at {where}: Python {'accepted' if reason is None else 'rejected (' + reason + ')'}, "
                f"EVM {'accepted' if evm_reason is None else 'rejected (' + evm_reason + ')'}"
            )
        if py_delta != evm_delta:
            raise CheckFailed(
                f"EVM disagrees at {where}: balance changes (sender, contract) Python {py_delta}, EVM {evm_delta}"
            )
        n = len(np.asarray(x.indices))
        amount = None if result is None else int(result)
        self.rows.append((now, sender, op, reason is None, reason, amount, n, schedule, gas))
        if reason is not None:
            raise Rejected(reason)
        if op == "add_data":
            self.adds.append((x, int(evm_args[0]), now, sender, words))
        return result

    # -- end of run ----------------------------------------------------------------------------
    def check_state(self) -> None:
        """Mechanism counters, every accepted contribution and the perceptron's weights: equal on
        both sides, or :class:`CheckFailed` naming the first difference."""
        im, sys = self.py.im, self.system
        with self.boa.swap_env(self.env):
            pairs = [
                (
                    "last_update_time_s",
                    im.last_update_time_s + self.t0,
                    sys.mechanism.last_update_time_s(),
                ),
                ("total_good", im.total_good, sys.mechanism.total_good()),
            ]
            pairs += [
                (f"num_good[{a}]", im.good_count(a), sys.mechanism.num_good(self.address(a)))
                for a in self.addresses
            ]
            for x, y, t, author, words in self.adds:
                stored = self.py.data.get(x, y, t, author)
                key = self._key(words, y, self.t0 + t, self.address(author))
                on_chain = sys.data_handler.stored(key)
                if stored is not None:
                    pairs.append(
                        (
                            f"contribution of {author} at t={t} s",
                            (stored.initial_deposit, stored.claimable),
                            (on_chain.initial_deposit, on_chain.claimable),
                        )
                    )
            if self.kind == "perceptron":
                w, b = self.py.learner.w, self.py.learner.b
                pairs.append(("perceptron intercept", int(b), sys.classifier.intercept()))
                touched = sorted(
                    {i for *_, words in self.adds for i in words} | set(np.flatnonzero(w).tolist())
                )
                pairs += [
                    (f"perceptron weight {i}", int(w[i]), sys.classifier.weights(i))
                    for i in touched
                ]
        for what, py, evm in pairs:
            if py != evm:
                raise CheckFailed(
                    f"EVM disagrees at the end of the run: {what}: Python {py}, EVM {evm}"
                )

    @staticmethod
    def _key(words: list[int], y: int, t: int, author: Any) -> bytes:
        from eth_abi import encode
        from eth_utils import keccak

        return keccak(
            encode(["int256[]", "uint256", "uint256", "address"], [words, y, t, str(author)])
        )

    def frame(self) -> Any:
        """The mirrored calls as a polars frame (the ``evm`` frame of :mod:`sum_abm.schema`)."""
        return schema.frame("evm", self.rows)

    def summary(self) -> dict[str, Any]:
        """Summary fields: calls mirrored, the EVM's classifier, and the schedule's relative gas
        error against the EVM over the accepted calls (median and largest)."""
        gas = [(s, g) for *_, s, g in self.rows if g]
        err = [abs(s - g) / g for s, g in gas]
        return {
            "evm_calls": len(self.rows),
            "evm_classifier": self.kind,
            "evm_agrees": True,
            "evm_gas_total": int(sum(g for _, g in gas)),
            "evm_gas_error_median": float(np.median(err)) if err else None,
            "evm_gas_error_max": float(max(err)) if err else None,
        }
