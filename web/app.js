// Critic web page: sends the review as JSON to POST <api>/score and shows the
// verdict, with the words that moved it (the API's explanation). Every text
// (the review, the API's answers) goes into the page with textContent or
// createTextNode, never as HTML; the page's CSP enforces that with Trusted Types.
//
// A serverless endpoint that has been idle starts cold and takes up to a
// minute to answer; meanwhile the API answers 503, 504 or 429 ("not yet").
// The page says so, keeps trying (waiting Retry-After when the API gives it,
// else backing off) for WAKE_SECONDS, and can be cancelled.
"use strict";

(() => {
  const TIMEOUT_SECONDS = 30; // one request; API Gateway itself gives up after 30 s
  const WAKE_SECONDS = 90; // all the attempts of one review together
  const NOT_YET = new Set([429, 503, 504]);
  const WAKING = "Waking the model up: this can take up to a minute the first time.";
  const QUOTE_LIMIT = 300; // characters of the scored review shown under the verdict
  const LOOPBACK_HOSTS = new Set(["127.0.0.1", "localhost"]);
  // The verdict's wording by P(positive): near 0.5 the model is unsure, and the page says so.
  const BANDS = [
    { below: 0.25, name: "Negative" },
    { below: 0.4, name: "Leans negative" },
    { below: 0.6, name: "Mixed" },
    { below: 0.75, name: "Leans positive" },
    { below: Infinity, name: "Positive" },
  ];
  const REASONS = 3; // strongest words shown each way under the verdict
  const SHOWN_FROM = 0.05; // |contribution| (logit) from which a word is highlighted

  const byId = (id) => document.getElementById(id);
  const form = byId("review-form");
  const textarea = byId("review");
  const submitButton = byId("submit");
  const cancelButton = byId("cancel");
  const busy = byId("busy");
  const error = byId("error");
  const verdict = byId("verdict");
  const verdictLabel = byId("verdict-label");
  const probability = byId("probability");
  const details = byId("details");
  const meter = byId("meter");
  const meterFill = byId("meter-fill");
  const scoredReview = byId("scored-review");
  const legend = byId("legend");
  const reasons = byId("reasons");
  const reasonsPositive = byId("reasons-positive");
  const reasonsNegative = byId("reasons-negative");

  /** A failure with a message meant for the person using the page. */
  class Shown extends Error {}

  /** "Not yet": the model is waking up or busy; worth asking again. */
  class NotYet extends Error {
    constructor(detail, retryAfterMs) {
      super(detail);
      this.retryAfterMs = retryAfterMs; // null: the API did not say
    }
  }

  /** The person pressed Cancel. */
  class Cancelled extends Error {}

  /** The API's base URL from ?api=URL or config.js, or a Shown error saying what is wrong. */
  function apiBase() {
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
    url.pathname = url.pathname.replace(/\/+$/, "");
    return url.href.replace(/\/+$/, "");
  }

  /** The scoring endpoint, or a Shown error saying what is wrong. */
  function scoreEndpoint() {
    return `${apiBase()}/score`;
  }

  // What upload.js (scoring a file) shares: the same API, and its errors said the same way.
  window.critic = Object.freeze({ apiBase, Shown });

  function showError(message) {
    details.hidden = true;
    verdict.dataset.label = "none";
    verdictLabel.textContent = "";
    probability.textContent = "";
    error.textContent = message;
  }

  function bandOf(score) {
    return BANDS.find((band) => score < band.below).name;
  }

  /** "+0.42 toward positive": a contribution in words, for the title and screen readers. */
  function pull(contribution) {
    const sign = contribution >= 0 ? "+" : "−";
    return `${sign}${Math.abs(contribution).toFixed(2)} toward ${contribution >= 0 ? "positive" : "negative"}`;
  }

  /** The explanation if it is one this page can show on `review` (spans in order, inside it), else null. */
  function usableExplanation(review, explanation) {
    if (explanation === null || typeof explanation !== "object" || !Array.isArray(explanation.spans)) return null;
    const codePoints = Array.from(review);
    let end = 0;
    for (const span of explanation.spans) {
      if (span === null || typeof span !== "object" || !Number.isInteger(span.start) ||
          !Number.isInteger(span.end) || typeof span.contribution !== "number" ||
          span.start < end || span.end <= span.start || span.end > codePoints.length) return null;
      end = span.end;
    }
    return { codePoints, spans: explanation.spans };
  }

  /** The review with its words highlighted by contribution (offsets are code points, as the API counts). */
  function showHighlighted(review, explanation) {
    const strongest = explanation.spans.reduce((most, span) => Math.max(most, Math.abs(span.contribution)), SHOWN_FROM);
    const { codePoints } = explanation;
    scoredReview.replaceChildren();
    let at = 0;
    for (const span of explanation.spans) {
      if (Math.abs(span.contribution) < SHOWN_FROM) continue;
      scoredReview.append(document.createTextNode(codePoints.slice(at, span.start).join("")));
      const word = document.createElement("span");
      word.className = "word";
      word.dataset.pull = span.contribution >= 0 ? "positive" : "negative";
      word.style.setProperty("--strength", (Math.abs(span.contribution) / strongest).toFixed(3));
      word.tabIndex = 0;
      word.title = pull(span.contribution);
      word.setAttribute("aria-description", pull(span.contribution));
      word.dataset.contribution = pull(span.contribution);
      word.textContent = codePoints.slice(span.start, span.end).join("");
      scoredReview.append(word);
      at = span.end;
    }
    scoredReview.append(document.createTextNode(codePoints.slice(at).join("")));
  }

  function listReasons(list, spans, codePoints) {
    list.replaceChildren();
    for (const span of spans) {
      const item = document.createElement("li");
      item.textContent = `“${codePoints.slice(span.start, span.end).join("")}” ${pull(span.contribution)}`;
      list.append(item);
    }
    if (!spans.length) {
      const item = document.createElement("li");
      item.textContent = "none";
      list.append(item);
    }
  }

  function showReasons(explanation) {
    const byStrength = [...explanation.spans].sort((a, b) => b.contribution - a.contribution);
    listReasons(reasonsPositive, byStrength.filter((s) => s.contribution >= SHOWN_FROM).slice(0, REASONS),
      explanation.codePoints);
    listReasons(reasonsNegative, byStrength.reverse().filter((s) => s.contribution <= -SHOWN_FROM).slice(0, REASONS),
      explanation.codePoints);
  }

  function showVerdict(review, result) {
    const positive = result.label === "positive";
    const percentPositive = Math.round(result.score * 100);
    const percentShown = positive ? percentPositive : 100 - percentPositive;
    error.textContent = "";
    verdict.dataset.label = result.label;
    verdict.dataset.band = bandOf(result.score).toLowerCase().replace(" ", "-");
    verdict.classList.remove("stale");
    verdictLabel.textContent = bandOf(result.score);
    probability.textContent = ` ${percentShown}% likely ${result.label}`;
    meter.setAttribute("aria-valuenow", String(percentPositive));
    meter.setAttribute("aria-valuetext", `${percentPositive}% likely positive`);
    meterFill.style.width = `${result.score * 100}%`;
    const explanation = usableExplanation(review, result.explanation);
    if (explanation) {
      showHighlighted(review, explanation);
      showReasons(explanation);
    } else {
      scoredReview.textContent = review.length > QUOTE_LIMIT
        ? `${review.slice(0, QUOTE_LIMIT).trimEnd()}…` : review;
    }
    legend.hidden = reasons.hidden = !explanation;
    details.hidden = false;
  }

  /** state: "scoring", "waking", or a message to leave without a spinner ("" for none). */
  function setBusy(state) {
    const working = state === "scoring" || state === "waking";
    verdict.setAttribute("aria-busy", String(working));
    busy.dataset.working = String(working);
    cancelButton.hidden = !working;
    const text = state === "scoring" ? "Scoring…" : state === "waking" ? WAKING : state;
    if (busy.textContent !== text) busy.textContent = text; // a live region: said once, not at every retry
  }

  /** Milliseconds a Retry-After header asks to wait (seconds or an HTTP date), or null. */
  function retryAfterMs(response) {
    const value = (response.headers.get("Retry-After") || "").trim();
    if (/^\d+$/.test(value)) return Number(value) * 1000;
    const date = Date.parse(value);
    return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
  }

  /** How long to wait before attempt `attempt` + 1: Retry-After, kept sane, else 2, 4, 8, 15, 15… s. */
  function delayMs(notYet, attempt) {
    if (notYet.retryAfterMs !== null) return Math.min(Math.max(notYet.retryAfterMs, 1000), 30000);
    return Math.min(2000 * 2 ** (attempt - 1), 15000);
  }

  function pause(ms, signal) {
    return new Promise((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const timer = setTimeout(resolve, ms);
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        reject(signal.reason);
      }, { once: true });
    });
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
        body: JSON.stringify({ review, explain: true }),
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
    if (NOT_YET.has(response.status)) {
      throw new NotYet(`HTTP ${response.status}${message ? `: ${message}` : ""}`, retryAfterMs(response));
    }
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

  /** One request, given at most `seconds`: a request that takes longer is "not yet" too. */
  async function attempt(endpoint, review, signal, seconds) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new NotYet(`no answer within ${Math.round(seconds)} s`, null)),
      seconds * 1000);
    const stop = () => controller.abort(signal.reason);
    signal.addEventListener("abort", stop, { once: true });
    try {
      return await requestVerdict(endpoint, review, controller.signal);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
    }
  }

  /** The verdict, asking again while the API says "not yet", for WAKE_SECONDS at most. */
  async function verdictWhenAwake(endpoint, review, signal) {
    const deadline = Date.now() + WAKE_SECONDS * 1000;
    for (let count = 1; ; count += 1) {
      const left = (deadline - Date.now()) / 1000;
      try {
        return await attempt(endpoint, review, signal, Math.max(1, Math.min(TIMEOUT_SECONDS, left)));
      } catch (failure) {
        if (!(failure instanceof NotYet)) throw failure;
        const wait = delayMs(failure, count);
        if (Date.now() + wait >= deadline) {
          throw new Shown(`The model is still not ready after ${WAKE_SECONDS} seconds (last answer: ` +
            `${failure.message.replace(/[.!]*$/, "")}). Your review is kept: try again in a few minutes.`);
        }
        setBusy("waking");
        await pause(wait, signal);
      }
    }
  }

  let current = null; // the AbortController of the review being scored

  async function score() {
    if (current) current.abort(new DOMException("superseded", "AbortError"));
    const controller = new AbortController();
    current = controller;
    const review = textarea.value;
    setBusy("scoring");
    let after = "";
    try {
      const endpoint = scoreEndpoint();
      showVerdict(review, await verdictWhenAwake(endpoint, review, controller.signal));
    } catch (failure) {
      if (current !== controller) return; // a newer request took over
      if (failure instanceof Cancelled) {
        after = "Cancelled. Your review is still here: press Score review to try again.";
      } else if (failure instanceof Shown) {
        showError(failure.message);
      } else {
        throw failure;
      }
    } finally {
      if (current === controller) {
        current = null;
        setBusy(after);
      }
    }
  }

  cancelButton.addEventListener("click", () => {
    if (current) current.abort(new Cancelled("cancelled"));
    textarea.focus();
  });

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
