"""Scoring a file from the web page, in headless Chromium against `critic
serve` (tiny model): drop a file, watch the upload's progress and the job's
states, download the results; and each way it can go wrong, said plainly.
Screenshots at desktop and phone width under test-output/web/upload-*.png;
the page is watched as in test_web_page.py (no errors, no CSP violation, no
request but to the stack's API and its AWS endpoint)."""
from __future__ import annotations

import json
import re
import urllib.request
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, TimeoutError as PlaywrightTimeoutError, expect

from web_support import CHROMIUM, Watch, free_port, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: install Debian's chromium")]

PRAISE = "A wonderful, moving film."
SCORN = "An awful, boring mess."
expect.set_options(timeout=90_000)  # a transform job on a shared 2-core machine; a wait, not an assertion


@pytest.fixture(scope="module")
def stack(request, repo_root, tmp_path_factory) -> tuple[str, str]:
    """(API URL, AWS endpoint URL) of `critic serve` with the tiny model."""
    artifact = request.getfixturevalue("tiny_artifact")
    with serve(repo_root, tmp_path_factory.mktemp("web-upload-stack"), artifact) as url:
        probe = urllib.request.Request(f"{url}/uploads", data=json.dumps({"filename": "a.txt", "size": 1}).encode(),
                                       headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(probe, timeout=30) as response:
            aws = urlparse(json.loads(response.read())["upload"]["url"])
        yield url, f"{aws.scheme}://{aws.netloc}"


@pytest.fixture
def open_page(watched_page, stack):
    def open_(query: str = "", extra_origins: tuple[str, ...] = ()) -> tuple[Page, Watch]:
        return watched_page(f"{stack[0]}/{query}", {*stack, *extra_origins}, "Or score a whole file",
                            accept_downloads=True)
    return open_


def drop(page: Page, name: str, text: str | None = None, size: int | None = None) -> None:
    """Drop a file on the drop zone, as a person dragging it from their desktop."""
    transfer = page.evaluate_handle("""([name, text, size]) => {
        const transfer = new DataTransfer();
        const body = text !== null ? [text] : [new Uint8Array(size)];
        transfer.items.add(new File(body, name, { type: "" }));
        return transfer; }""", [name, text, size])
    page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})


def status(page: Page):
    return page.locator("#upload-status")


def upload_error(page: Page):
    return page.locator("#upload-error")


def test_drop_a_file_see_progress_and_states_download_the_results(open_page, snap, tmp_path):
    page, watch = open_page()
    page.evaluate("""() => { window.__states = []; window.__progress = [];
        new MutationObserver(() => window.__states.push(document.getElementById('upload-status').textContent))
          .observe(document.getElementById('upload-status'), { childList: true, characterData: true, subtree: true });
        new MutationObserver(() => window.__progress.push(document.getElementById('upload-progress').value))
          .observe(document.getElementById('upload-progress'), { attributes: true }); }""")
    lines = [PRAISE, SCORN, "", PRAISE]
    drop(page, "my reviews.txt", "\n".join(lines) + "\n")
    expect(page.get_by_role("link", name="Download the results")).to_be_visible()
    expect(status(page)).to_have_text("Done: 3 of 4 lines scored; 1 could not be (their line says why).")
    expect(page.get_by_label("Upload progress")).to_have_js_property("value", 100)
    states = page.evaluate("window.__states")
    assert any(s.startswith("Uploading…") for s in states), states
    assert any(s.startswith("Uploaded. Waiting") or s.startswith("Scoring the file") for s in states), states
    snap(page, "upload-done")

    with page.expect_download() as waiting:
        page.get_by_role("link", name="Download the results").click()
    downloaded = waiting.value
    assert downloaded.suggested_filename == "my-reviews.scored.jsonl"
    path = tmp_path / downloaded.suggested_filename
    downloaded.save_as(path)
    results = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r.get("label") for r in results] == ["positive", "negative", None, "positive"]  # every line, in order
    assert results[2] == {"error": "review is empty"}
    watch.check(page)


