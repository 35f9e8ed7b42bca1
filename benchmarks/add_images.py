"""Benchmark: register N synthetic images (default 10,000 small distinct JPEGs written here) with
`annotator add`'s use case and print images/s and peak memory. Baseline in the same run: only
reading and hashing the same files (the floor any registration must pay).

    .venv/bin/python benchmarks/add_images.py [--n 10000] [--size 320x240]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import resource
import tempfile
import time
from pathlib import Path


def write_images(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, (90, 140, 200)).save(buf, "JPEG", quality=85)
    base = buf.getvalue()
    paths = []
    for i in range(n):
        path = folder / f"{i // 1000:03d}" / f"img{i:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        # a distinct COM segment after SOI keeps every file a valid, unique JPEG
        comment = f"image {i}".encode()
        path.write_bytes(
            base[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + base[2:]
        )
        paths.append(path)
    return paths


def hash_only(paths: list[Path]) -> float:
    started = time.perf_counter()
    for p in paths:
        hashlib.sha256(p.read_bytes()).hexdigest()
    return time.perf_counter() - started


def register(folder: Path, db: Path) -> tuple[float, float, int]:
    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store
    from annotator.store.images import add_images

    store = open_store(f"sqlite:///{db}")
    with store.session() as s:
        ds = create_dataset(s, "bench", "detection", ["a"])
        started, before = time.perf_counter(), os.times()
        report = add_images(s, ds, [folder])
        elapsed, after = time.perf_counter() - started, os.times()
    store.close()
    cpu = sum(after[:4]) - sum(before[:4])  # this process and its worker processes
    return elapsed, cpu, report.added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--size", default="320x240")
    args = parser.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        paths = write_images(folder, args.n, (w, h))
        floor = hash_only(paths)
        elapsed, cpu, added = register(folder, Path(tmp) / "bench.db")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"images: {added} of {args.n} ({w}x{h} JPEG)")
    print(f"annotator add: {elapsed:.2f} s, {added / elapsed:,.0f} images/s")
    print(f"  CPU seconds (with its workers): {cpu:.2f} s, {cpu / added * 1000:.2f} ms/image")
    print(f"baseline read+sha256 only: {floor:.2f} s, {args.n / floor:,.0f} images/s")
    print(f"ratio add / baseline: {elapsed / floor:.2f}x")
    print(f"peak memory (RSS): {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
