"""Repeated COCO annotation ids are refused whatever the ids look like (dense, sparse, huge,
negative, strings), with the compact set of ids seen the reader keeps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from annotator.formats.coco_read import IdSet
from annotator.formats.importing import import_source
from annotator.store.db import Store
from tests.formats.conftest import image_rows


def test_id_set_holds_exactly_the_ids_added() -> None:
    ids = IdSet()
    added = [0, 1, 2, 7, 8, 1000, 123_457, IdSet.BITMAP_IDS - 1, IdSet.BITMAP_IDS, 1 << 62,
             -1, -(1 << 40), "5", "", "x"]  # fmt: skip
    for value in added:
        assert value not in ids
        ids.add(value)
        assert value in ids
    absent = [3, 6, 9, 999, 1001, 123_456, IdSet.BITMAP_IDS + 1, -2, "6", "0", 5, 1 << 61]
    assert [v for v in absent if v in ids] == []
    assert all(v in ids for v in added)
    assert "1" not in ids and 5 not in ids  # a string id is not the number it spells


def test_id_set_of_a_million_dense_ids_stays_small() -> None:
    ids = IdSet()
    for value in range(1, 1_000_001):
        ids.add(value)
    assert 1_000_000 in ids and 1_000_001 not in ids and 0 not in ids
    assert len(ids.bits) <= 1 << 18 and not ids.others  # ~125 KB, no per-id objects


@pytest.mark.parametrize(
    "first, second, repeat",
    [
        (1, 2, 1),  # dense
        (40_000_000, 7, 40_000_000),  # sparse, inside the bitmap
        (1 << 40, 3, 1 << 40),  # huge: beyond the bitmap
        (-4, 0, -4),  # negative
        ("a-1", "1", "a-1"),  # strings ("1" is not 1)
    ],
)
def test_a_repeated_id_is_refused_and_flags_its_image(
    store: Store, coco_source: Callable[..., Path], first: Any, second: Any, repeat: Any
) -> None:
    anns = [
        {"id": first, "image_id": 1, "category_id": 1, "bbox": [1, 1, 5, 5]},
        {"id": second, "image_id": 2, "category_id": 2, "bbox": [2, 2, 5, 5]},
        {"id": repeat, "image_id": 3, "category_id": 2, "bbox": [3, 3, 5, 5]},
    ]
    with store.session() as s:
        report = import_source(s, "coco", coco_source(anns), "ds")
    [problem] = report.problems
    assert problem.where == f"annotation id {repeat}"
    assert problem.reason == f"annotation id {repeat!r} is listed twice (the first is kept)"
    rows = image_rows(store, "ds")
    assert [rows[f"img{i}.jpg"].status for i in range(3)] == ["labeled", "labeled", "unlabeled"]
    assert "listed twice" in rows["img2.jpg"].flag
