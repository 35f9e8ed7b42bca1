"""The labelling queue's store queries (`annotator.store.queue`): each filter and order walks
the images a person expects, positions agree with the walk, moves are index keyset queries
(no sort of the dataset, no table scan), and an image reads back with its labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, update

from annotator.annotation import Box
from annotator.errors import InvalidInputError
from annotator.store import labels
from annotator.store import queue as q
from annotator.store.datasets import create_dataset
from annotator.store.db import Store
from annotator.store.images import add_images
from annotator.store.models import Annotation, Image, ModelRun
from tests.conftest import write_jpeg

# name -> (uncertainty, status, labels: list of (class index, review))
ROWS: dict[str, tuple[float | None, str, list[tuple[int, str]]]] = {
    "b.jpg": (0.9, "unlabeled", [(0, "pending")]),
    "a.jpg": (None, "labeled", [(1, "accepted")]),
    "d.jpg": (0.2, "unlabeled", [(1, "pending"), (0, "rejected")]),
    "c.jpg": (None, "unlabeled", []),
    "e.jpg": (0.9, "skipped", []),
    "f.jpg": (0.5, "labeled", [(0, "accepted")]),
}


@pytest.fixture
def queue_db(store: Store, tmp_path: Path) -> Any:
    folder = tmp_path / "q"
    for i, name in enumerate(ROWS):  # added in this order: b, a, d, c, e, f
        write_jpeg(folder / name, color=(i * 30, 10, 10))
    with store.session() as s:
        ds = create_dataset(s, "q", "detection", ["cat", "dog"], root=folder)
        for name in ROWS:  # one at a time: ids follow this order
            add_images(s, ds, [folder / name])
        run = ModelRun(dataset_id=ds.id, model="netv2")
        s.add(run)
        s.flush()
        ids = {}
        for name, (unc, status, anns) in ROWS.items():
            image = s.query(Image).filter_by(path=name).one()
            ids[name] = image.id
            s.execute(update(Image).where(Image.id == image.id).values(uncertainty=unc,
                                                                       status=status))  # fmt: skip
            for cls, review in anns:
                s.add(Annotation(dataset_id=ds.id, task="detection", image_id=image.id,
                                 class_id=ds.classes[cls].id, kind="box", x=1, y=2, w=3, h=4,
                                 source="model", run_id=run.id, score=0.5, review=review,
                                 author="netv2"))  # fmt: skip
        s.commit()
        return ds.id, ids, [c.id for c in ds.classes]


def walk(store: Store, ds_id: int, spec: q.QueueSpec) -> list[int]:
    with store.session() as s:
        found = [q.first(s, ds_id, spec)]
        while found[-1] is not None:
            found.append(q.step(s, spec, found[-1]))
        return [i for i in found if i is not None]


def names(ids: dict[str, int], walked: list[int]) -> list[str]:
    back = {v: k for k, v in ids.items()}
    return [back[i] for i in walked]


@pytest.mark.parametrize(
    ("filt", "order", "expected"),
    [
        ("all", "path", ["a", "b", "c", "d", "e", "f"]),
        ("all", "added", ["b", "a", "d", "c", "e", "f"]),
        ("all", "uncertainty", ["e", "b", "f", "d", "a", "c"]),  # ties: newest first; None last
        ("unlabeled", "path", ["b", "c", "d"]),
        ("unlabeled", "uncertainty", ["b", "d", "c"]),
        ("review", "path", ["b", "d"]),
        ("review", "added", ["b", "d"]),
        ("class", "path", ["a", "d"]),  # dog: accepted on a, pending on d; f holds a cat
    ],
)
def test_filters_and_orders(store: Store, queue_db: Any, filt: str, order: str,
                            expected: list[str]) -> None:  # fmt: skip
    ds_id, ids, classes = queue_db
    spec = q.QueueSpec(filt, order, classes[1] if filt == "class" else None)
    walked = walk(store, ds_id, spec)
    assert names(ids, walked) == [f"{n}.jpg" for n in expected]
    with store.session() as s:
        assert q.total(s, ds_id, spec) == len(expected)
        assert [q.position(s, spec, i) for i in walked] == list(range(1, len(expected) + 1))
        assert [q.at_position(s, ds_id, spec, r) for r in range(1, len(expected) + 1)] == walked
        assert q.at_position(s, ds_id, spec, len(expected) + 1) is None
        assert q.last(s, ds_id, spec) == walked[-1]
        back = [walked[-1]]
        while (prev := q.step(s, spec, back[-1], forward=False)) is not None:
            back.append(prev)
        assert back == walked[::-1]


def test_a_move_starts_from_an_image_that_left_the_queue(store: Store, queue_db: Any) -> None:
    _, ids, _ = queue_db
    spec = q.QueueSpec("unlabeled", "path")
    with store.session() as s:
        assert q.step(s, spec, ids["a.jpg"]) == ids["b.jpg"]  # a is labeled, not in the queue
        assert q.position(s, spec, ids["a.jpg"]) == 1
        assert q.step(s, spec, ids["d.jpg"]) is None


def test_next_unlabeled_follows_the_order_and_wraps(store: Store, queue_db: Any) -> None:
    _, ids, _ = queue_db
    spec = q.QueueSpec("all", "path")
    with store.session() as s:
        assert q.next_unlabeled(s, spec, ids["c.jpg"]) == ids["d.jpg"]
        assert q.next_unlabeled(s, spec, ids["f.jpg"]) == ids["b.jpg"]


def test_find_by_part_of_the_name(store: Store, queue_db: Any) -> None:
    ds_id, ids, _ = queue_db
    with store.session() as s:
        assert q.find(s, ds_id, "D.JPG") == ids["d.jpg"]
        assert q.find(s, ds_id, ".jpg", after_id=ids["e.jpg"]) == ids["f.jpg"]
        assert q.find(s, ds_id, ".jpg", after_id=ids["f.jpg"]) == ids["a.jpg"]  # wraps
        assert q.find(s, ds_id, "zzz") is None
        assert q.find(s, ds_id, "  ") is None


def test_bad_queues_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown queue"):
        q.QueueSpec("done")
    with pytest.raises(InvalidInputError, match="unknown order"):
        q.QueueSpec("all", "random")
    with pytest.raises(InvalidInputError, match="needs a class"):
        q.QueueSpec("class")


def test_an_image_reads_back_with_its_labels(store: Store, queue_db: Any) -> None:
    _, ids, classes = queue_db
    with store.session() as s:
        labels.add_box(s, ids["c.jpg"], classes[0], Box(5, 6, 7, 8), "ann")
        view = q.load_view(s, ids["d.jpg"])
        mine = q.load_view(s, ids["c.jpg"])
    assert view.sample.path == "d.jpg" and view.status == "unlabeled" and view.uncertainty == 0.2
    assert view.file.name == "d.jpg" and view.file.exists()
    assert [(lb.class_name, lb.source, lb.review, lb.box) for lb in view.labels] == [
        ("dog", "netv2", "pending", Box(1, 2, 3, 4)),
        ("cat", "netv2", "rejected", Box(1, 2, 3, 4)),
    ]
    assert [(lb.class_name, lb.source, lb.box) for lb in mine.labels] == [
        ("cat", "human", Box(5, 6, 7, 8))
    ]
    assert mine.revision == 2


@pytest.mark.parametrize("filt", ["unlabeled", "review", "all", "class"])
@pytest.mark.parametrize("order", ["path", "added", "uncertainty"])
def test_moves_walk_an_index_without_sorting(store: Store, queue_db: Any, filt: str,
                                             order: str) -> None:  # fmt: skip
    ds_id, ids, classes = queue_db
    spec = q.QueueSpec(filt, order, classes[1] if filt == "class" else None)
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cur: Any, sql: str, params: Any, _ctx: Any, _many: bool) -> None:
        if sql.startswith("SELECT") and "FROM images" in sql:
            seen.append((sql, params))

    event.listen(store.engine, "before_cursor_execute", capture)
    try:
        with store.session() as s:
            first = q.first(s, ds_id, spec)
            q.step(s, spec, first or ids["a.jpg"])
            q.step(s, spec, ids["d.jpg"], forward=False)
            plans = [row[3] for sql, params in seen
                     for row in s.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql,
                                                               params)]  # fmt: skip
    finally:
        event.remove(store.engine, "before_cursor_execute", capture)
    assert plans
    assert not [p for p in plans if "TEMP B-TREE" in p or p == "SCAN images"], plans


def test_flagged_queue_walks_the_images_an_import_flagged(store: Store, queue_db: Any) -> None:
    from annotator.tui.screens.queue import filter_options, spec_from

    ds_id, ids, _ = queue_db
    with store.session() as s:
        for name in ("e.jpg", "c.jpg"):
            reason = f"import: 1 labels refused: line 1: {name}"
            s.execute(update(Image).where(Image.id == ids[name]).values(flag=reason))
        s.commit()
    assert ("flagged", "Needs review (flagged: labels refused on import)") in filter_options([])
    for order, expected in (("path", ["c", "e"]), ("added", ["c", "e"]),
                            ("uncertainty", ["e", "c"])):  # fmt: skip
        spec = spec_from("flagged", order)
        assert names(ids, walk(store, ds_id, spec)) == [f"{n}.jpg" for n in expected]
    with store.session() as s:
        assert q.total(s, ds_id, q.QueueSpec("flagged")) == 2
        assert q.load_view(s, ids["c.jpg"]).flag == "import: 1 labels refused: line 1: c.jpg"
        assert q.load_view(s, ids["a.jpg"]).flag is None
