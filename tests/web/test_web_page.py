"""The web page in real headless Chromium against the running local stack.

Every test watches the page: a JavaScript error, a Content-Security-Policy
violation, a dialog, an unexpected console error or a request to anywhere but
the stack fails it. Each state leaves a screenshot at desktop and phone width
under test-output/web/ (or $CRITIC_TEST_OUTPUT/web/).
"""
from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from playwright.sync_api import Page, expect

import critic
from web_support import CHROMIUM, Watch, free_port, serve

pytestmark = [pytest.mark.browser, pytest.mark.slow,
              pytest.mark.skipif(not CHROMIUM.exists(),
                                 reason=f"{CHROMIUM} is missing: install Debian's chromium (make browser)")]
XSS = "<img src=x onerror=alert(1)>"

POSITIVE_REVIEW = ("An absolute delight from start to finish. The acting is superb, the story is moving "
                   "and beautifully told, and the music is wonderful. One of the best films of the year; "
                   "I loved every minute and can't wait to see it again.")
NEGATIVE_REVIEW = ("Dreadful. The plot is a mess, the acting is wooden and the dialogue is laughably bad. "
                   "I was bored out of my mind and walked out halfway through. A total waste of time "
                   "and money, easily the worst film I have seen this year.")

expect.set_options(timeout=60_000)  # scoring on a shared 2-core machine; a wait, not an assertion


