"""Benchmark: how long a person waits for the small commands, as whole processes. Builds a small
database (one dataset, `--images` images with labels, a few flagged, splits set), then times
`annotator --help`, `stats` (table and --json) and `datasets` (target <= 0.25 s each), and
`stats` forced through the usual store (SQLAlchemy) for comparison, against two baselines
measured in the same run: the bare interpreter (`python -c pass`) and `import sqlalchemy`.
Each figure is the best of `--repeat` runs, wall clock and CPU seconds (user + system, which a
busy machine disturbs less), with its ratio to the interpreter's start.

    .venv/bin/python benchmarks/startup.py [--images 200] [--repeat 9]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bytecode import compile_package

PY = sys.executable
STORE_PATH = (  # stats with the quick read stepped aside: the store (SQLAlchemy) path
    "import sys; from annotator.store import quick; quick._connect = lambda path: None; "
    "from annotator.main import main; main(sys.argv[1:])"
)


def build(db: Path, images: int) -> None:
    """Dataset `pets`: `images` images, every other one labelled, a tenth flagged, split."""
    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store
    from annotator.store.models import Annotation, Image

    store = open_store(str(db))
    with store.session() as s:
        ds = create_dataset(s, "pets", "classification", ["cat", "dog", "bird"])
        rows = [Image(dataset_id=ds.id, path=f"img{i:05d}.jpg", sha256=f"{i:064x}", width=64,
                      height=48, size_bytes=1000, split=("train", "val", "test")[i % 3],
                      status="labeled" if i % 2 == 0 else "unlabeled",
                      flag="unknown class 'fox'" if i % 10 == 0 else None)
                for i in range(images)]  # fmt: skip
        s.add_all(rows)
        s.flush()
        s.add_all(Annotation(dataset_id=ds.id, task=ds.task, image_id=im.id, kind="label",
                             class_id=ds.classes[i % 3].id, author="bench")
                  for i, im in enumerate(rows) if i % 2 == 0)  # fmt: skip
        s.commit()
    store.close()


def annotator_command() -> list[str]:
    script = Path(PY).parent / "annotator"
    return [str(script)] if script.exists() else [PY, "-m", "annotator"]


def time_once(argv: list[str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole process; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                   env={**os.environ, "COLUMNS": "120"})  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def best(argv: list[str], cwd: Path, repeat: int) -> tuple[float, float]:
    time_once(argv, cwd)  # warm the file cache
    runs = [time_once(argv, cwd) for _ in range(repeat)]
    return min(w for w, _ in runs), min(c for _, c in runs)


def cases(db: Path) -> list[tuple[str, list[str]]]:
    cli = [*annotator_command(), "--db", str(db)]
    return [
        ("python -c pass", [PY, "-c", "pass"]),
        ("python -c 'import sqlalchemy'", [PY, "-c", "import sqlalchemy"]),
        ("python -c 'import sqlalchemy.orm'", [PY, "-c", "import sqlalchemy.orm"]),
        ("annotator --help", [*annotator_command(), "--help"]),
        ("annotator stats pets", [*cli, "stats", "pets"]),
        ("annotator stats pets --json", [*cli, "stats", "pets", "--json"]),
        ("annotator datasets", [*cli, "datasets"]),
        (
            "stats pets via the store (SQLAlchemy)",
            [PY, "-c", STORE_PATH, *cli[-2:], "stats", "pets"],
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    compile_package(Path(__file__).resolve().parents[1])
    work = Path(tempfile.mkdtemp(prefix="annotator-startup-"))
    try:
        db = work / "small.db"
        build(db, args.images)
        results = [(name, *best(argv, work, args.repeat)) for name, argv in cases(db)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base_wall, base_cpu = results[0][1], results[0][2]
    sqla_wall, sqla_cpu = results[1][1], results[1][2]
    print(f"{args.images} images; best of {args.repeat} runs; target <= 0.25 s per command")
    print(f"{'command':40s} {'wall s':>7s} {'cpu s':>7s}   x pass (wall, cpu)   "
          "x sqlalchemy (wall, cpu)")  # fmt: skip
    for name, wall, cpu in results:
        print(f"{name:40s} {wall:7.3f} {cpu:7.3f}   {wall / base_wall:6.1f} {cpu / base_cpu:6.1f}"
              f"          {wall / sqla_wall:6.2f} {cpu / sqla_cpu:6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
