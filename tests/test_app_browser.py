"""End to end in a real headless browser: `tinyscale app` on a small generated study, Debian's
chromium driven by Playwright (no browser download). Moves the slider, checks the recipe shown
against the library, downloads recipe.json, saves a screenshot and measures how long a recipe
update takes after a slider move.

Set TINYSCALE_SCREENSHOT=path to keep the screenshot (docs/screenshot.png is made this way).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from _app_fixtures import fitted_study

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
UPDATE_BUDGET_S = 1.0  # a recipe update after a slider move must take well under this

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is installed by scripts/setup.sh"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    study = fitted_study(tmp_path / "src", tmp_path / "study")
    port = free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "tinyscale.cli", "app", "--study", str(study), "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("the app did not start:\n" + (tmp_path / "server.log").read_text())
                time.sleep(0.3)
        yield url, study
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def shown_recipe(page) -> tuple[str, str, str, str]:
    return tuple(metric(page, k) for k in ("r (resolution)", "w (width)", "d (depth)", "MACs"))


def wait_idle(page) -> None:
    """Until Streamlit has no script run in flight (its status widget shows 'Running' then)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
        " || !document.querySelector('[data-testid=\"stStatusWidget\"]').innerText.includes('Running')",
        timeout=60_000)


def test_browser_slider_download_screenshot(server, tmp_path):
    from playwright.sync_api import sync_playwright

    from tinyscale.solve import RecipeSolver

    url, study = server
    solver = RecipeSolver.load(study)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1500, "height": 1050}, accept_downloads=True)
            page.goto(url)
            page.get_by_role("button", name="recipe.json").wait_for(timeout=120_000)
            page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
            wait_idle(page)
            slider = page.get_by_role("slider")
            before = shown_recipe(page)

            # Move the slider with the keyboard; time from the key press until the page shows the
            # library's recipe for the slider's new position.
            times = []
            for _ in range(6):
                old_target = slider.get_attribute("aria-valuetext")
                start = time.perf_counter()
                slider.press("ArrowLeft")
                page.wait_for_function("([el, old]) => el.getAttribute('aria-valuetext') !== old",
                                       arg=[slider.element_handle(), old_target], timeout=10_000)
                c = float(slider.get_attribute("aria-valuetext").split(" ")[0])
                answer = solver.solve(c)
                expected = [f"{answer.recipe.r:g}", f"{answer.recipe.w:g}", f"{answer.recipe.d:g}",
                            f"{answer.macs / 1e6:.3f}M"]
                page.wait_for_function(
                    "want => { const v = [...document.querySelectorAll('[data-testid=\"stMetric\"]')]"
                    ".map(e => e.innerText); return want.every(w => v.some(t => t.includes(w))); }",
                    arg=expected, timeout=30_000)
                times.append(time.perf_counter() - start)
                wait_idle(page)
            after = shown_recipe(page)
            assert after != before
            assert after == tuple(expected)

            with page.expect_download(timeout=60_000) as info:
                page.get_by_role("button", name="recipe.json").click()
            saved = tmp_path / "recipe.json"
            info.value.save_as(saved)
            manifest = json.loads(saved.read_text())
            assert manifest["recipe"] == answer.recipe.to_dict()
            assert manifest["macs"] == answer.macs

            shot = Path(os.environ.get("TINYSCALE_SCREENSHOT") or tmp_path / "app.png")
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
    print(f"\nrecipe update after a slider move: {', '.join(f'{t * 1000:.0f} ms' for t in times)}")
    # The median, not the max: CI machines are shared and one slow frame is not the app.
    assert sorted(times)[len(times) // 2] < UPDATE_BUDGET_S, times
