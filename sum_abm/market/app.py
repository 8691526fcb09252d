"""The interactive visualization server: Mesa's SolaraViz over the market, like Mesa's examples
(``model.py``, ``agents.py`` and ``app.py`` side by side).

Run it with ``sum-abm viz`` (or ``solara run sum_abm/market/app.py``). Sliders and selects set the
mechanism and its semantics, the deposit weight, the refund window, the attackers' share and policy,
the learner and the gas price; Reset rebuilds the market with them, Step advances one sampling
interval, Play runs it. Every browser session gets its own model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("SOLARA_CHECK_HOOKS", "off")  # mesa.visualization trips solara's hook checker

import plotly.graph_objects as go  # noqa: E402
import solara  # noqa: E402
from mesa.visualization import SolaraViz  # noqa: E402
from mesa.visualization.utils import update_counter  # noqa: E402

from sum_abm.market.model import MarketModel  # noqa: E402
from sum_abm.scenario import Scenario, load_scenario  # noqa: E402

from dashboards.style import ATTACKER, HONEST  # noqa: E402 - the same colours as the reports

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
_DATA: dict[str, Any] = {}  # generated data shared by sessions (models are not)


def base_scenario() -> Scenario:
    """The scenario the server starts from (``SUM_ABM_VIZ_SCENARIO``: a name or a file)."""
    name = os.environ.get("SUM_ABM_VIZ_SCENARIO", "quickstart")
    p = Path(name)
    if not p.exists():
        p = SCENARIOS / (name if name.endswith(".toml") else f"{name}.toml")
    return load_scenario(p)


def build_scenario(base: Scenario, *, mechanism: str, semantics: str, cost_weight: int, refund_time_h: int,
                   attacker_share: int, attacker_policy: str, learner: str, gas_price: int, seed: int) -> Scenario:
    """The base scenario with the server's knobs applied (percentages and hours made exact)."""
    refund_s = int(refund_time_h) * 3600
    mech: dict[str, Any] = {"kind": mechanism}
    if mechanism == "deposit_refund_take":
        mech.update(semantics=semantics if semantics in ("solidity", "reference-python") else "solidity",
                    cost_weight=int(cost_weight), refund_time_s=refund_s, any_address_claim_wait_time_s=9 * refund_s)
    elif mechanism == "points":
        mech.update(refund_time_s=refund_s, any_address_claim_wait_time_s=9 * refund_s)
    else:
        mech.update(semantics=semantics if semantics in ("corrected", "reference-python") else "corrected",
                    bounty=20_000, num_test_pieces=5)
    data = base.to_dict()
    groups = data["agents"]
    honest = [g for g in groups if not _is_attacker(g)] or [dict(groups[0], attacker=False)]
    total = sum(g["count"] for g in groups)
    n_att = round(total * attacker_share / 100)
    h = dict(honest[0], count=max(1, total - n_att))
    agents = [h]
    if n_att:
        agents.append({"name": "attacker", "policy": attacker_policy, "count": n_att, "attacker": True,
                       "start_balance": h["start_balance"], "mean_wait_s": h["mean_wait_s"] * 2})
    data.update(mechanism=mech, agents=agents, seed=int(seed))
    data["learner"] = {"kind": learner, "params": {}}
    data["chain"]["gas_price"] = int(gas_price)
    from sum_abm.scenario import parse_scenario

    return parse_scenario(data, "viz")


def _is_attacker(g: dict[str, Any]) -> bool:
    return bool(g.get("attacker")) or g.get("policy") in ("label_flip", "targeted", "sybil", "adaptive")


class VizMarket(MarketModel):
    """A market built from keyword parameters only (SolaraViz rebuilds it as ``cls(**params)``)."""

    def __init__(self, *, mechanism: str = "deposit_refund_take", semantics: str = "solidity", cost_weight: int = 1,
                 refund_time_h: int = 24, attacker_share: int = 20, attacker_policy: str = "label_flip",
                 learner: str = "sgd_perceptron", gas_price: int = 0, seed: int = 1) -> None:
        sc = build_scenario(base_scenario(), mechanism=mechanism, semantics=semantics, cost_weight=cost_weight,
                            refund_time_h=refund_time_h, attacker_share=attacker_share,
                            attacker_policy=attacker_policy, learner=learner, gas_price=gas_price, seed=seed)
        key = repr((sc.data.model_dump(), sc.learner.kind))
        if key not in _DATA:
            from sum_abm.data import load_dataset

            _DATA[key] = load_dataset(sc.data, sc.learner.kind, sc.name)
        super().__init__(scenario=sc, seed=sc.seed, dataset=_DATA[key])
        self.params = dict(mechanism=mechanism, semantics=semantics, cost_weight=cost_weight,
                           refund_time_h=refund_time_h, attacker_share=attacker_share,
                           attacker_policy=attacker_policy, learner=learner, gas_price=gas_price, seed=seed)
        self.running = True

    def step(self) -> None:
        super().step()
        self.running = not self.finished


