"""Screenshot of the design assistant on a study (how docs/screenshot.png is made).

    .venv/bin/python scripts/app_screenshot.py [--study demo-study] [--out docs/screenshot.png]

Serves `tinyscale app --study STUDY` on a free localhost port, opens it in Debian's chromium
(Playwright, headless, no browser download), waits until the recipe and the curves are drawn,
and saves a 1500x1050 screenshot.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from _app_browser import VIEWPORT, launch, open_app, serve  # noqa: E402

from tinyscale.commands.app import DEMO_STUDY_DIR  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=DEMO_STUDY_DIR)
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, serve(Path(args.study), Path(tmp) / "server.log") as url, \
            sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport=VIEWPORT)
        open_app(page, url)
        page.screenshot(path=args.out)
        browser.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