def post_score(api: str, review: str, explain: bool = False) -> tuple[int, dict]:
    """What the API itself answers, to compare the page with."""
    request = urllib.request.Request(f"{api}/score?explain=true" if explain else f"{api}/score",
                                     data=json.dumps({"review": review}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@dataclass
class Stack:
    url: str
    shipped: bool


@pytest.fixture(scope="module")
def stack(request, repo_root, tmp_path_factory):
    """`critic serve` on free ports with a temporary data folder, serving the
    shipped model when it exists (else the tiny test model)."""
    shipped = critic.SHIPPED_ARTIFACT.is_file()
    artifact = critic.SHIPPED_ARTIFACT if shipped else request.getfixturevalue("tiny_artifact")
    with serve(repo_root, tmp_path_factory.mktemp("web-stack"), artifact) as url:
        yield Stack(url, shipped)


@pytest.fixture
def open_page(watched_page, stack):
    """open_page(query="") -> (page, watch): the page as served by the local stack."""
    def open_(query: str = "", extra_origins: tuple[str, ...] = (), base: str | None = None,
              played_clock: bool = False) -> tuple[Page, Watch]:
        return watched_page(f"{base or stack.url}/{query}", {stack.url, *extra_origins}, "Critic",
                            played_clock=played_clock)
    return open_


def review_box(page: Page):
    return page.get_by_label("Your review")


def submit(page: Page):
    return page.get_by_role("button", name="Score review")


def meter(page: Page):
    return page.get_by_role("meter", name="Probability the review is positive")


# web/app.js's BANDS, restated as the test's own expectation: (P(positive) below, wording).
BANDS = ((0.25, "Negative"), (0.4, "Leans negative"), (0.6, "Mixed"), (0.75, "Leans positive"),
         (math.inf, "Positive"))


def band(score: float) -> str:
    return next(name for below, name in BANDS if score < below)


def shows_verdict(page: Page, label: str, api_score: float) -> None:
    """The page shows the API's verdict in words (its band: a score near 0.5
    reads "Mixed"), and its probability on the bar."""
    expect(page.locator("#verdict-label")).to_have_text(band(api_score))
    percent = round(api_score * 100)
    expect(meter(page)).to_have_attribute("aria-valuenow", str(percent))
    expect(meter(page)).to_have_attribute("aria-valuetext", f"{percent}% likely positive")
    shown = percent if label == "positive" else 100 - percent
    expect(page.locator("#probability")).to_have_text(f"{shown}% likely {label}")
    bar = meter(page).bounding_box()
    fill = page.locator("#meter-fill").bounding_box()
    assert fill["width"] / bar["width"] == pytest.approx(api_score, abs=0.01)


@pytest.fixture
def shipped_stack(stack):
    if not stack.shipped:
        pytest.skip(f"needs the shipped model {critic.SHIPPED_ARTIFACT} (train it with `critic train`); "
                    "a tiny test model cannot be trusted with these verdicts")
    return stack


def test_clearly_positive_review_is_positive(shipped_stack, open_page, snap):
    status, answer = post_score(shipped_stack.url, POSITIVE_REVIEW)
    assert (status, answer["label"]) == (200, "positive")
    page, watch = open_page()
    review_box(page).fill(POSITIVE_REVIEW)
    submit(page).click()
    shows_verdict(page, "positive", answer["score"])
    expect(page.locator("#scored-review")).to_have_text(POSITIVE_REVIEW)
    snap(page, "positive")
    watch.check(page)


def test_clearly_negative_review_is_negative_with_ctrl_enter(shipped_stack, open_page, snap):
    status, answer = post_score(shipped_stack.url, NEGATIVE_REVIEW)
    assert (status, answer["label"]) == (200, "negative")
    page, watch = open_page()
    review_box(page).fill(NEGATIVE_REVIEW)
    review_box(page).press("Control+Enter")
    shows_verdict(page, "negative", answer["score"])
    snap(page, "negative")
    watch.check(page)


def test_example_scores_with_one_click(stack, open_page, snap):
    page, watch = open_page()
    page.get_by_role("button", name="Mixed feelings").click()
    example = review_box(page).input_value()
    assert "falls flat" in example
    _, answer = post_score(stack.url, example)
    shows_verdict(page, answer["label"], answer["score"])
    snap(page, "example")
    watch.check(page)


def test_empty_review_shows_the_apis_400_message(stack, open_page, snap):
    status, answer = post_score(stack.url, "")
    assert status == 400 and answer["message"].strip()
    page, watch = open_page()
    submit(page).click()
    expect(page.get_by_role("alert")).to_have_text(answer["message"].strip())
    expect(meter(page)).to_be_hidden()
    snap(page, "empty-review")
    watch.check(page, allowed_console=(r"Failed to load resource: .* 400",))


def test_markup_in_a_review_is_text_and_runs_nothing(stack, open_page, snap):
    review = f"{XSS} I loved it."
    page, watch = open_page()
    review_box(page).fill(review)
    submit(page).click()
    expect(page.locator("#scored-review")).to_have_text(review)
    expect(page.get_by_text(XSS)).to_be_visible()
    assert page.locator("img").count() == 0
    assert page.evaluate("document.querySelectorAll('img, [onerror]').length") == 0
    snap(page, "markup-review")
    watch.check(page)
    assert watch.dialogs == []
    assert not [url for url in watch.requests if url.rstrip("/").endswith("/x")]


def test_api_down_shows_a_clear_error(stack, open_page, snap):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    page, watch = open_page(f"?api={down}", extra_origins=(down,))
    expect(page.locator("#api-url")).to_have_text(f"{down}/score")
    review_box(page).fill(POSITIVE_REVIEW)
    submit(page).click()
    expect(page.get_by_role("alert")).to_have_text(
        f"Cannot reach the Critic API at {down}. Check that it is running and that you are connected, "
        "then try again.")
    snap(page, "api-down")
    watch.check(page, allowed_console=(r"ERR_CONNECTION_REFUSED",))


def test_page_opened_from_disk_talks_to_an_api_on_another_origin(stack, open_page, repo_root):
    """As after `critic deploy`: web/index.html opened as a file, the API elsewhere
    (a cross-origin POST with a CORS preflight, answered by the stack)."""
    web = (repo_root / "web").as_uri()
    page, watch = open_page(f"index.html?api={stack.url}", extra_origins=(web, stack.url), base=web)
    review_box(page).fill(POSITIVE_REVIEW)
    submit(page).click()
    _, answer = post_score(stack.url, POSITIVE_REVIEW)
    shows_verdict(page, answer["label"], answer["score"])
    watch.check(page)


def test_loading_state_while_the_api_works(stack, open_page, snap):
    page, watch = open_page()
    held = []
    page.route("**/score", lambda route: held.append(route))  # held; the stack answers once released
    review_box(page).fill(NEGATIVE_REVIEW)
    submit(page).click()
    expect(page.get_by_role("status").filter(has_text="Scoring…")).to_be_visible()
    expect(page.locator("#verdict")).to_have_attribute("aria-busy", "true")
    snap(page, "loading")
    for _ in range(600):  # until Playwright has handed over the held request
        if held:
            break
        page.wait_for_timeout(50)
    assert len(held) == 1
    held[0].continue_()
    expect(page.locator("#verdict-label")).not_to_be_empty()
    expect(page.locator("#busy")).to_be_empty()
    expect(page.locator("#verdict")).to_have_attribute("aria-busy", "false")
    watch.check(page)


@pytest.mark.parametrize("status, content_type, body, shown", [
    (500, "text/html", "<h1>Internal Server Error</h1>", "The API failed (HTTP 500). Try again in a moment."),
    (502, "application/json", '{"message": "The model endpoint is missing."}',
     "The API failed (HTTP 502): The model endpoint is missing. Try again in a moment."),
    (200, "application/json", '{"label": "<b>great</b>", "score": 2}',
     "The API answered, but not with a verdict this page understands."),
], ids=["html-500", "json-502", "bad-200"])
def test_odd_answers_are_explained_and_never_rendered(stack, open_page, status, content_type, body, shown):
    """Answers the local stack cannot be made to give (a gateway's HTML page, a
    broken endpoint, a broken answer), put in its place by the browser."""
    page, watch = open_page()
    page.route("**/score", lambda route: route.fulfill(status=status, content_type=content_type, body=body))
    review_box(page).fill(POSITIVE_REVIEW)
    submit(page).click()
    expect(page.get_by_role("alert")).to_have_text(shown)
    assert page.locator("h1, b").count() == 1  # the page's own h1; none of the answer's markup
    watch.check(page, allowed_console=(rf"Failed to load resource: .* {status}",))


@pytest.mark.parametrize("api, complaint", [
    ("http://example.com", "plain-http API address on another computer"),
    ("javascript:alert(1)", "not http(s)"),
])
def test_unsafe_api_parameter_is_refused_before_sending(stack, open_page, api, complaint):
    page, watch = open_page(f"?api={api}")
    expect(page.get_by_role("alert")).to_contain_text(complaint)
    review_box(page).fill(POSITIVE_REVIEW)
    submit(page).click()
    expect(page.get_by_role("alert")).to_contain_text(complaint)
    watch.check(page)
    assert not [url for url in watch.requests if "score" in url]


def test_keyboard_and_screen_reader_semantics(stack, open_page):
    page, watch = open_page()
    assert review_box(page).evaluate("element => element.id") == "review"
    expect(page.get_by_role("alert")).to_have_count(1)
    expect(page.locator("#summary")).to_have_attribute("role", "status")
    expect(page.locator("#busy")).to_have_attribute("role", "status")
    review_box(page).focus()
    page.keyboard.press("Tab")
    expect(submit(page)).to_be_focused()
    outline = submit(page).evaluate("element => getComputedStyle(element).outlineStyle")
    assert outline != "none", "keyboard focus must be visible"
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="A rave")).to_be_focused()
    page.keyboard.press("Enter")
    expect(meter(page)).to_be_visible()
    expect(meter(page)).to_have_attribute("aria-valuemin", "0")
    expect(meter(page)).to_have_attribute("aria-valuemax", "100")
    watch.check(page)


