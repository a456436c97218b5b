"""What the browser tests share that is not a fixture (those are in conftest.py):
Chromium and its window sizes, `critic serve` on free ports, and Watch, which
fails a test on anything the page did that the test did not ask for."""
from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}
START_TIMEOUT = 180  # seconds for `critic serve` to load the model and print its banner
# Run in every page before its scripts: what Watch.check reads as window.__cspViolations.
RECORD_CSP_VIOLATIONS = ("window.__cspViolations = [];"
                         "document.addEventListener('securitypolicyviolation', e =>"
                         " window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(repo_root: Path, folder: Path, artifact: Path, *extra: str):
    """`critic serve` on free ports with a data folder under `folder`: yields the API's URL."""
    api_port, aws_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CRITIC_"))}
    log = open(folder / "serve.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "critic", "serve", "--artifact", str(artifact), "--data", str(folder / "data"),
         "--fresh", "--api-port", str(api_port), "--aws-port", str(aws_port), *extra],
        cwd=repo_root, env=env, stdout=subprocess.PIPE, stderr=log)
    ready = threading.Event()

    def read_banner() -> None:
        for line in process.stdout:
            if line.startswith(b"Ctrl-C stops everything"):
                ready.set()
        ready.set()  # exited

    threading.Thread(target=read_banner, daemon=True).start()
    try:
        if not ready.wait(START_TIMEOUT) or process.poll() is not None:
            raise AssertionError("critic serve did not start:\n" + (folder / "serve.log").read_text()[-3000:])
        yield f"http://127.0.0.1:{api_port}"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@dataclass
class Watch:
    """What a page did that a test did not ask for."""
    origins: set[str]
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("request", lambda request: self.requests.append(request.url))

    def check(self, page: Page, allowed_console: tuple[str, ...] = ()) -> None:
        violations = page.evaluate("window.__cspViolations")
        assert violations == [], f"Content-Security-Policy violations: {violations}"
        assert self.page_errors == [], f"JavaScript errors: {self.page_errors}"
        assert self.dialogs == [], f"dialogs opened: {self.dialogs}"
        unexpected = [text for text in self.console_errors
                      if not any(re.search(pattern, text) for pattern in allowed_console)]
        assert unexpected == [], f"console errors: {unexpected}"
        strangers = [url for url in self.requests
                     if not any(url.startswith(origin + "/") or url == origin for origin in self.origins)]
        assert strangers == [], f"requests to other places: {strangers}"
