"""Benchmark: COCO import and COCO/YOLO export against FiftyOne doing the same work.

Writes N distinct small JPEGs and a COCO file with --boxes boxes each (default 10,000 images,
100,000 boxes) into a temporary folder, then times, each in a fresh process (so peak memory is
per phase): our import (hashing every image and writing the store), our COCO and YOLO exports
(--media none: labels only), and FiftyOne's `Dataset.from_dir(COCODetectionDataset)` plus its
COCO and YOLOv5 exports with `export_media=False`. Prints seconds, peak RSS and the ratios.
Our phases run --repeat times (best kept); FiftyOne's, which take minutes, once.

    .venv/bin/python benchmarks/formats.py                  # 10,000 images, with FiftyOne
    .venv/bin/python benchmarks/formats.py --skip-fiftyone --n 100000
    .venv/bin/python benchmarks/formats.py --fiftyone-n 2000  # FiftyOne on a subset, scaled
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SIZE = (64, 48)
CLASSES = [f"class_{i}" for i in range(10)]


def write_images(folder: Path, n: int) -> list[str]:
    """n distinct small JPEGs: a colour plus the index drawn as 24 white or black cells."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(n):
        img = Image.new("RGB", SIZE, (40 + i % 200, 90, 160 - i % 150))
        for bit in range(24):
            value = 255 if (i >> bit) & 1 else 0
            x, y = (bit % 8) * 8, (bit // 8) * 8
            img.paste((value, value, value), (x, y, x + 6, y + 6))
        name = f"img{i:06d}.jpg"
        img.save(folder / name, quality=85)
        names.append(name)
    return names


def write_coco(path: Path, names: list[str], boxes: int, seed: int = 0) -> None:
    import orjson

    rng = random.Random(seed)
    width, height = SIZE
    images, anns = [], []
    for image_id, name in enumerate(names, 1):
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for _ in range(boxes):
            w, h = rng.uniform(4, 30), rng.uniform(4, 20)
            x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
            anns.append({"id": len(anns) + 1, "image_id": image_id,
                         "category_id": rng.randint(1, len(CLASSES)), "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": 0, "segmentation": []})  # fmt: skip
    cats = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(CLASSES)]
    data = {"info": {}, "licenses": [], "images": images, "annotations": anns, "categories": cats}
    path.write_bytes(orjson.dumps(data))


def peak_mb() -> float:
    """This process's peak resident memory. VmHWM belongs to the process image (ru_maxrss would
    carry over the parent's peak from before the exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- phases (child processes)


def phase_import(work: Path) -> dict[str, Any]:
    from annotator.formats.importing import import_source
    from annotator.store.db import open_store

    for suffix in ("", "-wal", "-shm"):
        Path(f"{work / 'bench.db'}{suffix}").unlink(missing_ok=True)
    store = open_store(str(work / "bench.db"))
    started = time.perf_counter()
    with store.session() as s:
        report = import_source(s, "coco", work / "instances_train.json", "bench",
                               images=work / "images")  # fmt: skip
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images": report.images, "labels": report.labels,
            "problems": len(report.problems)}  # fmt: skip


def phase_export(work: Path, fmt: str) -> dict[str, Any]:
    from annotator.formats.exporting import export_dataset
    from annotator.store.db import open_store

    store = open_store(str(work / "bench.db"), create=False)
    dest = work / f"out-{fmt}"
    started = time.perf_counter()
    with store.session() as s:
        report = export_dataset(s, fmt, "bench", dest, media="none", overwrite=True)
    seconds = time.perf_counter() - started
    split = report.manifest.splits["train"]
    return {"seconds": seconds, "images": split.images, "labels": split.labels}


def phase_fiftyone(work: Path, n: int) -> dict[str, Any]:
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    os.environ.setdefault("FIFTYONE_DATABASE_DIR", str(work / "fo-db"))
    import fiftyone as fo

    labels = work / "fo_subset.json"
    names = [f"img{i:06d}.jpg" for i in range(n)]
    write_coco(labels, names, _boxes(work))
    out: dict[str, Any] = {}
    started = time.perf_counter()
    ds = fo.Dataset.from_dir(dataset_dir=str(work), dataset_type=fo.types.COCODetectionDataset,
                             data_path="images", labels_path=str(labels))  # fmt: skip
    out["import"] = time.perf_counter() - started
    for key, kind in (("coco", fo.types.COCODetectionDataset), ("yolo", fo.types.YOLOv5Dataset)):
        started = time.perf_counter()
        ds.export(export_dir=str(work / f"fo-{key}"), dataset_type=kind, export_media=False,
                  label_field="detections", overwrite=True)  # fmt: skip
        out[key] = time.perf_counter() - started
    out["samples"] = len(ds)
    ds.delete()
    return out


def _boxes(work: Path) -> int:
    return int((work / "boxes.txt").read_text())


# ---------------------------------------------------------------- orchestration


def run_child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"phase {args} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(work: Path, n: int, boxes: int) -> None:
    started = time.perf_counter()
    names = write_images(work / "images", n)
    write_coco(work / "instances_train.json", names, boxes)
    (work / "boxes.txt").write_text(str(boxes))
    size = (work / "instances_train.json").stat().st_size / 1e6
    print(f"wrote {n} JPEGs and a {size:.1f} MB COCO file with {n * boxes} boxes "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip


def report(ours: dict[str, dict[str, Any]], fo: dict[str, Any] | None, scale: float) -> None:
    print(f"\n{'work':<14}{'annotator':>12}{'peak MB':>10}{'FiftyOne':>12}{'ratio':>9}")
    for key, label in (("import", "import"), ("coco", "export COCO"), ("yolo", "export YOLO")):
        mine = ours[key]
        theirs = fo[key] * scale if fo else None
        ratio = f"{theirs / mine['seconds']:.1f}x" if theirs else "-"
        shown = f"{theirs:.2f} s" if theirs else "-"
        print(f"{label:<14}{mine['seconds']:>10.2f} s{mine['peak_mb']:>10.0f}{shown:>12}{ratio:>9}")
    if fo and scale != 1:
        print(f"(FiftyOne ran on {fo['samples']} images; its times are scaled by {scale:.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images (default 10000)")
    parser.add_argument("--boxes", type=int, default=10, help="boxes per image (default 10)")
    parser.add_argument("--skip-fiftyone", action="store_true", help="time only annotator")
    parser.add_argument("--fiftyone-n", type=int, help="images FiftyOne gets (default --n)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours; best kept (3)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        return _child(args)
    work = args.keep or Path(tempfile.mkdtemp(prefix="annotator-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        prepare(work, args.n, args.boxes)
        ours: dict[str, dict[str, Any]] = {}
        for _ in range(args.repeat):  # best of --repeat: the machine is shared, noise is high
            for phase in ("import", "coco", "yolo"):
                got = run_child(["--phase", phase, "--work", str(work)])
                print(f"{phase}: {got}")
                if phase not in ours or got["seconds"] < ours[phase]["seconds"]:
                    ours[phase] = got
        fo = None
        fo_n = min(args.fiftyone_n or args.n, args.n)
        if not args.skip_fiftyone:
            fo = run_child(["--phase", "fiftyone", "--work", str(work), "--n", str(fo_n)])
            print(f"fiftyone: {fo}")
        report(ours, fo, args.n / fo_n)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _child(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if args.phase == "import":
        out = phase_import(args.work)
    elif args.phase == "fiftyone":
        out = phase_fiftyone(args.work, args.n)
    else:
        out = phase_export(args.work, args.phase)
    out["peak_mb"] = peak_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