def test_page_declares_a_strict_policy_and_loads_only_its_own_files(stack, open_page, repo_root):
    page, watch = open_page()
    policy = page.locator('meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["require-trusted-types-for"] == "'script'"
    assert "unsafe" not in policy
    assert {url.rsplit("/", 1)[-1] for url in watch.requests} >= {"", "app.js", "style.css", "config.js"}
    # An HTML sink refuses a string under Trusted Types: markup cannot sneak in later either.
    refused = page.evaluate("""() => { try { document.body.insertAdjacentHTML('beforeend', '<b>x</b>');
                                         return false; } catch (e) { return e instanceof TypeError; } }""")
    assert refused
    page.evaluate("window.__cspViolations = []")  # the probe above is reported as a violation
    watch.check(page, allowed_console=(r"TrustedHTML",))


# ------------------------------------------------------------ a cold endpoint

WAKING = "Waking the model up: this can take up to a minute the first time."
COLD_START = 20  # seconds: longer than the RealtimeFunction's two 8 s attempts, so the first answer is a 504


def score_requests(watch: Watch) -> int:
    return sum(1 for url in watch.requests if url.endswith("/score"))


def wait_for_requests(page: Page, watch: Watch, count: int) -> None:
    for _ in range(600):  # until the page's request has reached Playwright
        if score_requests(watch) >= count:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"{score_requests(watch)} requests to /score, expected {count}")


