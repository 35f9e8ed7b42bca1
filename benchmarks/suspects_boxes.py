"""Benchmark: suspect boxes on a detection dataset.

    .venv/bin/python benchmarks/suspects_boxes.py [--images 400] [--classes 3] [--perturb 0.05]
        [--shift 0.5] [--seed 0]

A synthetic detection set: each image holds 1-4 objects (boxes 8-30% of the image a side, of
--classes classes). A simulated detector predicts each object with its box jittered by up to
3% of its size and a confidence drawn from 0.90-1.00, misses 3% of the objects, and adds about
one low-confidence (0.05-0.6) false positive per two images. The accepted labels are the true
boxes with --perturb of them (5%) perturbed, a third each: dropped (expect "missing"), class
swapped to another class (expect "swapped"), moved by --shift of its width and height (expect
"misplaced"). All of it goes through the store (boxes added as a person adds them, predictions
written as a prelabel run writes them), then `suspects` (annotator.learn.box_suspects).

Reported: precision at k = the number perturbed (the first k flags worst first that name a
perturbed box), recall (perturbed boxes named by any flag), precision over all flags, the same
requiring the right kind, per kind, and the seconds `suspects` took. A flag names a perturbed
box when it is on that box's annotation (swapped, moved), or when its box overlaps the dropped
box by IoU >= 0.5 (dropped).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MISS_RATE = 0.03  # objects the simulated detector misses
FALSE_POSITIVES = 0.5  # low-confidence false positives per image, on average
JITTER = 0.03  # largest shift of a predicted box's edges, as a fraction of its size
CONFIDENCE = 0.9  # the lowest confidence of a true detection (--confidence)


@dataclass
class Obj:
    cls: int
    x: float
    y: float
    w: float
    h: float


@dataclass
class Perturbed:
    image: str
    how: str  # dropped | swapped | moved
    box: Obj  # the true box
    label_index: int | None  # the perturbed label's index in the image's labels (None: dropped)


def make_scenes(
    rng: random.Random, n: int, k: int, width: int, height: int
) -> dict[str, list[Obj]]:
    scenes = {}
    for i in range(n):
        objs = []
        for _ in range(rng.randint(1, 4)):
            w, h = rng.uniform(0.08, 0.3) * width, rng.uniform(0.08, 0.3) * height
            objs.append(
                Obj(rng.randrange(k), rng.uniform(0, width - w), rng.uniform(0, height - h), w, h)
            )
        scenes[f"img_{i:05d}.png"] = objs
    return scenes


def predict(
    rng: random.Random, objs: list[Obj], k: int, width: int, height: int, confidence: float
) -> list[tuple[Obj, float]]:
    out = []
    for o in objs:
        if rng.random() < MISS_RATE:
            continue
        j = [rng.uniform(-JITTER, JITTER) for _ in range(4)]
        x, y = o.x + j[0] * o.w, o.y + j[1] * o.h
        w, h = o.w * (1 + j[2]), o.h * (1 + j[3])
        x, y = max(0.0, x), max(0.0, y)
        out.append(
            (Obj(o.cls, x, y, min(w, width - x), min(h, height - y)), rng.uniform(confidence, 1.0))
        )
    for _ in range(int(rng.random() < FALSE_POSITIVES)):
        w, h = rng.uniform(0.05, 0.2) * width, rng.uniform(0.05, 0.2) * height
        fp = Obj(rng.randrange(k), rng.uniform(0, width - w),
                 rng.uniform(0, height - h), w, h)  # fmt: skip
        out.append((fp, rng.uniform(0.05, 0.6)))
    return out


def perturb(rng: random.Random, scenes: dict[str, list[Obj]], share: float, k: int, shift: float,
            width: int, height: int) -> tuple[dict[str, list[Obj]], list[Perturbed]]:  # fmt: skip
    everything = [(f, i) for f, objs in scenes.items() for i in range(len(objs))]
    chosen = rng.sample(everything, round(share * len(everything)))
    labels = {f: list(objs) for f, objs in scenes.items()}
    done: list[Perturbed] = []
    dropped: dict[str, set[int]] = {}
    for n, (f, i) in enumerate(chosen):
        o = scenes[f][i]
        how = ("dropped", "swapped", "moved")[n % 3]
        if how == "dropped":
            dropped.setdefault(f, set()).add(i)
            done.append(Perturbed(f, how, o, None))
            continue
        if how == "swapped":
            new = Obj(rng.choice([c for c in range(k) if c != o.cls]), o.x, o.y, o.w, o.h)
        else:
            dx, dy = rng.choice((-1, 1)) * shift * o.w, rng.choice((-1, 1)) * shift * o.h
            x = min(max(0.0, o.x + dx), width - o.w)
            y = min(max(0.0, o.y + dy), height - o.h)
            new = Obj(o.cls, x, y, o.w, o.h)
        labels[f][i] = new
        done.append(Perturbed(f, how, o, i))
    for f, gone in dropped.items():
        labels[f] = [o for i, o in enumerate(labels[f]) if i not in gone]
    for p in done:  # indices after the drops
        if p.label_index is not None:
            p.label_index -= sum(1 for g in dropped.get(p.image, ()) if g < p.label_index)
    return labels, done


def build(folder: Path, labels: dict[str, list[Obj]], predicted: dict[str, list[tuple[Obj, float]]],
          k: int, width: int, height: int) -> tuple[Any, dict[tuple[str, int], int]]:  # fmt: skip
    """The store: images, boxes added by hand, one prelabel-like run. Returns the store and
    (file, label index) -> annotation id."""
    from PIL import Image as PILImage
    from sqlalchemy import select

    from annotator.annotation import Box, Label
    from annotator.store import labels as edits
    from annotator.store.datasets import create_dataset, get_dataset
    from annotator.store.db import open_store
    from annotator.store.images import add_images
    from annotator.store.models import Image
    from annotator.store.predictions import ImagePredictions, finish_run, open_run, write_batch

    pictures = folder / "images"
    pictures.mkdir()
    for n, f in enumerate(labels):
        PILImage.new("RGB", (width, height), (n % 251, n // 251 % 251, 60)).save(pictures / f)
    store = open_store(f"sqlite:///{folder / 'bench.db'}")
    names = [f"class{c}" for c in range(k)]
    with store.session() as s:
        ds = create_dataset(s, "bench", "detection", names, pictures)
        add_images(s, ds, [pictures])
        class_ids = {c.position: c.id for c in ds.classes}
        ids = {Path(p).name: i for i, p in s.execute(select(Image.id, Image.path))}
    anns: dict[tuple[str, int], int] = {}
    with store.session() as s:
        for f, objs in labels.items():
            for i, o in enumerate(objs):
                ann = edits.add_box(s, ids[f], class_ids[o.cls], Box(o.x, o.y, o.w, o.h), "bench")
                anns[(f, i)] = ann.id
    with store.session() as s:
        ds = get_dataset(s, "bench")
        run = open_run(s, ds, "simulated-detector", None, {"threshold": 0.05})
        batch = [ImagePredictions(ids[f], [Label(names[o.cls], Box(o.x, o.y, o.w, o.h), score=p,
                                                 source="model", review="pending")
                                           for o, p in preds], 0.1)
                 for f, preds in predicted.items()]  # fmt: skip
        write_batch(s, run, batch)
        finish_run(s, run)
    return store, anns


def iou(a: tuple[float, ...], b: Obj) -> float:
    ix = max(0.0, min(a[0] + a[2], b.x + b.w) - max(a[0], b.x))
    iy = max(0.0, min(a[1] + a[3], b.y + b.h) - max(a[1], b.y))
    inter = ix * iy
    return inter / (a[2] * a[3] + b.w * b.h - inter)


EXPECTED = {"dropped": "missing", "swapped": "swapped", "moved": "misplaced"}


def names_it(flag: Any, p: Perturbed, anns: dict[tuple[str, int], int], kind: bool) -> bool:
    if Path(flag.path).name != p.image or (kind and flag.kind != EXPECTED[p.how]):
        return False
    if p.label_index is None:
        return flag.kind == "missing" and flag.box is not None and iou(flag.box, p.box) >= 0.5
    return flag.box is not None and anns.get((p.image, p.label_index)) == _annotation(flag)


def _annotation(flag: Any) -> int | None:
    return getattr(flag, "annotation_id", None)


def score(
    flags: list[Any], done: list[Perturbed], anns: dict[tuple[str, int], int], kind: bool
) -> dict[str, float]:
    k = len(done)
    hits = [any(names_it(f, p, anns, kind) for p in done) for f in flags]
    found = [p for p in done if any(names_it(f, p, anns, kind) for f in flags)]
    out = {"precision_at_k": sum(hits[:k]) / k, "recall": len(found) / k,
           "precision": sum(hits) / max(1, len(flags))}  # fmt: skip
    for how in EXPECTED:
        mine = [p for p in done if p.how == how]
        out[f"recall_{how}"] = sum(1 for p in found if p.how == how) / max(1, len(mine))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--perturb", type=float, default=0.05)
    ap.add_argument("--shift", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--confidence", type=float, default=CONFIDENCE)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    width, height = 320, 240
    scenes = make_scenes(rng, args.images, args.classes, width, height)
    predicted = {
        f: predict(rng, objs, args.classes, width, height, args.confidence)
        for f, objs in scenes.items()
    }
    labels, done = perturb(rng, scenes, args.perturb, args.classes, args.shift, width, height)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        store, anns = build(Path(tmp), labels, predicted, args.classes, width, height)
        built = time.perf_counter() - started
        from annotator.learn.box_suspects import find_box_suspects
        from annotator.store.datasets import get_dataset
        from annotator.store.suspects import open_flags

        with store.session() as s:
            report = find_box_suspects(s, get_dataset(s, "bench"))
            flags = open_flags(s, get_dataset(s, "bench"))
            ids = _flag_annotations(s)
        store.close()
    flags = [_with_annotation(f, ids) for f in flags]
    boxes = sum(len(o) for o in scenes.values())
    print(f"{args.images} images, {boxes} true boxes, {len(done)} perturbed "
          f"({sum(p.how == 'dropped' for p in done)} dropped, "
          f"{sum(p.how == 'swapped' for p in done)} swapped, "
          f"{sum(p.how == 'moved' for p in done)} moved by {args.shift:.0%}); store built in "
          f"{built:.1f} s")  # fmt: skip
    print(report.summary())
    for kind in (False, True):
        got = score(flags, done, anns, kind)
        title = "right kind" if kind else "any kind  "
        print(f"{title}: precision@k {got['precision_at_k']:.3f}  recall {got['recall']:.3f}  "
              f"precision {got['precision']:.3f}  recall dropped {got['recall_dropped']:.3f} "
              f"swapped {got['recall_swapped']:.3f} moved {got['recall_moved']:.3f}")  # fmt: skip


def _flag_annotations(session: Any) -> dict[int, int | None]:
    from sqlalchemy import select

    from annotator.store.models import SuspectFlag

    return dict(session.execute(select(SuspectFlag.id, SuspectFlag.annotation_id)).tuples().all())


@dataclass
class _Flag:
    path: str
    kind: str | None
    box: tuple[float, float, float, float] | None
    annotation_id: int | None


def _with_annotation(flag: Any, ids: dict[int, int | None]) -> _Flag:
    return _Flag(flag.path, flag.kind, flag.box, ids.get(flag.id))


if __name__ == "__main__":
    main()
