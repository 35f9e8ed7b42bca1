"""Benchmark: a team on one PostgreSQL database.

1. Lease claim latency: N concurrent claimers (processes) on a dataset of M image rows, each
   claiming the next images of the labelling queue the way the app does (a keyset query that
   skips others' leases, then the claim: FOR UPDATE SKIP LOCKED, a fresh check, the insert) and
   of a model run the way `prelabel --worker` does. Prints p50/p95 per claim. Goal: p95 <= 20 ms
   with 32 claimers at 100,000 images.
2. Shared prelabelling: the wall time of one `annotator prelabel --worker` process against two,
   over the same images with a stub model that sleeps per batch (the model's time dominates, as
   with a real one on a GPU). Prints the speed-up of two over one. Goal: >= 1.8x.

Needs a PostgreSQL server: `--db` or $ANNOTATOR_TEST_PG_URL (`.ci/start-postgres` prints one);
each part creates and drops its own database.

    .venv/bin/python benchmarks/team.py [--images 100000] [--claimers 32] [--claims 40]
        [--worker-images 480] [--batch-size 16] [--sleep 0.25]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@contextmanager
def scratch_db(base: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def fill_rows(url: str, n: int) -> int:
    """A dataset of `n` image rows (leases look at rows only) and a run; the dataset id."""
    from sqlalchemy import insert

    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store
    from annotator.store.models import Image, ModelRun

    store = open_store(url)
    with store.session() as s:
        ds = create_dataset(s, "team", "classification", ["a", "b"])
        for start in range(0, n, 10_000):
            rows = [dict(dataset_id=ds.id, path=f"{i:07d}.jpg", sha256=f"{i:064x}", width=8,
                         height=8, orientation=1, size_bytes=1, status="unlabeled", revision=1)
                    for i in range(start, min(n, start + 10_000))]  # fmt: skip
            s.execute(insert(Image), rows)
        s.add(ModelRun(dataset_id=ds.id, model="bench", params={}))
        s.commit()
        ds_id = ds.id
    with store.engine.connect() as conn:  # what autovacuum does after a bulk load
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    store.close()
    return ds_id


def claimer(args: tuple[str, int, str, int, str]) -> list[float]:
    """One claimer process: `claims` claims of the given kind; seconds per claim."""
    url, ds_id, who, claims, kind = args
    from sqlalchemy import update

    from annotator.store import leases
    from annotator.store import queue as q
    from annotator.store.db import open_store
    from annotator.store.models import Image

    store = open_store(url, create=False)
    spec = q.QueueSpec("unlabeled", "path", holder=who)
    times: list[float] = []
    with store.session() as s:
        for _ in range(claims):
            start = time.perf_counter()
            if kind == "label":
                found = None
                while found is None or not leases.claim(s, ds_id, [found], who, ttl_s=600):
                    found = q.first(s, ds_id, spec)
            else:
                leases.claim_run_batch(s, ds_id, 1, who, 8, ttl_s=600)
            times.append(time.perf_counter() - start)
            if kind == "label":  # labelled: it leaves the unlabeled queue (not timed)
                s.execute(update(Image).where(Image.id == found).values(status="labeled"))
                s.commit()
    store.close()
    return times


def claim_latency(base: str, images: int, claimers: int, claims: int) -> None:
    with scratch_db(base) as url:
        ds_id = fill_rows(url, images)
        for kind in ("label", "run"):
            jobs = [(url, ds_id, f"c{i}", claims, kind) for i in range(claimers)]
            with mp.get_context("spawn").Pool(claimers) as pool:
                per = pool.map(claimer, jobs)
            flat = sorted(t for ts in per for t in ts[2:])  # first claims warm the connection
            p50 = statistics.median(flat) * 1000
            p95 = flat[int(len(flat) * 0.95)] * 1000
            print(f"claim latency ({kind}, {claimers} claimers, {images:,} images): "
                  f"p50 {p50:.1f} ms, p95 {p95:.1f} ms over {len(flat)} claims")  # fmt: skip


def write_images(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (16, 12), (i % 256, i // 256, 40)).save(folder / f"{i:05d}.png")


def shared_run(url: str, folder: Path, workers: int, batch: int, sleep: float) -> float:
    from annotator.store.datasets import create_dataset
    from annotator.store.db import open_store
    from annotator.store.images import add_images

    store = open_store(url)
    with store.session() as s:
        ds = create_dataset(s, "team", "classification", ["cat", "dog", "bird"], folder)
        add_images(s, ds, [folder])
    store.close()
    env = {**os.environ, "PYTHONPATH": str(REPO), "BENCH_SLEEP": str(sleep)}
    cmd = [
        sys.executable,
        "-m",
        "annotator",
        "--db",
        url,
        "prelabel",
        "team",
        "--model",
        "benchmarks.team:sleepy",
        "--batch-size",
        str(batch),
        "--workers",
        "0",
        "--worker",
    ]
    procs = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for _ in range(workers)]  # fmt: skip
    for p in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(err.decode())
    return _span(url)


def _span(url: str) -> float:
    """Seconds from the first batch written to the last (process start-up left out: it is
    the same for one worker or many, and on a loaded machine it would swamp the comparison)."""
    from sqlalchemy import func, select

    from annotator.store.db import open_store
    from annotator.store.models import RunImage

    store = open_store(url, create=False)
    with store.session() as s:
        first, last = s.execute(select(func.min(RunImage.processed_at),
                                       func.max(RunImage.processed_at))).one()  # fmt: skip
    store.close()
    return float((last - first).total_seconds())


def sleepy() -> tuple[object, list[str]]:
    """A classifier that sleeps $BENCH_SLEEP seconds per batch (stands in for a real model)."""
    import torch
    from torch import nn

    class Sleepy(nn.Module):
        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            time.sleep(float(os.environ.get("BENCH_SLEEP", "0.25")))
            return torch.zeros(batch.shape[0], 3)

    return Sleepy(), ["cat", "dog", "bird"]


def worker_speedup(base: str, n: int, batch: int, sleep: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "imgs"
        write_images(folder, n)
        took = {}
        for workers in (1, 2):
            with scratch_db(base) as url:
                took[workers] = shared_run(url, folder, workers, batch, sleep)
        print(f"prelabel --worker over {n} images, batch {batch}, {sleep} s per batch, first to "
              f"last batch: 1 worker {took[1]:.1f} s, 2 workers {took[2]:.1f} s, "
              f"speed-up {took[1] / took[2]:.2f}x (goal >= 1.8x)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=os.environ.get("ANNOTATOR_TEST_PG_URL"))
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--claimers", type=int, default=32)
    parser.add_argument("--claims", type=int, default=40)
    parser.add_argument("--worker-images", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sleep", type=float, default=0.25)
    args = parser.parse_args()
    if not args.db:
        raise SystemExit("a PostgreSQL URL is needed: --db or $ANNOTATOR_TEST_PG_URL")
    claim_latency(args.db, args.images, args.claimers, args.claims)
    worker_speedup(args.db, args.worker_images, args.batch_size, args.sleep)


if __name__ == "__main__":
    main()