def test_a_cold_endpoint_wakes_up_while_the_page_waits(repo_root, tmp_path, request, open_page, snap):
    """`critic serve --endpoint-cold-start 20`: the first InvokeEndpoint is held
    past the RealtimeFunction's read timeout (504 with Retry-After, as on AWS);
    the page says it is waking the model up and shows the verdict when it
    comes, with nothing else done by the person."""
    shipped = critic.SHIPPED_ARTIFACT.is_file()
    artifact = critic.SHIPPED_ARTIFACT if shipped else request.getfixturevalue("tiny_artifact")
    with serve(repo_root, tmp_path, artifact, "--endpoint-cold-start", str(COLD_START)) as cold:
        page, watch = open_page(base=cold, extra_origins=(cold,))
        review_box(page).fill(POSITIVE_REVIEW)
        submit(page).click()
        expect(page.locator("#busy")).to_have_text(WAKING)
        expect(page.get_by_role("button", name="Cancel")).to_be_visible()
        expect(page.locator("#verdict")).to_have_attribute("aria-busy", "true")
        snap(page, "cold-waking")
        expect(page.locator("#verdict-label")).not_to_be_empty()
        _, answer = post_score(cold, POSITIVE_REVIEW)  # warm now: the same verdict at once
        shows_verdict(page, answer["label"], answer["score"])
        expect(page.locator("#busy")).to_be_empty()
        expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
        expect(page.get_by_role("alert")).to_be_empty()
        assert score_requests(watch) >= 2  # the first answer was "not yet"
        snap(page, "cold-woken")
        watch.check(page, allowed_console=(r"Failed to load resource: .* 50[34]",))


def not_yet_then(answers: list[tuple[int, dict, str]]):
    """A route handler answering /score with `answers` in turn (the last one repeated)."""
    def handle(route):
        status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
        route.fulfill(status=status, headers={"Content-Type": "application/json", **headers}, body=body)
    return handle


VERDICT = (200, {}, '{"label": "positive", "score": 0.9}')


def test_the_page_waits_as_long_as_retry_after_says(stack, open_page):
    page, watch = open_page(played_clock=True)
    page.route("**/score", not_yet_then([(429, {"Retry-After": "7"}, '{"message": "too many requests"}'), VERDICT]))
    review_box(page).fill(POSITIVE_REVIEW)
    submit(page).click()
    expect(page.locator("#busy")).to_have_text(WAKING)
    page.clock.run_for(6_500)
    assert score_requests(watch) == 1  # not before the 7 s it was asked to wait
    page.clock.run_for(1_000)
    wait_for_requests(page, watch, 2)
    shows_verdict(page, "positive", 0.9)
    watch.check(page, allowed_console=(r"Failed to load resource: .* 429",))


def test_cancel_stops_the_retries_and_keeps_the_review(stack, open_page, snap):
    page, watch = open_page(played_clock=True)
    page.route("**/score", not_yet_then([(503, {"Retry-After": "5"}, '{"message": "the model is warming up"}')]))
    review_box(page).fill(NEGATIVE_REVIEW)
    submit(page).click()
    expect(page.locator("#busy")).to_have_text(WAKING)
    page.clock.run_for(5_500)
    wait_for_requests(page, watch, 2)
    expect(page.locator("#busy")).to_have_text(WAKING)
    page.get_by_role("button", name="Cancel").click()
    expect(page.locator("#busy")).to_have_text(
        "Cancelled. Your review is still here: press Score review to try again.")
    expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
    expect(page.locator("#verdict")).to_have_attribute("aria-busy", "false")
    expect(review_box(page)).to_be_focused()  # back to the review, to edit it or send it again
    asked = score_requests(watch)
    page.clock.run_for(120_000)  # past every retry the page could have had in mind
    page.evaluate("0")  # a round trip: anything the page would have sent, it has
    assert score_requests(watch) == asked
    expect(review_box(page)).to_have_value(NEGATIVE_REVIEW)
    expect(page.get_by_role("alert")).to_be_empty()
    snap(page, "cold-cancelled")
    watch.check(page, allowed_console=(r"Failed to load resource: .* 503",))


def test_the_page_gives_up_after_about_90_seconds(stack, open_page, snap):
    page, watch = open_page(played_clock=True)
    page.route("**/score", not_yet_then([(504, {}, '{"message": "the model did not answer in time"}')]))
    review_box(page).fill(POSITIVE_REVIEW)
    submit(page).click()
    expect(page.locator("#busy")).to_have_text(WAKING)
    for _ in range(60):  # played time, 2 s at a time: each retry is sent before the next one is due
        if page.get_by_role("alert").text_content():
            break
        page.clock.run_for(2_000)
        page.evaluate("0")  # a round trip, so the page's fetches are answered
    expect(page.get_by_role("alert")).to_have_text(
        "The model is still not ready after 90 seconds (last answer: HTTP 504: the model did not answer in "
        "time). Your review is kept: try again in a few minutes.")
    expect(page.locator("#busy")).to_be_empty()
    expect(review_box(page)).to_have_value(POSITIVE_REVIEW)
    # Backing off without Retry-After: 2, 4, 8, 15, 15... s, so a handful of attempts, not a flood.
    assert 4 <= score_requests(watch) <= 10
    snap(page, "cold-gave-up")
    watch.check(page, allowed_console=(r"Failed to load resource: .* 504",))


