"""A SUM contract system deployed on titanoboa's py-evm (offline): data handler, Deposit-Refund-Take,
a classifier and the collaborative trainer that owns them, with the gas of every transaction.

Gas of a transaction is what an Ethereum node charges (Prague rules): 21,000 + calldata (4 gas per
zero byte, 16 per non-zero byte; a contract creation adds 32,000 and 2 per 32-byte word of initcode)
+ execution, less the storage refund (at most a fifth of the total), and never below the calldata
floor of EIP-7623 (21,000 + 10 gas per calldata token). Requires the ``evm`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

CONTRACTS = Path(__file__).with_name("contracts")
#: Learner kinds with a Vyper classifier; the Python learner kinds they price (``sgd_perceptron``
#: runs on chain as the same integer perceptron: the on-chain work per feature is the same).
CLASSIFIERS = {
    "perceptron": "perceptron.vy",
    "multinomial_nb": "naive_bayes.vy",
    "nearest_centroid": "nearest_centroid.vy",
    "oracle": "oracle.vy",
}
MAX_FEATURES = 1024  # the contracts' DynArray bound
MAX_CLASSES = 64
SCALE = 10**9  # fixed point of the nearest centroid's values and Naive Bayes' smoothing
#: The perceptron's intercept in measurements: far below zero, so every class-1 sample is a mistake
#: and every update rewrites non-zero weights (the steady state of a trained model).
PERCEPTRON_MEASURE_INTERCEPT = -(10**12)


@cache
def deployer(name: str) -> Any:
    """The compiled contract ``name`` (a file in ``contracts/``), compiled once per process."""
    import boa

    return boa.load_partial(str(CONTRACTS / name))


def _tokens(data: bytes) -> tuple[int, int]:
    zeros = data.count(0)
    return zeros, len(data) - zeros


def tx_gas(computation: Any, create: bool = False) -> int:
    """Gas an Ethereum node charges for the transaction that ran ``computation`` (see module doc)."""
    data = bytes(computation.msg.code if create else computation.msg.data)
    zeros, nonzeros = _tokens(data)
    intrinsic = 21_000 + 4 * zeros + 16 * nonzeros
    if create:
        intrinsic += 32_000 + 2 * ((len(data) + 31) // 32)
    used = intrinsic + computation.get_gas_used()
    used -= min(computation.get_gas_refund(), used // 5)
    return max(used, 21_000 + 10 * (zeros + 4 * nonzeros))


def begin_tx(sender: Any, to: Any = None) -> None:
    """Start a transaction the way a node does, for exact gas: storage written by earlier calls
    becomes the "original" value (EIP-2200) and every account and slot is cold again (EIP-2929)
    except the sender, the recipient and the precompiles. titanoboa keeps both across calls.

    Incompatible with an enclosing ``boa.env.anchor()`` (it commits the journal): measure only.
    """
    import boa

    state = boa.env.evm.vm.state
    state.lock_changes()
    boa.env.evm.reset_access_counters()
    for a in [sender, to] + [i.to_bytes(20, "big") for i in range(1, 0x12)]:
        if a is not None:
            state.mark_address_warm(a if isinstance(a, bytes) else bytes.fromhex(str(a)[2:]))


def revert_reason(err: Exception) -> str:
    """The reason string of a reverted boa call (``"insufficient_value"``), or the error's text."""
    trace = getattr(err, "stack_trace", None)
    if trace:
        try:
            reason = trace.last_frame.pretty_vm_reason
            if reason:
                return str(reason)
        except Exception:  # an error raised outside the EVM (e.g. insufficient balance)
            pass
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


