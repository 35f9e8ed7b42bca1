"""Benchmark: the whole CLI at scale (default 100,000 images, 1,000,000 boxes): `import coco`,
`stats`, `split`, `export coco`, `export yolo` and `add` (registering the folder of real files
into a new dataset), each a fresh process, with wall and CPU seconds and peak RSS. `--compare
DIR` runs the import and exports of another checkout too (same data, same run) for ratios.

The data is written once into --keep (distinct 64x48 JPEGs, a COCO file written in pieces):
100,000 images take a few minutes and ~200 MB of disk; 1,000,000 ten times that.

    .venv/bin/python benchmarks/scale.py --keep /tmp/scale100k
    .venv/bin/python benchmarks/scale.py --keep /tmp/scale100k --compare /tmp/base --only import
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bytecode import compile_package
from formats import ROOT, cli, prepare, timed

PHASES = ("import", "stats", "split", "coco", "yolo", "add")


def commands(checkout: Path, work: Path) -> dict[str, list[str]]:
    out = str(work / f"out-{checkout.name}")
    return {
        "import": cli(checkout, work, "import", "coco", str(work / "instances_train.json"),
                      "-d", "bench", "--images", str(work / "images"), "-q"),
        "stats": cli(checkout, work, "stats", "bench"),
        "split": cli(checkout, work, "split", "bench", "--reassign"),
        "coco": cli(checkout, work, "export", "coco", "bench", out, "--media", "none",
                    "--overwrite"),
        "yolo": cli(checkout, work, "export", "yolo", "bench", out, "--media", "none",
                    "--overwrite"),
        "add": cli(checkout, work, "add", "folder", str(work / "images")),
    }  # fmt: skip


def revision(checkout: Path) -> str:
    """The commit `checkout` is at ("+" when it has uncommitted changes): what a figure was
    measured on."""
    git = ["git", "-C", str(checkout)]
    try:
        rev = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("+" if dirty else "")


def run(checkout: Path, work: Path, only: list[str]) -> dict[str, dict[str, Any]]:
    print(f"{checkout.name}: commit {revision(checkout)}")
    db = work / f"{checkout.name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "ANNOTATOR_USER": "bench"}
    compile_package(checkout)
    cmds = commands(checkout, work)
    got: dict[str, dict[str, Any]] = {}
    for phase in PHASES:
        if phase not in only:
            continue
        if phase == "add":
            timed(cli(checkout, work, "init", "folder", "--task", "detection", "--classes", "a"))
        got[phase] = timed(cmds[phase], env)
        print(f"{checkout.name} {phase}: {got[phase]['seconds']:.2f} s wall, "
              f"{got[phase]['cpu']:.2f} s CPU, {got[phase]['peak_mb']:.0f} MB peak")  # fmt: skip
    return got


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="images (default 100000)")
    parser.add_argument("--boxes", type=int, default=10, help="boxes per image (default 10)")
    parser.add_argument("--keep", type=Path, required=True, help="folder for the data (kept)")
    parser.add_argument("--compare", type=Path, action="append", default=[])
    parser.add_argument("--only", default=",".join(PHASES), help="phases, comma-separated")
    args = parser.parse_args()
    args.keep.mkdir(parents=True, exist_ok=True)
    prepare(args.keep, args.n, args.boxes)
    only = args.only.split(",")
    results = {c: run(c, args.keep, only) for c in [ROOT, *(p.resolve() for p in args.compare)]}
    print(f"\n{'phase':<8}{'wall s':>9}{'CPU s':>9}{'peak MB':>9}")
    for phase, got in results[ROOT].items():
        print(f"{phase:<8}{got['seconds']:>9.2f}{got['cpu']:>9.2f}{got['peak_mb']:>9.0f}")
    for checkout, got in results.items():
        if checkout == ROOT:
            continue
        for phase, theirs in got.items():
            mine = results[ROOT][phase]
            print(f"{checkout.name} / annotator, {phase}: wall {theirs['seconds'] / mine['seconds']:.2f}x"
                  f", CPU {theirs['cpu'] / mine['cpu']:.2f}x, peak {theirs['peak_mb']:.0f} MB")  # fmt: skip


if __name__ == "__main__":
    main()
