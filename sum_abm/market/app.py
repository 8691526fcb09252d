"""The interactive visualization server: Mesa's SolaraViz over the market, laid out like Mesa's
examples (``model.py``, ``agents.py`` and ``app.py`` side by side).

Run it with ``sum-abm viz [--scenario NAME|FILE]`` (or ``solara run sum_abm/market/app.py``; the
scenario then comes from ``SUM_ABM_VIZ_SCENARIO``, default ``quickstart``). The sliders and selects
start at the scenario's own values: the mechanism with its rule set (one menu), the deposit weight,
the refund window, the attackers' share and policy, the learner, the gas price and the seed. Reset rebuilds the
market with them, Step advances one sampling interval of simulated time, Play runs it. With
attackers, a clean baseline (the same market and seed without them) runs in lockstep, so the attack's
success is measured live exactly as the reports measure it. Every browser session has its own model.
"""

from __future__ import annotations

import functools
import html
import os
from typing import Any

os.environ.setdefault("SOLARA_CHECK_HOOKS", "off")  # mesa.visualization trips solara's hook checker

import mesa  # noqa: E402
import plotly.graph_objects as go  # noqa: E402
import solara  # noqa: E402
from mesa.visualization import SolaraViz  # noqa: E402
from mesa.visualization.utils import update_counter  # noqa: E402
from plotly.subplots import make_subplots  # noqa: E402

from dashboards.style import ACCURACY, ALL_DATA, ATTACKER, BASELINE, DAY_S, HONEST, group_colors  # noqa: E402
from sum_abm.bundled import resolve  # noqa: E402
from sum_abm.errors import InputError  # noqa: E402
from sum_abm.learners import LEARNERS  # noqa: E402
from sum_abm.market.model import MarketModel  # noqa: E402
from sum_abm.mechanisms import MECHANISMS  # noqa: E402
from sum_abm.policies import POLICIES  # noqa: E402
from sum_abm.scenario import Scenario, load_scenario, parse_scenario  # noqa: E402

# The menus follow the registries (mechanisms, their semantics, learners).
SEMANTICS = {kind: list(m.semantics) for kind, m in MECHANISMS.items()}
DEFAULT_MECHANISM = next(iter(MECHANISMS))


def rules_label(kind: str, semantics: str | None = None) -> str:
    """One entry of the mechanism menu: the mechanism and its rule set, as the status line shows
    them (``deposit_refund_take (solidity)``); one menu, so that no rule set can be chosen for a
    mechanism that lacks it."""
    return f"{kind} ({semantics})" if SEMANTICS[kind] else kind


#: The menu: every mechanism with each of its rule sets.
RULES = {
    rules_label(kind, sem): (kind, sem)
    for kind, sems in SEMANTICS.items()
    for sem in (sems or [None])
}
DEFAULT_RULES = rules_label(DEFAULT_MECHANISM, (SEMANTICS[DEFAULT_MECHANISM] or [None])[0])
ATTACK_POLICIES = [
    "label_flip",
    "targeted",
    "sybil",
    "free_rider",
    "deposit_hunter",
    "adaptive",
    "careless",
]
CALLS_SHOWN = 12
CHART_WIDTH_PX = 400  # see _fig
#: The gas-price knob's unit: millionths of a token per gas (whole tokens per gas make one add
#: cost more than an agent's whole balance).
MICRO = 10**6
_DATA: dict[
    str, Any
] = {}  # generated data shared by sessions (models are not); a few entries at most


@functools.lru_cache(maxsize=8)
def base_scenario(name: str | None = None) -> Scenario:
    """The scenario the server starts from: ``name`` or ``SUM_ABM_VIZ_SCENARIO`` (a bundled name or a
    TOML file), default ``quickstart``."""
    return load_scenario(resolve(name or os.environ.get("SUM_ABM_VIZ_SCENARIO", "quickstart")))


def attacker_share(sc: Scenario) -> int:
    """Attacking agents as a whole percentage of all agents (rounded to nearest)."""
    att = sum(g.count for g in sc.agents if g.is_attacker)
    total = sum(g.count for g in sc.agents)
    return round(100 * att / total) if total else 0


def knobs(sc: Scenario) -> dict[str, Any]:
    """The server's knob values that reproduce ``sc`` exactly."""
    m = sc.mechanism
    att = [g for g in sc.agents if g.is_attacker]
    return {
        "rules": rules_label(m.kind, getattr(m, "semantics", None)),
        "cost_weight": getattr(m, "cost_weight", 1),
        "refund_time_h": round(getattr(m, "refund_time_s", 86_400) / 3600),
        "attacker_share": attacker_share(sc),
        "attacker_policy": att[0].policy if att else "label_flip",
        "learner": sc.learner.kind,
        "gas_price_micro": round(sc.chain.gas_price * MICRO),
        "seed": sc.seed,
    }