# ---------------------------------------------------------------- explanations

PULL = re.compile(r"^[+−]\d+\.\d\d toward (positive|negative)$")


def test_explained_review_highlights_its_words_and_lists_the_strongest_reasons(shipped_stack, open_page, snap):
    review = "The acting was superb and the music wonderful, but the plot was dreadful and the ending dull."
    status, answer = post_score(shipped_stack.url, review, explain=True)
    assert status == 200
    spans = answer["explanation"]["spans"]
    page, watch = open_page()
    review_box(page).fill(review)
    submit(page).click()
    shows_verdict(page, answer["label"], answer["score"])
    expect(page.locator("#scored-review")).to_have_text(review)  # highlighting adds no text
    words = page.locator("#scored-review .word")
    expect(words.first).to_be_visible()
    for i in range(words.count()):
        word = words.nth(i)
        assert PULL.match(word.get_attribute("title")), word.get_attribute("title")
        assert word.get_attribute("aria-description") == word.get_attribute("title")
        assert word.get_attribute("tabindex") == "0"
    strongest = max(spans, key=lambda span: span["contribution"])
    weakest = min(spans, key=lambda span: span["contribution"])
    expect(page.locator("#reasons-positive li").first).to_have_text(
        f"“{strongest['text']}” +{strongest['contribution']:.2f} toward positive")
    expect(page.locator("#reasons-negative li").first).to_have_text(
        f"“{weakest['text']}” −{-weakest['contribution']:.2f} toward negative")
    assert page.locator("#reasons-positive li").count() <= 3 and page.locator("#reasons-negative li").count() <= 3
    expect(page.locator("#legend")).to_be_visible()
    strong = page.locator("#scored-review .word", has_text=strongest["text"]).first
    strong.focus()
    after = strong.evaluate("element => getComputedStyle(element, '::after').content")
    assert PULL.match(after.strip('"')), after
    snap(page, "explained")
    watch.check(page)


@pytest.mark.parametrize("score, label, shown", [
    (0.52, "positive", "Mixed"), (0.36, "negative", "Leans negative"), (0.7, "positive", "Leans positive"),
    (0.1, "negative", "Negative")])
def test_a_score_near_half_reads_mixed_or_leaning(stack, open_page, snap, score, label, shown):
    review = "Good cast, weak plot."
    answer = {"label": label, "score": score, "explanation": {"baseline": 0.0, "spans": [
        {"start": 0, "end": 4, "text": "Good", "contribution": 0.8},
        {"start": 16, "end": 20, "text": "plot", "contribution": -0.7}]}}
    page, watch = open_page()
    page.route("**/score", lambda route: route.fulfill(status=200, content_type="application/json",
                                                        body=json.dumps(answer)))
    review_box(page).fill(review)
    submit(page).click()
    expect(page.locator("#verdict-label")).to_have_text(shown)
    expect(page.locator("#reasons-positive li")).to_have_text(["“Good” +0.80 toward positive"])
    expect(page.locator("#reasons-negative li")).to_have_text(["“plot” −0.70 toward negative"])
    if shown == "Mixed":
        snap(page, "mixed")
    watch.check(page)


def test_markup_in_an_explained_review_stays_text(stack, open_page, snap):
    review = f"{XSS} I loved it, <b>truly</b> &amp; wonderful."
    status, answer = post_score(stack.url, review, explain=True)
    assert status == 200 and answer["explanation"]["spans"]
    page, watch = open_page()
    review_box(page).fill(review)
    submit(page).click()
    expect(page.locator("#scored-review")).to_have_text(review)
    expect(page.locator("#scored-review .word").first).to_be_visible()
    assert page.evaluate("document.querySelectorAll('img, b, [onerror]').length") == 0
    snap(page, "markup-explained")
    watch.check(page)
    assert not [url for url in watch.requests if url.rstrip("/").endswith("/x")]
