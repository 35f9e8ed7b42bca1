"""The App for real: `annotator review open` in a subprocess serves a pushed dataset on a free
127.0.0.1 port; headless Debian chromium (driven by Playwright) opens the printed URL and the
grid shows every sample. The screenshot is kept as artifacts/review-grid.png."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from tests.conftest import REPO
from tests.review.test_push import detection_store

pytestmark = [pytest.mark.xdist_group("fiftyone"), pytest.mark.browser, pytest.mark.slow]

ARTIFACT = REPO / "artifacts" / "review-grid.png"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_url(proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> str:
    """The URL `review open` prints once the App is served."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("App: "):
                return line.split()[1]
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.3)
    raise AssertionError(f"no App URL after {timeout}s:\n{log.read_text(errors='replace')}")


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGINT,
         timeout: float = 180) -> None:  # fmt: skip
    """Ctrl-C, as a user stops it (or another signal). It stops in about a second on an idle
    machine (benchmarks/review_stop.py); the generous wait is for a machine busy with other
    tests. Killed, and the test failed, if it does not stop."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"review open did not stop within {timeout}s of {sig.name}"
            ) from None


def look(url: str, port: int, count: int) -> set[str]:
    """Open the App, wait for the grid, save the screenshot; returns the media it fetched."""
    from playwright.sync_api import sync_playwright

    local = f"http://127.0.0.1:{port}/"
    media: set[str] = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                    args=CHROMIUM_ARGS)  # fmt: skip
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        # nothing but the App itself (it links web fonts, which are left unloaded)
        page.route("**/*", lambda r: r.continue_() if r.request.url.startswith(local)
                   else r.abort())  # fmt: skip
        page.on("request", lambda r: media.add(unquote(r.url.split("filepath=")[1]))
                if "/media?filepath=" in r.url else None)  # fmt: skip
        page.goto(url)
        page.get_by_text(f"{count} samples").wait_for(timeout=90_000)
        tiles = page.locator('[data-cy="looker"]')
        tiles.nth(count - 1).wait_for(timeout=60_000)
        assert tiles.count() == count
        for _ in range(100):
            if len(media) >= count:
                break
            page.wait_for_timeout(300)
        dismiss = page.get_by_text("Dismiss", exact=True)
        if dismiss.count():
            dismiss.first.click()
        page.wait_for_timeout(1500)
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACT))
        browser.close()
    return media


def test_the_app_grid_shows_the_pushed_samples(fo: Any, build: Any, store: Any, db_url: str,
                                               tmp_path: Path) -> None:  # fmt: skip
    if not shutil.which("chromium"):  # a failure under CI=true (tests/strict_skips.py)
        pytest.skip("needs Debian's chromium (apt-get install chromium)")
    b = detection_store(build, store)
    port = free_port()
    log = tmp_path / "open.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "annotator", "--db", db_url, "review", "open", b.name,
             "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(), cwd=REPO,
        )  # fmt: skip
    try:
        url = wait_for_url(proc, log)
        assert url == f"http://127.0.0.1:{port}/datasets/{b.fo_name}"
        media = look(url, port, len(b.images))
    finally:
        stop(proc)
    assert media == set(fo.load_dataset(b.fo_name).values("filepath"))
    assert ARTIFACT.stat().st_size > 10_000
    assert proc.returncode == 0, log.read_text(errors="replace")
