"""Driving the design assistant in Debian's chromium (Playwright, no browser download): start
`tinyscale app` on a study, open it, move the slider and time each recipe update. Shared by the
end-to-end test and `benchmarks/bench_app.py`."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1500, "height": 1050}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(study: Path, log_path: Path, startup_s: float = 90.0):
    """`tinyscale app --study STUDY` on a free localhost port; yields the URL, stops it after."""
    port = free_port()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tinyscale.cli", "app", "--study", str(study), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_s
            while True:
                try:
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=1)
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the app did not start:\n" + Path(log_path).read_text())
                    time.sleep(0.3)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_idle(page) -> None:
    """Until Streamlit has no script run in flight (its status widget says 'Running' then)."""
    page.wait_for_function(
        "() => { const w = document.querySelector('[data-testid=\"stStatusWidget\"]');"
        " return !w || !w.innerText.includes('Running'); }", timeout=60_000)


def open_app(page, url: str) -> None:
    """Load the page and wait until the recipe, the downloads and the curves are drawn."""
    page.goto(url)
    page.get_by_role("button", name="recipe.json").wait_for(timeout=120_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    wait_idle(page)


def metric(page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]').filter(has_text=label)
    return box.locator('[data-testid="stMetricValue"]').inner_text().strip()


def shown_recipe(page) -> tuple[str, str, str, str]:
    return tuple(metric(page, k) for k in ("r (resolution)", "w (width)", "d (depth)", "MACs"))


def expected_recipe(answer) -> tuple[str, str, str, str]:
    """How the page prints a solver answer (the recipe panel's formats)."""
    return (f"{answer.recipe.r:g}", f"{answer.recipe.w:g}", f"{answer.recipe.d:g}", f"{answer.macs / 1e6:.3f}M")


def slider_target(slider) -> float:
    return float(slider.get_attribute("aria-valuetext").split(" ")[0])


def move_and_time(page, solver, moves: int, key: str = "ArrowLeft") -> list[float]:
    """Press ``key`` on the slider ``moves`` times; for each, the seconds from the key press until
    the page shows the library's recipe for the slider's new position. A move whose recipe
    equals the one on screen (same network at the neighbouring target) is checked, not timed."""
    slider = page.get_by_role("slider")
    times = []
    for _ in range(moves):
        old = slider.get_attribute("aria-valuetext")
        shown_before = list(shown_recipe(page))
        start = time.perf_counter()
        slider.press(key)
        page.wait_for_function("([el, old]) => el.getAttribute('aria-valuetext') !== old",
                               arg=[slider.element_handle(), old], timeout=10_000)
        solve_start = time.perf_counter()
        want = list(expected_recipe(solver.solve(slider_target(slider))))
        solve_s = time.perf_counter() - solve_start  # ours, not the page's: left out of the time
        page.wait_for_function(
            "want => { const v = [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
            ".map(e => e.innerText.trim()); return want.every(w => v.includes(w)); }",
            arg=want, timeout=30_000)
        if want != shown_before:
            times.append(time.perf_counter() - start - solve_s)
        wait_idle(page)
    return times
