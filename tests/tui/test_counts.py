"""The status bar's counts (position, queue size, images done, images): exact after every edit
on a dataset of ordinary size; on a big one (the totals of a queue of a million images take
seconds to count) they are counted again only now and then, so an app whose labeller pauses on
each image does not keep a core busy counting."""

from __future__ import annotations

from typing import Any

from annotator.store import labels
from annotator.store import queue as q
from annotator.tui import backend as backend_module
from annotator.tui.backend import Backend
from tests.tui.conftest import Fixture


def _label_first(tui: Fixture, backend: Backend, spec: q.QueueSpec) -> tuple[int, int, int]:
    """Label the queue's first image as its first class: (dataset id, that image, the next)."""
    info = backend.dataset("pets")
    first = backend.find_view(info.id, spec, "first", None)
    after = backend.find_view(info.id, spec, "step", first.id if first else None, 1)
    assert first is not None and after is not None
    with tui.store.session() as s:
        labels.assign_class(s, first.id, info.classes[0].id, "ann")
    return info.id, first.id, after.id


def _counting(monkeypatch: Any) -> list[q.QueueSpec]:
    """The queue totals counted from now on, one entry each."""
    counted: list[q.QueueSpec] = []
    total = q.total

    def spy(session: Any, dataset_id: int, spec: q.QueueSpec) -> int:
        counted.append(spec)
        return total(session, dataset_id, spec)

    monkeypatch.setattr(q, "total", spy)
    return counted


def test_counts_follow_every_edit_on_a_dataset_of_ordinary_size(
    tui: Fixture, monkeypatch: Any
) -> None:
    backend = Backend(tui.store, "ann")
    spec = q.QueueSpec("unlabeled", "path")
    info = backend.dataset("pets")
    first = backend.find_view(info.id, spec, "first", None)
    assert first is not None
    assert backend.counts(info.id, spec, first.id) == (1, 4, 0, 4)
    counted = _counting(monkeypatch)
    _, _, after = _label_first(tui, backend, spec)
    assert backend.counts(info.id, spec, after) == (1, 3, 1, 4)
    assert len(counted) == 3  # all, unlabeled and the queue: counted again


def test_a_big_datasets_totals_are_counted_again_only_after_a_while(
    tui: Fixture, monkeypatch: Any
) -> None:
    monkeypatch.setattr(backend_module, "TOTALS_CACHED_FROM_IMAGES", 4)  # as if it were big
    monkeypatch.setattr(backend_module, "TOTALS_EVERY_COST", 10**9)
    backend = Backend(tui.store, "ann")
    spec = q.QueueSpec("all", "path")
    info = backend.dataset("pets")
    first = backend.find_view(info.id, spec, "first", None)
    assert first is not None
    counted = _counting(monkeypatch)
    assert backend.counts(info.id, spec, first.id) == (1, 4, 0, 4)
    _, _, after = _label_first(tui, backend, spec)
    # the position is read every time; the totals lag the edit until they are due again
    assert backend.counts(info.id, spec, after) == (2, 4, 0, 4)
    assert len(counted) == 3
    monkeypatch.setattr(backend_module, "TOTALS_EVERY_COST", 0)  # due now
    assert backend.counts(info.id, spec, after) == (2, 4, 1, 4)
    assert len(counted) == 6
