"""A label's identity in the mirror: its creation time reads the same whatever the engine hands
back, and a sample tells the App's edits and deletes from labels it left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from annotator.review.convert import PushedLabel
from annotator.review.mirror import FoLabel, FoSample
from annotator.store.review_reads import stamp


def test_a_creation_time_reads_the_same_naive_or_in_any_zone() -> None:
    naive = datetime(2026, 11, 30, 23, 18, 8, 123456)  # SQLite hands back naive UTC
    aware = naive.replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2)))  # PostgreSQL
    assert stamp(naive) == stamp(aware) == "2026-11-30T23:18:08.123456"
    assert stamp(naive.replace(microsecond=0)) == "2026-11-30T23:18:08.000000"


def _label(ann_id: int | None, name: str, bbox: list[float] | None) -> FoLabel:
    return FoLabel("ground_truth", f"fo{ann_id}", ann_id, 1, [], name, bbox)


def test_a_sample_tells_app_edits_and_deletes_from_untouched_labels() -> None:
    box = [0.1, 0.2, 0.3, 0.4]
    pushed = {i: PushedLabel(1, f"t{i}", "cat", box) for i in (1, 2, 3, 4)}
    sample = FoSample("s", 7, 1, [], pushed=pushed)
    sample.labels = [_label(1, "cat", list(box)), _label(2, "dog", box),
                     _label(3, "cat", [0.1, 0.2, 0.3, 0.5]), _label(None, "cat", box)]  # fmt: skip
    assert sample.app_changes() == [
        "label 2 (cat) edited", "label 3 (cat) edited", "label 4 (cat) deleted"]  # fmt: skip
    assert FoSample("s", 7, 1, [], labels=sample.labels).app_changes() == []  # nothing recorded
    assert PushedLabel.parse(pushed[1].to_value()) == pushed[1]
    assert PushedLabel.parse({"revision": "x"}) is None and PushedLabel.parse(None) is None
