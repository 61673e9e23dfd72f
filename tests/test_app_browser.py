"""End to end in a real headless browser: `tinyscale app` on a small generated study, Debian's
chromium driven by Playwright (no browser download). Moves the slider, checks the recipe shown
against the library, downloads recipe.json, saves a screenshot, checks that a recipe update
after a slider move takes well under a second, and that a trial finishing while the page is
open shows up without a reload.

Set TINYSCALE_SCREENSHOT=path to keep the screenshot.
"""

from __future__ import annotations

import json
import os
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from _app_browser import (CHROMIUM, VIEWPORT, expected_recipe, launch, metric, move_and_time, open_app, serve,
                          shown_recipe, slider_target)
from _app_fixtures import fitted_study

# A bound on "the page answers a slider move at all", loose enough for any machine CI gets (a
# machine 2.5x slower than ours took a median 1.1 s); the speed itself is measured, as a ratio
# against the naive page, by benchmarks/bench_app.py (RESULTS.md, "app").
UPDATE_BUDGET_S = 4.0

from _ci import skip_unless_ci  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _needs_chromium():
    if not Path(CHROMIUM).exists():
        skip_unless_ci(f"no browser at {CHROMIUM} (scripts/setup.sh installs Debian's chromium)")


def test_browser_slider_download_screenshot(tmp_path):
    from playwright.sync_api import sync_playwright

    from tinyscale.fit.solve import RecipeSolver

    from tinyscale.study.store import Study

    study = fitted_study(tmp_path / "src", tmp_path / "study")
    solver = RecipeSolver.load(study)
    with Study.open(study) as s:  # a trial in flight: the study is still running
        s.start_trial(100, s.config.recipe(0.6, 0.6, 0.6), seed=100)
    with serve(study, tmp_path / "server.log") as url, sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            open_app(page, url)
            slider = page.get_by_role("slider")
            before = shown_recipe(page)
            assert before == expected_recipe(solver.solve(slider_target(slider)))

            times = move_and_time(page, solver, moves=6)
            answer = solver.solve(slider_target(slider))
            assert shown_recipe(page) == expected_recipe(answer) != before

            with page.expect_download(timeout=60_000) as info:
                page.get_by_role("button", name="recipe.json").click()
            saved = tmp_path / "recipe.json"
            info.value.save_as(saved)
            manifest = json.loads(saved.read_text())
            assert manifest["recipe"] == answer.recipe.to_dict()
            assert manifest["macs"] == answer.macs and manifest["params"] == answer.params

            shot = Path(os.environ.get("TINYSCALE_SCREENSHOT") or tmp_path / "app.png")
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000

            # The running trial completes: the page shows it without a reload.
            assert metric(page, "completed") == "24"
            with Study.open(study) as s:
                s.finish_trial(100, SimpleNamespace(accuracy=0.7, loss=1.0, steps=10, images_seen=None,
                                                    train_seconds=0.1, eval_seconds=0.01, images_per_second=None))
            page.get_by_text("the saved fit predates 1 newer completed trial").wait_for(timeout=60_000)
            assert metric(page, "completed") == "25"
        finally:
            browser.close()
    # Stopping `tinyscale app` stops the Streamlit server it started (no orphan left serving).
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/_stcore/health", timeout=5)
    print(f"\nrecipe update after a slider move: {', '.join(f'{t * 1000:.0f} ms' for t in times)}")
    # The median, not the max: CI machines are shared and one slow frame is not the app.
    assert sorted(times)[len(times) // 2] < UPDATE_BUDGET_S, times
