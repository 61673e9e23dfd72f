"""Design assistant: what one slider move costs, on the server and in a real browser.

    .venv/bin/python benchmarks/bench_app.py [--moves 12]

Builds a synthetic study (24 completed trials on a known front + 1 failed, fit saved), then

1. server side, per slider move: ours = what the page's fragment reruns (the cached solver's
   `solve(c)`, the recipe summary, the r/w/d figure with the target marked, serialised to
   JSON); naive = the same page without caches (open the study, read the trials, load the fit,
   solve the r/w/d curves, the EfficientNet curve and TinyNets, select the Pareto models, then
   the same per-move work). Printed side by side with the ratio.
2. in the browser: `tinyscale app` served on localhost, Debian's chromium (Playwright) presses
   the slider's arrow key ``--moves`` times; each time is from the key press until the page
   shows the library's recipe for the slider's new position.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from _app_browser import VIEWPORT, launch, move_and_time, open_app, serve  # noqa: E402
from _app_fixtures import fitted_study  # noqa: E402

from tinyscale.assistant import answers as assistant, fit_source, plots  # noqa: E402
from tinyscale.fit.pareto import select  # noqa: E402
from tinyscale.study.store import Study  # noqa: E402
from tinyscale.space.summary import summarize  # noqa: E402


def page_inputs(study_dir: Path):
    """What the page computes once per fit (the cached part)."""
    with Study.open(study_dir) as study:
        trials, config = study.trials(), study.config
    source = fit_source.load_fit(study_dir, trials, config)
    completed = [t for t in trials if t.state == "completed"]
    return source, assistant.curves(source, config), completed


def per_move(source, drawn, completed, c: float) -> None:
    """What the page's fragment reruns on a slider move."""
    answer = source.solver.solve(c)
    summarize(answer.recipe)
    plots.scaling_figure(drawn.answers, completed, fit_source.fit_models(source, completed), drawn.efficientnet,
                         drawn.tinynets, answer).to_json()


def naive_move(study_dir: Path, c: float) -> None:
    source, drawn, completed = page_inputs(study_dir)
    select(completed, source.solver.fit.k)
    per_move(source, drawn, completed, c)


def ms(x: float) -> str:
    return f"{x * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=12)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        study_dir = fitted_study(tmp / "src", tmp / "study")
        source, drawn, completed = page_inputs(study_dir)
        stops = drawn.stops
        targets = stops[10:: max(1, (len(stops) - 20) // args.moves)][: args.moves]

        ours, naive = [], []
        for c in targets:
            start = time.perf_counter()
            per_move(source, drawn, completed, c)
            ours.append(time.perf_counter() - start)
        for c in targets[:4]:  # seconds each: four are enough for a median
            start = time.perf_counter()
            naive_move(study_dir, c)
            naive.append(time.perf_counter() - start)
        print(f"server side, per slider move ({len(targets)} targets; naive: {len(naive)})")
        print(f"  {'':34}{'median':>10}{'max':>10}")
        print(f"  {'ours (cached solver and curves)':34}{ms(statistics.median(ours)):>10}{ms(max(ours)):>10}")
        print(f"  {'naive (no caches)':34}{ms(statistics.median(naive)):>10}{ms(max(naive)):>10}")
        print(f"  ratio: {statistics.median(naive) / statistics.median(ours):.0f}x")

        from playwright.sync_api import sync_playwright

        with serve(study_dir, tmp / "server.log") as url, sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport=VIEWPORT)
            open_app(page, url)
            times = move_and_time(page, source.solver, args.moves)
            browser.close()
        times.sort()
        print(f"browser: key press -> library's recipe on screen, {len(times)} moves")
        print(f"  median {ms(statistics.median(times))}, p90 {ms(times[int(0.9 * (len(times) - 1))])}, "
              f"max {ms(times[-1])}, min {ms(times[0])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
