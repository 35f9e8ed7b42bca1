"""`annotator review open` as a user runs it, in a subprocess: Ctrl-C (SIGINT) and SIGTERM both
end it cleanly (exit 0), with the App's port closed and none of the processes it started (the
App server and FiftyOne's service wrapper) left running. Waits are generous and polled; how
fast it stops is measured by benchmarks/review_stop.py."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import REPO
from tests.review.test_browser import free_port, stop, wait_for_url
from tests.review.test_push import detection_store

pytestmark = [pytest.mark.xdist_group("fiftyone"), pytest.mark.slow]


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def running(procs: list[psutil.Process]) -> list[str]:
    """The command lines of those still running (a zombie has ended)."""
    alive = []
    for proc in procs:
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(" ".join(proc.cmdline()[:4]))
        except psutil.NoSuchProcess:
            pass
    return alive


def open_app(
    db_url: str, name: str, port: int, log: Path, ignoring_sigint: bool = False
) -> subprocess.Popen[bytes]:
    """`review open` as a process; `ignoring_sigint`: started with SIGINT ignored, as a shell
    without job control starts a background job (Python then leaves Ctrl-C ignored)."""

    def ignore_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "annotator", "--db", db_url, "review", "open", name,
             "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy(), cwd=REPO,
            preexec_fn=ignore_sigint if ignoring_sigint else None,
        )  # fmt: skip


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_app_and_everything_it_started(
    fo: Any, build: Any, store: Any, db_url: str, tmp_path: Path, sig: signal.Signals
) -> None:
    b = detection_store(build, store)
    port = free_port()
    log = tmp_path / "open.log"
    # SIGINT: started with it ignored (the harder case: Ctrl-C must stop the App all the same)
    proc = open_app(db_url, b.name, port, log, ignoring_sigint=sig == signal.SIGINT)
    try:
        wait_for_url(proc, log)
        assert answers(port)
        started = psutil.Process(proc.pid).children(recursive=True)
        assert running(started), "the App server runs in processes of its own"
    finally:
        stop(proc, sig)
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, output
    assert not answers(port)
    deadline = time.monotonic() + 15  # a SIGKILLed process may take a moment to be reaped
    while running(started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running(started) == []
    assert "Traceback" not in output and "Could not connect session" not in output
    assert "exited with error" not in output  # FiftyOne's wrapper reporting its server's end
