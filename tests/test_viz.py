"""The SolaraViz app, headless (solara.render): a slider changes the model's parameter on Reset, Step
advances the clock (and the clean baseline with it), Reset rebuilds the model, every session has its
own model; and the knob-to-scenario mapping, without a browser."""

from __future__ import annotations

import functools
import gc
import os
import weakref
from pathlib import Path

os.environ.setdefault("SOLARA_CHECK_HOOKS", "off")

import ipyvuetify as vw  # noqa: E402
import mesa  # noqa: E402
import pytest  # noqa: E402
import solara  # noqa: E402

from sum_abm.market import app  # noqa: E402
from sum_abm.scenario import load_scenario  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _render():
    box, rc = solara.render(solara.AppLayout(children=[app.Page()]), handle_error=False)
    return rc


def _status() -> list[str]:
    """The HTML of every rendered status panel (SolaraViz's grid keeps its items outside the
    children that ``rc.find`` walks)."""
    import ipywidgets

    texts = [
        getattr(w, "unsafe_innerHTML", None) or getattr(w, "children", None)
        for w in list(ipywidgets.Widget.widgets.values())
    ]
    return [str(t) for t in texts if t and "Latest calls" in str(t)]


def _button(rc, label):
    return rc.find(vw.Btn, children=[label])


@pytest.fixture(autouse=True)
def track_models(monkeypatch):
    """Remember every model SolaraViz builds (functools.wraps keeps the keyword signature that
    SolaraViz checks)."""
    orig = app.VizMarket.__init__
    built: list = []

    @functools.wraps(orig)
    def init(self, **kw):
        orig(self, **kw)
        built.append(self)

    monkeypatch.setattr(app.VizMarket, "__init__", init)
    app._built = built
    yield built


@pytest.mark.slow
def test_step_advances_the_clock_and_the_baseline(track_models):
    rc = _render()
    m = track_models[-1]
    assert m.params == app.knobs(load_scenario(ROOT / "scenarios" / "quickstart.toml"))
    assert m.baseline is not None and not m.baseline.scenario.attacker_groups
    t0 = m.time
    for _ in range(3):
        _button(rc, "Step").widget.click()
    assert track_models[-1] is m and m.time > t0 + 2 * 43_200 - 3_600  # three 12 h steps
    assert m.baseline.time <= m.time and len(m.baseline.acc_series) >= 3
    # the live attack chart measures against the baseline exactly like the reports
    a = app.attack_series(m)
    t_last = a["days"][-1] * 86_400
    base_acc = min(m.baseline.acc_series, key=lambda s: (abs(s[0] - t_last), s[0]))[1]  # nearest
    assert a["drop"][-1] == pytest.approx((base_acc - m.acc_series[-1][1]) * 100)
    start_att = sum(p.start_balance for p in m.participants if p.group.is_attacker)
    assert (
        a["attackers"][-1]
        == sum(p.balance for p in m.participants if p.group.is_attacker) - start_att
    )
    assert any(
        f"Day {m.time / 86_400:.1f}" in t and "add_data" in t for t in _status()
    )  # the calls table


@pytest.mark.slow
def test_slider_changes_the_parameter_and_reset_rebuilds(track_models):
    rc = _render()
    first = track_models[-1]
    assert first.params["cost_weight"] == 1
    slider = rc.find(vw.Slider, label="Deposit weight")
    slider.assert_single()
    slider.widget.v_model = 7
    assert track_models[-1] is first  # a knob alone does not rebuild (Mesa's SolaraViz: Reset does)
    _button(rc, "Step").widget.click()
    _button(rc, "Reset").widget.click()
    rebuilt = track_models[-1]
    assert rebuilt is not first and rebuilt.params["cost_weight"] == 7
    assert rebuilt.scenario.mechanism.cost_weight == 7 and rebuilt.time < first.time
    share = rc.find(vw.Slider, label="Attackers (%)")
    share.widget.v_model = 0
    _button(rc, "Reset").widget.click()
    clean = track_models[-1]
    assert (
        clean.baseline is None
        and not clean.scenario.attacker_groups
        and clean.scenario.mechanism.cost_weight == 7
    )


