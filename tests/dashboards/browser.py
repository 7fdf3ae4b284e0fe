"""Open a built dashboards site in headless Chromium: Debian's `chromium`, driven by Playwright
(`chromium.launch(executable_path=...)`: Playwright downloads no browser of its own here).

`Browser.open` loads a page from a local static server, waits until the page says it has drawn
(`body[data-ready]`) and reports every console error, page error and failed or refused request.
"""

from __future__ import annotations

import functools
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """`folder` on http://127.0.0.1:PORT (a free port) while the block runs; yields the URL."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Visit:
    """What a page showed: its big figures by title and the problems met loading it."""

    figures: dict[str, str]
    problems: list[str] = field(default_factory=list)


class Browser:
    def __init__(self, page: Any) -> None:
        self.page = page

    def open(self, url: str, screenshot: Path) -> Visit:
        page = self.page
        problems: list[str] = []
        handlers = {
            "console": lambda message: (
                problems.append(f"console: {message.text}") if message.type == "error" else None
            ),
            "pageerror": lambda error: problems.append(f"page error: {error}"),
            "requestfailed": lambda request: problems.append(f"failed: {request.url}"),
            "response": lambda response: (
                problems.append(f"{response.status}: {response.url}")
                if response.status >= 400
                else None
            ),
        }
        for event, handler in handlers.items():
            page.on(event, handler)
        try:
            page.goto(url)
            page.wait_for_selector("body[data-ready]", timeout=20_000)
            page.screenshot(path=str(screenshot), full_page=True)
            figures = page.eval_on_selector_all(
                ".aa-bigvalue",
                "nodes => nodes.map(n => [n.dataset.title, n.lastChild.textContent])",
            )
        finally:
            for event, handler in handlers.items():
                page.remove_listener(event, handler)
        return Visit(dict(figures), problems)

    def choose(self, option: str) -> dict[str, str]:
        """Pick `option` in the page's drop-down; the big figures then shown, by title."""
        self.page.select_option("select", option)
        return dict(
            self.page.eval_on_selector_all(
                ".aa-bigvalue",
                "nodes => nodes.map(n => [n.dataset.title, n.lastChild.textContent])",
            )
        )


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium page; skips the test when Chromium or Playwright is missing."""
    if CHROMIUM is None:
        pytest.skip("no chromium: `apt-get install -y chromium` (Debian)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[dev]'")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            yield Browser(browser.new_page(viewport={"width": 1200, "height": 800}))
        finally:
            browser.close()


def screenshots(site: Path, folder: Path, prefix: str) -> None:
    """Every page of a built `site` as folder/PREFIX-PAGE.png; AssertionError on a problem."""
    folder.mkdir(parents=True, exist_ok=True)
    with chromium() as browser, serve(site) as url:
        for page in sorted(site.glob("*.html")):
            visit = browser.open(f"{url}/{page.name}", folder / f"{prefix}-{page.stem}.png")
            assert visit.problems == [], (page.name, visit.problems)


if __name__ == "__main__":
    # The docs' pictures: python -m tests.dashboards.browser SITE FOLDER PREFIX
    screenshots(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3])
