"""Notes on a finished run for its reader: why a group (or the whole market) sent no add.

A group whose every add was left unsent for a setting the user chose (a fixed deposit below the
required one, a ``max_deposit`` below it, a deposit weight no balance pays, a fee above every
balance, a wait or a block time longer than the run) ends with profit 0 and no word of why. The
market records each add it did not send and why (:meth:`MarketModel.unsent_add`, the
participants' ``wakes`` and ``unsent``); :func:`group_activity` gathers that per group after the
run and :func:`no_add_notes` says it, one line per group, or one for the market when no
contribution was accepted at all. The numbers in a line are those the market met at the time
(the deposit an add required then, what was offered, the wallet less the fee), never a guess.
Nothing here goes into the results' files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from sum_abm.market.agents import Unsent
from sum_abm.mechanisms import MECHANISMS
from sum_abm.scenario import Scenario


@dataclass
class GroupActivity:
    """What one group's agents did that the results do not hold: wake-ups acted on and the adds
    not sent, by reason (:class:`Unsent`), over all its agents."""

    agents: int = 0
    wakes: int = 0
    adds_accepted: int = 0
    addresses: list[str] = field(default_factory=list)
    unsent: dict[str, Unsent] = field(default_factory=dict)


def group_activity(model: Any) -> dict[str, GroupActivity]:
    """Per group of a finished :class:`~sum_abm.market.model.MarketModel`, in scenario order."""
    out: dict[str, GroupActivity] = {g.name: GroupActivity() for g in model.scenario.agents}
    for a in model.participants:
        g = out[a.group.name]
        g.agents += 1
        g.wakes += a.wakes
        g.adds_accepted += a.adds_accepted
        g.addresses.extend(a.addresses)
        for reason, rec in a.unsent.items():
            g.unsent.setdefault(reason, Unsent()).merge(rec)
    return out


def _n(v: float) -> str:
    return f"{v:,.0f}"


def _span(lo: int, hi: int) -> str:
    return _n(lo) if lo == hi else f"{_n(lo)} to {_n(hi)}"


def _tries(n: int) -> str:
    return f"{_n(n)} {'try' if n == 1 else 'tries'}"


def _cause(reason: str, rec: Unsent, who: str, sc: Scenario, group: Any) -> str:
    """Why ``who``'s adds were not sent, for ``reason``, with the market's numbers."""
    one = rec.required_lo == rec.required_hi == 1
    req = f"the {_span(rec.required_lo, rec.required_hi)} token{'' if one else 's'} an add required"
    at = f"at {who} {_tries(rec.count)}"
    if reason == "deposit":
        fixed = getattr(group, "deposit", None) if group is not None else None
        if fixed is not None and rec.offered_lo == rec.offered_hi == fixed:
            offer = f"{who} fixed deposit {_n(fixed)} (agents.{group.name}.deposit)"
        else:
            offer = f"{who} offers of {_span(rec.offered_lo, rec.offered_hi)} tokens"
        return f"{offer} {'is' if fixed is not None else 'were'} below {req} {at}"
    if reason == "cap":
        if group is not None and rec.offered_lo == rec.offered_hi:
            cap = f"{who} max_deposit {_n(rec.offered_lo)} (agents.{group.name}.max_deposit)"
        else:
            cap = f"{who} max_deposit ({_span(rec.offered_lo, rec.offered_hi)})"
        return f"{req} {at} were above {cap}"
    fee = " less the add's fee" if sc.chain.gas_price else ""
    if reason == "balance":
        return (
            f"{req} {at} exceeded {who} balance{fee} "
            f"({_span(max(0, rec.spendable_lo), max(0, rec.spendable_hi))} tokens)"
        )
    if reason == "fee":
        return (
            f"an add's fee exceeded {who} balance by {_span(-rec.spendable_hi, -rec.spendable_lo)}"
            f" tokens {at} (chain.gas_price = {sc.chain.gas_price})"
        )
    if reason == "closed":
        return f"the mechanism took no data {at}"
    return f"the contract's state proved every add would be refused {at}"


def _context(reasons: list[str], sc: Scenario, summary: dict[str, Any]) -> str:
    """The settings behind the causes: the mechanism's deposit rule, a block longer than the run."""
    parts = []
    if {"deposit", "cap", "balance"} & set(reasons):
        rule = MECHANISMS[sc.mechanism.kind].deposit_rule(sc.mechanism)
        if rule:
            parts.append(rule)
    bt = sc.chain.block_time_s
    if bt > 1 and bt > summary["end_time_s"]:
        parts.append(
            f"chain.block_time_s = {_n(bt)} s is longer than the run "
            f"({_n(summary['end_time_s'])} s), so every call fell in its first block, at time 0"
        )
    return "".join(f" ({p})" for p in parts)