@pytest.mark.slow
def test_select_switches_the_mechanism(track_models):
    rc = _render()
    sel = rc.find(vw.Select, label="Mechanism")
    # one menu of mechanisms with their rule sets: no rule set a mechanism lacks can be chosen
    assert "prediction_market (solidity)" not in sel.widget.items
    sel.widget.v_model = "prediction_market (corrected)"
    _button(rc, "Reset").widget.click()
    m = track_models[-1]
    assert (
        m.scenario.mechanism.kind == "prediction_market"
        and m.scenario.mechanism.semantics == "corrected"
    )
    _button(rc, "Step").widget.click()
    assert m.time > 0


@pytest.mark.slow
def test_every_session_gets_its_own_model(track_models):
    _render()
    _render()
    assert len(track_models) == 2 and track_models[0] is not track_models[1]


@pytest.mark.parametrize(
    "name", ["quickstart", "attack_sybil", "model_users", "points", "reference_pm_corrected"]
)
def test_knobs_at_their_start_values_reproduce_the_scenario(name):
    base = load_scenario(ROOT / "scenarios" / f"{name}.toml")
    sc = app.build_scenario(base, **app.knobs(base))
    a, b = base.to_dict(), sc.to_dict()
    a.pop("name"), b.pop("name")
    assert a == b
    params = app.model_params(base)
    assert {k: v["value"] for k, v in params.items()} == app.knobs(base)


def test_gas_knob_is_in_millionths_of_a_token_per_gas():
    # Whole tokens per gas make an add cost more than a balance: the knob's steps are fractions
    # (exact decimals), whole tokens when the knob is a multiple of a million.
    base = load_scenario(ROOT / "scenarios" / "quickstart.toml")
    k = app.knobs(base)
    assert k["gas_price_micro"] == 0
    for micro, price in ((3, 3e-06), (25, 2.5e-05), (2_000_000, 2)):
        sc = app.build_scenario(base, **{**k, "gas_price_micro": micro})
        assert sc.chain.gas_price == price and type(sc.chain.gas_price) is type(price)
        assert app.knobs(sc)["gas_price_micro"] == micro
    odd = base.with_overrides({"chain.gas_price": 1.5e-07})  # between two knob steps: kept
    assert app.build_scenario(odd, **app.knobs(odd)).chain.gas_price == 1.5e-07


def test_status_with_gas_counts_the_fees_and_the_agents_they_left_broke():
    # 300 millionths of a token per gas: an add costs ~270 tokens, and within ten days every agent
    # holds less than one add's fee (it sends nothing more: no call is refused for want of funds)
    import re

    k = app.knobs(app.base_scenario())
    m = app.VizMarket(**{**k, "gas_price_micro": 300})
    for _ in range(20):
        m.step()
    fees = [r[7] for r in m.tx_rows if r[2] == "add_data"]
    text = re.search(r"fees so far: [^<]*", app.status_html(m)).group(0)
    mean = sum(fees) // len(fees)
    broke = sum(1 for a in m.participants if a.balance < mean)
    assert broke >= 3 and not any(r[4] == "insufficient_funds" for r in m.tx_rows)
    assert text == (
        f"fees so far: {sum(r[7] for r in m.tx_rows):,} token units, {mean:,} per add_data call "
        f"on average; {broke} of {len(m.participants)} agents hold less than that"
    )
    whole = app.VizMarket(**{**k, "gas_price_micro": 2_000_000})  # 2 tokens per gas
    whole.step()
    assert not whole.tx_rows and "no add sent yet: no balance pays its fee" in app.status_html(
        whole
    )


def test_slider_ranges_hold_the_scenarios_own_values():
    # A 10-minute refund window (knob 0 h) and 90 % attackers were clamped by the sliders to 1 h
    # and 80 %: Reset without touching anything changed the market.
    base = load_scenario(ROOT / "scenarios" / "quickstart.toml").with_overrides(
        {
            "mechanism.refund_time_s": 600,
            "mechanism.any_address_claim_wait_time_s": 5400,
            "agents.attacker.count": 36,
        }
    )
    params = app.model_params(base)
    for name, value in app.knobs(base).items():
        p = params[name]
        if p["type"] == "SliderInt":
            assert p["min"] <= value <= p["max"], name
    assert app.knobs(base)["attacker_share"] == 90 and app.knobs(base)["refund_time_h"] == 0
    assert (
        app.build_scenario(base, **app.knobs(base)).to_dict()["mechanism"]
        == base.to_dict()["mechanism"]
    )


