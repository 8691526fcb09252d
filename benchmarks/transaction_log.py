"""The transaction log's claim batches against the same records appended one call at a time.

The 1,000-agent market (``benchmarks/scale.py``) logs 2.7 M accepted reports in about 160,000
batches of 17 on average. This appends ``--batches`` batches of ``--size`` accepted reports to a
:class:`~sum_abm.market.recording.TxLog` with ``extend_accepted`` (what ``Chain.record_many``
calls), then the same records with ``append``, one tuple per call (what ``Chain.execute`` logs), in
this process, each timed up to the ``transactions`` frame built (the two frames must be equal).
Prints microseconds per batch for both (best of ``--repeat``) and the ratio, last line
``speedup transaction log: <x>x``.

    python3 benchmarks/transaction_log.py [--batches 200000] [--size 17] [--repeat 3]

Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import polars as pl

from sum_abm.market.recording import TxLog


def batched(batches: list[tuple[int, str, list[str], list[float]]]) -> tuple[float, pl.DataFrame]:
    """Seconds to log ``batches`` with ``extend_accepted`` and build the frame, and the frame."""
    log = TxLog()
    t = time.perf_counter()
    for now, sender, calls, amounts in batches:
        log.extend_accepted(now, sender, calls, amounts)
    frame = log.frame()
    return time.perf_counter() - t, frame


def one_by_one(
    batches: list[tuple[int, str, list[str], list[float]]],
) -> tuple[float, pl.DataFrame]:
    """The same with ``append``, one tuple per call."""
    log = TxLog()
    append = log.append
    t = time.perf_counter()
    for now, sender, calls, amounts in batches:
        for call, amount in zip(calls, amounts, strict=True):
            append((now, sender, call, True, None, 0, 0, 0, float(amount)))
    frame = log.frame()
    return time.perf_counter() - t, frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=200_000)
    ap.add_argument("--size", type=int, default=17, help="claims per batch")
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs of each")
    args = ap.parse_args()
    if args.batches < 1 or args.size < 2 or args.repeat < 1:
        ap.error("--batches and --repeat must be >= 1, --size >= 2 (a batch of one is one record)")
    rng = np.random.default_rng(0)
    amounts = (rng.random((args.batches, args.size)) * 5).tolist()  # reference-Python shares
    senders = [f"Good-{i % 800}" for i in range(args.batches)]
    batches = [
        (60 * i, senders[i], ["report"] * args.size, amounts[i]) for i in range(args.batches)
    ]
    best: dict[str, float] = {}
    frames = {}
    for _ in range(args.repeat):
        for name, fn in (("batched", batched), ("one by one", one_by_one)):
            seconds, frames[name] = fn(batches)
            best[name] = min(best.get(name, seconds), seconds)
    if not frames["batched"].equals(frames["one by one"]):
        raise SystemExit("the two logs differ")
    rows = args.batches * args.size
    for name in ("batched", "one by one"):
        print(
            f"{name:>10}: {1e6 * best[name] / args.batches:6.2f} us per batch of {args.size} "
            f"({1e9 * best[name] / rows:5.0f} ns per record; {rows:,} rows)"
        )
    print(f"speedup transaction log: {best['one by one'] / best['batched']:.1f}x")


if __name__ == "__main__":
    main()