def press_until_a_chooser_opens(page: Page, key: str, tries: int = 3):
    """The file chooser a key press on the focused file input opens. Chromium
    at times opens none for an input event that comes right after a page's
    first paint (microsoft/playwright#28023, PaintHolding), so each try
    waits two animation frames first, and a key that opens nothing in 10 s
    is pressed again: the keyboard must still open it, within three tries."""
    for attempt in range(tries):
        page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        try:
            with page.expect_file_chooser(timeout=10_000) as opened:
                page.keyboard.press(key)
            return opened.value
        except PlaywrightTimeoutError:
            if attempt == tries - 1:
                raise


def test_a_file_chosen_with_the_keyboard_is_scored(open_page):
    page, watch = open_page()
    page.get_by_role("button", name="Mixed feelings").focus()
    page.keyboard.press("Tab")
    chooser = page.get_by_label("Choose a file to score")
    expect(chooser).to_be_focused()
    press_until_a_chooser_opens(page, "Space").set_files(files=[{
        "name": "rows.csv", "mimeType": "text/csv", "buffer": f'1,"{PRAISE}"\n2,{SCORN.replace(",", "")}\n'.encode()}])
    expect(page.get_by_role("link", name="Download the results")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Done")).to_have_text("Done: 2 of 2 lines scored.")
    watch.check(page)


def test_a_wrong_type_is_refused_before_anything_is_sent(open_page, snap):
    page, watch = open_page()
    drop(page, "reviews.xlsx", "not a text file")
    expect(upload_error(page)).to_have_text("“reviews.xlsx” cannot be scored: choose a .txt, .jsonl, .csv file.")
    assert not [url for url in watch.requests if "/uploads" in url]
    expect(upload_error(page)).to_have_attribute("role", "alert")  # said at once by a screen reader
    snap(page, "upload-wrong-type")
    watch.check(page)


def test_a_file_over_the_limit_gets_the_apis_413_message(open_page, snap):
    page, watch = open_page()
    drop(page, "huge.csv", size=100 * 1024 * 1024 + 1)  # the stack's MaxUploadMB is the default, 100
    expect(upload_error(page)).to_have_text(
        "The file is too large: the file is 104,857,601 bytes; the largest upload is 104,857,600 bytes.")
    snap(page, "upload-too-large")
    watch.check(page, allowed_console=(r"Failed to load resource: .* 413",))


def test_an_expired_link_is_explained(open_page, stack, snap):
    page, watch = open_page()
    aws = stack[1]
    expired = ('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
               "<Message>Invalid according to Policy: Policy expired.</Message></Error>")
    page.route(f"{aws}/**", lambda route: route.fulfill(
        status=403, body=expired, content_type="application/xml",
        headers={"Access-Control-Allow-Origin": "*"}) if route.request.method == "POST" else route.continue_())
    drop(page, "late.txt", PRAISE + "\n")
    expect(upload_error(page)).to_have_text(
        "The upload link expired before the file was sent. Choose the file again to get a new link.")
    snap(page, "upload-expired")
    watch.check(page, allowed_console=(r"Failed to load resource: .* 403",))


def test_a_failed_job_shows_its_reason(open_page, snap):
    page, watch = open_page()
    drop(page, "broken.jsonl", json.dumps({"review": PRAISE}) + "\n{not json\n")
    expect(upload_error(page)).to_have_text(re.compile(
        r"^Scoring failed: ClientError: input line 2 is not valid JSON \(.*\)\. Fix the file and choose it again\.$"))
    expect(page.get_by_role("link", name="Download the results")).to_be_hidden()
    snap(page, "upload-failed-job")
    watch.check(page)


def test_the_api_being_down_is_said_plainly(open_page):
    down = f"http://127.0.0.1:{free_port()}"
    page, watch = open_page(f"?api={down}", extra_origins=(down,))
    drop(page, "reviews.txt", PRAISE + "\n")
    expect(upload_error(page)).to_have_text(
        f"Cannot reach the Critic API at {down}. Check that it is running and that you are connected, then try again.")
    watch.check(page, allowed_console=(r"ERR_CONNECTION_REFUSED",))