def test_attacker_share_and_policy_mapping():
    base = load_scenario(ROOT / "scenarios" / "quickstart.toml")  # 4 honest, 1 label-flipper
    k = app.knobs(base)
    assert k["attacker_share"] == 20
    half = app.build_scenario(base, **{**k, "attacker_share": 50})
    assert {g.name: g.count for g in half.agents} == {"honest": 4, "attacker": 4}
    syb = app.build_scenario(base, **{**k, "attacker_policy": "sybil"})
    g = next(g for g in syb.agents if g.is_attacker)
    assert g.policy == "sybil" and g.count == 1 and g.addresses == 8 and g.start_balance == 10_000
    none = app.build_scenario(base, **{**k, "attacker_share": 0})
    assert not none.attacker_groups and sum(g.count for g in none.agents) == 4
    longer = app.build_scenario(base, **{**k, "refund_time_h": 48})
    assert (
        longer.mechanism.refund_time_s == 172_800
        and longer.mechanism.any_address_claim_wait_time_s == 1_555_200
    )
    clean = load_scenario(ROOT / "scenarios" / "model_users.toml")
    attacked = app.build_scenario(clean, **{**app.knobs(clean), "attacker_share": 25})
    assert attacked.attacker_groups == ["attacker"]


def test_discarded_models_are_freed(track_models):
    m = app.VizMarket(**app.knobs(app.base_scenario()))
    assert m not in mesa.Agent._ids and m.baseline not in mesa.Agent._ids
    ref = weakref.ref(m)
    track_models.clear()
    del m
    gc.collect()
    assert ref() is None


@pytest.mark.slow
def test_viz_cli_refuses_a_busy_port_and_a_bad_scenario_in_one_line():
    import socket
    import subprocess
    import sys

    cli = [sys.executable, "-c", "from sum_abm.cli import main; main()", "viz"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(cli + ["--port", str(port)], capture_output=True, text=True, timeout=60)
    assert (
        r.returncode == 2
        and f"--port {port}" in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )
    r = subprocess.run(
        cli + ["--scenario", "no_such_market"], capture_output=True, text=True, timeout=60
    )
    assert (
        r.returncode == 2
        and "no_such_market" in r.stderr
        and len(r.stderr.strip().splitlines()) == 1
    )


@pytest.mark.slow
def test_viz_stopped_by_its_process_id_leaves_no_server(tmp_path):
    """``kill PID`` of ``sum-abm viz`` (SIGTERM, not Ctrl-C to the whole group) stops the server:
    nothing is left listening on the port."""
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cli = [sys.executable, "-c", "from sum_abm.cli import main; main()", "viz", "--port", str(port)]
    with (tmp_path / "server.log").open("w") as log:
        server = subprocess.Popen(cli, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200:
                    break
            except OSError:
                assert time.time() < deadline and server.poll() is None, "the server did not start"
                time.sleep(0.5)
        server.send_signal(signal.SIGTERM)  # the process alone, as `kill PID` does
        server.wait(timeout=30)
        # nothing answers on the port any more, and it can be bound again
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
    finally:
        try:
            os.killpg(server.pid, signal.SIGKILL)  # whatever is left of its group
        except ProcessLookupError:
            pass
        server.wait()


def test_viz_host_of_another_machine_is_named_not_the_port():
    # 192.0.2.1 (TEST-NET-1, RFC 5737) is never an address of this machine: the bind fails with
    # EADDRNOTAVAIL, which is the host's fault, not the port's
    from sum_abm.cli.viz import _check_port
    from sum_abm.errors import InputError

    with pytest.raises(InputError, match=r"^--host 192\.0\.2\.1: not an address of this machine"):
        _check_port("192.0.2.1", 8765)
    with pytest.raises(InputError, match=r"^--host no-such-host\.invalid: not an address"):
        _check_port("no-such-host.invalid", 8765)
    _check_port("127.0.0.1", 0)  # any free port of this machine: no error
