// Critic web page: sends the review as JSON to POST <api>/score and shows the
// verdict. Every text (the review, the API's answers) goes into the page with
// textContent, never as HTML; the page's CSP enforces that with Trusted Types.
"use strict";

(() => {
  const TIMEOUT_SECONDS = 30;
  const QUOTE_LIMIT = 300; // characters of the scored review shown under the verdict
  const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost"]);

  const byId = (id) => document.getElementById(id);
  const form = byId("review-form");
  const textarea = byId("review");
  const submitButton = byId("submit");
  const busy = byId("busy");
  const error = byId("error");
  const verdict = byId("verdict");
  const verdictLabel = byId("verdict-label");
  const probability = byId("probability");
  const details = byId("details");
  const meter = byId("meter");
  const meterFill = byId("meter-fill");
  const scoredReview = byId("scored-review");

  /** A failure with a message meant for the person using the page. */
  class Shown extends Error {}

  /** The scoring endpoint from ?api=URL or config.js, or a Shown error saying what is wrong. */
  function scoreEndpoint() {
    const override = new URLSearchParams(window.location.search).get("api");
    const source = override !== null ? "The ?api= parameter" : "config.js";
    const config = window.CRITIC_CONFIG;
    const raw = override !== null ? override : config && config.apiUrl;
    if (typeof raw !== "string" || raw.trim() === "") {
      throw new Shown(`No API address is configured: ${source} sets none. ` +
        "Open this page with ?api=URL, or write apiUrl in config.js.");
    }
    let url;
    try {
      url = new URL(raw.trim(), window.location.href);
    } catch {
      throw new Shown(`${source} gives an API address that is not a URL: ${raw}`);
    }
    if (url.protocol !== "https:" && url.protocol !== "http:") {
      throw new Shown(`${source} gives an API address that is not http(s): ${raw}`);
    }
    // Mirrors the page's Content-Security-Policy (connect-src), which enforces it.
    if (url.protocol === "http:" && url.origin !== window.location.origin &&
        !LOOPBACK_HOSTS.has(url.hostname)) {
      throw new Shown(`${source} gives a plain-http API address on another computer (${url.origin}). ` +
        "Use https; plain http is allowed only for this computer (127.0.0.1 or localhost).");
    }
    url.search = "";
    url.hash = "";
    url.pathname = url.pathname.replace(/\/+$/, "") + "/score";
    return url.href;
  }

  function showError(message) {
    details.hidden = true;
    verdict.dataset.label = "none";
    verdictLabel.textContent = "";
    probability.textContent = "";
    error.textContent = message;
  }

  function showVerdict(review, result) {
    const positive = result.label === "positive";
    const percentPositive = Math.round(result.score * 100);
    const percentShown = positive ? percentPositive : 100 - percentPositive;
    error.textContent = "";
    verdict.dataset.label = result.label;
    verdict.classList.remove("stale");
    verdictLabel.textContent = positive ? "Positive" : "Negative";
    probability.textContent = ` ${percentShown}% likely ${result.label}`;
    meter.setAttribute("aria-valuenow", String(percentPositive));
    meter.setAttribute("aria-valuetext", `${percentPositive}% likely positive`);
    meterFill.style.width = `${result.score * 100}%`;
    scoredReview.textContent = review.length > QUOTE_LIMIT
      ? `${review.slice(0, QUOTE_LIMIT).trimEnd()}…` : review;
    details.hidden = false;
  }

  function setBusy(isBusy) {
    verdict.setAttribute("aria-busy", String(isBusy));
    busy.textContent = isBusy ? "Scoring…" : "";
  }

  /** The response body as JSON, or null when it is not JSON. */
  async function jsonBody(response) {
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }

  function apiMessage(body) {
    return body !== null && typeof body === "object" && typeof body.message === "string" &&
      body.message.trim() !== "" ? body.message.trim() : null;
  }

  function isVerdict(body) {
    return body !== null && typeof body === "object" &&
      (body.label === "positive" || body.label === "negative") &&
      typeof body.score === "number" && body.score >= 0 && body.score <= 1;
  }

  async function requestVerdict(endpoint, review, signal) {
    let response;
    let body;
    try {
      response = await fetch(endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ review }),
        credentials: "omit",
        cache: "no-store",
        signal,
      });
      body = await jsonBody(response);
    } catch (failure) {
      if (signal.aborted) throw signal.reason;
      throw new Shown(`Cannot reach the Critic API at ${new URL(endpoint).origin}. ` +
        "Check that it is running and that you are connected, then try again.");
    }
    const message = apiMessage(body);
    if (response.status >= 400 && response.status < 500) {
      throw new Shown(message || `The API refused the review (HTTP ${response.status}).`);
    }
    if (!response.ok) {
      const reason = message ? `: ${message.replace(/[.!]*$/, ".")}` : ".";
      throw new Shown(`The API failed (HTTP ${response.status})${reason} Try again in a moment.`);
    }
    if (!isVerdict(body)) {
      throw new Shown("The API answered, but not with a verdict this page understands.");
    }
    return body;
  }

  let current = null; // the AbortController of the request in flight

  async function score() {
    if (current) current.abort(new DOMException("superseded", "AbortError"));
    const controller = new AbortController();
    current = controller;
    const timer = setTimeout(
      () => controller.abort(new Shown(`The API did not answer within ${TIMEOUT_SECONDS} seconds. Try again.`)),
      TIMEOUT_SECONDS * 1000);
    const review = textarea.value;
    setBusy(true);
    try {
      const endpoint = scoreEndpoint();
      showVerdict(review, await requestVerdict(endpoint, review, controller.signal));
    } catch (failure) {
      if (current !== controller) return; // a newer request took over
      if (!(failure instanceof Shown)) throw failure;
      showError(failure.message);
    } finally {
      clearTimeout(timer);
      if (current === controller) {
        current = null;
        setBusy(false);
      }
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    score();
  });

  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit(submitButton);
    }
  });

  textarea.addEventListener("input", () => {
    if (!details.hidden) verdict.classList.add("stale");
  });

  for (const example of document.querySelectorAll("button.example")) {
    example.addEventListener("click", () => {
      textarea.value = example.dataset.review;
      form.requestSubmit(submitButton);
    });
  }

  try {
    byId("api-url").textContent = scoreEndpoint();
  } catch (failure) {
    if (!(failure instanceof Shown)) throw failure;
    showError(failure.message);
  }
})();