def _mechanism(base: Scenario, rules: str, cost_weight: int, refund_time_h: int) -> dict[str, Any]:
    if rules not in RULES:
        raise InputError(f"rules: expected one of {list(RULES)}, got {rules!r}")
    kind, semantics = RULES[rules]
    same = base.mechanism.kind == kind
    mech: dict[str, Any] = base.mechanism.model_dump() if same else {"kind": kind}
    if semantics is not None:
        mech["semantics"] = semantics
    fields = MECHANISMS[kind].Config.model_fields
    if "cost_weight" in fields:
        mech["cost_weight"] = int(cost_weight)
    if "refund_time_s" in fields:
        old = mech.get("refund_time_s", 86_400)
        if not same or round(old / 3600) != int(
            refund_time_h
        ):  # keep the scenario's exact seconds otherwise
            new = int(refund_time_h) * 3600
            # anyone may take what is left after the same multiple of the refund window as before
            ratio = mech.get("any_address_claim_wait_time_s", 9 * old) / old if old else 9
            mech.update(refund_time_s=new, any_address_claim_wait_time_s=int(new * ratio))
    if not same:
        mech.update(MECHANISMS[kind].interactive_defaults)  # e.g. a market that ends in a session
    return mech


def _attackers(base: Scenario, share: int, policy: str) -> list[dict[str, Any]]:
    groups = [g.model_dump() for g in base.agents]
    honest = [g for g, cfg in zip(groups, base.agents, strict=False) if not cfg.is_attacker]
    attackers = [g for g, cfg in zip(groups, base.agents, strict=False) if cfg.is_attacker]
    if share == attacker_share(base) and attackers and attackers[0]["policy"] == policy:
        return groups  # the scenario's own attackers, untouched
    n_honest = sum(g["count"] for g in honest)
    share = min(int(share), 95)
    n_att = (
        0 if share <= 0 else max(1, round(share * n_honest / (100 - share)))
    )  # share of all agents
    if not n_att:
        return honest
    template = (
        attackers[0] if attackers else dict(honest[0], mean_wait_s=honest[0]["mean_wait_s"] * 2)
    )
    fields = POLICIES[policy].Config.model_fields
    att = {
        k: v
        for k, v in template.items()
        if k in fields and k not in ("policy", "name", "count", "attacker")
    }
    att.update(
        name="attacker" if not attackers else attackers[0]["name"],
        policy=policy,
        count=n_att,
        attacker=True,
    )
    return honest + [att]


def build_scenario(
    base: Scenario,
    *,
    rules: str,
    cost_weight: int,
    refund_time_h: int,
    attacker_share: int,
    attacker_policy: str,
    learner: str,
    gas_price_micro: int,
    seed: int,
) -> Scenario:
    """The base scenario with the server's knobs applied; at :func:`knobs` (base) it is the base itself.

    ``refund_time_h`` is hours, ``attacker_share`` a percentage of all agents (the honest groups keep
    their counts; the attackers are as many as that share needs), ``gas_price_micro`` millionths of
    a token per gas (an add of ~1.3 M gas then costs ~1.3 token units per unit of the knob).
    """
    data = base.to_dict()
    data["mechanism"] = _mechanism(base, rules, cost_weight, refund_time_h)
    data["agents"] = _attackers(base, attacker_share, attacker_policy)
    if learner != base.learner.kind:
        data["learner"] = {"kind": learner, "params": {}}
    if gas_price_micro != round(base.chain.gas_price * MICRO):
        whole, part = divmod(int(gas_price_micro), MICRO)
        data["chain"]["gas_price"] = whole if not part else gas_price_micro / MICRO
    data["seed"] = int(seed)
    return parse_scenario(data, f"viz ({base.name})")


def _dataset(sc: Scenario) -> Any:
    key = repr((sc.data.model_dump(), sc.learner.kind))
    if key not in _DATA:
        from sum_abm.data import load_dataset

        if len(_DATA) >= 4:
            _DATA.clear()
        _DATA[key] = load_dataset(sc.data, sc.learner.kind, sc.name)
    return _DATA[key]