def _causes(unsent: dict[str, Unsent], who: str, sc: Scenario, group: Any, summary: dict) -> str:
    """Every reason's cause, the most frequent first, then their context."""
    reasons = sorted(unsent, key=lambda r: -unsent[r].count)
    causes = "; ".join(_cause(r, unsent[r], who, sc, group) for r in reasons)
    return causes + _context(reasons, sc, summary)


def _days(summary: dict[str, Any]) -> str:
    return (
        f"{summary['days']:,.0f} days" if summary["days"] >= 2 else f"{summary['end_time_s']:,} s"
    )


def no_add_notes(
    sc: Scenario,
    summary: dict[str, Any],
    groups: dict[str, GroupActivity],
    transactions: pl.DataFrame | None = None,
) -> list[str]:
    """One line per group of ``sc`` that sent no add, with its most likely cause computed from
    what the market met (see the module's doc), or one line for the whole market when no
    contribution was accepted and every group's adds stayed unsent for the same reason. A group
    that never woke sent no call at all; a group that woke and left no add unsent (a model user,
    a pool used up by others) chose not to add: no line."""
    by_name = {g.name: g for g in sc.agents}
    days = _days(summary)
    lines: list[tuple[str, str | None, str]] = []  # (group, reason, line)
    sent: dict[str, int] = {}
    if transactions is not None and len(transactions):
        adds = transactions.filter(pl.col("call") == "add_data")
        for name, act in groups.items():
            if not act.adds_accepted and act.addresses:
                sent[name] = int(adds["sender"].is_in(act.addresses).sum())
    for name, act in groups.items():
        if act.adds_accepted or not act.agents:
            continue
        g = by_name.get(name)
        if sent.get(name):
            lines.append((name, "sent", f"group {name} sent {_n(sent[name])} adds; the contract "
                          "refused every one (transactions.parquet says why)"))  # fmt: skip
            continue
        if not act.wakes:
            wait = g.mean_wait_s if g is not None else 0
            why = (
                f"its mean wait {_n(wait)} s is longer than the run (run.max_time_s = "
                f"{_n(sc.run.max_time_s)} s)"
                if wait > min(sc.run.max_time_s, max(1, summary["end_time_s"]))
                else f"its first wait (mean {_n(wait)} s) ended after the run"
            )
            lines.append((name, None, f"group {name} sent no call in {days}: none of its agents "
                          f"woke; {why}"))  # fmt: skip
            continue
        if not act.unsent:
            continue
        reasons = ",".join(sorted(act.unsent))
        lines.append((name, reasons, f"group {name} sent no add: "
                      f"{_causes(act.unsent, 'its', sc, g, summary)}"))  # fmt: skip
    if not summary["adds_accepted"]:
        # the whole market: one line when every group's adds stayed unsent for the same reasons
        kinds = {r for _, r, _ in lines}
        noted = [n for n, _, _ in lines]
        if len(kinds) == 1 and None not in kinds and "sent" not in kinds and len(noted) > 1:
            (kind,) = kinds
            if kind == "fee" and set(noted) == set(groups):
                fee = Unsent()
                for n in noted:
                    fee.merge(groups[n].unsent["fee"])
                return [
                    f"{_fee_note(sc)}: at the agents' {_tries(fee.count)} an add's fee exceeded "
                    f"the balance by {_span(-fee.spendable_hi, -fee.spendable_lo)} tokens"
                ]
            merged: dict[str, Unsent] = {}
            for n in noted:
                for r, rec in groups[n].unsent.items():
                    merged.setdefault(r, Unsent()).merge(rec)
            return [f"no contribution was accepted: groups {', '.join(noted)} sent no add: "
                    f"{_causes(merged, 'their', sc, None, summary)}"]  # fmt: skip
        if not lines and sc.chain.gas_price:
            return [_fee_note(sc)]
    return [line for _, _, line in lines]


def _fee_note(sc: Scenario) -> str:
    # e.g. whole tokens per gas: one add's fee is more than any default balance
    most = max(g.start_balance for g in sc.agents)
    return (
        f"no contribution was accepted; an add's fee is its gas (10^5 to 10^6) times the gas "
        f"price, and no agent starts with more than {most:,} tokens"
    )
