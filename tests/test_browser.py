"""Real-browser tests with Debian's chromium (installed with apt when missing; never a browser
downloaded by a test tool): the run and sweep reports render every chart from a file with the network
off; ``sum-abm viz`` (started here on a free port on 127.0.0.1, stopped by its process id) loads, a
slider moves, Step updates a chart and Reset applies the slider.

``SUM_ABM_SCREENSHOTS=DIR`` also saves the README's screenshots (``run_report.png``, ``viz.png``,
``sweep_report.png``) into DIR.
"""

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
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = os.environ.get("SUM_ABM_SCREENSHOTS")

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium; installed with apt-get when missing."""
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "chromium"],
            check=True,
            env=env,
            capture_output=True,
        )
        path = shutil.which("chromium") or "/usr/bin/chromium"
    return path


@pytest.fixture(scope="session")
def browser(chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=FLAGS)
        yield b
        b.close()


def _shot(page, name: str, **kw) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / name), **kw)


def _open_offline(browser, html_file: Path, width: int = 1100):
    """Open a report from its file with the network off; every request it makes is recorded."""
    ctx = browser.new_context(offline=True, viewport={"width": width, "height": 900})
    page = ctx.new_page()
    requests: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html_file.as_uri())
    return ctx, page, requests, errors


def _every_chart_drawn(page, expected: int) -> None:
    charts = page.locator(".js-plotly-plot")
    charts.first.wait_for(timeout=30_000)
    assert charts.count() == expected
    # each chart has drawn its SVG and at least one trace
    page.wait_for_function(
        f"""Array.from(document.querySelectorAll('.js-plotly-plot')).filter(
              g => g.querySelector('.main-svg') && g.querySelector('.trace, .heatmaplayer image')
           ).length === {expected}""",
        timeout=30_000,
    )


def test_run_report_renders_every_chart_offline(browser, tmp_path):
    from dashboards import build_run_report

    sc = load_scenario(
        ROOT / "scenarios" / "quickstart.toml",
        None if SHOTS else {"data.n_rows": 800, "run.max_time_s": 1_728_000},
    )
    report = build_run_report(run(sc, seed=sc.seed if SHOTS else 3).write(tmp_path))
    expected = report.read_text().count("Plotly.newPlot(")
    ctx, page, requests, errors = _open_offline(browser, report)
    _every_chart_drawn(page, expected)
    assert expected >= 5 and not errors
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
    assert page.locator("table.sortable tbody tr").count() == 5  # one row per agent
    # the sortable table sorts numerically: profit, descending after two clicks
    page.locator("table.sortable th", has_text="profit").first.click()
    page.locator("table.sortable th", has_text="profit").first.click()
    col = page.locator("table.sortable th").all_inner_texts().index("profit")
    profits = [
        float(t.replace(",", ""))
        for t in page.locator(f"table.sortable tbody tr td:nth-child({col + 1})").all_inner_texts()
    ]
    assert profits == sorted(profits, reverse=True)
    _shot(
        page, "run_report.png", full_page=True, clip={"x": 0, "y": 0, "width": 1100, "height": 1650}
    )
    ctx.close()


def test_sweep_report_renders_offline(browser, tmp_path):
    import polars as pl

    from dashboards import build_sweep_report

    rows = [
        {
            "run_id": f"r{cw}-{n}-{rep}",
            "replication": rep,
            "seed": rep,
            "mechanism.cost_weight": cw,
            "agents.attacker.count": n,
            "attacker_roi": 0.4 - 0.2 * cw + 0.05 * n + 0.01 * rep,
            "accuracy_drop_final": 0.02 * n / cw,
            "honest_profit": 500.0 * cw - 300 * n,
            "accuracy_final": 0.8,
            "money_conserved": True,
        }
        for cw in (1, 2, 4)
        for n in (1, 2, 4, 8)
        for rep in (0, 1)
    ]
    (tmp_path / "runs").mkdir()
    for r in rows:
        pl.DataFrame([r]).write_parquet(tmp_path / "runs" / f"{r['run_id']}.parquet")
    report = build_sweep_report(tmp_path)
    expected = report.read_text().count("Plotly.newPlot(")
    ctx, page, requests, errors = _open_offline(browser, report)
    _every_chart_drawn(page, expected)
    # three heatmaps, the frontier line, the k-of-n chart, and every run of each of the three
    # metrics by each of the two parameters
    assert expected == 3 + 1 + 1 + 3 * 2 and not errors
    assert page.locator(".heatmaplayer").count() >= 3
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
    # a header of the last table (the runs) sorts that table by its own column: every table
    # after the first sorted by another column, or raised, when the column was counted page-wide
    runs = page.locator("table.sortable").last
    heads = runs.locator("th").all_inner_texts()
    col = heads.index("attacker_roi")
    runs.locator("th").nth(col).click()
    got = [float(t) for t in runs.locator(f"tbody tr td:nth-child({col + 1})").all_inner_texts()]
    assert got == sorted(got) and len(got) == len(rows) and not errors
    ctx.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _points(page, chart: int = 0) -> int:
    """Points in the first trace of the ``chart``-th Plotly chart on the page."""
    return page.evaluate(f"document.querySelectorAll('.js-plotly-plot')[{chart}].data[0].x.length")


def _pause(page, within: float = 240.0) -> None:
    """Click pause once and wait until the play button is back (``within`` seconds).

    While playing, the server steps faster than a loaded browser draws, and the page falls behind
    (a CI failure; here, with the browser's CPU throttled 4x, the play button came back 46 s after
    the click). Pause toggles, so a second click on a "❚❚" the page has not yet redrawn would play
    again: one click, then a long wait. The click is forced, at the button's place: Playwright's wait for a "stable"
    button can outlast any timeout while the controls re-render after every step.
    """
    page.get_by_text("❚❚", exact=True).click(timeout=within * 500, force=True)
    page.get_by_text("▶", exact=True).wait_for(timeout=within * 1000)


def test_viz_server_loads_slider_step_and_reset(browser, tmp_path):
    port = _free_port()
    cli = [sys.executable, "-c", "from sum_abm.cli import main; main()", "viz", "--port", str(port)]
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(cli, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
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
        page = browser.new_page(
            viewport={"width": 1500, "height": 1000} if SHOTS else {"width": 1280, "height": 900}
        )
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(url)
        page.get_by_text("Step", exact=True).wait_for(timeout=60_000)
        page.get_by_text("Day 0.0").wait_for(timeout=60_000)
        page.wait_for_function(
            "document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=60_000
        )
        page.wait_for_function(
            # a slow browser first draws the chart empty, then its traces
            "(document.querySelectorAll('.js-plotly-plot')[0].data || []).length > 0",
            timeout=60_000,
        )
        before = _points(page)
        if not SHOTS:  # every chart fits its cell at 1280 pixels (a wider one was cut off)
            fits = page.evaluate(
                "Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => "
                "el.querySelector('.main-svg').getBoundingClientRect().width <= "
                "el.getBoundingClientRect().width)"
            )
            assert fits and all(fits), fits
        # move the deposit-weight slider (the third: after play and render interval) by clicking its track
        slider = page.locator(".v-slider").nth(2)
        value = page.locator(".v-slider input").nth(2)
        old = value.input_value()
        box = slider.bounding_box()
        page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2)
        page.wait_for_function(
            f"document.querySelectorAll('.v-slider input')[2].value != '{old}'", timeout=10_000
        )
        new = value.input_value()
        # a step advances the market one sampling interval (12 h) and the accuracy chart gains a point
        page.get_by_text("Step", exact=True).click()
        page.get_by_text("Day 0.5").wait_for(timeout=60_000)
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot')[0].data[0].x.length > {before}",
            timeout=30_000,
        )
        # Play runs the market until paused
        n = _points(page)
        page.get_by_text("▶", exact=True).click()
        page.wait_for_function(
            f"document.querySelectorAll('.js-plotly-plot')[0].data[0].x.length >= {n + 2}",
            timeout=60_000,
        )
        _pause(page)
        # Mesa 3.3's play thread, when pause arrives during its sleep between steps, wakes and steps
        # once more (its do_step takes the manual-step branch): let that step land on this market
        # rather than on the one Reset builds below (the play interval is 0.1 s)
        page.wait_for_timeout(1_500)
        # offline: the page and its scripts come from this server only (Solara's bundled assets)
        assert requests and all(
            u.startswith((url, f"ws://127.0.0.1:{port}/", "data:", "blob:")) for u in requests
        ), [u for u in requests if not u.startswith(url)]
        # ... and the server fetched nothing from the network for it (Solara proxies CDN files it lacks)
        assert "Could not load URL" not in log.read_text() and "cdn.jsdelivr" not in log.read_text()
        if SHOTS:  # ten simulated days of the quick-start market for the README
            for _ in range(19):
                page.get_by_text("Step", exact=True).click()
                time.sleep(1.0)
            page.wait_for_function(
                "document.querySelectorAll('.js-plotly-plot')[0].data[0].x.length >= 18",
                timeout=60_000,
            )
            time.sleep(2)
            _shot(page, "viz.png")
        # Reset rebuilds the market with the slider's value
        page.get_by_text("Reset", exact=True).click()
        page.get_by_text(f"deposit weight {new}").wait_for(timeout=60_000)
        page.get_by_text("Day 0.0").wait_for(timeout=60_000)
        page.close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # stop the server by its process id
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