class VizMarket(MarketModel):
    """A market built from the server's knobs, keyword parameters only (SolaraViz's Reset rebuilds
    it as ``cls(**params)``). With attackers it steps a clean baseline alongside."""

    def __init__(
        self,
        *,
        rules: str = DEFAULT_RULES,
        cost_weight: int = 1,
        refund_time_h: int = 24,
        attacker_share: int = 20,
        attacker_policy: str = "label_flip",
        learner: str = "sgd_perceptron",
        gas_price_micro: int = 0,
        seed: int = 1,
    ) -> None:
        self.params = dict(
            rules=rules,
            cost_weight=cost_weight,
            refund_time_h=refund_time_h,
            attacker_share=attacker_share,
            attacker_policy=attacker_policy,
            learner=learner,
            gas_price_micro=gas_price_micro,
            seed=seed,
        )
        sc = build_scenario(base_scenario(), **self.params)
        ds = _dataset(sc)
        super().__init__(scenario=sc, seed=sc.seed, dataset=ds)
        self.baseline = (
            MarketModel(scenario=sc.without_attackers(), seed=sc.seed, dataset=ds)
            if sc.attacker_groups
            else None
        )
        # Agents are created only in __init__: drop Mesa 3.3.1's class-level id counters now, so the
        # models a long session discards on Reset can be freed (STACK_NOTES: Agent._ids leak).
        for m in (self, self.baseline):
            mesa.Agent._ids.pop(m, None)
        self.colors = group_colors([(g.name, g.policy, g.is_attacker) for g in sc.agents])
        self.running = True

    def step(self) -> None:
        super().step()
        if self.baseline is not None:
            if self.finished:
                self.baseline.run()
            else:
                self.baseline.run_until(self.time)
        self.running = not self.finished

    @functools.cached_property
    def accuracy_all_data(self) -> float:
        """Accuracy of the learner trained on all the data (the reference line)."""
        return float(self.contract.accuracy_all_data())


def model_params(base: Scenario) -> dict[str, dict[str, Any]]:
    """SolaraViz's inputs, starting at the base scenario's values (labels short, so the sliders keep
    their tracks in the sidebar; units: cost weight in token units, refund window in hours, attackers
    as a percentage of all agents, gas price in token units per gas). The status line under the
    charts states the values the running market uses."""
    k = knobs(base)
    return {
        "rules": {
            "type": "Select",
            "value": k["rules"],
            "values": list(RULES),
            "label": "Mechanism",
        },
        "cost_weight": {
            "type": "SliderInt",
            "value": k["cost_weight"],
            "min": 0,
            "max": max(20, k["cost_weight"]),
            "step": 1,
            "label": "Deposit weight",
        },
        "refund_time_h": {
            "type": "SliderInt",
            "value": k["refund_time_h"],
            "min": min(1, k["refund_time_h"]),  # (a window under half an hour: 0, kept exact)
            "max": max(96, k["refund_time_h"]),
            "step": 1,
            "label": "Refund window (h)",
        },
        "attacker_share": {
            "type": "SliderInt",
            "value": k["attacker_share"],
            "min": 0,
            "max": max(80, k["attacker_share"]),
            "step": 1,
            "label": "Attackers (%)",
        },
        "attacker_policy": {
            "type": "Select",
            "value": k["attacker_policy"],
            "values": sorted(set(ATTACK_POLICIES) | {k["attacker_policy"]}),
            "label": "Attacker policy",
        },
        "learner": {
            "type": "Select",
            "value": k["learner"],
            "values": list(LEARNERS),
            "label": "Learner",
        },
        "gas_price_micro": {
            "type": "SliderInt",
            "value": k["gas_price_micro"],
            "min": 0,
            "max": max(100, k["gas_price_micro"]),
            "step": 1,
            "label": "Gas price (millionths of a token per gas)",
        },
        "seed": {
            "type": "SliderInt",
            "value": k["seed"],
            "min": 0,
            "max": max(50, k["seed"]),
            "step": 1,
            "label": "Seed",
        },
    }


# -- live charts -----------------------------------------------------------------------------------
def group_series(model: MarketModel) -> dict[str, tuple[list[float], list[float]]]:
    """``{group: (days, balance summed over its agents)}`` at every sample so far."""
    s = model.samples
    acc: dict[str, dict[int, float]] = {}
    for t, g, b in zip(s["time_s"], s["group"], s["balance"], strict=False):
        d = acc.setdefault(g, {})
        d[t] = d.get(t, 0.0) + b
    return {g: ([t / DAY_S for t in sorted(d)], [d[t] for t in sorted(d)]) for g, d in acc.items()}


