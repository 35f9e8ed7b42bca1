"""Push: the FiftyOne mirror holds what the store holds (labels by field, boxes relative to the
displayed image, ids and revisions), a second push writes only what changed, deletions reach
FiftyOne, and the saved views hold the right samples."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import delete, select

from annotator.annotation import Box
from annotator.errors import ConflictError
from annotator.review import backend
from annotator.review.push import push
from annotator.store import labels
from annotator.store.datasets import get_dataset, rename_class
from annotator.store.models import Annotation, Image
from tests.review.conftest import Built, add_prediction

pytestmark = pytest.mark.xdist_group("fiftyone")

HUMAN0 = Box(1.5, 2.25, 20.125, 30.5)  # on the rotated image (displayed 48 x 64)


def detection_store(build: Any, store: Any) -> Built:
    """img0 (EXIF-rotated): a human cat, an agreeing cat prediction, a rejected bird one;
    img1: a human dog and a low-confidence cat prediction elsewhere (a disagreement);
    img2: a bird prediction only; img3: nothing."""
    b = build("detection", 4, rotated=True)
    i0, i1, i2, _ = b.images
    with store.session() as s:
        b.labels["human0"] = labels.add_box(s, i0, b.classes["cat"], HUMAN0, "ann").id
        b.labels["human1"] = labels.add_box(s, i1, b.classes["dog"], Box(5, 5, 10, 10), "ann").id
        b.labels["pred0"] = add_prediction(s, b, i0, "cat", 0.9, HUMAN0)
        b.labels["bad0"] = add_prediction(s, b, i0, "bird", 0.6, Box(10, 10, 5, 5))
        b.labels["pred1"] = add_prediction(s, b, i1, "cat", 0.3, Box(40, 30, 10, 10))
        b.labels["pred2"] = add_prediction(s, b, i2, "bird", 0.8, Box(3, 3, 7, 7))
        labels.review_annotations(s, [b.labels["bad0"]], "rejected", "ann")
    return b


def do_push(store: Any, b: Built, **kw: Any) -> Any:
    with store.session() as s:
        return push(s, get_dataset(s, b.name), **kw)


def by_image(fods: Any) -> dict[int, Any]:
    return {smp[backend.ID]: smp for smp in fods.iter_samples()}


def _labels(sample: Any, field: str) -> list[Any]:
    value = sample[field]
    if value is None:
        return []
    return list(getattr(value, "detections", None) or getattr(value, "classifications", None)
                or [value])  # fmt: skip


def test_detection_push_mirrors_the_store(fo: Any, build: Any, store: Any) -> None:
    b = detection_store(build, store)
    report = do_push(store, b)
    assert (report.added, report.updated, report.deleted, report.rebuilt) == (4, 0, 0, True)
    fods = fo.load_dataset(b.fo_name)
    assert fods.persistent and len(fods) == 4
    with store.session() as s:
        anns = list(s.scalars(select(Annotation)))
        images = {i.id: i for i in s.scalars(select(Image))}
    field_of = {"accepted": "ground_truth", "pending": "prelabels", "rejected": "rejected"}
    want = Counter(field_of[a.review] for a in anns)
    got = Counter({f: fods.count(f"{f}.detections") for f in field_of.values()})
    assert got == want
    samples = by_image(fods)
    for ann in anns:
        img, smp = images[ann.image_id], samples[ann.image_id]
        (label,) = [x for x in _labels(smp, field_of[ann.review]) if x[backend.ID] == ann.id]
        assert label.label == next(k for k, v in b.classes.items() if v == ann.class_id)
        assert label[backend.REVISION] == ann.revision
        assert label.bounding_box == [ann.x / img.width, ann.y / img.height,
                                      ann.w / img.width, ann.h / img.height]  # fmt: skip
        if ann.source == "model":
            assert (label.confidence, label.model, label.run_id) == (ann.score, "testnet", b.run_id)
    rotated = samples[b.images[0]]
    assert (rotated.metadata.width, rotated.metadata.height) == (48, 64)
    assert rotated.filepath.endswith("img000.jpg") and rotated.filepath.startswith("/")
    assert [samples[i].status for i in b.images] == ["labeled", "labeled", "unlabeled", "unlabeled"]
    assert samples[b.images[0]][backend.REVISION] == images[b.images[0]].revision


def test_saved_views_hold_the_right_samples(fo: Any, build: Any, store: Any) -> None:
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    i0, i1, i2, i3 = b.images
    expected = {
        "needs_review": {i0, i1, i2},
        "low_confidence": {i1},
        "unlabeled": {i2, i3},
        "disagreements": {i1},
        "rejected": {i0},
        "suspect_labels": set(),
    }
    assert set(fods.list_saved_views()) == set(expected)
    got = {name: set(fods.load_saved_view(name).values(backend.ID)) for name in expected}
    assert got == expected
    # the views follow the store: accept the low-confidence prediction, push again
    with store.session() as s:
        labels.review_annotations(s, [b.labels["pred1"]], "accepted", "ann")
    do_push(store, b)
    assert set(fods.load_saved_view("low_confidence").values(backend.ID)) == set()
    assert set(fods.load_saved_view("needs_review").values(backend.ID)) == {i0, i2}


def _modified(fods: Any) -> dict[int, Any]:
    return dict(zip(*fods.values([backend.ID, "last_modified_at"]), strict=True))


def test_incremental_push_touches_only_changed_samples(fo: Any, build: Any, store: Any) -> None:
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    before = _modified(fods)
    again = do_push(store, b)
    assert (again.added, again.updated, again.deleted, again.rebuilt) == (0, 0, 0, False)
    assert _modified(fods) == before
    with store.session() as s:
        labels.edit_annotation(s, b.labels["human1"], "ann", box=Box(6, 6, 12, 12))
    report = do_push(store, b)
    assert (report.added, report.updated, report.deleted) == (0, 1, 0)
    after = _modified(fods)
    assert [i for i in b.images if after[i] != before[i]] == [b.images[1]]
    (label,) = by_image(fods)[b.images[1]].ground_truth.detections
    assert label.bounding_box == [6 / 64, 6 / 48, 12 / 64, 12 / 48]
    assert label[backend.REVISION] == 2


def test_deletions_and_new_images_reach_fiftyone(fo: Any, build: Any, store: Any,
                                                  tmp_path: Any) -> None:  # fmt: skip
    from annotator.store.images import add_images
    from tests.conftest import write_jpeg

    b = detection_store(build, store)
    do_push(store, b)
    with store.session() as s:
        labels.delete_annotation(s, b.labels["human1"], "ann")
        s.execute(delete(Annotation).where(Annotation.id == b.labels["pred2"]))  # no history
        s.execute(delete(Image).where(Image.id == b.images[3]))
        s.commit()
        new = add_images(s, get_dataset(s, b.name), [write_jpeg(tmp_path / "n" / "new.jpg")])
    report = do_push(store, b)
    # (SQLite may hand the new image the deleted one's id: it must still be a new sample)
    assert (report.added, report.deleted) == (1, 1)
    fods = fo.load_dataset(b.fo_name)
    samples = by_image(fods)
    assert set(samples) == {*b.images[:3], *new.added_ids}
    assert samples[new.added_ids[0]].filepath == str(tmp_path / "n" / "new.jpg")
    assert samples[b.images[1]].ground_truth is None
    assert samples[b.images[2]].prelabels is None
    with store.session() as s:
        total = len(list(s.scalars(select(Annotation.id))))
    assert sum(fods.count(f"{f}.detections") for f in backend.LABEL_FIELDS) == total


def test_renamed_class_and_full_rebuild_keep_tags(fo: Any, build: Any, store: Any) -> None:
    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    smp = by_image(fods)[b.images[2]]
    smp.tags = ["relabel"]
    smp.prelabels.detections[0].tags = ["accept"]
    smp.save()
    with store.session() as s:
        rename_class(s, get_dataset(s, b.name), "bird", "sparrow")
    do_push(store, b)
    smp = by_image(fods)[b.images[2]]
    assert smp.prelabels.detections[0].label == "sparrow"
    report = do_push(store, b, full=True)
    assert report.rebuilt and report.updated == 4
    smp = by_image(fods)[b.images[2]]
    assert smp.tags == ["relabel"] and smp.prelabels.detections[0].tags == ["accept"]


@pytest.mark.parametrize("task", ["classification", "multilabel"])
def test_whole_image_labels(fo: Any, build: Any, store: Any, task: str) -> None:
    b = build(task, 3)
    i0, i1, _ = b.images
    with store.session() as s:
        if task == "classification":
            labels.assign_class(s, i0, b.classes["cat"], "ann")
        else:
            labels.toggle_class(s, i0, b.classes["cat"], "ann")
            labels.toggle_class(s, i0, b.classes["dog"], "ann")
        add_prediction(s, b, i0, "bird", 0.7)
        add_prediction(s, b, i1, "dog", 0.2)
        scored = s.get(Image, i1)
        assert scored is not None
        scored.split, scored.uncertainty = "val", 0.75
        s.commit()
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    kind = "Classification" if task == "classification" else "Classifications"
    assert type(by_image(fods)[i0].ground_truth).__name__ == kind
    gt = _labels(by_image(fods)[i0], "ground_truth")
    want = ["cat"] if task == "classification" else ["cat", "dog"]
    assert sorted(x.label for x in gt) == want
    assert [x.confidence for x in _labels(by_image(fods)[i1], "prelabels")] == [0.2]
    assert (by_image(fods)[i1].split, by_image(fods)[i1].uncertainty) == ("val", 0.75)
    assert set(fods.load_saved_view("disagreements").values(backend.ID)) == {i0}
    assert set(fods.load_saved_view("low_confidence").values(backend.ID)) == {i1}


def test_a_foreign_dataset_is_not_overwritten(fo: Any, build: Any, store: Any) -> None:
    b = build("classification", 2)
    fo.Dataset(b.fo_name, persistent=True)
    with pytest.raises(ConflictError, match="--full"):
        do_push(store, b)
    report = do_push(store, b, full=True)
    assert report.rebuilt and len(fo.load_dataset(b.fo_name)) == 2


def test_progress_is_reported(fo: Any, build: Any, store: Any) -> None:
    b = build("classification", 3)
    calls: list[tuple[int, int]] = []
    do_push(store, b, progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 3) and calls[-1] == (3, 3)


def test_a_push_cut_short_is_finished_by_the_next(fo: Any, build: Any, store: Any,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from annotator.review import mirror

    b = detection_store(build, store)

    def interrupted(*args: Any) -> Any:
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(mirror, "existing", interrupted)  # after the samples, before their labels
        with pytest.raises(KeyboardInterrupt):
            do_push(store, b)
    assert len(fo.load_dataset(b.fo_name)) == 4  # bare samples only
    report = do_push(store, b)
    assert report.rebuilt and report.updated == 4
    fods = fo.load_dataset(b.fo_name)
    assert fods.count("ground_truth.detections") == 2
    assert set(fods.load_saved_view("disagreements").values(backend.ID)) == {b.images[1]}


def test_push_refuses_to_overwrite_app_changes_not_pulled(fo: Any, build: Any, store: Any,
                                                          run_cli: Any) -> None:  # fmt: skip
    from annotator.review.pull import pull

    b = detection_store(build, store)
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    i1, i2 = b.images[1], b.images[2]
    smp = by_image(fods)[i1]
    smp.ground_truth.detections[0].bounding_box = [0.25, 0.5, 0.5, 0.25]  # human1, moved
    smp.save()
    with store.session() as s:  # the store changes the same image: a push must rewrite it
        labels.review_annotations(s, [b.labels["pred1"]], "rejected", "ann")
    with pytest.raises(ConflictError, match=f"label {b.labels['human1']} \\(dog\\) edited"):
        do_push(store, b)
    assert by_image(fods)[i1].ground_truth.detections[0].bounding_box == [0.25, 0.5, 0.5, 0.25]
    smp = by_image(fods)[i2]  # a label deleted in the App, on an image the store left alone
    smp.prelabels.detections = []
    smp.save()
    for args in (["review", "push", b.name], ["review", "push", "--full", b.name]):
        result = run_cli(*args)
        assert result.exit_code == 2
        (line,) = [x for x in result.stderr.splitlines() if x.startswith("error: ")]
        assert f"run annotator review pull {b.name} first" in line
        assert "Traceback" not in result.stderr
    assert by_image(fods)[i1].ground_truth.detections[0].bounding_box == [0.25, 0.5, 0.5, 0.25]
    with store.session() as s:  # pull takes both in; then there is nothing to refuse
        report = pull(s, get_dataset(s, b.name))
    assert report.applied == {"edited": 1, "deleted": 1} and report.conflicts == []
    with store.session() as s:
        moved = s.get(Annotation, b.labels["human1"])
        assert moved is not None and (moved.x, moved.y, moved.author) == (16, 24, "fiftyone")
        assert s.get(Annotation, b.labels["pred2"]) is None
    assert do_push(store, b, full=True).updated == 4
