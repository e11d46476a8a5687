"""Open explorer pages in a real browser (headless Chromium driven by Playwright): for the
browser tests, the benchmark and the screenshots in docs/.

    with chromium() as browser:
        page, watch = open_page(browser, "plan.html")
        page.click("[data-toggle]"); page.screenshot(path="plan.png")
        assert watch.errors == [] and watch.requests == []

Needs the `browser` extra (`pip install -e '.[browser]'`: Playwright's Python package) and a
Chromium on the machine (Debian: `apt-get install chromium`); Playwright's own browser
download is never used. DAGNET_CHROMIUM names another Chromium binary.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import pathlib
import shutil
from dataclasses import dataclass, field

from dagnet.errors import DagnetError

#: headless flags for a machine without a display or a network (no background connections)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions"]
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The Chromium binary to drive: $DAGNET_CHROMIUM, else the first of NAMES on PATH."""
    given = os.environ.get("DAGNET_CHROMIUM")
    if given:
        return given if os.path.exists(given) else None
    return next((p for p in map(shutil.which, NAMES) if p), None)


def missing() -> str | None:
    """Why pages cannot be opened here (for a test's skip reason), or None."""
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed: pip install -e '.[browser]'"
    if find_chromium() is None:
        return "no Chromium on this machine: apt-get install chromium (or set DAGNET_CHROMIUM)"
    return None


@contextlib.contextmanager
def chromium():
    """A headless Chromium (Playwright Browser), closed on exit."""
    why = missing()
    if why:
        raise DagnetError(f"cannot open a browser: {why}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=find_chromium(), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """What a page did besides drawing: console errors, uncaught exceptions, requests for
    anything but the page itself (each one also blocked)."""

    errors: list = field(default_factory=list)
    requests: list = field(default_factory=list)


def open_page(browser, path, width: int = 1500, height: int = 950, timeout_ms: int = 30000,
              ready: str | None = "#app[data-ready]"):
    """(page, watch): the page at path, loaded until `ready` (a selector: by default the
    explorer saying it has drawn) is there."""
    url = pathlib.Path(path).resolve().as_uri()
    page = browser.new_page(viewport={"width": width, "height": height})
    watch = Watch()
    page.on("console", lambda m: watch.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(f"uncaught: {e}"))

    def route(r):
        if r.request.url == url:
            r.continue_()
        else:
            watch.requests.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.goto(url)
    if ready:
        page.locator(ready).wait_for(timeout=timeout_ms)
    return page, watch
