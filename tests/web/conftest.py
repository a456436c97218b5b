"""Fixtures of the browser tests: one Chromium per module, pages watched by
web_support.Watch, screenshots under test-output/web/ (or $CRITIC_TEST_OUTPUT/web/)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from web_support import CHROMIUM, CHROMIUM_ARGS, DESKTOP, PHONE, RECORD_CSP_VIOLATIONS, Watch


@pytest.fixture(scope="module")
def output_dir(repo_root) -> Path:
    root = Path(os.environ.get("CRITIC_TEST_OUTPUT", repo_root / "test-output"))
    folder = root / "web"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def watched_page(browser):
    """watched_page(url, origins, heading, played_clock=False, **context options) -> (page, watch):
    `url` in a fresh browser context, watched (requests allowed to `origins` only), once `heading` shows."""
    contexts = []

    def open_(url: str, origins: set[str], heading: str, played_clock: bool = False,
              **context_options) -> tuple[Page, Watch]:
        context = browser.new_context(viewport=DESKTOP, reduced_motion="reduce", **context_options)
        contexts.append(context)
        context.add_init_script(RECORD_CSP_VIOLATIONS)
        page = context.new_page()
        if played_clock:  # the page's timers and Date move only when the test runs the clock
            page.clock.install()
        watch = Watch(origins=origins)
        watch.attach(page)
        page.goto(url)
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
        return page, watch

    yield open_
    for context in contexts:
        context.close()


@pytest.fixture
def snap(output_dir):
    """snap(page, state): screenshots at desktop and phone width; the page must fit a phone."""
    def snap_(page: Page, state: str) -> None:
        page.screenshot(path=output_dir / f"{state}-desktop.png", full_page=True)
        page.set_viewport_size(PHONE)
        page.screenshot(path=output_dir / f"{state}-phone.png", full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{state}: the page is {overflow}px wider than a phone screen"
        page.set_viewport_size(DESKTOP)
    return snap_
