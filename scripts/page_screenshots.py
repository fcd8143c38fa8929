"""Screenshots of the search page answering a sample-corpus question, desktop and phone width
(docs/images/page-desktop.png, page-phone.png), for the README and docs/service.md.

    python scripts/page_screenshots.py [--out docs/images] [--chromium /usr/bin/chromium]

Builds a store of data/sample_corpus in a temporary folder, serves it on loopback and drives
Debian's chromium with Playwright (``pip install '.[browser]'``); also prints the page's time to
first answer (the question typed, Enter pressed, until the answer is on screen).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from playwright.sync_api import sync_playwright

from qa_system import QASystem, load_settings
from qa_system.service.app import create_app
from qa_system.service.settings import ServiceSettings
from tests.service_support import ServerThread
from tests.support import SAMPLE_CORPUS

QUESTION = "How much does the Plus plan cost per month?"
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as store:
        system = QASystem(load_settings(store_dir=store)).load()
        system.ingest([SAMPLE_CORPUS])
        with ServerThread(create_app(system=system, service_settings=ServiceSettings())) as server, \
                sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
            for name, viewport in SIZES.items():
                page = browser.new_page(viewport=viewport, device_scale_factor=1)
                page.goto(server.url + "/")
                page.fill("#q", QUESTION)
                began = time.perf_counter()
                page.keyboard.press("Enter")
                page.wait_for_selector("ol.answers mark")
                print(f"{name}: first answer on screen {time.perf_counter() - began:.2f} s after Enter")
                path = args.out / f"page-{name}.png"
                page.screenshot(path=str(path), full_page=name == "desktop")
                print(f"wrote {path}")
            browser.close()
        system.close()


if __name__ == "__main__":
    main()
