"""Real-browser tests with Debian's chromium (installed with apt when missing; never a browser
downloaded by a test tool): the run report renders every chart from a file with the network off;
``sum-abm viz`` (started here on a free port on 127.0.0.1, stopped by its PID) loads, a slider
moves, and a step updates the page."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sum_abm.market.run import run
from sum_abm.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True)
        path = shutil.which("chromium") or "/usr/bin/chromium"
    return path


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        yield b
        b.close()


def test_run_report_renders_offline(browser, tmp_path):
    from dashboards import build_run_report

    sc = load_scenario(ROOT / "scenarios" / "quickstart.toml", {"data.n_rows": 800, "run.max_time_s": 1_728_000})
    report = build_run_report(run(sc, seed=3).write(tmp_path))
    ctx = browser.new_context(offline=True)
    page = ctx.new_page()
    page.goto(report.as_uri())
    charts = page.locator(".js-plotly-plot")
    charts.first.wait_for(timeout=30_000)
    n = charts.count()
    assert n >= 4
    page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot .main-svg').length >= {n}", timeout=30_000)
    assert page.locator(".js-plotly-plot .scatterlayer .trace").count() >= 3  # lines really drawn
    ctx.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_viz_server_slider_and_step(browser):
    port = _free_port()
    cli = [sys.executable, "-c", "from sum_abm.cli import main; main()", "viz", "--port", str(port)]
    server = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("the viz server did not start")
        page = browser.new_page()
        page.goto(url)
        page.get_by_text("Step", exact=True).wait_for(timeout=60_000)
        page.get_by_text("Day 0.0").wait_for(timeout=60_000)
        # move a slider with the keyboard, as a user would
        # move the deposit-weight slider (the third: after play and render interval) by clicking its track
        slider = page.locator(".v-slider").nth(2)
        before = page.locator(".v-slider input").nth(2).input_value()
        box = slider.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
        page.wait_for_function(
            f"document.querySelectorAll('.v-slider input')[2].value != '{before}'", timeout=10_000)
        page.get_by_text("Step", exact=True).click()
        page.get_by_text("Day 0.5").wait_for(timeout=60_000)  # one sampling interval (12 h) later
        assert page.locator(".js-plotly-plot").count() >= 3
        page.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # stop the server by its process id
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
