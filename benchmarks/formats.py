"""Benchmark: COCO import and COCO/YOLO export, as whole CLI processes, against the same
work by a baseline checkout (`--compare`), by Datumaro, globox and supervision (`--peers`) and
by FiftyOne.

Writes N distinct small JPEGs and a COCO file with --boxes boxes each (default 10,000 images,
100,000 boxes) into a temporary folder, then times, each in a fresh process: `annotator import
coco`, `annotator export coco|yolo --media none` (wall seconds of the whole process, start-up
included, and its peak RSS; each export into a fresh folder). `--compare DIR` runs the same
commands from another checkout of the project (e.g. `git worktree add /tmp/base <rev>`),
interleaved with ours, and prints the ratios: the machine is shared and noisy, so only
figures from one run compare. Our phases run --repeat times (best kept).

`--peers` times Datumaro, globox and supervision loading the COCO file and writing COCO and YOLO
(each timed inside its own process, so their start-up is not even counted) from the virtual
environment `.bench-peers/`, which `--build-peers` creates (`python -m venv .bench-peers` and
pip install datumaro globox supervision; never a project dependency). FiftyOne (`--fiftyone`)
runs from the project's own environment when the review extra is installed.

    .venv/bin/python benchmarks/formats.py                       # ours, 10,000 images
    .venv/bin/python benchmarks/formats.py --compare /tmp/base   # ours against a baseline
    .venv/bin/python benchmarks/formats.py --build-peers --peers --fiftyone --fiftyone-n 2000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bytecode import compile_package

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / ".bench-peers"
PEER_PACKAGES = ("datumaro", "globox", "supervision")
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
    """The COCO file, written in pieces (1,000,000 images would not fit as one object)."""
    import orjson

    rng = random.Random(seed)
    width, height = SIZE
    cats = [{"id": i + 1, "name": n, "supercategory": ""} for i, n in enumerate(CLASSES)]
    with open(path, "wb") as out:
        out.write(b'{"info":{},"licenses":[],"categories":' + orjson.dumps(cats))
        images = [{"id": i, "file_name": n, "width": width, "height": height}
                  for i, n in enumerate(names, 1)]  # fmt: skip
        out.write(b',"images":' + orjson.dumps(images) + b',"annotations":[')
        next_id = 1
        for image_id in range(1, len(names) + 1):
            anns = []
            for _ in range(boxes):
                w, h = rng.uniform(4, 30), rng.uniform(4, 20)
                x, y = rng.uniform(0, width - w), rng.uniform(0, height - h)
                anns.append({"id": next_id, "image_id": image_id,
                             "category_id": rng.randint(1, len(CLASSES)), "bbox": [x, y, w, h],
                             "area": w * h, "iscrowd": 0, "segmentation": []})  # fmt: skip
                next_id += 1
            if anns:
                out.write((b"," if image_id > 1 else b"") + orjson.dumps(anns)[1:-1])
        out.write(b"]}")


# ---------------------------------------------------------------- timed processes


def timed(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `cmd`; its wall and CPU seconds (user + system: on a shared machine the steadier
    figure) and peak RSS (MB, from the kernel's accounting of it)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace"))
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode})")
    return {"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime,
            "peak_mb": usage.ru_maxrss / 1024, "out": out.decode().strip()}  # fmt: skip


def cli(checkout: Path, work: Path, *args: str) -> list[str]:
    """The annotator CLI of `checkout` as a command (what the `annotator` script runs)."""
    code = f"import sys; sys.path.insert(0, {str(checkout)!r}); from annotator.main import main; main()"
    return [sys.executable, "-c", code, "--db", str(work / f"{checkout.name}.db"), *args]


def cli_phases(checkout: Path, work: Path, run: int = 0) -> dict[str, list[str]]:
    db = work / f"{checkout.name}.db"
    source = str(work / "instances_train.json")
    # a new folder per run and format: nothing is deleted while the runs are timed (removing
    # 10,000 files leaves the file system work that lands in the next timed process)
    out = str(work / f"out-{checkout.name}-{run}")
    return {
        "import": cli(checkout, work, "import", "coco", source, "-d", "bench", "--images",
                      str(work / "images"), "-q"),
        "coco": cli(checkout, work, "export", "coco", "bench", out + "-coco", "--media", "none",
                    "--overwrite"),
        "yolo": cli(checkout, work, "export", "yolo", "bench", out + "-yolo", "--media", "none",
                    "--overwrite"),
        "_reset": [str(db)],
    }  # fmt: skip


def run_ours(checkouts: list[Path], work: Path, repeat: int) -> dict[str, dict[str, Any]]:
    """Best of `repeat` for each phase of each checkout, interleaved (same noise for all)."""
    best: dict[str, dict[str, Any]] = {}
    env = {**os.environ, "ANNOTATOR_USER": "bench"}
    for checkout in checkouts:
        compile_package(checkout)
    for old in work.glob("out-*"):
        shutil.rmtree(old, ignore_errors=True)
    os.sync()  # the removal's file system work done before the clock starts
    for run in range(repeat):
        for checkout in checkouts:
            phases = cli_phases(checkout, work, run)
            for suffix in ("", "-wal", "-shm"):
                Path(phases["_reset"][0] + suffix).unlink(missing_ok=True)
            for phase in ("import", "coco", "yolo"):
                os.sync()  # the last phase's writes reach the disk before this one is timed
                got = timed(phases[phase], env)
                key = f"{checkout}:{phase}"
                print(f"{checkout.name} {phase}: {got['seconds']:.2f} s wall, "
                      f"{got['cpu']:.2f} s CPU, {got['peak_mb']:.0f} MB")  # fmt: skip
                if key not in best or got["seconds"] < best[key]["seconds"]:
                    best[key] = got
    return best


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would carry over the parent's)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


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


# ---------------------------------------------------------------- peers (.bench-peers)

PEER_CODE = {
    "datumaro": """