MODEL_PARAMS = {
    "mechanism": {"type": "Select", "value": "deposit_refund_take", "values": ["deposit_refund_take", "prediction_market", "points"],
                  "label": "Mechanism"},
    "semantics": {"type": "Select", "value": "solidity", "values": ["solidity", "reference-python", "corrected"],
                  "label": "Semantics"},
    "cost_weight": {"type": "SliderInt", "value": 1, "min": 0, "max": 20, "step": 1, "label": "Deposit weight (cost_weight)"},
    "refund_time_h": {"type": "SliderInt", "value": 24, "min": 1, "max": 96, "step": 1, "label": "Refund window (hours)"},
    "attacker_share": {"type": "SliderInt", "value": 20, "min": 0, "max": 80, "step": 20, "label": "Attackers (% of agents)"},
    "attacker_policy": {"type": "Select", "value": "label_flip", "values": ["label_flip", "targeted", "sybil", "free_rider",
                                                                           "deposit_hunter", "adaptive"],
                        "label": "Attacker policy"},
    "learner": {"type": "Select", "value": "sgd_perceptron",
                "values": ["sgd_perceptron", "perceptron", "multinomial_nb", "nearest_centroid"], "label": "Learner"},
    "gas_price": {"type": "SliderInt", "value": 0, "min": 0, "max": 5, "step": 1, "label": "Gas price (tokens per gas)"},
    "seed": {"type": "SliderInt", "value": 1, "min": 1, "max": 50, "step": 1, "label": "Seed"},
}


def _group_series(model: MarketModel) -> dict[str, tuple[list[float], list[float]]]:
    s = model.samples
    acc: dict[tuple[str, int], float] = {}
    for t, g, b in zip(s["time_s"], s["group"], s["balance"]):
        acc[(g, t)] = acc.get((g, t), 0.0) + b
    out: dict[str, tuple[list[float], list[float]]] = {}
    for (g, t), b in sorted(acc.items(), key=lambda kv: kv[0][1]):
        xs, ys = out.setdefault(g, ([], []))
        xs.append(t / 86_400)
        ys.append(b)
    return out


def _fig(title: str, y: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title="simulated time (days)", yaxis_title=y, height=330,
                      template="plotly_white", margin=dict(l=50, r=10, t=50, b=40), legend=dict(orientation="h"))
    return fig


@solara.component
def AccuracyPlot(model: MarketModel):
    """Accuracy on the hidden test set at every sample."""
    update_counter.get()
    fig = _fig("Accuracy", "accuracy (fraction)")
    t = [a / 86_400 for a, _ in model.acc_series]
    fig.add_trace(go.Scatter(x=t, y=[b for _, b in model.acc_series], mode="lines+markers", name="accuracy",
                             line=dict(color="#212121")))
    return solara.FigurePlotly(fig)


@solara.component
def BalancesPlot(model: MarketModel):
    """Balance of each group (sum over its agents)."""
    update_counter.get()
    fig = _fig("Balances by group", "balance (tokens)")
    attackers = set(model.scenario.attacker_groups)
    for g, (xs, ys) in _group_series(model).items():
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name=g, line=dict(color=ATTACKER if g in attackers else HONEST)))
    return solara.FigurePlotly(fig)


@solara.component
def AttackPlot(model: MarketModel):
    """Cumulative profit of the attackers and of everyone else: does the attack pay?"""
    update_counter.get()
    fig = _fig("Attack success: cumulative profit", "profit (tokens)")
    attackers = set(model.scenario.attacker_groups)
    start = {}
    for a in model.participants:
        start[a.group.name] = start.get(a.group.name, 0) + a.start_balance
    for label, pick, color in (("attackers", True, ATTACKER), ("honest", False, HONEST)):
        series: dict[float, float] = {}
        for g, (xs, ys) in _group_series(model).items():
            if (g in attackers) == pick:
                for x, y in zip(xs, ys):
                    series[x] = series.get(x, 0.0) + y - start[g]
        if series:
            xs = sorted(series)
            fig.add_trace(go.Scatter(x=xs, y=[series[x] for x in xs], mode="lines", name=label, line=dict(color=color)))
    return solara.FigurePlotly(fig)


@solara.component
def CallsTable(model: MarketModel):
    """The latest contract calls."""
    update_counter.get()
    rows = model.tx_rows[-12:][::-1]
    head = "| time (s) | sender | call | outcome | value | fee |\n|---:|---|---|---|---:|---:|\n"
    body = "".join(f"| {r[0]} | {r[1]} | {r[2]} | {'accepted' if r[3] else r[4]} | {r[5]} | {r[7]} |\n" for r in rows)
    status = "finished" if model.finished else "running"
    return solara.Markdown(f"**Day {model.time / 86_400:.1f}** ({status}), accuracy {model.accuracy:.3f}, "
                           f"{len(model.tx_rows):,} calls\n\n" + head + body)


COMPONENTS = [(AccuracyPlot, 0), (BalancesPlot, 0), (AttackPlot, 0), (CallsTable, 0)]


@solara.component
def Page():
    # One model per browser session (a module-level model would be shared by every tab).
    model = solara.use_memo(lambda: VizMarket(), [])
    return SolaraViz(model, components=COMPONENTS, model_params=MODEL_PARAMS, name="sum_abm — SUM market")
