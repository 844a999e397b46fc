"""The playground page in headless Chromium (Debian's `chromium`, driven by Playwright; no
browser download): it loads from the server, runs a generation to the end while the canvas
denoises, and shows exactly the API's answer; in Refine mode a person's clicks and typing edit a
session while it forms. Saves screenshots as artifacts; with SCULPT_DOCS_SCREENSHOTS=1 also the
refine one into docs/images.

Skips (exit 77) when chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import sys
import unittest

import httpx

from sculpt_server import SOURCE_DIR, Server, pb

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - reported as a skip
    sync_playwright = None

ARTIFACTS = pathlib.Path(os.environ.get("SCULPT_ARTIFACTS_DIR", "build/test-artifacts"))
DOCS_IMAGES = SOURCE_DIR / "docs/images"


def open_page(playwright, server):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
    )
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(server.http_url + "/")
    return browser, page


def run_recording_masks(test, page):
    """Clicks Run and waits for the end, recording in window.masksSeen every "masks left" the
    page shows (the first when the request is accepted, before any step)."""
    page.evaluate("""() => {
          window.masksSeen = [];
          new MutationObserver(() => window.masksSeen.push(
              Number(document.getElementById('masks').textContent)))
            .observe(document.getElementById('masks'), {childList: true});
        }""")
    page.click("#run")
    page.wait_for_function(
        "document.getElementById('canvas').dataset.done !== 'false'", timeout=120_000
    )
    test.assertEqual(
        page.get_attribute("#canvas", "data-done"), "true", page.text_content("#error")
    )


def cell(position):
    return f'#canvas .cell[data-position="{position}"]'


def read_cells(page):
    """The refine canvas as the DOM shows it: one entry per answer position."""
    page.wait_for_function("document.querySelectorAll('#canvas .cell.loading').length === 0")
    return page.evaluate("""() => [...document.querySelectorAll('#canvas .cell')].map((cell) => ({
          position: Number(cell.dataset.position),
          token: cell.dataset.token === undefined ? null : Number(cell.dataset.token),
          masked: cell.classList.contains('mask'),
          pinned: cell.classList.contains('pinned'),
          text: cell.textContent,
          title: cell.title,
        }))""")


def answered(page, count):
    """Waits until the edit log has `count` entries and the last has its outcome; returns it."""
    page.wait_for_function(
        """(count) => {
          const items = document.querySelectorAll('#edit_log li');
          return items.length === count && items[count - 1].dataset.outcome !== 'pending';
        }""",
        arg=count,
        timeout=30_000,
    )
    return page.evaluate(
        """(count) => {
          const item = document.querySelectorAll('#edit_log li')[count - 1];
          return {outcome: item.dataset.outcome, what: item.querySelector('.what').textContent,
                  text: item.querySelector('.outcome').textContent};
        }""",
        count,
    )


def drag(page, first, last):
    start = page.locator(cell(first)).bounding_box()
    end = page.locator(cell(last)).bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=8)
    page.mouse.up()


def wait_text(page, selector, text):
    page.wait_for_function(
        "([selector, text]) => document.querySelector(selector).textContent === text",
        arg=[selector, text],
        timeout=30_000,
    )


def sse_events(text):
    events = []
    for record in text.split("\n\n"):
        name, data = None, ""
        for line in record.split("\n"):
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data += line[len("data: ") :]
        if data:
            events.append((name, json.loads(data)))
    return events


def replay(events, mask_id):
    """The answer rebuilt from a refine stream as refine_test.replay does it: drafts' spans and
    edits' splices."""
    answer = []
    for name, data in events:
        if name == "accepted":
            answer = [mask_id] * data["gen_length"]
        elif name == "step":
            for span in data["changed"]:
                start = span["position"]
                answer[start : start + len(span["token_ids"])] = span["token_ids"]
        elif name == "edit" and data["code"] == 0 and "changed" in data:
            start = data["changed"]["position"]
            answer[start : start + data["removed"]] = data["changed"]["token_ids"]
    return answer