@dataclass
class System:
    """A deployed trainer with its parts; ``deploy_gas`` sums every deployment transaction."""

    trainer: Any
    data_handler: Any
    mechanism: Any
    classifier: Any
    kind: str
    n_classes: int
    deploy_gas: int = 0
    exact_gas: bool = False
    gas_log: list[tuple[str, int]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return str(self.trainer.address)

    def _call(self, op: str, fn: Any, args: Sequence[Any], sender: str, value: int = 0) -> Any:
        import boa

        if self.exact_gas:
            begin_tx(sender, self.trainer.address)
        with boa.env.prank(sender):
            out = fn(*args, value=value) if value else fn(*args)
        self.gas_log.append((op, tx_gas(self.trainer._computation)))
        return out

    def add_data(self, sender: str, x: Sequence[int], y: int, value: int = 0) -> None:
        """``add_data(x, y)`` sent by ``sender`` with ``value`` wei; raises on a revert."""
        self._call("add_data", self.trainer.add_data, (list(x), int(y)), sender, value)

    def refund(self, sender: str, x: Sequence[int], y: int, added_time: int) -> None:
        self._call("refund", self.trainer.refund, (list(x), int(y), int(added_time)), sender)

    def report(self, sender: str, x: Sequence[int], y: int, added_time: int, author: str) -> None:
        self._call(
            "report", self.trainer.report, (list(x), int(y), int(added_time), author), sender
        )

    def predict(self, sender: str, x: Sequence[int]) -> int:
        """A prediction sent as a transaction (its gas is logged); returns the class."""
        return int(self._call("predict", self.trainer.predict, (list(x),), sender))

    @property
    def last_gas(self) -> int:
        return self.gas_log[-1][1]


def deploy_system(
    kind: str,
    *,
    refund_time_s: int = 86_400,
    any_address_claim_wait_time_s: int = 9 * 86_400,
    cost_weight: int = 1,
    n_classes: int = 2,
    n_dims: int = MAX_FEATURES,
    initial_model: Any = None,
    sender: str | None = None,
    exact_gas: bool = False,
) -> System:
    """Deploy data handler, DRT, a ``kind`` classifier and the trainer, and hand ownership over.

    ``initial_model`` (optional): perceptron ``(intercept, {index: weight})``; Naive Bayes
    ``[(class_samples, {index: count})]`` per class; nearest centroid ``[(count, [values])]`` per
    class (fixed point, ``n_dims`` values each; required). Loading it is part of the deployment
    gas. Naive Bayes smooths with alpha = 1. ``exact_gas``: meter every transaction as a node would
    (:func:`begin_tx`; not inside ``boa.env.anchor()``); otherwise repeated calls see warm storage.
    """
    import boa

    if kind not in CLASSIFIERS:
        raise ValueError(f"learner kind must be one of {sorted(CLASSIFIERS)}, got {kind!r}")
    if kind == "perceptron" and n_classes != 2:
        raise ValueError("the perceptron is a binary classifier")
    sender = sender or boa.env.eoa
    gas = 0

    def create(name: str, *args: Any) -> Any:
        nonlocal gas
        if exact_gas:
            begin_tx(sender)
        with boa.env.prank(sender):
            c = deployer(name).deploy(*args)
        gas += tx_gas(c._computation, create=True)
        return c

    def send(contract: Any, fn: str, *args: Any) -> None:
        nonlocal gas
        if exact_gas:
            begin_tx(sender, contract.address)
        with boa.env.prank(sender):
            getattr(contract, fn)(*args)
        gas += tx_gas(contract._computation)

    dh = create("data_handler.vy")
    im = create("drt.vy", refund_time_s, any_address_claim_wait_time_s, cost_weight)
    if kind == "perceptron":
        intercept, weights = initial_model if initial_model is not None else (0, {})
        clf = create("perceptron.vy", 1, int(intercept))
        items = sorted(weights.items())
        for i in range(0, len(items), MAX_FEATURES):
            chunk = items[i : i + MAX_FEATURES]
            send(clf, "init_weights", [k for k, _ in chunk], [v for _, v in chunk])
    elif kind == "multinomial_nb":
        clf = create("naive_bayes.vy", n_classes, n_dims, SCALE)
        for y, (samples, counts) in enumerate(initial_model or []):
            items = sorted(counts.items())
            send(clf, "init_counts", y, samples, [k for k, _ in items], [v for _, v in items])
    elif kind == "nearest_centroid":
        clf = create("nearest_centroid.vy", n_classes, n_dims)
        if initial_model is None or len(initial_model) != n_classes:
            raise ValueError("the nearest centroid needs an initial centroid per class")
        for y, (count, centroid) in enumerate(initial_model):
            send(clf, "init_centroid", y, [int(v) for v in centroid], count)
    else:
        clf = create("oracle.vy")
    trainer = create("trainer.vy", dh.address, im.address, clf.address)
    for part in (dh, im, clf):
        send(part, "transfer_ownership", trainer.address)
    return System(trainer, dh, im, clf, kind, n_classes, deploy_gas=gas, exact_gas=exact_gas)
