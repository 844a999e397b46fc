"""The playground page in headless Chromium (Debian's `chromium`, driven by Playwright; no
browser download): it loads from the server, runs a generation to the end while the canvas
denoises, and shows exactly the API's answer. Saves a screenshot as an artifact.

Skips (exit 77) when chromium or Playwright is missing.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys
import unittest

import httpx

from sculpt_server import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - reported as a skip
    sync_playwright = None

ARTIFACTS = pathlib.Path(os.environ.get("SCULPT_ARTIFACTS_DIR", "build/test-artifacts"))


def open_page(playwright, server):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(server.http_url + "/")
    return browser, page


def run_recording_masks(test, page):
    """Clicks Run and waits for the end, recording in window.masksSeen every "masks left" the
    page shows (the first when the request is accepted, before any step)."""
    page.evaluate(
        """() => {
          window.masksSeen = [];
          new MutationObserver(() => window.masksSeen.push(
              Number(document.getElementById('masks').textContent)))
            .observe(document.getElementById('masks'), {childList: true});
        }"""
    )
    page.click("#run")
    page.wait_for_function("document.getElementById('canvas').dataset.done !== 'false'",
                           timeout=120_000)
    test.assertEqual(page.get_attribute("#canvas", "data-done"), "true",
                     page.text_content("#error"))


class PlaygroundTest(unittest.TestCase):
    def test_page_denoises_live_and_shows_the_api_answer(self):
        server = Server()
        try:
            with sync_playwright() as playwright:
                browser, page = open_page(playwright, server)
                self.assertEqual(page.title(), "Sculpt playground")
                page.fill("#input", "def add(a, b):")
                page.fill("#gen_length", "48")
                page.fill("#steps", "24")
                page.fill("#block_length", "24")
                page.fill("#seed", "5")
                run_recording_masks(self, page)
                shown = page.text_content("#final")
                steps = page.text_content("#step")
                masks_seen = page.evaluate("window.masksSeen")
                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "playground.png"), full_page=True)
                browser.close()
            api = httpx.post(
                server.http_url + "/v1/generate",
                json={"prompt": "def add(a, b):", "gen_length": 48, "steps": 24,
                      "block_length": 24, "seed": 5, "remasking": "low_confidence",
                      "confidence_threshold": 0.9, "temperature": 0},
                timeout=120,
            ).json()
            self.assertEqual(shown, api["text"])
            self.assertEqual(steps, "24")
            # The canvas was seen denoising: masks went down through intermediate states.
            self.assertGreater(len(set(masks_seen)), 2, masks_seen)
            self.assertEqual(masks_seen, sorted(masks_seen, reverse=True))
            self.assertEqual(masks_seen[-1], 0)
            self.assertTrue((ARTIFACTS / "playground.png").stat().st_size > 0)
        finally:
            server.stop()

    def test_infill_shows_the_kept_text_as_text_and_only_the_masks_as_masks(self):
        server = Server()
        template = "def add(a, b):\n    return <|mask:6|>\n"
        try:
            with sync_playwright() as playwright:
                browser, page = open_page(playwright, server)
                page.select_option("#mode", "infill")
                page.fill("#input", template)
                page.fill("#steps", "6")
                run_recording_masks(self, page)
                masks_seen = page.evaluate("window.masksSeen")
                shaded = page.locator("#canvas .mask").count()
                canvas_text = page.text_content("#canvas")
                browser.close()
            self.assertEqual(masks_seen[0], 6, masks_seen)  # only the template's masks
            self.assertEqual(shaded, 0)
            self.assertIn("def add(a, b):", canvas_text)
            self.assertIn("return", canvas_text)
        finally:
            server.stop()


if __name__ == "__main__":
    if CHROMIUM is None or sync_playwright is None:
        print("SKIPPED: playground test needs chromium (apt) and playwright (pip)")
        sys.exit(77)
    unittest.main()
