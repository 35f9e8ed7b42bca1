"""Benchmark: the labelling app on a large store. Builds (or reuses) a database with 100,000
images and 1,000,000 boxes (`benchmarks/tui_data.py`), then drives the app with Textual's pilot
at 200x60 in half-block mode and measures:

- open: from creating the app to the first image drawn with its labels (target < 1 s);
- next: from pressing `n` to the next image drawn with its labels (target p95 < 50 ms), over
  `--moves` moves, in a few queues.

Each is given in wall time and in CPU time of the process (all its threads, the prefetch
included): on a shared, busy machine the wall time counts the waits for a core, the CPU time
what the app itself spent.

Baseline in the same run: the store work alone for the same moves (queue step + labels read),
so the figures show what the UI adds on top of the queries.

    .venv/bin/python benchmarks/tui.py [--db /tmp/big.db] [--images 100000] [--boxes 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
# what a modern terminal (and tmux with truecolor) reports; the headless default is 16 colours
os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", "truecolor")

from tui_data import build

SIZE = (200, 60)
PACE_S = 0.15  # a fast labeller: a few images a second


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"{name:34s} n={len(ms):4d}  p50 {statistics.median(ms):7.2f} ms  "
            f"p95 {pct(ms, 0.95):7.2f} ms  max {max(ms):7.2f} ms")  # fmt: skip


def baseline(db: Path, queue: str, order: str, moves: int) -> list[float]:
    """The store work alone for each move: the next id in the queue, then its labels."""
    from annotator.store import queue as q
    from annotator.store.db import open_store

    store = open_store(f"sqlite:///{db}")
    times = []
    with store.session() as s:
        info = q.dataset_info(s, "big")
        spec = q.QueueSpec(queue, order)
        current = q.first(s, info.id, spec)
        for _ in range(moves):
            started = time.perf_counter()
            assert current is not None
            current = q.step(s, spec, current)
            if current is None:
                break
            q.load_view(s, current)
            times.append(time.perf_counter() - started)
    store.close()
    return times


async def _until(check: Any, timeout: float = 60.0) -> None:
    """Wait for `check()`; generous, as a busy shared machine stalls a process for seconds."""
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise TimeoutError("the app did not get there in time")
        await asyncio.sleep(0.0005)


async def drive(
    db: Path, queue: str, order: str, moves: int
) -> tuple[tuple[float, float], list[float], list[float]]:
    """Open time (wall, CPU) and the wall and CPU times of each move."""
    from textual import events

    from annotator.config import Settings
    from annotator.store.db import open_store
    from annotator.tui import render
    from annotator.tui.app import create_app

    started, started_cpu = time.perf_counter(), time.process_time()
    store = open_store(f"sqlite:///{db}")
    app = create_app(store, "big", mode="halfblock", queue=queue, order=order,
                     settings=Settings(render="halfblock"))  # fmt: skip
    displays: list[float] = []
    shown_at: dict[int, tuple[float, float]] = {}  # image id -> (wall, CPU) when first drawn

    def displayed() -> None:
        now = time.perf_counter()
        displays.append(now)
        screen = app.labelling_screen
        if screen is not None and screen.view is not None:
            shown_at.setdefault(screen.view.id, (now, time.process_time()))

    app.post_display_hook = displayed  # type: ignore[method-assign]
    headless_display = app._display

    def display(screen: Any, renderable: Any) -> None:
        """Headless textual skips writing escape codes; a terminal pays for them: so do we."""
        if renderable is not None and hasattr(renderable, "render_segments"):
            renderable.render_segments(app.console)
        headless_display(screen, renderable)

    app._display = display  # type: ignore[method-assign]
    times: list[float] = []
    cpu: list[float] = []
    async with app.run_test(size=SIZE) as pilot:
        screen: Any = None

        def first_drawn() -> bool:
            nonlocal screen
            screen = app.labelling_screen
            return bool(screen and screen.view and screen.view.id in shown_at)

        await _until(first_drawn)
        wall_at, cpu_at = shown_at[screen.view.id]
        opened = (wall_at - started, cpu_at - started_cpu)
        await pilot.pause(0.5)  # let the first prefetch finish, as a person would look first
        for _ in range(moves):
            render._cell_cache.clear()  # as if every photo were new: no cell reused
            before = screen.view.id
            shown_at.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            app._driver.send_message(events.Key("n", "n"))  # type: ignore[union-attr]
            await _until(lambda: screen.view.id != before and screen.view.id in shown_at)  # noqa: B023
            times.append(shown_at[screen.view.id][0] - t0)
            cpu.append(shown_at[screen.view.id][1] - c0)
            await asyncio.sleep(PACE_S)  # a person looks at the image before the next key
    store.close()
    return opened, times, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", type=Path, help="database to reuse or build (default: a temp)")
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--boxes", type=int, default=1_000_000)
    parser.add_argument("--moves", type=int, default=200)
    args = parser.parse_args()
    scratch = None if args.db else Path(tempfile.mkdtemp(prefix="annotator-bench-"))
    db = args.db or Path(str(scratch)) / "big.db"
    try:
        run(db, args)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def run(db: Path, args: argparse.Namespace) -> None:
    if not db.exists():
        started = time.perf_counter()
        db.parent.mkdir(parents=True, exist_ok=True)
        build(db, args.images, args.boxes)
        print(f"built {db}: {args.images:,} images, {args.boxes:,} boxes "
              f"in {time.perf_counter() - started:.1f} s")  # fmt: skip
    print(f"terminal {SIZE[0]}x{SIZE[1]}, half-block mode, {args.moves} moves per queue")
    for queue, order in (("all", "path"), ("unlabeled", "path"), ("review", "uncertainty")):
        base = baseline(db, queue, order, args.moves)
        opened, times, cpu = asyncio.run(drive(db, queue, order, args.moves))
        print(f"-- queue {queue} by {order}")
        print(f"open (app created -> first image drawn) {opened[0] * 1000:8.1f} ms   "
              f"target < 1000   (CPU {opened[1] * 1000:.1f} ms)")  # fmt: skip
        print(line("next (n -> next image drawn)", times) + "   target p95 < 50")
        print(line("next, CPU time of the process", cpu))
        print(line("baseline: store work per move", base))
        print(
            f"ratio p50 next / store work: {statistics.median(times) / statistics.median(base):.1f}x"
        )


if __name__ == "__main__":
    main()