import datumaro as dm
ds = dm.Dataset.import_from(str(peer), "coco_instances")
n = sum(len(item.annotations) for item in ds)
lap("import")
ds.export(str(work / "dm-coco"), "coco_instances", save_media=False)
lap("coco")
ds.export(str(work / "dm-yolo"), "yolo", save_media=False)
lap("yolo")
""",
    "globox": """
from globox import AnnotationSet
ds = AnnotationSet.from_coco(peer / "annotations" / "instances_train.json")
n = sum(len(a.boxes) for a in ds)
lap("import")
ds.save_coco(work / "gb-coco.json", auto_ids=True)
lap("coco")
labels = sorted(ds._labels()) if hasattr(ds, "_labels") else sorted({b.label for a in ds for b in a.boxes})
ds.save_yolo_v5(work / "gb-yolo", label_to_id={name: i for i, name in enumerate(labels)})
lap("yolo")
""",
    "supervision": """
import supervision as sv
ds = sv.DetectionDataset.from_coco(str(peer / "images" / "train"),
                                   str(peer / "annotations" / "instances_train.json"))
n = sum(len(d) for d in ds.annotations.values())
lap("import")
ds.as_coco(annotations_path=str(work / "sv-coco.json"))
lap("coco")
ds.as_yolo(annotations_directory_path=str(work / "sv-yolo"))
lap("yolo")
""",
}
PEER_FRAME = """
import json, sys, time
from pathlib import Path
work = Path(sys.argv[1]); peer = work / "peer"; out = {}
mark = [time.perf_counter(), time.process_time()]
def lap(key):
    now, cpu = time.perf_counter(), time.process_time()
    out[key], out["cpu_" + key] = now - mark[0], cpu - mark[1]
    mark[:] = [now, cpu]
"""
PEER_TAIL = """
out["boxes"] = n
with open("/proc/self/status") as fh:
    out["peak_mb"] = next(int(l.split()[1]) / 1024 for l in fh if l.startswith("VmHWM:"))
print(json.dumps(out))
"""


def build_peers() -> None:
    """The peers' own virtual environment (never the project's)."""
    subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    pip = [str(PEERS_VENV / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, *PEER_PACKAGES], check=True)


def peer_layout(work: Path) -> None:
    """The COCO layout the peers' loaders expect: annotations/ and images/train/ (links)."""
    peer = work / "peer"
    (peer / "annotations").mkdir(parents=True, exist_ok=True)
    (peer / "images").mkdir(exist_ok=True)
    for link, target in ((peer / "annotations" / "instances_train.json",
                          work / "instances_train.json"),
                         (peer / "images" / "train", work / "images")):  # fmt: skip
        if not link.exists():
            link.symlink_to(target)


def run_peers(work: Path) -> dict[str, dict[str, Any]]:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"no {PEERS_VENV}: run with --build-peers once")
        return {}
    peer_layout(work)
    found: dict[str, dict[str, Any]] = {}
    for name, code in PEER_CODE.items():
        proc = subprocess.run([str(python), "-c", PEER_FRAME + code + PEER_TAIL, str(work)],
                              capture_output=True, text=True)  # fmt: skip
        if proc.returncode != 0:
            print(f"{name}: failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        found[name] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{name}: {found[name]}")
    return found


# ---------------------------------------------------------------- orchestration


