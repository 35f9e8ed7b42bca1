"""The saved view `suspect_labels`: a push carries each image's worst open suspect flag (its
label quality and the class suggested), the view lists those samples worst first, and later
pushes follow the flags: a new `suspects` run, a confirmed label, an edited image."""

from __future__ import annotations

from typing import Any

import pytest

from annotator.review import backend
from annotator.store import labels
from annotator.store.datasets import get_dataset
from annotator.store.suspects import NewFlag, confirm, write_flags
from tests.review.conftest import Built
from tests.review.test_push import by_image, do_push

pytestmark = pytest.mark.xdist_group("fiftyone")


def _flags(store: Any, b: Built, flags: list[tuple[int, str, str, float]]) -> None:
    """A suspects run raising (image, class given, class suggested, score) flags."""
    with store.session() as s:
        new = [NewFlag(i, b.classes[g], b.classes[w], sc) for i, g, w, sc in flags]
        write_flags(s, get_dataset(s, b.name), new, "tester")


def _view(fods: Any) -> list[tuple[int, float, str]]:
    view = fods.load_saved_view("suspect_labels")
    return list(zip(*view.values([backend.ID, backend.SUSPECT, backend.SUGGESTED]), strict=True))


def test_suspect_labels_view_follows_the_flags(fo: Any, build: Any, store: Any) -> None:
    b = build("classification", 4)
    i0, i1, i2, i3 = b.images
    with store.session() as s:
        for image_id, cls in ((i0, "cat"), (i1, "dog"), (i2, "bird"), (i3, "cat")):
            labels.assign_class(s, image_id, b.classes[cls], "ann")
    _flags(store, b, [(i1, "dog", "cat", 0.4), (i2, "bird", "dog", 0.05)])
    do_push(store, b)
    fods = fo.load_dataset(b.fo_name)
    assert _view(fods) == [(i2, 0.05, "dog"), (i1, 0.4, "cat")]
    assert "worst first" in fods.get_saved_view_info("suspect_labels")["description"]
    # a new run supersedes the old flags: the next (incremental) push shows only its own
    _flags(store, b, [(i0, "cat", "bird", 0.2), (i1, "dog", "cat", 0.3)])
    do_push(store, b)
    assert _view(fods) == [(i0, 0.2, "bird"), (i1, 0.3, "cat")]
    with store.session() as s:  # a person confirms one label and fixes the other
        confirm(s, get_dataset(s, b.name), i0, "ann")
    with store.session() as s:
        labels.assign_class(s, i1, b.classes["cat"], "ann")
    do_push(store, b)
    assert _view(fods) == []
    assert by_image(fods)[i1][backend.SUSPECT] is None