def attack_series(model: VizMarket) -> dict[str, list[float]]:
    """Attack success so far: days, accuracy destroyed against the baseline (points, the baseline's
    nearest sample in time), and the cumulative profit of attackers and of the rest."""
    out: dict[str, list[float]] = {"days": [], "drop": [], "attackers": [], "others": []}
    if model.baseline is None:
        return out
    base = model.baseline.acc_series
    attackers = set(model.scenario.attacker_groups)
    start = {True: 0.0, False: 0.0}
    for a in model.participants:
        start[a.group.name in attackers] += a.start_balance
    by_t: dict[int, dict[bool, float]] = {}
    s = model.samples
    for t, g, b in zip(s["time_s"], s["group"], s["balance"], strict=False):
        side = by_t.setdefault(t, {True: 0.0, False: 0.0})
        side[g in attackers] += b
    j = -1
    for t, acc in model.acc_series:
        # the baseline's nearest sample (the two markets sample one time seconds apart)
        while j + 1 < len(base) and abs(base[j + 1][0] - t) <= abs(
            base[j][0] - t if j >= 0 else 1e300
        ):
            j += 1
        if j < 0:
            continue
        out["days"].append(t / DAY_S)
        out["drop"].append((base[j][1] - acc) * 100)
        side = by_t.get(t, {True: start[True], False: start[False]})
        out["attackers"].append(side[True] - start[True])
        out["others"].append(side[False] - start[False])
    return out


def _fig(title: str, y: str, fig: go.Figure | None = None) -> go.Figure:
    fig = fig or go.Figure()
    # a fixed width that fits SolaraViz's grid cells on a 1280-pixel screen (413 px; 440 was cut
    # off): autosize measures the cell before the grid has laid it out and draws 700 px
    fig.update_layout(
        title=title,
        height=340,
        width=CHART_WIDTH_PX,
        template="plotly_white",
        margin=dict(l=55, r=10, t=50, b=40),
        legend=dict(orientation="h", y=-0.25),
    )
    fig.update_xaxes(title_text="simulated time (days)")
    fig.update_yaxes(title_text=y)
    return fig


@solara.component
def AccuracyPlot(model: VizMarket):
    """Accuracy on the hidden test set at every sample, the clean baseline and the all-data line."""
    update_counter.get()
    fig = _fig("Accuracy on the hidden test set", "accuracy (fraction correct)")
    for m, name, line in (
        (model, "accuracy", dict(color=ACCURACY, width=2)),
        (model.baseline, "clean baseline (no attackers)", dict(color=BASELINE, dash="dash")),
    ):
        if m is not None:
            fig.add_trace(
                go.Scatter(
                    x=[t / DAY_S for t, _ in m.acc_series],
                    y=[a for _, a in m.acc_series],
                    mode="lines+markers",
                    name=name,
                    line=line,
                    marker=dict(size=4),
                )
            )
    fig.add_hline(
        y=model.accuracy_all_data,
        line=dict(color=ALL_DATA, dash="dot"),
        annotation_text=f"trained on all data: {model.accuracy_all_data:.3f}",
    )
    return solara.FigurePlotly(fig)


@solara.component
def BalancesPlot(model: VizMarket):
    """Balance of each group (sum over its agents), in the reports' colours."""
    update_counter.get()
    fig = _fig("Balances by group", "balance (token units)")
    for g, (xs, ys) in group_series(model).items():
        fig.add_trace(
            go.Scatter(
                x=xs, y=ys, mode="lines", name=g, line=dict(color=model.colors.get(g, HONEST))
            )
        )
    return solara.FigurePlotly(fig)


@solara.component
def AttackPlot(model: VizMarket):
    """Cumulative attack success: accuracy destroyed against the clean baseline and who profits."""
    update_counter.get()
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12)
    a = attack_series(model)
    if model.baseline is None:
        fig.add_annotation(
            text="no attackers: set Attackers above 0 % and press Reset",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
    else:
        fig.add_trace(
            go.Scatter(
                x=a["days"],
                y=a["drop"],
                mode="lines",
                name="accuracy destroyed (points)",
                line=dict(color=ATTACKER),
                fill="tozeroy",
                fillcolor="rgba(198,40,40,0.12)",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=a["days"],
                y=a["attackers"],
                mode="lines",
                name="attackers' profit",
                line=dict(color=ATTACKER, dash="dot"),
            ),
            row=2,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=a["days"],
                y=a["others"],
                mode="lines",
                name="everyone else's profit",
                line=dict(color=HONEST, dash="dot"),
            ),
            row=2,
            col=1,
        )
    fig = _fig("Attack success (vs clean baseline)", None, fig)
    fig.update_layout(height=420)
    fig.update_xaxes(title_text=None, row=1, col=1)
    fig.update_yaxes(title_text="accuracy points", row=1, col=1)
    fig.update_yaxes(title_text="profit (token units)", row=2, col=1)
    return solara.FigurePlotly(fig)


