"""An export that fails half way releases what its writer held: no label file or spool left
open, no YOLO write thread left running, no hidden building folder left beside DEST."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from annotator.formats.exporting import export_dataset
from annotator.formats.media import MediaPlacer
from annotator.store.db import Store

FD_DIR = Path("/proc/self/fd")


def _open_under(root: Path) -> list[str]:
    """The files this process holds open under `root` (deleted ones included)."""
    found = []
    for fd in os.listdir(FD_DIR):
        with contextlib.suppress(OSError):  # the listing's own descriptor is gone by now
            target = os.readlink(FD_DIR / fd)
            if target.startswith(str(root)):
                found.append(target)
    return found


@pytest.mark.skipif(not FD_DIR.is_dir(), reason="needs /proc/self/fd (Linux)")
@pytest.mark.parametrize(
    ("fmt", "dataset"), [("coco", "scenes"), ("yolo", "scenes"), ("imagefolder", "pets")]
)
def test_a_failed_export_leaves_nothing_open(
    sample_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, dataset: str
) -> None:
    real = MediaPlacer.place
    calls: list[str] = []

    def failing(self: MediaPlacer, sample: Any, target: str) -> None:
        calls.append(target)
        if len(calls) == 3:  # the split's label files are open by now
            raise RuntimeError("the disk went away")
        real(self, sample, target)

    monkeypatch.setattr(MediaPlacer, "place", failing)
    out = tmp_path / "out"
    out.mkdir()
    with sample_store.session() as s, pytest.raises(RuntimeError, match="disk went away") as failed:
        export_dataset(s, fmt, dataset, out / "new")
    assert failed.tb is not None  # held, as a caller reporting it does: nothing is collected
    assert len(calls) == 3
    assert _open_under(out) == []
    assert list(out.iterdir()) == []  # no hidden building folder, no DEST
    assert [t.name for t in threading.enumerate() if t.name.startswith("yolo-write")] == []
