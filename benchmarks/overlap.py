"""Overlap at scale (SQLite, 20,000 images): the labelling queue's step for a person with and
without 10% of the images marked for overlap (the seat rules are correlated subqueries), then
`agreement` and `consensus` over 2,000 overlap images with two random votes each. Prints the
step-time ratio and the seconds of each. Run: .venv/bin/python benchmarks/overlap.py [N]"""

from __future__ import annotations

import random
import sys
import tempfile
import time

from sqlalchemy import insert, select

from annotator.learn.agreement import agreement
from annotator.store import overlap
from annotator.store import queue as q
from annotator.store.consensus import consensus
from annotator.store.datasets import create_dataset, get_dataset
from annotator.store.db import Store, open_store
from annotator.store.models import Annotation, Image, LabelClass, OverlapDone, OverlapImage


def step_ms(store: Store, dataset_id: int, steps: int = 200) -> float:
    with store.session() as s:
        spec = q.QueueSpec(holder="me")
        current = q.first(s, dataset_id, spec)
        start = time.perf_counter()
        for _ in range(steps):
            assert current is not None
            current = q.step(s, spec, current)
        return (time.perf_counter() - start) / steps * 1000


def vote(store: Store, dataset_id: int) -> None:
    rng = random.Random(1)
    with store.session() as s:
        ids = list(s.scalars(select(OverlapImage.image_id)))
        classes = list(s.scalars(select(LabelClass.id)))[:2]
        people = ("ann", "bob")
        s.execute(insert(Annotation), [
            dict(dataset_id=dataset_id, task="classification", image_id=i, kind="label",
                 class_id=rng.choice(classes), source="human", review="vote", layer=who,
                 author=who, revision=1, iscrowd=False) for i in ids for who in people])  # fmt: skip
        s.execute(insert(OverlapDone), [dict(image_id=i, annotator=w) for i in ids for w in people])
        s.commit()


def main(n: int) -> None:
    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    with store.session() as s:
        ds = create_dataset(s, "pets", "classification", ["cat", "dog", "bird"])
        s.execute(insert(Image), [dict(dataset_id=ds.id, path=f"i{i:06d}.jpg", width=9,
                                       height=9, sha256=f"{i:064x}", size_bytes=1)
                                  for i in range(n)])  # fmt: skip
        s.commit()
        dataset_id = ds.id
    plain = step_ms(store, dataset_id)
    with store.session() as s:
        overlap.mark(s, get_dataset(s, "pets"), 0.1, 2, "lead", 1)
    marked = step_ms(store, dataset_id)
    print(f"queue step, {n} images: {plain:.2f} ms plain, {marked:.2f} ms with 10% overlap "
          f"(ratio {marked / plain:.2f})")  # fmt: skip
    vote(store, dataset_id)
    with store.session() as s:
        ds = get_dataset(s, "pets")
        start = time.perf_counter()
        found = overlap.votes(s, ds)
        agreement(found, "classification", ["cat", "dog", "bird"])
        took = time.perf_counter() - start
        print(f"agreement over {len(found)} images: {took:.2f} s (imports included)")
        start = time.perf_counter()
        report = consensus(s, ds, "lead")
        print(f"consensus: {time.perf_counter() - start:.2f} s; {report.summary()}")
    store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
