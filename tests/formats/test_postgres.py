"""The bulk import, splits and exports on PostgreSQL (the driver-level executemany and the raw
fetch take another paramstyle there): the same store content and the same export files as on
SQLite. Runs against the server `make test` starts (ANNOTATOR_TEST_PG_URL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from annotator.formats.exporting import export_dataset
from annotator.store.db import Store, open_store
from tests.conftest import needs_postgres
from tests.formats.conftest import import_samples_into, store_labels

pytestmark = needs_postgres


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    store = open_store(pg_url)
    yield store
    store.close()


def _exports(store: Store, dest: Path) -> dict[str, bytes]:
    with store.session() as s:
        export_dataset(s, "coco", "scenes", dest / "coco", media="none")
        export_dataset(s, "yolo", "scenes", dest / "yolo", media="none")
    out = {}
    for path in sorted(dest.rglob("*")):
        if path.is_file() and path.suffix in (".txt", ".yaml"):
            out[str(path.relative_to(dest))] = path.read_bytes()
        elif path.suffix == ".json" and path.name != "manifest.json":
            data = orjson.loads(path.read_bytes())
            data.pop("info")
            out[str(path.relative_to(dest))] = orjson.dumps(data)
    return out


def test_same_store_and_exports_as_sqlite(pg_store: Store, sample_store: Store,
                                          tmp_path: Path) -> None:  # fmt: skip
    from annotator.store.history import snapshot
    from annotator.store.models import Annotation, HistoryEvent

    import_samples_into(pg_store)
    for name in ("pets", "scenes"):
        assert store_labels(pg_store, name) == store_labels(sample_store, name)
    with pg_store.session() as s:
        anns = {a.id: a for a in s.scalars(select(Annotation))}
        events = s.scalars(select(HistoryEvent).where(HistoryEvent.action == "create")).all()
        assert len(events) == len(anns) == 49
        assert all(e.after == snapshot(anns[e.annotation_id]) for e in events)
        splits = s.scalars(select(HistoryEvent).where(HistoryEvent.action == "split")).all()
        assert len(splits) == 30 and all(e.before == {"split": None} for e in splits)
    pg, lite = _exports(pg_store, tmp_path / "pg"), _exports(sample_store, tmp_path / "lite")
    assert pg.keys() == lite.keys() and len(pg) == 18  # 2 JSON, data.yaml, 15 .txt
    for key in pg:  # ids differ between the stores; everything else is the same
        if key.endswith(".json"):
            a, b = orjson.loads(pg[key]), orjson.loads(lite[key])
            assert [i["file_name"] for i in a["images"]] == [i["file_name"] for i in b["images"]]
            assert [x["bbox"] for x in a["annotations"]] == [x["bbox"] for x in b["annotations"]]
        else:
            assert pg[key] == lite[key], key
