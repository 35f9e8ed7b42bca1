"""Benchmark: how fast `annotator review open` stops on Ctrl-C (SIGINT) and on SIGTERM, and
what it leaves behind.

Builds a small classification dataset in a temporary SQLite store, then for each signal and
each round: starts `review open` on a free port, waits until the App's port answers, records
every descendant process, sends the signal and times until the command exits. It then checks
that the port no longer answers and that no descendant (the App server, its service wrapper,
FiftyOne's own mongod) is still running. FiftyOne's database lives in a temporary folder
unless FIFTYONE_DATABASE_URI names one. Prints the times and the ratio to the 2 s target.

    .venv/bin/python benchmarks/review_stop.py
    .venv/bin/python benchmarks/review_stop.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
TARGET = 2.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def annotator(db: str, *args: str, env: dict[str, str]) -> None:
    cmd = [sys.executable, "-m", "annotator", "--db", db, *args]
    subprocess.run(cmd, check=True, env=env, cwd=REPO, stdout=subprocess.DEVNULL)


def make_dataset(folder: Path, env: dict[str, str]) -> str:
    from PIL import Image

    for i in range(5):
        Image.new("RGB", (64, 48), (i * 40, 90, 30)).save(folder / f"img{i}.jpg")
    db = f"sqlite:///{folder / 'stop.db'}"
    annotator(db, "init", "pets", "--task", "classification", "--classes", "cat,dog", env=env)
    annotator(db, "add", "pets", str(folder), env=env)
    return db


def running(proc: psutil.Process) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until(check: object, timeout: float) -> float | None:
    """Seconds until check() is true, or None after timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.05)
    return None


def one_round(db: str, sig: signal.Signals, env: dict[str, str], log: Path) -> dict[str, object]:
    port = free_port()
    cmd = [sys.executable, "-m", "annotator", "--db", db, "review", "open", "pets",
           "--port", str(port)]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    if wait_until(lambda: answers(port) or proc.poll() is not None, 180) is None or proc.poll():
        proc.kill()
        raise SystemExit(f"review open did not serve:\n{log.read_text(errors='replace')}")
    kids = psutil.Process(proc.pid).children(recursive=True)
    names = {k.pid: " ".join(Path(a).name for a in k.cmdline()[:3]) for k in kids}
    start = time.monotonic()
    proc.send_signal(sig)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    stopped = time.monotonic() - start
    alive = [k for k in kids if running(k)]
    port_open = answers(port)
    lingered = wait_until(lambda: not any(running(k) for k in kids), 180)
    for k in kids:
        if k.is_running():
            k.kill()
    return {"stop_s": stopped, "rc": proc.returncode, "port_open": port_open,
            "children": len(kids), "alive": [names[k.pid] for k in alive],
            "linger_s": lingered}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="review-stop-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "FIFTYONE_DO_NOT_TRACK": "true"}
        env.setdefault("FIFTYONE_DATABASE_DIR", str(folder / "fo"))
        db = make_dataset(folder, env)
        worst = 0.0
        for sig in (signal.SIGINT, signal.SIGTERM):
            for i in range(args.rounds):
                r = one_round(db, sig, env, folder / "open.log")
                worst = max(worst, float(r["stop_s"]))  # type: ignore[arg-type]
                gone = "never" if r["linger_s"] is None else f"{r['linger_s']:.2f} s"
                print(f"{sig.name} round {i + 1}: exit {r['rc']} after {r['stop_s']:.2f} s; "
                      f"port open after exit: {r['port_open']}; {r['children']} children, "
                      f"alive at exit: {r['alive'] or 'none'}; all gone after {gone}")  # fmt: skip
        print(f"slowest stop {worst:.2f} s = {worst / TARGET:.2f} x the {TARGET:.0f} s target")


if __name__ == "__main__":
    main()