def mechanism_text(sc: Scenario) -> str:
    """The mechanism and the knobs it uses, in words."""
    m = sc.mechanism
    text = rules_label(m.kind, getattr(m, "semantics", None))
    if hasattr(m, "cost_weight"):
        text += f", deposit weight {m.cost_weight}"
    if hasattr(m, "refund_time_s"):
        text += f", refund window {m.refund_time_s / 3600:g} h"
    if hasattr(m, "bounty"):
        text += f", bounty {m.bounty:,}"
    return text


def status_html(model: VizMarket) -> str:
    """Where the market stands, and a table of the latest contract calls (newest first), as HTML.

    Plain HTML, not ``solara.Markdown``: Solara's Markdown loads KaTeX from a CDN through the
    server, which fails offline (and would reach the network otherwise)."""
    esc = html.escape
    rows = model.tx_rows[-CALLS_SHOWN:][::-1]
    rejected = sum(1 for r in model.tx_rows if not r[3])
    sc = model.scenario
    status = "finished" if model.finished else "running"
    lines = [
        f"<b>Day {model.time / DAY_S:.1f}</b> ({status}) · accuracy <b>{model.accuracy:.3f}</b> · "
        f"{len(model.tx_rows):,} calls, {rejected:,} rejected · pool used {model.cursor / max(1, model.n_pool):.0%}",
        esc(
            f"{mechanism_text(sc)}, {sc.learner.kind}, {len(model.participants)} agents "
            f"({', '.join(f'{g.count} {g.name}' for g in sc.agents)}), seed {sc.seed}, gas price {sc.chain.gas_price}"
        ),
    ]
    if sc.chain.gas_price:
        fees = [r[7] for r in model.tx_rows if r[2] == "add_data" and r[7]]
        # (agents send no call their balance cannot pay with its fee: they fall silent instead)
        mean = sum(fees) // len(fees) if fees else 0
        broke = sum(1 for a in model.participants if a.balance < mean)
        lines.append(
            f"fees so far: {sum(r[7] for r in model.tx_rows):,} token units"
            + (f", {mean:,} per add_data call on average" if fees else "")
            + (
                f"; {broke} of {len(model.participants)} agents hold less than that"
                if broke
                else ""
            )
            + (
                "; no add sent yet: no balance pays its fee at this price"
                if not fees and model.time > 0
                else ""
            )
        )
    cells = "text-align:right;padding:2px 8px"
    head = "".join(
        f"<th style='{cells}'>{h}</th>"
        for h in ("time (s)", "sender", "call", "outcome", "value", "gas", "fee")
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='{cells}'>{esc(str(v))}</td>"
            for v in (
                f"{r[0]:,}",
                r[1],
                r[2],
                "accepted" if r[3] else r[4],
                f"{r[5]:,}",
                f"{r[6]:,}",
                f"{r[7]:,}",
            )
        )
        + "</tr>"
        for r in rows
    )
    return (
        "".join(f"<p style='margin:0 0 8px'>{line}</p>" for line in lines)
        + "<p style='margin:12px 0 4px'><b>Latest calls</b></p>"
        + f"<table style='border-collapse:collapse;font-size:13px'><thead><tr>{head}</tr></thead>"
        + f"<tbody>{body}</tbody></table>"
    )


@solara.component
def CallsTable(model: VizMarket):
    """Where the market stands, and the latest contract calls."""
    update_counter.get()
    return solara.HTML(tag="div", unsafe_innerHTML=status_html(model), style="font-size:14px")


COMPONENTS = [(AccuracyPlot, 0), (BalancesPlot, 0), (AttackPlot, 0), (CallsTable, 0)]


@solara.component
def Page():
    base = base_scenario()
    # One model per browser session: a module-level model would be shared by every tab.
    model = solara.use_memo(lambda: VizMarket(**knobs(base)), [])
    return SolaraViz(
        model, components=COMPONENTS, model_params=model_params(base), name=_title(base)
    )


def _title(base: Scenario, limit: int = 90) -> str:
    """The app bar's title: the scenario's name and description, cut at a word if long."""
    title = f"sum_abm — {base.name}" + (f": {base.description}" if base.description else "")
    return title if len(title) <= limit else title[: title.rfind(" ", 0, limit - 1)] + " …"
