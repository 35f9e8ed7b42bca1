"""Suspect boxes on a detection dataset: accepted boxes compared with a model run's predictions
(written through the store's prediction functions, no model) flag a box the run found that no
label has (missing, with its class suggested), a box whose class a confident prediction disputes
(swapped, with that class suggested) and a badly placed box (misplaced); images where labels and
predictions agree are left alone. The queue "suspect labels" serves them worst first; confirming
or fixing clears the flag and keeps it as history; the same on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from annotator.annotation import Box, Label
from annotator.store import labels
from annotator.store import queue as q
from annotator.store.datasets import create_dataset, get_dataset
from annotator.store.db import Store
from annotator.store.images import add_images
from annotator.store.models import Annotation, Image
from annotator.store.predictions import ImagePredictions, finish_run, open_run, write_batch
from annotator.store.suspects import flag_history
from tests.conftest import needs_postgres
from tests.review.conftest import fo

__all__ = ["fo"]  # the FiftyOne fixture, shared with the review tests

CLASSES = ["cat", "dog"]
AGREEING = 12
# file -> (accepted boxes, predicted boxes): (class, x, y, w, h[, score])
SCENES: dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {
    "missing.png": ([("cat", 20, 20, 60, 60)],
                    [("cat", 21, 20, 60, 59, 0.99), ("dog", 120, 80, 50, 50, 0.99)]),
    "swapped.png": ([("cat", 30, 30, 70, 60)], [("dog", 31, 30, 69, 61, 0.99)]),
    "misplaced.png": ([("dog", 20, 20, 60, 60)], [("dog", 62, 50, 60, 60, 0.99)]),
    "unpredicted.png": ([("cat", 20, 20, 60, 60), ("dog", 120, 80, 50, 50)],
                        [("cat", 20, 21, 60, 60, 0.99)]),
}  # fmt: skip
FLAWED = {"missing.png": "missing", "swapped.png": "swapped", "misplaced.png": "misplaced"}


def _agreeing(i: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    cls, x = CLASSES[i % 2], 10 + 7 * i
    return [(cls, x, 15, 50, 45)], [(cls, x + 1, 15, 50, 46, 0.99)]


def _scenes() -> dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    return {**{f"agree_{i:02d}.png": _agreeing(i) for i in range(AGREEING)}, **SCENES}


def _build(store: Store, folder: Path, name: str = "d") -> dict[str, int]:
    """A detection dataset: boxes accepted by hand, then a model run's predictions stored as a
    prelabel run stores them; plus one unlabelled image. Returns file name -> image id."""
    from PIL import Image as PILImage

    scenes = _scenes()
    folder.mkdir(parents=True, exist_ok=True)
    for n, file in enumerate([*scenes, "unlabelled.png"]):  # distinct bytes: no duplicates
        PILImage.new("RGB", (200, 160), (90 + 5 * n, 90, 90)).save(folder / file)
    with store.session() as s:
        ds = create_dataset(s, name, "detection", CLASSES, folder)
        add_images(s, ds, [folder])
        class_ids = {c.name: c.id for c in ds.classes}
        ids = {Path(p).name: i for i, p in s.execute(select(Image.id, Image.path))}
    for file, (boxes, _) in scenes.items():
        for cls, x, y, w, h in boxes:
            with store.session() as s:
                labels.add_box(s, ids[file], class_ids[cls], Box(x, y, w, h), "tester")
    _predict(store, name, ids, {f: p for f, (_, p) in scenes.items()})
    return ids


def _predict(
    store: Store, name: str, ids: dict[str, int], predicted: dict[str, list[tuple[Any, ...]]]
) -> int:
    with store.session() as s:
        ds = get_dataset(s, name)
        run = open_run(s, ds, "fake-detector", None, {"threshold": 0.5})
        batch = [ImagePredictions(ids[f], [Label(c, Box(x, y, w, h), score=p, source="model",
                                                 review="pending")
                                           for c, x, y, w, h, p in boxes], 0.1)
                 for f, boxes in predicted.items()]  # fmt: skip
        write_batch(s, run, batch)
        finish_run(s, run)
        return run.id


def _suspects(run_cli: Any, *args: str) -> dict[str, Any]:
    result = run_cli("suspects", "d", "--json", *args)
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def _by_file(flags: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for f in flags:
        found.setdefault(Path(f["path"]).name, []).append(f)
    return found


def _assert_kinds(out: dict[str, Any]) -> None:
    flagged = _by_file(out["flags"])
    assert set(flagged) == set(FLAWED)  # agreeing images, and the unpredicted label, left alone
    assert {f: [x["kind"] for x in fs] for f, fs in flagged.items()} == {
        f: [k] for f, k in FLAWED.items()
    }
    (missing,) = flagged["missing.png"]
    assert (missing["given"], missing["suggested"], missing["box"]) == (
        None, "dog", [120, 80, 50, 50])  # fmt: skip
    (swapped,) = flagged["swapped.png"]
    assert (swapped["given"], swapped["suggested"], swapped["box"]) == (
        "cat", "dog", [30, 30, 70, 60])  # fmt: skip
    (misplaced,) = flagged["misplaced.png"]
    assert (misplaced["given"], misplaced["suggested"]) == ("dog", None)
    scores = [f["score"] for f in out["flags"]]
    assert scores == sorted(scores) and all(0 <= s < 0.5 for s in scores)
    report = out["report"]
    assert (report["images"], report["flagged_images"], report["flagged"]) == (
        AGREEING + len(SCENES), 3, 3)  # fmt: skip
    assert report["kinds"] == {"missing": 1, "swapped": 1, "misplaced": 1}


def test_each_kind_of_suspect_box_is_flagged_and_agreeing_images_are_not(
    store: Store, tmp_path: Path, run_cli: Any
) -> None:
    _build(store, tmp_path / "d")
    _assert_kinds(_suspects(run_cli))
    plain = run_cli("suspects", "d", "--list")
    assert plain.exit_code == 0, plain.output
    for word in ("kind", "suggested", "missing", "swapped", "misplaced", "misplaced.png"):
        assert word in plain.stdout


def test_the_queue_serves_suspect_boxes_worst_first_and_confirming_or_fixing_clears(
    store: Store, tmp_path: Path, run_cli: Any
) -> None:
    ids = _build(store, tmp_path / "d")
    flags = _suspects(run_cli)["flags"]
    worst_first = list(dict.fromkeys(f["image_id"] for f in flags))
    spec = q.QueueSpec("suspects", "path")
    with store.session() as s:
        ds_id = get_dataset(s, "d").id
        walk = [q.first(s, ds_id, spec)]
        while (after := q.step(s, spec, walk[-1])) is not None:  # type: ignore[arg-type]
            walk.append(after)
        shown = q.load_view(s, ids["swapped.png"]).suspect
    assert walk == worst_first and len(walk) == 3
    assert shown is not None and "cat → dog" in shown
    confirmed = run_cli("suspects", "d", "--confirm", str(ids["misplaced.png"]))
    assert confirmed.exit_code == 0, confirmed.output
    with store.session() as s:
        box = s.scalars(select(Annotation).where(Annotation.image_id == ids["swapped.png"],
                                                 Annotation.review == "accepted")).one()  # fmt: skip
        dog = next(c.id for c in get_dataset(s, "d").classes if c.name == "dog")
        labels.edit_annotation(s, box.id, "fixer", class_id=dog)
    listed = _by_file(_suspects(run_cli, "--list")["flags"])
    assert set(listed) == {"missing.png"}
    with store.session() as s:
        ds = get_dataset(s, "d")
        kept = flag_history(s, ds, ids["misplaced.png"])
        fixed = flag_history(s, ds, ids["swapped.png"])
        remaining = q.total(s, ds_id, spec)
    assert [(f.kind, f.resolution, f.cleared_by) for f in kept] == [
        ("misplaced", "confirmed", "tester")]  # fmt: skip
    assert [(f.kind, f.resolution, f.cleared_by) for f in fixed] == [("swapped", "edited", "fixer")]
    assert remaining == 1


def test_the_run_compared_with_is_chosen_or_named(
    store: Store, tmp_path: Path, run_cli: Any
) -> None:
    ids = _build(store, tmp_path / "d")
    with store.session() as s:
        first = s.scalar(select(Annotation.run_id).where(Annotation.run_id.is_not(None)))
    later = _predict(store, "d", ids, {"unlabelled.png": [("cat", 5, 5, 30, 30, 0.99)]})
    assert later != first
    assert _suspects(run_cli)["report"]["model_run"] == first  # newest with labelled images
    refused = run_cli("suspects", "d", "--run", str(later))
    assert refused.exit_code == 2 and "nothing to compare" in refused.stderr
    unknown = run_cli("suspects", "d", "--run", "999")
    assert unknown.exit_code == 2 and unknown.stderr.startswith("error: ")
    assert "no run 999" in unknown.stderr and "Traceback" not in unknown.output


def test_a_detection_dataset_without_predictions_is_refused_in_one_line(
    store: Store, tmp_path: Path, run_cli: Any
) -> None:
    folder = tmp_path / "e"
    folder.mkdir()
    from PIL import Image as PILImage

    PILImage.new("RGB", (50, 40)).save(folder / "a.png")
    with store.session() as s:
        ds = create_dataset(s, "e", "detection", CLASSES, folder)
        add_images(s, ds, [folder])
    result = run_cli("suspects", "e")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and "run annotator prelabel" in result.stderr
    assert "Traceback" not in result.output


def test_the_boxes_named_are_on_exactly_the_images_cleanlab_finds_an_issue_in() -> None:
    import random

    from cleanlab.object_detection.filter import find_label_issues

    from annotator.learn.box_suspects import ImageBoxes, box_flags, cleanlab_inputs
    from annotator.store.box_suspects import BoxRecord

    rng, images = random.Random(3), []
    for i in range(60):
        boxes, predicted = [], []
        for j in range(rng.randint(1, 3)):
            cls, x, y = rng.choice((1, 2)), rng.uniform(0, 150), rng.uniform(0, 110)
            given = cls if rng.random() > 0.1 else 3 - cls  # some swapped
            dx = rng.choice((0, 0, 0, 30))  # some moved
            if rng.random() > 0.1:  # some dropped
                boxes.append(BoxRecord(10 * i + j, given, x + dx, y, 40, 40, None))
            predicted.append(BoxRecord(1000 + 10 * i + j, cls, x + 1, y, 40, 41, 0.99))
        images.append(ImageBoxes(i, boxes or [BoxRecord(10 * i + 9, 1, 180, 130, 10, 10, None)],
                                 sorted(predicted, key=lambda b: b.class_id)))  # fmt: skip
    flags = box_flags(images, [1, 2])
    mask = find_label_issues(*cleanlab_inputs(images, [1, 2]))
    assert {f.image_id for f in flags} == {i for i in range(60) if mask[i]}
    assert {f.kind for f in flags} == {"missing", "swapped", "misplaced"}


@pytest.mark.xdist_group("fiftyone")
def test_the_suspect_labels_view_lists_suspect_boxes_worst_first(
    store: Store, tmp_path: Path, run_cli: Any, fo: Any
) -> None:
    from annotator.review import backend
    from annotator.review.push import push

    ids = _build(store, tmp_path / "d", name="d")
    worst_first = list(dict.fromkeys(f["image_id"] for f in _suspects(run_cli)["flags"]))
    name = f"annotator-{tmp_path.name[:40]}"
    try:
        with store.session() as s:
            push(s, get_dataset(s, "d"), fo_name=name)
        view = fo.load_dataset(name).load_saved_view("suspect_labels")
        listed = view.values([backend.ID, backend.SUGGESTED])
        assert list(zip(*listed, strict=True))[:1] == [(ids["missing.png"], "dog")]
        assert listed[0] == worst_first
    finally:
        if fo.dataset_exists(name):
            fo.delete_dataset(name)


class TestOnPostgres:
    pytestmark = needs_postgres

    @pytest.fixture
    def db_url(self, pg_url: str) -> str:
        return pg_url

    def test_suspect_boxes_on_postgres(self, store: Store, tmp_path: Path, run_cli: Any) -> None:
        ids = _build(store, tmp_path / "d")
        _assert_kinds(_suspects(run_cli))
        assert run_cli("suspects", "d", "--confirm", str(ids["missing.png"])).exit_code == 0
        listed = _by_file(_suspects(run_cli, "--list")["flags"])
        assert set(listed) == {"swapped.png", "misplaced.png"}
        with store.session() as s:
            history = flag_history(s, get_dataset(s, "d"), ids["missing.png"])
        assert [(f.kind, f.resolution) for f in history] == [("missing", "confirmed")]