def run_child(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"phase {args} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(work: Path, n: int, boxes: int) -> None:
    if (work / "instances_train.json").exists() and (work / "boxes.txt").read_text() == str(boxes):
        print(f"reusing the data in {work}")
        return
    started = time.perf_counter()
    names = write_images(work / "images", n)
    write_coco(work / "instances_train.json", names, boxes)
    (work / "boxes.txt").write_text(str(boxes))
    size = (work / "instances_train.json").stat().st_size / 1e6
    print(f"wrote {n} JPEGs and a {size:.1f} MB COCO file with {n * boxes} boxes "
          f"in {time.perf_counter() - started:.1f} s")  # fmt: skip


ROWS = (("import", "import"), ("coco", "export COCO"), ("yolo", "export YOLO"))


def report(best: dict[str, dict[str, Any]], checkouts: list[Path],
           others: dict[str, dict[str, Any]]) -> None:  # fmt: skip
    """One row per tool: seconds per phase and peak MB; then ours against each of them."""
    print(f"\n{'tool':<22}" + "".join(f"{label:>14}" for _, label in ROWS) + f"{'peak MB':>10}")
    for checkout in checkouts:
        cells = [best[f"{checkout}:{key}"] for key, _ in ROWS]
        name = "annotator" if checkout == ROOT else f"baseline {checkout.name}"
        print(f"{name:<22}" + "".join(f"{c['seconds']:>12.2f} s" for c in cells)
              + f"{max(c['peak_mb'] for c in cells):>10.0f}")  # fmt: skip
        print(f"{'  (CPU seconds)':<22}" + "".join(f"{c['cpu']:>12.2f} s" for c in cells))
    for name, got in others.items():
        print(f"{name:<22}" + "".join(f"{got[key]:>12.2f} s" for key, _ in ROWS)
              + f"{got.get('peak_mb', 0):>10.0f}")  # fmt: skip
        if "cpu_import" in got:
            print(f"{'  (CPU seconds)':<22}"
                  + "".join(f"{got['cpu_' + key]:>12.2f} s" for key, _ in ROWS))  # fmt: skip
    mine = {key: best[f"{ROOT}:{key}"]["seconds"] for key, _ in ROWS}
    rivals = {f"baseline {c.name}": {k: best[f"{c}:{k}"]["seconds"] for k, _ in ROWS}
              for c in checkouts if c != ROOT}  # fmt: skip
    rivals.update(others)
    for checkout in checkouts[1:]:
        ratios = ", ".join(
            f"{label} {best[f'{checkout}:{key}']['cpu'] / best[f'{ROOT}:{key}']['cpu']:.2f}x"
            for key, label in ROWS
        )
        print(f"baseline {checkout.name} / annotator, CPU seconds: {ratios}")
    for name, got in rivals.items():
        ratios = ", ".join(f"{label} {got[key] / mine[key]:.2f}x" for key, label in ROWS)
        print(f"{name} / annotator, wall: {ratios} (above 1: annotator is faster)")
    cpu = {key: best[f"{ROOT}:{key}"]["cpu"] for key, _ in ROWS}
    for name, got in others.items():
        if "cpu_import" in got:
            ratios = ", ".join(
                f"{label} {got['cpu_' + key] / cpu[key]:.2f}x" for key, label in ROWS
            )
            print(f"{name} / annotator, CPU (theirs without start-up, ours with): {ratios}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="images (default 10000)")
    parser.add_argument("--boxes", type=int, default=10, help="boxes per image (default 10)")
    parser.add_argument("--compare", type=Path, action="append", default=[],
                        help="another checkout to time alongside (repeatable)")  # fmt: skip
    parser.add_argument("--peers", action="store_true", help="time Datumaro, globox, supervision")
    parser.add_argument("--build-peers", action="store_true", help=f"create {PEERS_VENV.name}/")
    parser.add_argument("--fiftyone", action="store_true", help="time FiftyOne too")
    parser.add_argument("--fiftyone-n", type=int, help="images FiftyOne gets (default --n)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours; best kept (3)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        return _child(args)
    if args.build_peers:
        build_peers()
    work = args.keep or Path(tempfile.mkdtemp(prefix="annotator-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        prepare(work, args.n, args.boxes)
        checkouts = [ROOT, *(c.resolve() for c in args.compare)]
        best = run_ours(checkouts, work, args.repeat)
        others = run_peers(work) if args.peers else {}
        if args.fiftyone:
            fo_n = min(args.fiftyone_n or args.n, args.n)
            fo = run_child(["--phase", "fiftyone", "--work", str(work), "--n", str(fo_n)])
            others["FiftyOne"] = {k: fo[k] * args.n / fo_n for k, _ in ROWS}
        report(best, checkouts, others)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _child(args: argparse.Namespace) -> None:
    out = phase_fiftyone(args.work, args.n)
    out["peak_mb"] = peak_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
