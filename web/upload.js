// Critic web page, scoring a file: POST <api>/uploads asks for a presigned S3
// POST (the page never holds AWS credentials), the file goes straight to the
// bucket with upload progress, then GET <api>/uploads/<id> is asked until the
// job ends, and the results are offered for download. Every text goes into
// the page with textContent (Trusted Types, as in app.js).
"use strict";

(() => {
  const SUFFIXES = [".txt", ".jsonl", ".csv"]; // batch/jobs.py's input formats
  const POLL_MS = [1000, 2000, 3000, 5000]; // then every 5 s
  const DOWNLOAD_FRESH_MS = 4 * 60 * 1000; // the API's download links last 5 minutes
  const STATES = {
    Waiting: "Uploaded. Waiting for the scorer: on a busy account this can take a while.",
    InProgress: "Scoring the file… (on AWS a batch job takes a few minutes to start)",
  };

  const byId = (id) => document.getElementById(id);
  const { apiBase, Shown } = window.critic;
  const fileInput = byId("file");
  const dropZone = byId("drop-zone");
  const progress = byId("upload-progress");
  const status = byId("upload-status");
  const error = byId("upload-error");
  const download = byId("download");
  const section = byId("upload-section");

  let current = null; // { cancelled } of the file being handled
  let downloadFetchedAt = 0;
  let downloadId = null;

  function say(text) {
    if (status.textContent !== text) status.textContent = text; // a live region: said once
  }

  function fail(message) {
    error.textContent = message;
    error.hidden = false;
    section.setAttribute("aria-busy", "false");
  }

  function reset() {
    error.textContent = "";
    error.hidden = true;
    download.hidden = true;
    download.removeAttribute("href");
    progress.hidden = true;
    progress.value = 0;
    say("");
  }

  function apiUnreachable(base) {
    return new Shown(`Cannot reach the Critic API at ${new URL(base).origin}. ` +
      "Check that it is running and that you are connected, then try again.");
  }

  async function api(base, path, options) {
    let response;
    let body = null;
    try {
      response = await fetch(`${base}${path}`, { credentials: "omit", cache: "no-store", ...options });
      const text = await response.text();
      try {
        body = JSON.parse(text);
      } catch {
        body = null;
      }
    } catch {
      throw apiUnreachable(base);
    }
    const message = body && typeof body.message === "string" ? body.message.trim() : "";
    if (response.status === 413) throw new Shown(`The file is too large: ${message || "over the upload limit"}.`);
    if (response.status >= 400 && response.status < 500) {
      throw new Shown(message || `The API refused the file (HTTP ${response.status}).`);
    }
    if (!response.ok || body === null || typeof body !== "object") {
      throw new Shown(`The API failed (HTTP ${response.status})${message ? `: ${message}` : ""}. Try again in a moment.`);
    }
    return body;
  }

  /** S3's XML error (<Code>, <Message>) as a sentence for the person. */
  function storageError(xhr) {
    const text = xhr.responseText || "";
    const code = (/<Code>([^<]*)<\/Code>/.exec(text) || [])[1] || "";
    const message = (/<Message>([^<]*)<\/Message>/.exec(text) || [])[1] || "";
    if (/expired/i.test(message)) {
      return "The upload link expired before the file was sent. Choose the file again to get a new link.";
    }
    if (code === "EntityTooLarge" || code === "EntityTooSmall") {
      return "The file changed size since it was chosen. Choose it again.";
    }
    return `The storage refused the file (HTTP ${xhr.status}${code ? `, ${code}` : ""}${message ? `: ${message}` : ""}).`;
  }

  /** POST the file to the presigned URL as a form, reporting progress; resolves when stored. */
  function send(upload, file, job) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
      form.append("file", file); // S3 reads the fields before the file: it must come last
      const xhr = new XMLHttpRequest();
      job.abort = () => xhr.abort();
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const percent = Math.round((event.loaded / event.total) * 100);
        progress.value = percent;
        say(`Uploading… ${percent}%`);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          progress.value = 100;
          resolve();
        } else {
          reject(new Shown(storageError(xhr)));
        }
      });
      xhr.addEventListener("error", () => reject(new Shown(
        `Cannot send the file to the storage at ${new URL(upload.url).origin}. Check that you are connected, ` +
        "then try again.")));
      xhr.addEventListener("abort", () => reject(new DOMException("superseded", "AbortError")));
      xhr.open("POST", upload.url);
      xhr.send(form);
    });
  }

  const pause = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

  function describeCounts(counts) {
    if (!counts) return "";
    const scored = `${counts.scored} of ${counts.records} ${counts.records === 1 ? "line" : "lines"} scored`;
    return counts.errors ? `${scored}; ${counts.errors} could not be (their line says why).` : `${scored}.`;
  }

  function showDownload(base, state) {
    download.href = state.download;
    downloadFetchedAt = Date.now();
    downloadId = { base, id: state.id };
    download.hidden = false;
  }

  /** Asks the API for the job's state until it ends; shows each state as it changes. */
  async function follow(base, id, job) {
    for (let attempt = 0; ; attempt += 1) {
      const state = await api(base, `/uploads/${encodeURIComponent(id)}`, { method: "GET" });
      if (job.cancelled) return;
      if (state.status in STATES) {
        say(STATES[state.status]);
        await pause(POLL_MS[Math.min(attempt, POLL_MS.length - 1)]);
        if (job.cancelled) return;
        continue;
      }
      section.setAttribute("aria-busy", "false");
      if (state.status === "Completed" && typeof state.download === "string") {
        say(`Done: ${describeCounts(state.counts)}`);
        showDownload(base, state);
      } else if (state.status === "Skipped") {
        fail(`The file was not scored: ${state.failureReason || "no reason given"}.`);
        say("");
      } else {
        fail(`Scoring failed: ${state.failureReason || "no reason given"}. Fix the file and choose it again.`);
        say("");
      }
      return;
    }
  }

  async function scoreFile(file) {
    if (current) {
      current.cancelled = true;
      if (current.abort) current.abort();
    }
    const job = { cancelled: false, abort: null };
    current = job;
    reset();
    try {
      const name = file.name || "";
      if (!SUFFIXES.some((suffix) => name.toLowerCase().endsWith(suffix))) {
        throw new Shown(`“${name}” cannot be scored: choose a ${SUFFIXES.join(", ")} file.`);
      }
      if (file.size === 0) throw new Shown(`“${name}” is empty.`);
      const base = apiBase();
      section.setAttribute("aria-busy", "true");
      say("Preparing the upload…");
      const created = await api(base, "/uploads", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ filename: name, size: file.size }),
      });
      if (job.cancelled) return;
      progress.hidden = false;
      say("Uploading… 0%");
      await send(created.upload, file, job);
      if (job.cancelled) return;
      say(STATES.Waiting);
      await follow(base, created.id, job);
    } catch (failure) {
      if (job.cancelled) return;
      if (failure instanceof Shown) {
        say("");
        fail(failure.message);
      } else {
        throw failure;
      }
    }
  }

  fileInput.addEventListener("change", () => {
    if (fileInput.files.length > 0) scoreFile(fileInput.files[0]);
  });

  for (const name of ["dragenter", "dragover"]) {
    dropZone.addEventListener(name, (event) => {
      event.preventDefault();
      dropZone.dataset.over = "true";
    });
  }
  dropZone.addEventListener("dragleave", () => { dropZone.dataset.over = "false"; });
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropZone.dataset.over = "false";
    const files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length > 0) scoreFile(files[0]);
  });

  // A download link lasts 5 minutes: an older one is asked for again first.
  download.addEventListener("click", async (event) => {
    if (Date.now() - downloadFetchedAt < DOWNLOAD_FRESH_MS || !downloadId) return;
    event.preventDefault();
    try {
      const state = await api(downloadId.base, `/uploads/${encodeURIComponent(downloadId.id)}`, { method: "GET" });
      if (typeof state.download !== "string") throw new Shown("The results are no longer available.");
      showDownload(downloadId.base, state);
      window.location.assign(state.download);
    } catch (failure) {
      if (!(failure instanceof Shown)) throw failure;
      fail(failure.message);
    }
  });
})();
