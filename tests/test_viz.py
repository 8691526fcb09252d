"""The SolaraViz app, headless (solara.render): a slider changes the model's parameter after Reset,
Step advances the clock, Reset rebuilds the model."""

from __future__ import annotations

import os

os.environ.setdefault("SOLARA_CHECK_HOOKS", "off")

import ipyvuetify as vw  # noqa: E402
import pytest  # noqa: E402
import solara  # noqa: E402

from sum_abm.market import app  # noqa: E402


def _render():
    box, rc = solara.render(solara.AppLayout(children=[app.Page()]), handle_error=False)
    return rc


def _button(rc, label):
    return rc.find(vw.Btn, children=[label])


@pytest.fixture(autouse=True)
def track_models(monkeypatch):
    """Remember the latest model SolaraViz built (functools.wraps keeps the keyword signature
    that SolaraViz checks)."""
    import functools

    orig = app.VizMarket.__init__

    @functools.wraps(orig)
    def init(self, **kw):
        orig(self, **kw)
        app._last_model = self

    monkeypatch.setattr(app.VizMarket, "__init__", init)
    yield


def test_step_advances_the_clock():
    rc = _render()
    m = app._last_model
    t0 = m.time
    _button(rc, "Step").widget.click()
    assert app._last_model.time > t0
    assert len(app._last_model.acc_series) >= 2


def test_slider_changes_the_parameter_and_reset_rebuilds():
    rc = _render()
    first = app._last_model
    assert first.params["cost_weight"] == 1
    slider = rc.find(vw.Slider, label="Deposit weight (cost_weight)")
    slider.assert_single()
    slider.widget.v_model = 7
    _button(rc, "Step").widget.click()
    _button(rc, "Reset").widget.click()
    rebuilt = app._last_model
    assert rebuilt is not first and rebuilt.params["cost_weight"] == 7
    assert rebuilt.scenario.mechanism.cost_weight == 7 and rebuilt.time < first.time + 1


def test_select_switches_the_mechanism():
    rc = _render()
    sel = rc.find(vw.Select, label="Mechanism")
    sel.widget.v_model = "prediction_market"
    _button(rc, "Reset").widget.click()
    m = app._last_model
    assert m.scenario.mechanism.kind == "prediction_market" and m.scenario.mechanism.semantics == "corrected"