def rare_word(cells):
    """A word that few unpinned tokens hold and no pinned token does (to ban it and still see
    most of the draft)."""
    locked = [c["text"] for c in cells if c["pinned"]]
    words = [
        c["text"].strip()
        for c in cells
        if not c["masked"] and not c["pinned"] and re.fullmatch(r"\s*\w{3,}", c["text"])
    ]
    words = [w for w in words if not any(w in text for text in locked)]
    return min(words, key=words.count)


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
                json={
                    "prompt": "def add(a, b):",
                    "gen_length": 48,
                    "steps": 24,
                    "block_length": 24,
                    "seed": 5,
                    "remasking": "low_confidence",
                    "confidence_threshold": 0.9,
                    "temperature": 0,
                },
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

    def test_a_server_with_keys_takes_the_key_from_the_page(self):
        key = "sk-playground-0123456789"
        server = Server("--api-key", key)
        try:
            with sync_playwright() as playwright:
                browser, page = open_page(playwright, server)
                page.fill("#gen_length", "8")
                page.fill("#block_length", "8")
                page.fill("#steps", "4")
                page.click("#run")
                page.wait_for_function(
                    "document.getElementById('canvas').dataset.done !== 'false'", timeout=60_000
                )
                refused = page.get_attribute("#canvas", "data-done")
                message = page.text_content("#error")
                page.fill("#api_key", key)
                page.dispatch_event("#api_key", "change")
                run_recording_masks(self, page)
                stored = page.evaluate("sessionStorage.getItem('sculpt_api_key')")
                browser.close()
            self.assertEqual(refused, "error")
            self.assertIn("API key", message)
            self.assertEqual(stored, key)
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

    def test_refine_mode_makes_each_kind_of_edit_through_the_page(self):
        server = Server()

        def tokens(text):
            return list(server.stub.Tokenize(pb.TokenizeRequest(text=text), timeout=10).token_ids)

        def ids(cells):
            return [c["token"] for c in cells]

        def masked(cells):
            return [c["position"] for c in cells if c["masked"]]

        try:
            with sync_playwright() as playwright:
                browser, page = open_page(playwright, server)
                posted = []

                def record_edits(request):
                    if request.url.endswith("/edits"):
                        posted.extend(json.loads(request.post_data)["edits"])

                page.on("request", record_edits)
                page.check('input[name="run"][value="refine"]')
                self.assertEqual(page.text_content("#run"), "Start refining")
                self.assertTrue(page.is_checked("#start_paused"))
                page.fill("#input", "def add(a, b):")
                page.fill("#gen_length", "24")
                # The first 24 steps commit the answer; the others keep the session open to edit.
                page.fill("#steps", str(1 << 16))
                page.fill("#block_length", "24")
                page.fill("#seed", "5")
                with page.expect_response(lambda r: r.url.endswith("/v1/refine")) as stream:
                    page.click("#run")
                wait_text(page, "#status", "paused after step 0")
                start = read_cells(page)
                self.assertEqual(masked(start), list(range(24)))
                self.assertEqual(start[3]["title"], "position 3, masked")

                # Resume, let the answer form, pause: every edit below meets a draft at rest.
                page.click("#resume")
                self.assertEqual(
                    answered(page, 1),
                    {"outcome": "applied", "what": "resume", "text": "applied after step 0"},
                )
                wait_text(page, "#masks", "0")
                page.click("#pause")
                pause = answered(page, 2)
                paused_at = int(re.fullmatch(r"applied after step (\d+)", pause["text"]).group(1))
                self.assertGreaterEqual(paused_at, 24)
                applied = f"applied after step {paused_at}"
                wait_text(page, "#status", f"paused after step {paused_at}")
                formed = read_cells(page)
                self.assertEqual(masked(formed), [])
                self.assertEqual(formed[3]["title"], "position 3")

                # A click remasks one token, against the revision on the screen.
                revision = int(page.text_content("#revision"))
                page.click(cell(2))
                self.assertEqual(
                    answered(page, 3),
                    {"outcome": "applied", "what": "remask position 2", "text": applied},
                )
                self.assertEqual(posted[-1]["remask"], {"position": 2, "length": 1})
                self.assertEqual(posted[-1]["revision"], revision)
                remasked = read_cells(page)
                self.assertEqual(masked(remasked), [2])
                self.assertEqual(ids(remasked[3:]), ids(formed[3:]))

                # A drag selects 5-7; the replace grows the answer and moves what follows.
                drag(page, 5, 7)
                self.assertEqual(page.text_content("#selection"), "selected: positions 5\u20137")
                page.fill("#edit_text", "x<|mask:3|>y")
                page.click("#replace")
                inserted = tokens("x") + [None] * 3 + tokens("y")
                grown = 24 - 3 + len(inserted)
                self.assertEqual(
                    answered(page, 4),
                    {
                        "outcome": "applied",
                        "what": "replace positions 5\u20137 with \u201cx<|mask:3|>y\u201d",
                        "text": f"{applied}; the answer is now {grown} tokens",
                    },
                )
                replaced = read_cells(page)
                after_replace = 5 + len(inserted)
                self.assertEqual(len(replaced), grown)
                self.assertEqual(ids(replaced[:5]), ids(remasked[:5]))
                self.assertEqual(ids(replaced[5:after_replace]), inserted)
                self.assertEqual(ids(replaced[after_replace:]), ids(formed[8:]))
                # The text a replace writes is locked (pinned) too; its masks are not.
                self.assertEqual(
                    [c["pinned"] for c in replaced[5:after_replace]],
                    [token is not None for token in inserted],
                )

                # Shift-click, shift-click selects a span; the pin writes its text from the start.
                pin_at = after_replace + 1
                page.click(cell(pin_at), modifiers=["Shift"])
                page.click(cell(pin_at + 2), modifiers=["Shift"])
                self.assertEqual(
                    page.text_content("#selection"),
                    f"selected: positions {pin_at}\u2013{pin_at + 2}",
                )
                page.fill("#edit_text", " return a")
                page.click("#pin")
                self.assertEqual(
                    answered(page, 5),
                    {
                        "outcome": "applied",
                        "what": f"pin \u201c return a\u201d at position {pin_at}",
                        "text": applied,
                    },
                )
                pinned_ids = tokens(" return a")
                pin_end = pin_at + len(pinned_ids)
                pinned = read_cells(page)
                self.assertEqual(len(pinned), grown)
                self.assertEqual(ids(pinned[pin_at:pin_end]), pinned_ids)
                self.assertTrue(all(c["pinned"] for c in pinned[pin_at:pin_end]))
                self.assertEqual(pinned[pin_at]["title"], f"position {pin_at}, pinned")
                self.assertEqual(ids(pinned[pin_end:]), ids(replaced[pin_end:]))

                # A selected span remasked with the button.
                span_at = pin_end + 1
                drag(page, span_at, span_at + 2)
                page.click("#remask")
                self.assertEqual(
                    answered(page, 6),
                    {
                        "outcome": "applied",
                        "what": f"remask positions {span_at}\u2013{span_at + 2}",
                        "text": applied,
                    },
                )
                spans_remasked = read_cells(page)
                replace_masks = [5 + k for k, token in enumerate(inserted) if token is None]
                self.assertEqual(
                    masked(spans_remasked), [2, *replace_masks, *range(span_at, span_at + 3)]
                )

                # A ban over the whole answer remasks every unpinned token holding the word.
                word = rare_word(spans_remasked)
                holding = [
                    c["position"] for c in spans_remasked if not c["masked"] and word in c["text"]
                ]
                self.assertTrue(holding)
                page.fill("#ban_text", word)
                page.click("#ban")
                self.assertEqual(
                    answered(page, 7),
                    {"outcome": "applied", "what": f"ban \u201c{word}\u201d", "text": applied},
                )
                self.assertEqual(
                    posted[-1]["ban"], {"position": 0, "length": grown, "strings": [word]}
                )
                banned = read_cells(page)
                self.assertEqual(masked(banned), sorted(masked(spans_remasked) + holding))
                self.assertEqual(page.text_content("#bans li"), f"\u201c{word}\u201dLift")

                # A span selected before its draft changed: the replace is refused as stale.
                stale = next(c["position"] for c in banned if not c["masked"] and not c["pinned"])
                drag(page, stale, stale + 1)
                page.click(cell(stale))
                self.assertEqual(answered(page, 8)["text"], applied)
                page.fill("#edit_text", "zz")
                page.click("#replace")
                refused = answered(page, 9)
                self.assertEqual(refused["outcome"], "refused")
                self.assertIn(f"answer position {stale} changed at revision", refused["text"])
                self.assertEqual(len(read_cells(page)), grown)

                ARTIFACTS.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(ARTIFACTS / "playground-refine.png"), full_page=True)
                if os.environ.get("SCULPT_DOCS_SCREENSHOTS") == "1":
                    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(DOCS_IMAGES / "playground-refine.png"), full_page=True)

                # An edit the server cannot build is answered in the log too.
                page.fill("#ban_text", "\u2603\u2603\u2603")
                page.click("#ban")
                refused = answered(page, 10)
                self.assertEqual(refused["outcome"], "refused")
                self.assertIn("no token to ban", refused["text"])

                # Resumed, the model fills every mask around what was locked, never with the word.
                locked = read_cells(page)
                page.click("#resume")
                self.assertEqual(answered(page, 11)["outcome"], "applied")
                wait_text(page, "#masks", "0")
                refilled = read_cells(page)
                for before, now in zip(locked, refilled):
                    if before["pinned"] or not before["masked"]:
                        self.assertEqual(now["token"], before["token"], now["position"])
                    else:
                        self.assertNotIn(word, now["text"], now["position"])

                page.click("#bans button")
                self.assertEqual(answered(page, 12)["what"], f"lift the ban on \u201c{word}\u201d")
                self.assertEqual(page.locator("#bans li").count(), 0)
                page.click("#pause")
                self.assertEqual(answered(page, 13)["outcome"], "applied")
                # Finish while paused: the page resumes too, for the finishing step to run.
                page.click("#finish")
                answered(page, 15)
                page.wait_for_function(
                    "document.getElementById('canvas').dataset.done !== 'false'", timeout=60_000
                )
                self.assertEqual(
                    page.get_attribute("#canvas", "data-done"), "true", page.text_content("#error")
                )
                log = page.evaluate(
                    """() => [...document.querySelectorAll('#edit_log li')].map(
                        (item) => [item.querySelector('.what').textContent, item.dataset.outcome])"""
                )
                self.assertEqual(
                    log[13:], [["finish", "applied"], ["resume (to finish)", "applied"]]
                )
                final_text = page.text_content("#final")
                status = page.text_content("#status")
                end = read_cells(page)
                events = sse_events(stream.value.text())
                browser.close()
            self.assertTrue(status.startswith("done: length"), status)
            self.assertEqual(len(end), grown)
            self.assertEqual(masked(end), [])
            for position, token in enumerate(inserted, start=5):
                if token is not None:
                    self.assertEqual(end[position]["token"], token, position)
            self.assertEqual(ids(end[pin_at:pin_end]), pinned_ids)
            # The canvas the page rebuilt is the stream's replay and the final event's answer.
            name, final = events[-1]
            self.assertEqual(name, "final")
            self.assertEqual(ids(end), replay(events, server.info().model.mask_token_id))
            self.assertEqual(ids(end), final["token_ids"])
            # The body as Chromium hands it over is read as Latin-1 (the stream names no charset),
            # so the final text is compared as the server decodes the final tokens.
            decoded = server.stub.Detokenize(
                pb.DetokenizeRequest(token_ids=final["token_ids"], skip_special_tokens=True),
                timeout=10,
            )
            self.assertEqual(final_text, decoded.text)
            self.assertEqual(len(posted), 15)
            self.assertTrue(all(isinstance(edit["revision"], int) for edit in posted), posted)
            self.assertTrue((ARTIFACTS / "playground-refine.png").stat().st_size > 0)
        finally:
            server.stop()


if __name__ == "__main__":
    if CHROMIUM is None or sync_playwright is None:
        print("SKIPPED: playground test needs chromium (apt) and playwright (pip)")
        sys.exit(77)
    unittest.main()
